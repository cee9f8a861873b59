"""The transcode's progress for people: `MediaMeter` (the thread-safe throttle in front of a listener
that talks to a server), percent and time left, and the CLI's second bar, drawn on a real
pseudo-terminal (and not at all when stderr is not a terminal)."""

from __future__ import annotations

import io
import os
import pty
import sys
import threading
from pathlib import Path

import pytest

from preserve.cli.output import ingest_bars
from preserve.core.progress import MediaMeter, percent_of, remaining_seconds

Report = tuple[float, float, float | None]


def test_meter_passes_the_first_report_the_end_and_what_flush_finds() -> None:
    heard: list[Report] = []
    meter = MediaMeter(lambda *r: heard.append(r), interval=3600.0)  # nothing else within the hour
    for position in (0.5, 1.0, 1.5, 2.0):
        meter(position, 10.0, 1.5)
    assert heard == [(0.5, 10.0, 1.5)]
    meter.flush()
    assert heard[-1] == (2.0, 10.0, 1.5)
    meter.flush()  # already passed on: not again
    assert len(heard) == 2
    meter(10.0, 10.0, 2.0)  # the end of the film always goes through
    assert heard[-1] == (10.0, 10.0, 2.0)
    meter(10.0, 0.0, None)  # an unknown duration is never "the end"
    assert heard[-1] == (10.0, 10.0, 2.0)


def test_meter_without_interval_passes_everything_and_swallows_listener_errors() -> None:
    heard: list[Report] = []

    def listener(p: float, d: float, s: float | None) -> None:
        heard.append((p, d, s))
        raise RuntimeError("a dashboard that is down")

    meter = MediaMeter(listener)
    for position in range(5):
        meter(float(position), 4.0, None)
    assert [h[0] for h in heard] == [0.0, 1.0, 2.0, 3.0, 4.0]
    MediaMeter(None)(1.0, 2.0, 1.0)  # nobody listens: nothing happens


def test_meter_never_calls_its_listener_from_two_threads_at_once() -> None:
    inside = threading.Semaphore(1)
    overlaps: list[int] = []
    calls: list[float] = []

    def listener(p: float, d: float, s: float | None) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(1)
            return
        try:
            calls.append(p)
            sum(range(2000))  # hold it a little
        finally:
            inside.release()

    meter = MediaMeter(listener)
    threads = [threading.Thread(target=lambda: [meter(float(i), 1e9, 1.0) for i in range(300)]) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps and len(calls) == 1800


def test_percent_and_time_left() -> None:
    assert percent_of(1800, 3600) == 50.0
    assert percent_of(4000, 3600) == 100.0 and percent_of(-1, 3600) == 0.0
    assert percent_of(10, 0) is None
    assert remaining_seconds(1800, 3600, 2.0) == 900.0
    assert remaining_seconds(1800, 3600, None) is None
    assert remaining_seconds(1800, 3600, 0.0) is None
    assert remaining_seconds(1800, 0, 2.0) is None


def test_no_bars_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with ingest_bars("ingest x") as (progress, media):
        assert progress is None and media is None
    assert sys.stderr.getvalue() == ""


def test_the_transcode_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    out = bytearray()
    reader = threading.Thread(target=lambda: _read_all(master, out), daemon=True)
    reader.start()
    term = os.fdopen(slave, "w", encoding="utf-8", closefd=True)
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "160")
    try:
        with ingest_bars("ingest 流浪北京") as (progress, media):
            assert progress is not None and media is not None
            progress(1000, 4000)
            media(600.0, 3600.0, 1.5)
            media(1800.0, 3600.0, 2.0)  # the last report before the display closes is drawn
    finally:
        term.close()
    reader.join(timeout=30)
    text = out.decode("utf-8", errors="replace")
    assert "transcode" in text and "ingest 流浪北京" in text
    assert "50%" in text and "0:30:00 / 1:00:00" in text and "2.0x" in text and "ETA 0:15:00" in text


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the slave side closed
            break
        if not chunk:
            break
        into += chunk
    os.close(fd)
