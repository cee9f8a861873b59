"""Fixity audits against the real SeaweedFS (session server from tests/conftest.py, started through
`preserve.dev.services.up`) and the filesystem replica: damage is detected, repaired from a good copy
where one exists, recorded as events, and reflected in the exit code."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from preserve import cli
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import EventType, Outcome
from preserve.operations import audit
from preserve.pipeline import ingest_submission
from tests.support import isolated_settings, raw_s3, write_config


@pytest.fixture()
def archive(s3_settings: Settings, tmp_path: Path):
    """Two small AIPs stored on two replicas (seaweed S3 + local filesystem)."""
    settings = isolated_settings(s3_settings, tmp_path)
    catalog = Catalog(settings.catalog_url)
    aips = []
    for name, size in (("report-a.pdf", 300_000), ("report-b.txt", 120_000)):
        path = settings.ingest_dir / name
        path.write_bytes(os.urandom(size))
        outcome = ingest_submission(settings, catalog, path)
        assert outcome.status == "stored", outcome.detail
        aips.append(outcome.aip_id)
    yield settings, catalog, aips
    catalog.close()


def _payload_key(catalog: Catalog, aip_id: str, target: str) -> tuple[str, int]:
    obj = next(o for o in catalog.objects(aip_id, target) if "/data/objects/" in o.key)
    return obj.key, obj.size


def _local_path(settings: Settings, key: str) -> Path:
    return settings.target_path(settings.target("local")) / key


def _s3_body(settings: Settings, key: str) -> bytes:
    client, bucket, prefix = raw_s3(settings, "seaweed")
    return client.get_object(Bucket=bucket, Key=prefix + key)["Body"].read()


def _s3_put(settings: Settings, key: str, body: bytes) -> None:
    client, bucket, prefix = raw_s3(settings, "seaweed")
    client.put_object(Bucket=bucket, Key=prefix + key, Body=body)


def test_clean_archive_passes(archive) -> None:
    settings, catalog, aips = archive
    report = audit.run_audit(settings, catalog, audit.AuditScope(full=True))
    assert report.exit_code == 0, audit.format_report(report)
    assert len(report.checks) == len(catalog.objects()) and all(c.reread for c in report.checks)
    assert report.bytes_read == sum(o.size for o in catalog.objects())
    events = catalog.events(aips[0], EventType.FIXITY_CHECK)
    assert events and all(e.outcome is Outcome.PASS for e in events)
    assert report.promise_holds and report.oldest_verified is not None


def test_flipped_byte_truncation_and_deletion_are_repaired(archive) -> None:
    settings, catalog, aips = archive
    key_a, size_a = _payload_key(catalog, aips[0], "local")
    key_b, size_b = _payload_key(catalog, aips[1], "seaweed")
    # flip one byte in the middle of the local copy of A
    path = _local_path(settings, key_a)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    # truncate the S3 copy of B
    _s3_put(settings, key_b, _s3_body(settings, key_b)[: size_b // 2])
    # delete the local copy of B's bag-info.txt
    _local_path(settings, f"{aips[1]}/bag-info.txt").unlink()

    report = audit.run_audit(settings, catalog, audit.AuditScope(full=True))
    assert report.exit_code == 1  # damage found (and repaired)
    problems = {(c.target, c.key): c.problem for c in report.failures}
    assert problems == {
        ("local", key_a): "checksum",
        ("seaweed", key_b): "size",
        ("local", f"{aips[1]}/bag-info.txt"): "missing",
    }
    assert all(r.ok for r in report.repairs) and len(report.repairs) == 3
    assert report.at_risk == []
    text = audit.format_report(report)
    assert "repaired from seaweed" in text and "repaired from local" in text
    # the repaired copies verify, byte for byte, and the catalog says so
    again = audit.run_audit(settings, catalog, audit.AuditScope(full=True))
    assert again.exit_code == 0, audit.format_report(again)
    assert len(_s3_body(settings, key_b)) == size_b
    repairs = catalog.events(aips[0], EventType.REPAIR)
    assert repairs and repairs[-1].outcome is Outcome.PASS and "restored from seaweed" in repairs[-1].detail
    fails = [e for e in catalog.events(aips[0], EventType.FIXITY_CHECK) if e.outcome is Outcome.FAIL]
    assert fails and "expected sha256" in fails[0].detail and "found sha256" in fails[0].detail
    assert all(r.status == "verified" for r in catalog.get_aip(aips[1]).replicas)


def test_nightly_run_within_budget_still_inventories_everything(archive) -> None:
    """With a tiny budget only one object is re-read, but the HEAD inventory of every object
    still catches a truncated copy (and it is repaired)."""
    settings, catalog, aips = archive
    key, size = _payload_key(catalog, aips[0], "seaweed")
    _s3_put(settings, key, b"short")
    tiny = settings.model_copy(update={"audit": settings.audit.model_copy(update={"nightly_byte_budget_gb": 1e-9})})
    report = audit.run_audit(tiny, catalog)
    assert sum(c.reread for c in report.checks) <= 2  # one per replica at most
    assert [(c.target, c.key, c.problem) for c in report.failures] == [("seaweed", key, "size")]
    assert report.repairs[0].ok and len(_s3_body(settings, key)) == size


def test_rogue_object_is_reported_not_deleted(archive) -> None:
    settings, catalog, aips = archive
    _s3_put(settings, f"{aips[0]}/data/objects/rogue.bin", b"not ours")
    report = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aips[0], full=True))
    assert report.unexpected == [("seaweed", f"{aips[0]}/data/objects/rogue.bin")]
    assert report.exit_code == 1
    assert _s3_body(settings, f"{aips[0]}/data/objects/rogue.bin") == b"not ours"  # left for a person
    assert any("unexpected object" in e.detail for e in catalog.events(aips[0], EventType.FIXITY_CHECK))


def test_same_file_damaged_everywhere_marks_aip_at_risk(archive) -> None:
    settings, catalog, aips = archive
    key, _ = _payload_key(catalog, aips[0], "local")
    _local_path(settings, key).write_bytes(b"garbage")
    _s3_put(settings, key, b"other garbage")
    config = write_config(settings, settings.var_dir.parent / "preserve.toml")
    code = cli.main(["--config", str(config), "audit", "--direct", "--aip", aips[0]])
    assert code == 1
    aip = catalog.get_aip(aips[0])
    assert aip.status == "at_risk"
    assert any(e.type is EventType.REPAIR and e.outcome is Outcome.FAIL for e in aip.events)
    assert catalog.get_aip(aips[1]).status == "stored"


def test_unreachable_replica_is_an_error_and_verifies_nothing(archive, tmp_path: Path) -> None:
    settings, catalog, aips = archive
    before = {(o.target, o.key): o.verified_at for o in catalog.objects()}
    down = isolated_settings(
        settings,
        tmp_path,
        replication={"max_attempts": 1},
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
    report = audit.run_audit(down, catalog, audit.AuditScope(replica="seaweed", full=True))
    assert report.exit_code == 2 and report.errors and "unreachable" in report.errors[0]
    after = {(o.target, o.key): o.verified_at for o in catalog.objects()}
    assert after == before  # nothing marked verified
    config = write_config(down, tmp_path / "down.toml")
    assert cli.main(["--config", str(config), "audit", "--direct", "--replica", "seaweed"]) == 2


def test_rolling_schedule_rereads_every_object_within_the_interval() -> None:
    """A fake clock and a small nightly budget: with budget >= total/interval, no object is ever
    older than the interval; the selection always takes the least recently verified first."""
    from preserve.catalog import StoredObject

    interval = 90
    sizes = [5_000_000_000, 700, 1_200_000_000, 300_000_000] * 10  # 65 GB in 40 objects
    total = sum(sizes)
    budget = total // (interval - 5)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    objs = {i: StoredObject("t", f"k{i}", s, "0" * 64, None, aip_id=f"a{i % 7}") for i, s in enumerate(sizes)}
    for night in range(3 * interval):
        now = start + dt.timedelta(days=night)
        for o in audit.select_for_reread(list(objs.values()), budget):
            i = int(o.key[1:])
            objs[i] = StoredObject("t", o.key, o.size, o.sha256, now, aip_id=o.aip_id)
        if night >= interval:
            assert audit.overdue(objs.values(), now, interval) == [], f"night {night}"
    # a film larger than the whole budget is still taken when it is due
    huge = StoredObject("t", "huge", 10 * budget, "0" * 64, None)
    assert audit.select_for_reread([huge], budget) == [huge]


def test_locked_object_is_repaired_as_a_new_version(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        targets=[
            {
                "name": "seaweed",
                "kind": "s3",
                "embedded": True,
                "bucket": "preserve-locked",
                "prefix": f"lock-{tmp_path.name}",
                "object_lock_mode": "GOVERNANCE",
                "object_lock_days": 1,
            },
            {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")},
        ],
    )
    catalog = Catalog(settings.catalog_url)
    src = settings.ingest_dir / "locked.pdf"
    src.write_bytes(os.urandom(50_000))
    aip_id = ingest_submission(settings, catalog, src).aip_id
    key, _ = _payload_key(catalog, aip_id, "seaweed")
    obj = next(o for o in catalog.objects(aip_id, "seaweed") if o.key == key)
    assert obj.lock_mode == "GOVERNANCE" and obj.lock_until is not None
    _s3_put(settings, key, b"tampered")  # a new version on top; the locked one cannot be changed
    report = audit.run_audit(settings, catalog, audit.AuditScope(full=True))
    assert report.repairs and report.repairs[0].ok
    assert "new version" in report.repairs[0].detail and "Object Lock" in report.repairs[0].detail
    client, bucket, prefix = raw_s3(settings, "seaweed")
    versions = client.list_object_versions(Bucket=bucket, Prefix=prefix + key)["Versions"]
    assert len(versions) == 3  # original (locked), tampered, repaired
    assert audit.run_audit(settings, catalog, audit.AuditScope(full=True)).exit_code == 0
    catalog.close()
