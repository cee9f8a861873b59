"""The journal beside each stored AIP (`preserve.operations.journal`), against the real SeaweedFS
(session server from tests/conftest.py) and the filesystem replica, catalog on SQLite: an ingest
leaves one event record and version 1's inventory on every replica; an audit adds one record per
replica, whatever the number of objects checked; a replica that is down gets everything at the
next flush and nothing is written twice; audits are not disturbed by the journal; deaccession
deletes the inventories and keeps the event records, the last carrying the tombstone; a replica
added later (`preserve replicate`) gets the whole journal."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preserve.catalog import Catalog
from preserve.catalog.deaccessions import DeaccessionState
from preserve.config import Settings
from preserve.core.model import Agent, AipStatus, Event, EventType, Outcome
from preserve.operations import access_change, amend, audit, deaccession, embargo, journal, restore, withdraw
from preserve.packaging import eventlog, inventory
from preserve.pipeline import ingest_submission
from preserve.storage import layout, open_store
from tests.mediafactory import make_clip
from tests.support import isolated_settings

ALICE, BOB = Agent("alice", kind="person"), Agent("bob", kind="person")


def _document(settings: Settings, name: str, size: int = 40_000) -> Path:
    path = settings.ingest_dir / name
    path.write_bytes(os.urandom(size))
    return path


def _ingest(settings: Settings, catalog: Catalog, name: str = "report.pdf") -> str:
    outcome = ingest_submission(settings, catalog, _document(settings, name))
    assert outcome.status == "stored", outcome.detail
    return outcome.aip_id


def _journal(settings: Settings, target: str, aip_id: str) -> dict[str, dict[str, bytes]]:
    """What is beside the AIP on one target, read through the store: {kind: {key: bytes}} for the
    event records and the version inventories, and the keys of everything else under "other"."""
    out: dict[str, dict[str, bytes]] = {"event-record": {}, "version-inventory": {}, "other": {}}
    with open_store(settings, settings.target(target)) as store:
        for info in store.list(f"{aip_id}/"):
            kind = layout.classify(aip_id, info.key)
            if kind in ("event-record", "version-inventory"):
                out[kind][info.key] = b"".join(store.read_chunks(info.key))
            else:
                out["other"][info.key] = b""
    return out


def _records(settings: Settings, target: str, aip_id: str) -> list[eventlog.EventRecord]:
    """The AIP's event records on one target, oldest first (their keys sort by time)."""
    found = _journal(settings, target, aip_id)["event-record"]
    return [eventlog.parse(found[k], aip_id=aip_id) for k in sorted(found)]


def _key(e: Event) -> tuple[Any, ...]:
    return (e.at, e.type.value, e.outcome.value, e.detail, e.subject, json.dumps(e.extra, sort_keys=True, default=str))


def _same_events(a: list[Event] | tuple[Event, ...], b: list[Event] | tuple[Event, ...]) -> bool:
    return sorted(map(_key, a)) == sorted(map(_key, b))


def _down(settings: Settings, tmp_path: Path) -> Settings:
    """The same archive with the S3 replica unreachable (nothing listens on port 9)."""
    return isolated_settings(
        settings,
        tmp_path,
        replication={"max_attempts": 1, "min_verified_replicas": 1},
        targets=[
            {
                "name": "seaweed",
                "kind": "s3",
                "embedded": True,
                "endpoint": "http://127.0.0.1:9",
                "bucket": "preserve-aips",
                "prefix": settings.target("seaweed").prefix,
            },
            {"name": "local", "kind": "filesystem", "path": str(settings.target_path(settings.target("local")))},
        ],
        archive={"var_dir": str(settings.var_dir), "ingest_dir": str(settings.ingest_dir)},
    )


@pytest.fixture()
def archive(s3_settings: Settings, tmp_path: Path):
    settings = isolated_settings(s3_settings, tmp_path)
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def test_ingest_leaves_one_event_record_and_the_v1_inventory_on_every_replica(archive) -> None:
    settings, catalog = archive
    aip_id = _ingest(settings, catalog)
    aip = catalog.get_aip(aip_id)
    for t in ("seaweed", "local"):
        found = _journal(settings, t, aip_id)
        assert len(found["event-record"]) == 1, t
        (record,) = _records(settings, t, aip_id)
        assert record.aip_id == aip_id and _same_events(record.events, catalog.events(aip_id))
        assert record.state is not None and record.state["aip"]["id"] == aip_id
        assert record.state["aip"]["status"] == AipStatus.STORED.value
        assert list(found["version-inventory"]) == [layout.version_inventory_key(aip_id, 1)]
        inv = inventory.parse(found["version-inventory"][layout.version_inventory_key(aip_id, 1)], aip_id=aip_id)
        objects = {o.key: o for o in catalog.objects(aip_id, t)}
        assert inv.number == 1 and {m.key for m in inv.members.values()} == set(objects)
        assert all(objects[m.key].sha256 == m.sha256 and objects[m.key].size == m.size for m in inv.members.values())
        assert {f.path: f.sha512 for f in inv.files} == {f.path: f.sha512 for f in aip.files}
        assert set(found["other"]) == set(objects)  # the bag, nothing else
        assert not catalog.journal_pending(aip_id, t) and not catalog.journal_versions_pending(aip_id, t)
    assert catalog.journal_aips_pending() == []


def test_an_audit_adds_one_record_per_replica_with_all_its_fixity_events_and_stays_clean(archive) -> None:
    settings, catalog = archive
    aip_id = _ingest(settings, catalog)
    before = len(catalog.events(aip_id))
    report = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id, full=True))
    assert report.exit_code == 0 and report.unexpected == [], audit.format_report(
        report
    )  # the journal is not "unexpected"
    new = catalog.events(aip_id)[before:]
    fixity = [e for e in new if e.type is EventType.FIXITY_CHECK]
    assert len(fixity) == len(catalog.objects(aip_id)) > 2  # one per object re-read, on both replicas
    assert report.journal.records == 2 and report.journal.ok
    for t in ("seaweed", "local"):
        records = _records(settings, t, aip_id)
        assert len(records) == 2, t  # the ingest's, and exactly one for the whole audit
        assert _same_events(records[-1].events, new)
    again = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id, full=True))
    assert again.exit_code == 0 and again.unexpected == [], audit.format_report(again)
    assert all(len(_records(settings, t, aip_id)) == 3 for t in ("seaweed", "local"))


def test_a_huge_audit_is_split_into_records_of_at_most_the_limit(archive, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_EVENTS_PER_RECORD events, a flush writes several records (each whole and valid),
    never one object of hundreds of megabytes; together they hold every event once."""
    settings, catalog = archive
    aip_id = _ingest(settings, catalog)
    monkeypatch.setattr(journal, "MAX_EVENTS_PER_RECORD", 3)
    agent = Agent("preserve", "test")
    extra = [Event(EventType.FIXITY_CHECK, Outcome.PASS, agent, f"check {i}", subject=f"local:{i}") for i in range(7)]
    catalog.add_events(aip_id, extra)
    report = journal.flush(settings, catalog, [aip_id])
    assert report.ok and report.records == 2 * 3 and report.events == 2 * 7
    for t in ("seaweed", "local"):
        records = _records(settings, t, aip_id)
        assert len(records) == 1 + 3, t  # the ingest's, then 3 + 3 + 1
        assert [len(r.events) for r in records[1:]] == [3, 3, 1]
        assert _same_events([e for r in records[1:] for e in r.events], catalog.events(aip_id)[-7:])
        assert not catalog.journal_pending(aip_id, t)


def test_every_operation_after_ingest_writes_its_events_beside_the_aip(s3_settings: Settings, tmp_path: Path) -> None:
    """Embargo release, a change of access, a withdrawal, a restore, a deaccession request and its
    cancellation: each ends with one new record on every replica, holding exactly what it recorded."""
    settings = isolated_settings(s3_settings, tmp_path, proxy={"preset": "ultrafast"}, access={"contact_sheet": False})
    until = dt.date.today() + dt.timedelta(days=30)
    folder = settings.ingest_dir / "held"
    folder.mkdir()
    make_clip(folder / "film.mp4", duration=1.0)
    (folder / "metadata.yaml").write_text(f"access:\n  level: embargoed\n  until: {until}\n", encoding="utf-8")
    with Catalog(settings.catalog_url) as catalog:
        outcome = ingest_submission(settings, catalog, folder)
        assert outcome.status == "stored", outcome.detail
        aip_id = outcome.aip_id

        def step(what: str, run: Callable[[], object]) -> None:
            before = len(catalog.events(aip_id))
            counts = {t: len(_records(settings, t, aip_id)) for t in ("seaweed", "local")}
            run()
            new = catalog.events(aip_id)[before:]
            assert new, what
            for t in ("seaweed", "local"):
                records = _records(settings, t, aip_id)
                assert len(records) == counts[t] + 1, (what, t)
                assert _same_events(records[-1].events, new), (what, t)
            assert catalog.journal_aips_pending() == [], what

        step("embargo release", lambda: embargo.release_due(settings, catalog, today=until))
        assert catalog.get_aip(aip_id).access_level == "open"
        step(
            "access change",
            lambda: access_change.set_access(settings, catalog, aip_id, "restricted", reason="asked", operator=ALICE),
        )
        step("withdrawal", lambda: withdraw.withdraw(settings, catalog, aip_id, reason="risk", operator=ALICE))
        step("restore", lambda: restore.restore(settings, catalog, aip_id, tmp_path / "back"))
        made: list[str] = []
        step(
            "deaccession request",
            lambda: made.append(
                deaccession.request(catalog, aip_id, reason="asked", operator=ALICE, settings=settings).id
            ),
        )
        step("cancellation", lambda: deaccession.cancel(catalog, made[0], operator=BOB, settings=settings))
        last = _records(settings, "local", aip_id)[-1].state
        assert last is not None and last["aip"]["access_level"] == "dark"
        assert [x["state"] for x in last["deaccessions"]] == ["cancelled"]


def test_a_replica_that_is_down_gets_everything_at_the_next_flush_and_nothing_twice(archive, tmp_path: Path) -> None:
    settings, catalog = archive
    aip_id = _ingest(settings, catalog)
    down = _down(settings, tmp_path / "down")
    # events while the S3 replica is down: an audit of the filesystem replica alone, and a restore
    report = audit.run_audit(down, catalog, audit.AuditScope(aip_id=aip_id, replica="local", full=True))
    assert report.exit_code == 0, audit.format_report(report)
    failed = report.journal.failed
    assert [w.target for w in failed] == ["seaweed"] and "StorageUnavailable" in failed[0].error  # reported, not raised
    assert [w.target for w in report.journal.entries if w.ok and w.record] == ["local"]
    pending = catalog.journal_pending(aip_id, "seaweed")
    assert pending and not catalog.journal_pending(aip_id, "local")
    assert catalog.journal_aips_pending() == [aip_id]
    assert len(_records(settings, "seaweed", aip_id)) == 1  # nothing new there

    back = journal.flush(settings, catalog)  # housekeeping's call: whatever is pending, everywhere
    assert back.ok and [(w.target, w.events) for w in back.entries] == [("seaweed", len(pending))]
    assert catalog.journal_aips_pending() == []
    everything = catalog.events(aip_id)
    for t in ("seaweed", "local"):
        records = _records(settings, t, aip_id)
        assert len(records) == 2, t
        written = [e for r in records for e in r.events]
        assert len(written) == len(everything) and _same_events(written, everything), t  # each event once
    assert journal.flush(settings, catalog).entries == ()  # nothing left to write
    clean = audit.run_audit(settings, catalog, audit.AuditScope(full=True))
    assert clean.exit_code == 0 and clean.unexpected == [], audit.format_report(clean)


def test_deaccession_deletes_the_inventories_and_keeps_the_event_records(archive) -> None:
    settings, catalog = archive
    aip_id = _ingest(settings, catalog)
    d = deaccession.request(catalog, aip_id, reason="the filmmaker asked", operator=ALICE, settings=settings)
    assert all(len(_records(settings, t, aip_id)) == 2 for t in ("seaweed", "local"))  # the request, at once
    report = deaccession.approve(settings, catalog, d.id, operator=BOB)
    assert report.ok and report.complete, report
    for t in ("seaweed", "local"):
        found = _journal(settings, t, aip_id)
        assert found["version-inventory"] == {} and found["other"] == {}, t  # the bag and v1's inventory: gone
        records = _records(settings, t, aip_id)
        assert len(records) >= 3, t  # ingest, request, approval and deletions: kept
        last = records[-1]
        assert last.state is not None and last.state["aip"]["status"] == AipStatus.DEACCESSIONED.value
        (tomb,) = last.state["deaccessions"]
        assert tomb["state"] == DeaccessionState.COMPLETED.value and tomb["approved_by"] == "bob"
        assert any(e.type is EventType.DEACCESSION and e.extra.get("step") == "completed" for e in last.events)
        written = [e for r in records for e in r.events]
        assert _same_events(written, catalog.events(aip_id)), t
    tombstone = catalog.tombstone(aip_id)
    assert tombstone is not None
    assert not any(layout.classify(aip_id, o.key) == "event-record" for o in tombstone.objects)
    assert any(layout.classify(aip_id, o.key) == "version-inventory" for o in tombstone.objects)
    # the next audit is quiet: the records are meant to be there
    after = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id))
    assert after.exit_code == 0 and not [f for f in after.deaccession if f.problem], audit.format_report(after)
    assert catalog.journal_aips_pending() == []


def test_a_replica_added_later_gets_the_whole_journal(s3_settings: Settings, tmp_path: Path) -> None:
    seaweed = {
        "name": "seaweed",
        "kind": "s3",
        "embedded": True,
        "bucket": "preserve-aips",
        "prefix": f"bf-{time.time_ns()}",
    }
    later = {"name": "later", "kind": "filesystem", "path": str(tmp_path / "later")}
    settings = isolated_settings(s3_settings, tmp_path, replication={"min_verified_replicas": 1}, targets=[seaweed])
    wider = isolated_settings(s3_settings, tmp_path, replication={"min_verified_replicas": 1}, targets=[seaweed, later])
    with Catalog(settings.catalog_url) as catalog:
        aip_id = _ingest(settings, catalog)
        assert audit.run_audit(settings, catalog, audit.AuditScope(full=True)).exit_code == 0
        assert len(_records(settings, "seaweed", aip_id)) == 2
        results = journal.backfill(wider, catalog, target="later")
        assert [r.status for r in results] == ["copied"]
        records = _records(wider, "later", aip_id)
        assert len(records) == 1  # the whole journal in one record
        assert _same_events(records[0].events, catalog.events(aip_id))
        here, there = _journal(wider, "later", aip_id), _journal(wider, "seaweed", aip_id)
        v1 = layout.version_inventory_key(aip_id, 1)
        assert list(here["version-inventory"]) == [v1]
        assert here["version-inventory"][v1] == there["version-inventory"][v1]  # the same bytes everywhere
        assert catalog.journal_aips_pending() == []
        clean = audit.run_audit(wider, catalog, audit.AuditScope(full=True))
        assert clean.exit_code == 0 and clean.unexpected == [], audit.format_report(clean)


def test_a_replica_added_after_amends_gets_every_version_inventory(s3_settings: Settings, tmp_path: Path) -> None:
    """The catalog keeps the payload files of the current version only: an older version's
    inventory is copied from a replica that has it, or (none has: here it was removed behind
    preserve's back) made again from the catalog and that version's manifest, to the same bytes."""
    seaweed = {
        "name": "seaweed",
        "kind": "s3",
        "embedded": True,
        "bucket": "preserve-aips",
        "prefix": f"am-{time.time_ns()}",
    }
    later = {"name": "later", "kind": "filesystem", "path": str(tmp_path / "later")}
    settings = isolated_settings(s3_settings, tmp_path, replication={"min_verified_replicas": 1}, targets=[seaweed])
    wider = isolated_settings(s3_settings, tmp_path, replication={"min_verified_replicas": 1}, targets=[seaweed, later])
    folder = settings.ingest_dir / "letters"
    folder.mkdir()
    (folder / "letters.pdf").write_bytes(os.urandom(50_000))
    (folder / "metadata.yaml").write_text("title: Letters\nyear: 1990\n", encoding="utf-8")
    with Catalog(settings.catalog_url) as catalog:
        outcome = ingest_submission(settings, catalog, folder)
        assert outcome.status == "stored", outcome.detail
        aip_id = outcome.aip_id
        for year in (1991, 1992):  # the title stays, so version 1's inventory made again is the same
            sidecar = tmp_path / f"metadata-{year}.yaml"
            sidecar.write_text(f"title: Letters\nyear: {year}\n", encoding="utf-8")
            amend.amend(settings, catalog, aip_id, sidecar, reason=f"the year is {year}", operator=ALICE)
        there = _journal(settings, "seaweed", aip_id)["version-inventory"]
        keys = [layout.version_inventory_key(aip_id, n) for n in (1, 2, 3)]
        assert sorted(there) == keys
        with open_store(settings, settings.target("seaweed")) as store:
            store.delete(keys[0])  # no replica has version 1's inventory any more

        results = journal.backfill(wider, catalog, target="later")
        assert [r.status for r in results] == ["copied"]
        here = _journal(wider, "later", aip_id)["version-inventory"]
        assert here == there  # v1 made again, v2 copied, v3 built: the same bytes
        assert [inventory.parse(here[k], aip_id=aip_id).number for k in keys] == [1, 2, 3]
        v1 = inventory.parse(here[keys[0]], aip_id=aip_id)
        sidecar_v1 = next(f for f in v1.files if f.path.endswith("metadata.yaml"))
        assert sidecar_v1.sha256 != next(f for f in catalog.get_aip(aip_id).files if f.path == sidecar_v1.path).sha256
        assert _same_events(_records(wider, "later", aip_id)[0].events, catalog.events(aip_id))


def test_measure_the_flush_of_a_1000_event_audit(archive, capsys: pytest.CaptureFixture[str]) -> None:
    """Measured, not asserted (no timing assertions): one AIP, 1,000 fixity events as an audit
    records them (one per object re-read), then the one flush that writes them, one record per
    replica."""
    settings, catalog = archive
    aip_id = _ingest(settings, catalog)
    agent = Agent("preserve", "test")
    events = [
        Event(
            EventType.FIXITY_CHECK,
            Outcome.PASS,
            agent,
            "verified: re-read, sha256 matches",
            subject=f"{('seaweed', 'local')[i % 2]}:{aip_id}/data/objects/file-{i:04}.bin",
            extra={"replica": ("seaweed", "local")[i % 2], "reread": True, "bytes_read": 1000 + i},
        )
        for i in range(1000)
    ]
    catalog.add_events(aip_id, events)
    started = time.perf_counter()
    report = journal.flush(settings, catalog, [aip_id])
    seconds = time.perf_counter() - started
    assert report.ok and [w.events for w in report.entries] == [1000, 1000]
    sizes = {
        t: max(len(b) for b in _journal(settings, t, aip_id)["event-record"].values()) for t in ("seaweed", "local")
    }
    with capsys.disabled():
        print(f"\njournal flush of 1,000 events, 2 replicas: {seconds:.2f} s; record {sizes['local']} bytes")
