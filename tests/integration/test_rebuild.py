"""`preserve catalog rebuild --from TARGET` against the real SeaweedFS (session server) and the
filesystem replica, catalogs on SQLite (and a real PostgreSQL where marked): AIPs made by the real
ingest, their journal flushed, then a catalog rebuilt from one replica alone into a fresh
database, compared with the one it replaces (`show --json`, but for the rebuild's own inventory
events); foreign objects listed and left alone; a damaged event record reported and the rest used;
an AIP without a journal rebuilt from its bag; two replicas that disagree reported, the source
taken as the truth and the next audit repairing the other; a catalog that is not empty refused,
and --merge; a real `preserve catalog rebuild` killed with SIGKILL after its first AIP, then run
again (every AIP once); the next audit clean. Prints the rebuild times it measures."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preserve import cli
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.errors import ConfigError
from preserve.core.model import Agent, Event, EventType, Outcome, ReplicaStatus
from preserve.operations import audit, journal, rebuild
from preserve.packaging import eventlog
from preserve.pipeline import ingest_submission
from preserve.report.views import aip_json
from preserve.storage import layout, open_store
from tests.faultproxy import FaultProxy
from tests.mediafactory import make_clip
from tests.support import isolated_settings, raw_s3, write_config

ROOT = Path(__file__).resolve().parents[2]
TIMES: list[tuple[str, int, float]] = []  # (what, AIPs, seconds): printed at the end of the module


@pytest.fixture(scope="module", autouse=True)
def _print_times() -> Iterator[None]:
    yield
    for what, n, seconds in TIMES:
        print(f"\nrebuild time: {what}: {n} AIP(s) in {seconds:.2f} s ({seconds / max(n, 1):.3f} s per AIP)")


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Catalog]]:
    settings = isolated_settings(s3_settings, tmp_path)
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def _document(settings: Settings, catalog: Catalog, name: str, size: int = 30_000) -> str:
    """A document AIP (no media, so no transcode): the fastest real ingest."""
    path = settings.ingest_dir / name
    path.write_bytes(b"%PDF-1.4\n" + os.urandom(size))
    outcome = ingest_submission(settings, catalog, path)
    assert outcome.status == "stored", outcome.detail
    return outcome.aip_id


def _film(settings: Settings, catalog: Catalog, name: str) -> str:
    folder = settings.ingest_dir / name
    folder.mkdir()
    make_clip(folder / f"{name}.mp4", duration=0.6)
    (folder / f"{name}.en.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nHello\n", encoding="utf-8")
    (folder / "metadata.yaml").write_text(f"title: {name.title()}\naccess: restricted\n", encoding="utf-8")
    outcome = ingest_submission(settings, catalog, folder)
    assert outcome.status == "stored", outcome.detail
    return outcome.aip_id


def _flushed(settings: Settings, catalog: Catalog) -> None:
    report = journal.flush(settings, catalog)
    assert report.ok, report.lines()
    assert catalog.journal_aips_pending() == []


def _rebuild_event(e: dict[str, Any]) -> bool:
    return e["type"] == "fixity check" and e["detail"].startswith("rebuild inventory")


def _shown(catalog: Catalog, aip_id: str) -> dict[str, Any]:
    view = catalog.get_aip(aip_id)
    assert view is not None, aip_id
    data = aip_json(view, catalog.tombstone(aip_id))
    data["events"] = [e for e in data["events"] if not _rebuild_event(e)]
    return data


def _new_catalog(tmp_path: Path, name: str) -> Catalog:
    return Catalog(f"sqlite:///{tmp_path / f'{name}.sqlite'}")


def _rebuild(settings: Settings, catalog: Catalog, source: str, what: str, **kw: Any) -> rebuild.RebuildReport:
    report = rebuild.rebuild(settings, catalog, source, **kw)
    TIMES.append((what, len(report.imported), report.seconds))
    return report


def _local_path(settings: Settings, key: str) -> Path:
    return settings.target_path(settings.target("local")) / key


def _records(settings: Settings, target: str, aip_id: str) -> list[str]:
    with open_store(settings, settings.target(target)) as store:
        return sorted(i.key for i in store.list(f"{aip_id}/") if layout.classify(aip_id, i.key) == "event-record")


def _overwrite_local(path: Path, data: bytes) -> None:
    """Change a stored object behind preserve's back (the filesystem replica keeps them read-only)."""
    path.chmod(0o600)
    path.write_bytes(data)


# -- the pure parts --------------------------------------------------------------------------------
def test_events_are_the_union_over_records_each_once() -> None:
    agent = Agent("preserve", "1.0")
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    a = Event(EventType.INGESTION, Outcome.PASS, agent, "stored", at=t0)
    b = Event(EventType.FIXITY_CHECK, Outcome.PASS, agent, "re-read", at=t0 + dt.timedelta(seconds=5), subject="x")
    twin = dataclasses.replace(b)  # a second check, identical in every field (kept twice)
    c = Event(EventType.REPLICATION, Outcome.PASS, agent, "copied", at=t0 + dt.timedelta(seconds=9), subject="local")
    # the same record twice (a flush repeated after a crash), a later one, and the bag's PREMIS,
    # which keeps the event before packing with a subject it could not express
    premis = [dataclasses.replace(a, subject="", agent=Agent("preserve", "1.0", "software"))]
    early = Event(EventType.VIRUS_CHECK, Outcome.PASS, agent, "clean", at=t0 - dt.timedelta(seconds=1))
    got = rebuild.union_events([[a, b, twin], [a, b, twin], [c, b]], [[early, *premis]])
    assert got == [early, a, b, twin, c]
    assert rebuild.union_events([], [[early, a]]) == [early, a]  # no record: the bag's events


# -- a plain round trip from each kind of target, and the next audit ------------------------------
def test_round_trip_from_each_target_then_a_clean_audit(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    ids = [_film(settings, catalog, "river"), _document(settings, catalog, "letter.pdf")]
    # a re-read of every object: per-object events, and replica dates that are the oldest check
    first = audit.run_audit(settings, catalog, audit.AuditScope(full=True))
    assert first.exit_code == 0, audit.format_report(first)
    _flushed(settings, catalog)
    saved = {a: _shown(catalog, a) for a in ids}
    objects = {(o.target, o.key): o for o in catalog.objects()}
    for source in ("seaweed", "local"):
        rebuilt = _new_catalog(tmp_path, f"from-{source}")
        try:
            report = _rebuild(settings, rebuilt, source, f"round trip from {source} (a film and a document)")
            assert report.clean and report.exit_code == 0, rebuild.format_report(report)
            assert sorted(report.imported) == sorted(ids) and not report.skipped
            for aip_id in ids:
                assert _shown(rebuilt, aip_id) == saved[aip_id], f"from {source}: {aip_id}"
                events = rebuilt.get_aip(aip_id).events
                mine = [e for e in events if e.detail.startswith("rebuild inventory")]
                assert {e.subject for e in mine} == {"seaweed", "local"} and all(
                    e.outcome is Outcome.PASS for e in mine
                )
                assert all(not e.extra["reread"] and e.agent.name == "preserve" for e in mine)
            # every object, each once per target, with its digest and its Object Lock and version id
            again = {(o.target, o.key): o for o in rebuilt.objects()}
            assert again.keys() == objects.keys()
            for k, o in objects.items():
                r = again[k]
                assert (r.size, r.sha256, r.status, r.version_id, r.lock_mode) == (
                    o.size,
                    o.sha256,
                    ReplicaStatus.VERIFIED,
                    o.version_id,
                    o.lock_mode,
                )
                assert r.verified_at is not None and r.verified_at <= o.verified_at  # never later than checked
            counts = {c.target: c for c in report.targets}
            assert counts["seaweed"].verified == counts["seaweed"].objects == len(rebuilt.objects(target="seaweed"))
            # the journal knows what each replica holds: only the rebuild's own events were written
            assert rebuilt.journal_aips_pending() == []
            assert rebuilt.rebuild_running() is None
        finally:
            rebuilt.close()
    # the next audit of each rebuilt catalog, re-reading everything, is clean (after both rebuilds:
    # an audit writes its events beside the AIPs, which the next rebuild would then read)
    for source in ("seaweed", "local"):
        rebuilt = _new_catalog(tmp_path, f"from-{source}")
        try:
            after = audit.run_audit(settings, rebuilt, audit.AuditScope(full=True))
            assert after.exit_code == 0 and not after.failures, audit.format_report(after)
            assert len(after.checks) == len(objects)
        finally:
            rebuilt.close()


@pytest.mark.postgres
def test_round_trip_into_postgresql(env: tuple[Settings, Catalog], postgres_server: Any) -> None:
    settings, catalog = env
    ids = [_document(settings, catalog, "one.pdf"), _document(settings, catalog, "two.pdf")]
    _flushed(settings, catalog)
    rebuilt = Catalog(postgres_server.new_database())
    try:
        report = _rebuild(settings, rebuilt, "seaweed", "two documents into PostgreSQL")
        assert report.clean, rebuild.format_report(report)
        for aip_id in ids:
            assert _shown(rebuilt, aip_id) == _shown(catalog, aip_id)
        assert audit.run_audit(settings, rebuilt, audit.AuditScope(full=True)).exit_code == 0
    finally:
        rebuilt.close()


# -- bad input and faults ----------------------------------------------------------------------------
def test_foreign_objects_are_listed_and_left_alone(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    aip_id = _document(settings, catalog, "kept.pdf")
    _flushed(settings, catalog)
    client, bucket, prefix = raw_s3(settings, "seaweed")
    lookalike = "0123abcd-0000-4000-8000-00000000beef"
    foreign = {
        "notes/readme.txt": b"someone else's notes",
        "stray.bin": b"\0" * 10,
        f"{lookalike}/hello.txt": b"looks like an AIP id, is not an AIP",
        f"{aip_id}/leftover.part": b"half an upload",
    }
    for key, body in foreign.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}{key}", Body=body)
    rebuilt = _new_catalog(tmp_path, "foreign")
    try:
        report = _rebuild(settings, rebuilt, "seaweed", "one document among foreign objects")
        assert report.exit_code == 1
        assert {(p.prefix, p.objects) for p in report.not_preserve} == {("notes", 1), ("stray.bin", 1), (lookalike, 1)}
        assert "not an AIP id" in {p.reason for p in report.not_preserve}
        assert report.unexpected == (("seaweed", f"{aip_id}/leftover.part"),)
        assert [a.id for a in rebuilt.list_aips()] == [aip_id]
        assert not any(o.key.endswith("leftover.part") for o in rebuilt.objects())
        text = rebuild.format_report(report)
        assert "NOT PRESERVE notes/" in text and "left in place" in text
    finally:
        rebuilt.close()
    for key, body in foreign.items():  # never deleted
        assert client.get_object(Bucket=bucket, Key=f"{prefix}{key}")["Body"].read() == body


def test_a_damaged_event_record_is_reported_and_the_rest_rebuilt(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    aip_id = _document(settings, catalog, "report.pdf")
    _flushed(settings, catalog)  # record 1: the ingest's events and state
    assert audit.run_audit(settings, catalog, audit.AuditScope(full=True)).exit_code == 0
    catalog.add_events(aip_id, [Event(EventType.ACCESS_DECISION, Outcome.PASS, Agent("ana", kind="person"), "noted")])
    _flushed(settings, catalog)  # then the audit's re-reads, the note, a newer state
    records = _records(settings, "local", aip_id)
    assert len(records) >= 2
    _overwrite_local(_local_path(settings, records[0]), b"<?xml version='1.0'?><premis>cut off")
    before = catalog.get_aip(aip_id)
    rebuilt = _new_catalog(tmp_path, "damaged-record")
    try:
        report = _rebuild(settings, rebuilt, "local", "one document, its first record damaged")
        assert report.exit_code == 1 and report.imported == (aip_id,)
        assert [(d.target, d.key) for d in report.damaged_records] == [("local", records[0])]
        assert report.damaged_records[0].reason
        assert f"DAMAGED RECORD local:{records[0]}" in rebuild.format_report(report)
        got = rebuilt.get_aip(aip_id)
        # the second record's events are all there; of the first, what the bag's PREMIS still has
        types = [e.type for e in got.events]
        assert EventType.ACCESS_DECISION in types and EventType.VIRUS_CHECK in types
        rereads = [e for e in got.events if e.type is EventType.FIXITY_CHECK and e.extra.get("reread")]
        assert len(rereads) == len(catalog.objects(aip_id))
        assert EventType.PACKING not in types  # recorded after the bag's PREMIS was written: only in record 1
        assert (got.title, got.access_level, got.files) == (before.title, before.access_level, before.files)
        assert [r.status for r in got.replicas] == [ReplicaStatus.VERIFIED, ReplicaStatus.VERIFIED]
    finally:
        rebuilt.close()


def test_an_aip_without_a_journal_is_rebuilt_from_its_bag(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    aip_id = _film(settings, catalog, "quiet")
    before = catalog.get_aip(aip_id)
    # as an AIP stored before versions existed: no inventory, no record, on either replica
    client, bucket, prefix = raw_s3(settings, "seaweed")
    for target in ("seaweed", "local"):
        with open_store(settings, settings.target(target)) as store:
            for info in list(store.list(f"{aip_id}/")):
                if layout.is_journal_key(aip_id, info.key):
                    if target == "local":
                        _local_path(settings, info.key).unlink()
                    else:
                        client.delete_object(Bucket=bucket, Key=f"{prefix}{info.key}")
    rebuilt = _new_catalog(tmp_path, "from-bag")
    try:
        report = _rebuild(settings, rebuilt, "seaweed", "one film from its bag alone")
        assert report.exit_code == 1 and report.imported == (aip_id,)
        reasons = " ".join(f.reason for f in report.fallbacks)
        assert "no readable inventory" in reasons and "files of version 1 from the bag" in reasons
        assert "no readable event record" in reasons
        got = rebuilt.get_aip(aip_id)
        assert got.files == before.files  # paths, sizes, SHA-256 and SHA-512, roles, formats, PUIDs
        assert (got.title, got.access_level, got.payload_oxum, got.version) == (
            before.title,
            before.access_level,
            before.payload_oxum,
            1,
        )
        assert got.versions[0].members == before.versions[0].members
        assert {(o.target, o.key, o.sha256, o.size) for o in rebuilt.objects()} == {
            (o.target, o.key, o.sha256, o.size) for o in catalog.objects(aip_id)
        }
        # the events before packing come back from the bag's PREMIS; nothing is called verified
        assert {e.type for e in got.events} >= {EventType.VIRUS_CHECK, EventType.FORMAT_IDENTIFICATION}
        assert all(o.status is ReplicaStatus.PENDING and o.verified_at is None for o in rebuilt.objects())
        assert all(r.status is ReplicaStatus.PENDING and r.verified_at is None for r in got.replicas)
        assert rebuilt.find_by_content(rebuilt.aip_state(aip_id)["aip"]["content_key"]) == aip_id
        assert rebuilt.aip_state(aip_id)["aip"]["content_key"] == catalog.aip_state(aip_id)["aip"]["content_key"]
        # the audit re-reads them all and then vouches for them
        first = audit.run_audit(settings, rebuilt, audit.AuditScope(full=True))
        assert first.exit_code == 0, audit.format_report(first)
        assert all(r.status is ReplicaStatus.VERIFIED for r in rebuilt.get_aip(aip_id).replicas)
    finally:
        rebuilt.close()


def test_two_replicas_that_disagree_are_reported_and_the_audit_repairs(
    env: tuple[Settings, Catalog], tmp_path: Path
) -> None:
    settings, catalog = env
    aip_id = _document(settings, catalog, "split.pdf")
    _flushed(settings, catalog)
    # the filesystem replica loses one object, another is cut short, and it gains a record the
    # source does not have (events written there only)
    keys = sorted(o.key for o in catalog.objects(aip_id, "local"))
    payload = next(k for k in keys if "/data/objects/" in k)
    gone = next(k for k in keys if k.endswith("bag-info.txt"))
    _overwrite_local(_local_path(settings, payload), _local_path(settings, payload).read_bytes()[:100])
    _local_path(settings, gone).unlink()
    extra = catalog.get_aip(aip_id).events[-1]
    when = dt.datetime.now(dt.UTC)
    fake = dataclasses.replace(extra, detail="only on one replica", at=when)
    record = tmp_path / "record.xml"
    record.write_bytes(eventlog.build(aip_id, [fake], catalog.aip_state(aip_id), written_at=when))
    data = record.read_bytes()
    with open_store(settings, settings.target("local")) as store:
        key = layout.event_record_key(aip_id, when, "abc123")
        store.put_file(key, record, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    rebuilt = _new_catalog(tmp_path, "disagree")
    try:
        report = _rebuild(settings, rebuilt, "seaweed", "one document, two replicas that disagree")
        assert report.exit_code == 1 and not report.damage  # the source is whole
        found = {(d.target, d.what, d.detail.split(":")[0]) for d in report.disagreements}
        assert ("local", "object", payload) in found and ("local", "object", gone) in found
        assert any(d.what == "events" and "not imported" in d.detail for d in report.disagreements)
        by_key = {(o.target, o.key): o for o in rebuilt.objects(aip_id)}
        truth = {(o.target, o.key): o for o in catalog.objects(aip_id)}
        assert by_key[("local", payload)].status is ReplicaStatus.DAMAGED
        assert by_key[("local", payload)].sha256 == truth[("local", payload)].sha256  # the source's digest
        assert by_key[("local", gone)].status is ReplicaStatus.MISSING
        assert all(o.status is ReplicaStatus.VERIFIED for (t, _), o in by_key.items() if t == "seaweed")
        assert not any(e.detail == "only on one replica" for e in rebuilt.get_aip(aip_id).events)  # not merged
        status = {r.target: r.status for r in rebuilt.get_aip(aip_id).replicas}
        assert status == {"seaweed": ReplicaStatus.VERIFIED, "local": ReplicaStatus.DAMAGED}
        # the next audit repairs the other replica from the source; the one after is clean
        fix = audit.run_audit(settings, rebuilt, audit.AuditScope())
        assert fix.exit_code == 1 and {(r.key, r.ok) for r in fix.repairs} == {(payload, True), (gone, True)}
        clean = audit.run_audit(settings, rebuilt, audit.AuditScope(full=True))
        assert clean.exit_code == 0, audit.format_report(clean)
    finally:
        rebuilt.close()


def test_a_replica_that_is_down_is_recorded_pending_and_reported(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    aip_id = _document(settings, catalog, "far.pdf")
    _flushed(settings, catalog)
    root = settings.target_path(settings.target("local"))
    aside = root.with_name("replica-local-aside")
    root.rename(aside)
    root.write_bytes(b"not a directory: the mount is gone")
    rebuilt = _new_catalog(tmp_path, "one-down")
    try:
        report = _rebuild(settings, rebuilt, "seaweed", "one document, the other replica down")
        assert report.exit_code == 2 and report.imported == (aip_id,)
        assert report.errors and report.errors[0].startswith("local: unreachable")
        local = rebuilt.objects(aip_id, "local")
        assert local and all(o.status is ReplicaStatus.PENDING and o.verified_at is None for o in local)
        assert {r.target: r.status for r in rebuilt.get_aip(aip_id).replicas} == {
            "seaweed": ReplicaStatus.VERIFIED,
            "local": ReplicaStatus.PENDING,
        }
        root.unlink()
        aside.rename(root)  # back: the next audit verifies it
        assert audit.run_audit(settings, rebuilt, audit.AuditScope(full=True)).exit_code == 0
        assert {r.status for r in rebuilt.get_aip(aip_id).replicas} == {ReplicaStatus.VERIFIED}
    finally:
        rebuilt.close()


def test_a_catalog_that_is_not_empty_is_refused_unless_merged(
    env: tuple[Settings, Catalog], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, catalog = env
    mine = _document(settings, catalog, "mine.pdf")
    # another catalog over the same replicas stored one more AIP
    other = _new_catalog(tmp_path, "other")
    theirs = _document(settings, other, "theirs.pdf")
    _flushed(settings, other)
    other.close()
    _flushed(settings, catalog)
    before = _shown(catalog, mine)
    with pytest.raises(ConfigError) as refused:
        rebuild.rebuild(settings, catalog, "seaweed")
    assert "not empty" in str(refused.value) and "--merge" in refused.value.advice
    assert catalog.rebuild_running() is None
    config = write_config(settings, tmp_path / "preserve.toml")
    code = cli.main(["--config", str(config), "catalog", "rebuild", "--from", "local"])
    err = capsys.readouterr().err
    assert code == 2 and "not empty" in err and "--merge" in err
    report = _rebuild(settings, catalog, "seaweed", "merge of one AIP into a catalog holding another", merge=True)
    assert report.imported == (theirs,) and report.skipped == (mine,) and report.clean
    assert _shown(catalog, mine) == before  # what was there is untouched
    assert {a.id for a in catalog.list_aips()} == {mine, theirs}
    assert len([e for e in catalog.events(mine) if e.detail.startswith("rebuild inventory")]) == 0
    # the CLI's --json and exit code, merging again: nothing left to import
    code = cli.main(["--config", str(config), "catalog", "rebuild", "--from", "local", "--merge", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and shown["imported"] == [] and sorted(shown["skipped"]) == sorted([mine, theirs])
    assert shown["clean"] is True and shown["source"] == "local"


# -- killed half-way ----------------------------------------------------------------------------------
@dataclasses.dataclass
class _GateProxy(FaultProxy):
    """Relays to SeaweedFS, but holds back every request that names ``word`` (an AIP id) until
    ``release`` is set: the rebuild then stops, for certain, right after the AIPs before it."""

    word: str = ""
    held: threading.Event = dataclasses.field(default_factory=threading.Event)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        super()._requests(_Gated(client, self), server)  # type: ignore[arg-type]


class _Gated:
    def __init__(self, sock: socket.socket, gate: _GateProxy) -> None:
        self._sock, self._gate = sock, gate

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if self._gate.word and self._gate.word.encode() in data.split(b"\r\n", 1)[0]:
            self._gate.held.set()
            self._gate.release.wait()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _aips_in(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            return int(db.execute("select count(*) from aips").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def test_a_rebuild_killed_half_way_resumes(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    ids = sorted(_document(settings, catalog, f"doc-{n}.pdf", 5_000) for n in range(4))
    _flushed(settings, catalog)
    saved = {a: _shown(catalog, a) for a in ids}
    host, port = settings.services.s3_endpoint.removeprefix("http://").split(":")
    db = tmp_path / "resumed.sqlite"
    run_env = {**os.environ, "PRESERVE__ARCHIVE__CATALOG_URL": f"sqlite:///{db}", "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-m", "preserve.cli"]
    with _GateProxy((host, int(port)), word=ids[1]) as gate:
        seaweed = settings.target("seaweed").model_copy(update={"endpoint": gate.endpoint})
        proxied = settings.model_copy(update={"targets": [seaweed, settings.target("local")]})
        config = write_config(proxied, tmp_path / "proxied.toml")
        proc = subprocess.Popen(
            [*argv, "--config", str(config), "catalog", "rebuild", "--from", "seaweed"],
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not gate.held.is_set() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert gate.held.is_set(), proc.communicate(timeout=5) if proc.poll() is not None else "never held"
            assert _aips_in(db) == 1  # the first AIP is in, the second is in flight
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            gate.release.set()
    assert proc.returncode == -signal.SIGKILL
    half = Catalog(f"sqlite:///{db}")
    try:
        running = half.rebuild_running()
        assert running is not None and running[1] == "seaweed"
        assert [a.id for a in half.list_aips()] == [ids[0]]
    finally:
        half.close()
    # run again (no --merge: it is the same rebuild): the rest is imported, the first skipped
    config = write_config(settings, tmp_path / "preserve.toml")
    again = subprocess.run(
        [*argv, "--config", str(config), "catalog", "rebuild", "--from", "seaweed", "--json"],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    shown = json.loads(again.stdout)
    assert shown["resumed"] is True and shown["skipped"] == [ids[0]] and sorted(shown["imported"]) == ids[1:]
    TIMES.append(("resumed run (subprocess, 3 documents)", 3, float(shown["seconds"])))
    done = Catalog(f"sqlite:///{db}")
    try:
        assert sorted(a.id for a in done.list_aips()) == ids  # every AIP once
        assert done.rebuild_running() is None
        for aip_id in ids:
            assert _shown(done, aip_id) == saved[aip_id]  # and each event once
        assert done.journal_aips_pending() == []
    finally:
        done.close()
