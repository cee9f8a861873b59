"""A film of several hours, end to end through the library pipeline (issue 13, item 6), made cheap
by a tiny frame (64x36 at 2 fps, mono 8 kHz audio, x264 ultrafast): one real ingest with a short
lease, watched from a second thread, shows that the heartbeat renews the lease while the long
ffmpeg runs go on (a rival worker is refused all along), that the transcode's progress keeps
moving to the film's end, and that the duration the full decode recorded is the film's. Cost that
grows linearly with duration and flat memory are the benchmark's (bench/), not asserted here.
A second ingest (ten minutes of the same), through `preserve ingest --direct`'s own code on a real
pseudo-terminal, shows the transcode bar."""

from __future__ import annotations

import datetime as dt
import os
import pty
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import EventType, utcnow
from preserve.pipeline import ingest_submission
from preserve.pipeline.runner import run_directly
from tests.mediafactory import ffmpeg
from tests.support import isolated_settings

pytestmark = pytest.mark.slow

#: the film's length: an hour of content, so each ffmpeg run over it lasts many heartbeats
FILM_SECONDS = 3600
#: short enough that the lease would run out many times over during one ffmpeg run; the
#: heartbeat renews it every max(1 s, a third of it)
LEASE_SECONDS = 3.0
RIVAL = "rival-host:1:rival"


def make_long_film(path: Path, seconds: int) -> Path:
    ffmpeg(
        [
            "-f", "lavfi", "-i", f"testsrc2=size=64x36:rate=2:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=8000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "20",
            "-c:a", "aac", "-b:a", "16k", "-ac", "1",
            "-metadata", "title=Long Film 长片",
            str(path),
        ]
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def long_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic film, made once per session (about 6 s of x264 ultrafast)."""
    return make_long_film(tmp_path_factory.mktemp("long-film") / "long film.mp4", FILM_SECONDS)


@pytest.fixture(scope="session")
def ten_minute_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of film, ten minutes long: enough for ffmpeg to report its progress a few times."""
    return make_long_film(tmp_path_factory.mktemp("long-film") / "short film.mp4", 600)


@dataclass
class Watch:
    """What the second thread saw while the ingest ran."""

    steps: list[tuple[str, float, float]] = field(default_factory=list)  # (step, start, end) monotonic
    current: list[tuple[str, float]] = field(default_factory=list)  # the step running, since when
    leases: list[tuple[dt.datetime, dt.datetime, str]] = field(default_factory=list)  # (seen at, lease, step)
    refused: list[str] = field(default_factory=list)  # steps during which a rival's claim was refused
    taken: list[str] = field(default_factory=list)  # ... and accepted (must never happen)
    reports: list[tuple[float, float, float | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def runner(self, step: Callable[..., Any], ctx: Any, *args: Any, **kwargs: Any) -> Any:
        """The pipeline's StepRunner, noting which step runs when."""
        start = time.monotonic()
        with self.lock:
            self.current[:] = [(step.__name__, start)]
        try:
            return run_directly(step, ctx, *args, **kwargs)
        finally:
            with self.lock:
                self.steps.append((step.__name__, start, time.monotonic()))
                self.current.clear()

    def media(self, position: float, duration: float, speed: float | None) -> None:
        with self.lock:
            self.reports.append((position, duration, speed))


def _watch_leases(catalog: Catalog, key: str, watch: Watch, stop: threading.Event) -> None:
    """Every 0.2 s: the claim's lease as the catalog has it; and, once a step has lasted longer
    than a whole lease (so only the heartbeat can have kept it), a rival worker's attempt to
    take the submission over, which must be refused."""
    while not stop.wait(0.2):
        with watch.lock:
            running = list(watch.current)
        state = catalog.submission(key)
        if state is None or state.lease_until is None or not running:
            continue
        step, since = running[0]
        watch.leases.append((utcnow(), state.lease_until, step))
        if time.monotonic() - since > LEASE_SECONDS + 0.5:
            rival = catalog.claim_submission(key, RIVAL, LEASE_SECONDS)
            (watch.taken if rival is not None else watch.refused).append(step)


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Catalog]]:
    settings = isolated_settings(s3_settings, tmp_path, ingest={"lease_seconds": LEASE_SECONDS})
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def test_a_long_film_keeps_its_lease_and_its_progress_moving(env: tuple[Settings, Catalog], long_film: Path) -> None:
    settings, catalog = env
    film = settings.ingest_dir / long_film.name
    shutil.copyfile(long_film, film)
    watch, stop = Watch(), threading.Event()
    monitor = Catalog(settings.catalog_url)
    watcher = threading.Thread(target=_watch_leases, args=(monitor, film.name, watch, stop), daemon=True)
    watcher.start()
    try:
        outcome = ingest_submission(settings, catalog, film, runner=watch.runner, media_progress=watch.media)
    finally:
        stop.set()
        watcher.join()
        monitor.close()
    assert outcome.status == "stored", outcome.detail

    # the lease: never seen expired while the ingest ran, renewed by the heartbeat inside the long
    # steps (between steps the pipeline renews it itself), and a rival worker refused throughout
    assert watch.leases and all(lease > seen for seen, lease, _ in watch.leases), "the lease ran out"
    longest, start, end = max(watch.steps, key=lambda s: s[2] - s[1])
    inside = sorted({lease for _, lease, step in watch.leases if step == longest})
    assert len(inside) >= 3, f"the lease was not renewed during {longest} ({end - start:.1f} s): {inside}"
    assert not watch.taken, f"a rival worker took the submission over during {watch.taken}"
    assert watch.refused, "no step outlasted a lease: make the film longer"

    # the decoded duration recorded is the film's
    validations = catalog.events(outcome.aip_id, EventType.VALIDATION)
    decoded = [e.extra["decoded_duration"] for e in validations if "decoded_duration" in e.extra]
    assert decoded and decoded[0] == pytest.approx(FILM_SECONDS, abs=1.0)

    # the transcode's progress: reports of the film's duration, each run's positions only going
    # forward, one run reaching the end; several reports on the way (ffmpeg reports twice a second)
    reports = watch.reports
    assert reports, "no media progress reported (is ffmpeg's -progress wired into the pipeline?)"
    assert all(d == pytest.approx(FILM_SECONDS, abs=1.0) for _, d, _ in reports if d > 0)
    runs: list[list[float]] = [[]]
    for position, _, _ in reports:
        if runs[-1] and position < runs[-1][-1]:
            runs.append([])  # the next ffmpeg run over the film
        runs[-1].append(position)
    assert max(max(r) for r in runs) >= 0.98 * FILM_SECONDS
    assert max(len(set(r)) for r in runs) >= 3, runs
    assert any(s is not None and s > 0 for _, _, s in reports)


def test_preserve_ingest_on_a_terminal_draws_the_transcode_bar(
    env: tuple[Settings, Catalog], ten_minute_film: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`preserve ingest --direct`'s own code (`ingest_one`), its stderr a real pseudo-terminal."""
    import fcntl
    import struct
    import termios

    from preserve.cli.commands.ingest import ingest_one

    settings, catalog = env
    film = settings.ingest_dir / ten_minute_film.name
    shutil.copyfile(ten_minute_film, film)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    out = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, out), daemon=True)
    reader.start()
    term = os.fdopen(slave, "w", encoding="utf-8", closefd=True)
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "160")
    try:
        handled = ingest_one(settings, film, catalog=catalog)
    finally:
        term.close()
    reader.join(timeout=60)
    assert handled.status == "stored", handled.detail
    text = out.decode("utf-8", errors="replace")
    assert "ingest short film.mp4" in text  # the byte bar
    assert "transcode" in text and " / 0:10:00" in text, text[-2000:]  # position / duration
    assert "Long Film" not in text and "长片" not in text  # the film's own tags are not drawn


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other side closed
            break
        if not chunk:
            break
        into += chunk
    os.close(fd)
