"""`preserve watch --once --direct` and `preserve retry` as an operator runs them: one line per
submission, exit codes as for `preserve ingest`, and a quarantined film put back (fixed, or
knowingly accepted as it is) under the AIP id it was first given."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from preserve import cli
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import EventType, Outcome
from tests.mediafactory import make_clip, truncated_copy
from tests.support import isolated_settings, write_config


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path):
    settings = isolated_settings(s3_settings, tmp_path, ingest={"stable_seconds": 0.3, "poll_seconds": 0.1})
    return settings, str(write_config(settings, tmp_path / "preserve.toml"))


def test_watch_once_then_retry_accept_invalid(env, tmp_path: Path, capsys) -> None:
    settings, config = env
    cut = truncated_copy(make_clip(tmp_path / "whole.mp4", duration=2.0), settings.ingest_dir / "only copy.mp4", 0.6)
    sha = hashlib.sha256(cut.read_bytes()).hexdigest()
    (settings.ingest_dir / "notes.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")

    assert cli.main(["--config", config, "watch", "--once", "--direct"]) == cli.EXIT_FINDING
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert any("stored" in line and "notes.pdf" in line for line in lines)
    assert any("quarantined" in line and "only copy.mp4" in line and "MediaError" in line for line in lines)
    catalog = Catalog(settings.catalog_url)
    first_id = catalog.submission("only copy.mp4").aip_id

    assert cli.main(["--config", config, "retry", "only copy.mp4", "--accept-invalid", "--direct"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "put back" in out and "MediaError" in out and "stored" in out
    assert not (settings.failed_dir / "only copy.mp4").exists()
    assert hashlib.sha256((settings.done_dir / "only copy.mp4").read_bytes()).hexdigest() == sha
    aip = catalog.get_aip(first_id)  # the AIP id given at the first attempt is kept
    assert aip is not None and aip.status == "stored"
    accepted = [
        e
        for e in aip.events
        if e.type is EventType.VALIDATION
        and e.outcome is Outcome.WARNING
        and e.agent.kind == "person"
        and "--accept-invalid" in e.detail
    ]
    assert accepted, "the archivist's decision must be recorded"
    released = [
        e
        for e in catalog.submission_events("only copy.mp4")
        if e.type is EventType.QUARANTINE and e.outcome is Outcome.PASS
    ]
    assert len(released) == 1 and "released from quarantine" in released[0].detail
    catalog.close()


def test_retry_after_fixing_the_sidecar_and_no_ingest(env, tmp_path: Path, capsys) -> None:
    settings, config = env
    film = settings.ingest_dir / "film.pdf"
    film.write_bytes(b"%PDF-1.4\n%%EOF\n")
    (settings.ingest_dir / "film.pdf.yaml").write_text("title: [unclosed\n")
    assert cli.main(["--config", config, "watch", "--once", "--direct"]) == cli.EXIT_FINDING
    assert "SidecarError" in capsys.readouterr().out
    quarantined = settings.failed_dir / "film.pdf"
    (quarantined / "film.pdf.yaml").write_text("title: Fixed Title\n")  # the archivist fixes it in place

    assert cli.main(["--config", config, "retry", "film.pdf", "--no-ingest"]) == cli.EXIT_OK
    assert (settings.ingest_dir / "film.pdf").exists() and (settings.ingest_dir / "film.pdf.yaml").exists()
    assert not quarantined.exists()
    capsys.readouterr()
    assert cli.main(["--config", config, "watch", "--once", "--direct"]) == cli.EXIT_OK
    assert "stored" in capsys.readouterr().out
    catalog = Catalog(settings.catalog_url)
    assert [a.title for a in catalog.list_aips()] == ["Fixed Title"]
    catalog.close()


def test_retry_usage_errors(env, capsys) -> None:
    settings, config = env
    assert cli.main(["--config", config, "retry", "no such thing"]) == cli.EXIT_ERROR
    assert "nothing called" in capsys.readouterr().err
    (settings.failed_dir / "x.mov").mkdir(parents=True)
    (settings.failed_dir / "x.mov" / "x.mov").write_bytes(b"1")
    (settings.ingest_dir / "x.mov").write_bytes(b"2")  # something new under that name
    assert cli.main(["--config", config, "retry", "x.mov", "--direct"]) == cli.EXIT_ERROR
    assert "already exist" in capsys.readouterr().err
    assert (settings.failed_dir / "x.mov" / "x.mov").read_bytes() == b"1"  # nothing moved


def test_watch_loop_keeps_going_until_stopped(env, monkeypatch) -> None:
    """The long-running watcher: several polls, a submission arriving while it runs, and a stop."""
    from preserve.intake import watch

    settings, _ = env
    catalog = Catalog(settings.catalog_url)
    handled: list[watch.Handled] = []
    stop = threading.Event()
    crashes = {"n": 0}

    def ingest_fn(path: Path):
        from preserve.pipeline import ingest_submission

        if path.name == "crash.pdf" and crashes["n"] == 0:
            crashes["n"] += 1
            raise RuntimeError("an unexpected fault")
        return ingest_submission(settings, catalog, path)

    loop = threading.Thread(
        target=watch.watch_forever,
        args=(settings, catalog, ingest_fn),
        kwargs={"stop": stop, "on_handled": handled.append},
    )
    loop.start()
    try:
        (settings.ingest_dir / "crash.pdf").write_bytes(b"%PDF-1.4\n% c\n%%EOF\n")
        (settings.ingest_dir / "later.pdf").write_bytes(b"%PDF-1.4\n% l\n%%EOF\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(h.submission == "later.pdf" for h in handled):
            time.sleep(0.1)
    finally:
        stop.set()
        loop.join(timeout=60)
    assert not loop.is_alive()
    statuses = {h.submission: h.status for h in handled}
    assert statuses["later.pdf"] == "stored"
    assert statuses["crash.pdf"] == "error"  # logged, backed off, and the loop went on
    assert (settings.ingest_dir / "crash.pdf").exists()  # left where it was, for the next try
    catalog.close()
