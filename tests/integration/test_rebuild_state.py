"""Which state a rebuild takes when records disagree, so a withdrawn film is never brought back as
open: a flush that read the state before a withdrawal and wrote its record after it; the newest
record damaged on the source; a catalog restored from an older backup and merged. Two filesystem
replicas and a filesystem access location; SQLite."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import AccessLevel, Agent, Event, EventType, Outcome
from preserve.operations import journal, rebuild, withdraw
from preserve.pipeline import ingest_submission
from tests.support import load_merged

ALICE = Agent("alice", kind="person")


def _settings(tmp: Path) -> Settings:
    s = load_merged(
        {
            "archive": {
                "var_dir": str(tmp / "var"),
                "ingest_dir": str(tmp / "ingest"),
                "catalog_url": f"sqlite:///{tmp / 'cat.sqlite'}",
            },
            "ingest": {"stable_seconds": 0.2, "poll_seconds": 0.1},
            "replication": {"min_verified_replicas": 2},
            "targets": [
                {"name": "a", "kind": "filesystem", "path": str(tmp / "rep-a")},
                {"name": "b", "kind": "filesystem", "path": str(tmp / "rep-b")},
            ],
            "access_target": {"name": "access", "kind": "filesystem", "path": str(tmp / "access")},
        }
    )
    s.ingest_dir.mkdir(parents=True, exist_ok=True)
    return s


def _open_film(settings: Settings, catalog: Catalog, name: str = "film") -> str:
    p = settings.ingest_dir / name
    p.mkdir()
    (p / "film.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(4000))
    (p / "metadata.yaml").write_text(f"title: {name}\naccess: open\n", encoding="utf-8")
    out = ingest_submission(settings, catalog, p)
    assert out.status == "stored", out.detail
    return out.aip_id


def _rebuilt_level(tmp: Path, settings: Settings, source: str, name: str, aip_id: str) -> tuple[AccessLevel, Any]:
    c = Catalog(f"sqlite:///{tmp / name}")
    try:
        report = rebuild.rebuild(settings, c, source)
        view = c.get_aip(aip_id)
        assert view is not None
        return view.access_level, report
    finally:
        c.close()


def test_a_record_written_late_with_an_older_state_does_not_win(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    catalog = Catalog(settings.catalog_url)
    aip_id = _open_film(settings, catalog)
    catalog.add_events(
        aip_id, [Event(EventType.FIXITY_CHECK, Outcome.PASS, Agent("preserve"), "pending for housekeeping")]
    )
    housekeeping = Catalog(settings.catalog_url)
    read, go = threading.Event(), threading.Event()
    real = housekeeping.aip_state

    def slow(aip: str) -> dict[str, Any]:  # the state is read, then the upload is slow
        st = real(aip)
        read.set()
        go.wait(30)
        return st

    housekeeping.aip_state = slow  # type: ignore[method-assign]
    t = threading.Thread(target=journal.flush, args=(settings, housekeeping, [aip_id]))
    t.start()
    assert read.wait(30)
    assert withdraw.withdraw(settings, catalog, aip_id, reason="safety of the people filmed", operator=ALICE).ok
    go.set()
    t.join(60)
    housekeeping.close()
    assert catalog.get_aip(aip_id).access_level is AccessLevel.DARK
    level, _ = _rebuilt_level(tmp_path, settings, "a", "r.sqlite", aip_id)
    assert level is AccessLevel.DARK  # the late record carried an older state: not taken
    catalog.close()


def test_a_damaged_newest_record_on_the_source_does_not_bring_back_open(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    catalog = Catalog(settings.catalog_url)
    aip_id = _open_film(settings, catalog)
    assert withdraw.withdraw(settings, catalog, aip_id, reason="safety", operator=ALICE).ok
    newest = sorted((settings.target_path(settings.target("a")) / aip_id / "events").iterdir())[-1]
    newest.chmod(0o600)
    newest.write_bytes(newest.read_bytes()[:-40])
    level, report = _rebuilt_level(tmp_path, settings, "a", "r1.sqlite", aip_id)
    assert level is AccessLevel.DARK and report.exit_code == 1
    assert report.damaged_records and any(d.what == "state" and d.target == "b" for d in report.disagreements)
    level, _ = _rebuilt_level(tmp_path, settings, "b", "r2.sqlite", aip_id)  # and the intact replica says so too
    assert level is AccessLevel.DARK
    catalog.close()


def test_merging_into_an_older_backup_reports_the_aips_storage_knows_better(tmp_path: Path) -> None:
    from preserve.catalog import backup

    settings = _settings(tmp_path)
    catalog = Catalog(settings.catalog_url)
    aip_id = _open_film(settings, catalog)
    old = backup.backup(settings.catalog_url, tmp_path / "backup.sqlite")
    second = _open_film(settings, catalog, "second")
    assert withdraw.withdraw(settings, catalog, aip_id, reason="safety", operator=ALICE).ok
    catalog.close()
    restored = Catalog(f"sqlite:///{old.path}")
    try:
        report = rebuild.rebuild(settings, restored, "a", merge=True)
        assert second in report.imported and aip_id in report.skipped
        assert report.exit_code == 1
        assert [d.aip_id for d in report.disagreements if d.what == "catalog"] == [aip_id]
    finally:
        restored.close()


def test_a_resumed_rebuild_still_reports_what_the_interrupted_run_found(tmp_path: Path) -> None:
    """The run stops right after importing its first AIP (a SystemExit from the progress callback,
    where a kill would land: between two AIPs' transactions; the real SIGKILL is in test_rebuild);
    the run that resumes it skips that AIP and still reports its damaged record."""
    settings = _settings(tmp_path)
    catalog = Catalog(settings.catalog_url)
    first, second = sorted([_open_film(settings, catalog, "one"), _open_film(settings, catalog, "two")])
    catalog.close()
    oldest = sorted((settings.target_path(settings.target("a")) / first / "events").iterdir())[0]
    oldest.chmod(0o600)
    oldest.write_bytes(b"<not a record")
    rebuilt = Catalog(f"sqlite:///{tmp_path / 'r.sqlite'}")

    def stop_after_one(done: int, total: int) -> None:
        if done == 1:
            raise SystemExit("killed")

    try:
        try:
            rebuild.rebuild(settings, rebuilt, "a", progress=stop_after_one)
        except SystemExit:
            pass
        assert rebuilt.has_aip(first) and not rebuilt.has_aip(second)
        report = rebuild.rebuild(settings, rebuilt, "a")
        assert report.resumed and report.skipped == (first,) and report.imported == (second,)
        assert [d.aip_id for d in report.damaged_records] == [first] and report.exit_code == 1
    finally:
        rebuilt.close()
