"""Deaccession on age-encrypted replicas (issue 16), against the real SeaweedFS (versioned buckets,
Object Lock enforced) and the filesystem replica, identities made by the stock age-keygen. On a
COMPLIANCE-locked encrypted target, carried out without the target's identity: every object is
purged by its opaque key, the AIP's key object and name index lose every version, the catalog
records the key destroyed, and the ciphertext that retention keeps is recorded as deleted by key
destruction (with its `deletion` event); the target's identity can no longer decrypt any of it
(through preserve or with the stock `age`), the audit is quiet about it, the journal writes nothing
more there, and once the retention ends the audit deletes it. On an unlocked encrypted target
nothing is left under the AIP's prefix, and no later flush makes a new key there."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from preserve.catalog import Catalog
from preserve.catalog.deaccessions import DeaccessionState, DeletionState
from preserve.config import Settings
from preserve.core.errors import KeyUnavailable
from preserve.core.model import Agent, EventType, Outcome
from preserve.operations import audit, deaccession, journal
from preserve.operations.deaccession import DeletionMethod
from preserve.pipeline import ingest_submission
from preserve.storage import open_store
from tests.support import isolated_settings, raw_s3

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="needs the stock age CLI (apt install age)")

ALICE, BOB = Agent("alice", kind="person"), Agent("bob", kind="person")


def keygen(path: Path) -> str:
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def _versions(settings: Settings, target: str, prefix: str) -> list[dict[str, Any]]:
    """Every version and delete marker under ``prefix`` on an S3 target, read behind preserve's back."""
    client, bucket, base = raw_s3(settings, target)
    try:
        found: list[dict[str, Any]] = []
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=base + prefix):
            found += page.get("Versions", []) + page.get("DeleteMarkers", [])
        for v in found:
            v["Key"] = v["Key"].removeprefix(base)
        return found
    finally:
        client.close()


def _settings(s3_settings: Settings, tmp_path: Path, mode: str | None) -> tuple[Settings, Path]:
    keys = tmp_path / "keys"
    keys.mkdir()
    identity = keys / "vault.txt"
    recipients = [keygen(identity), keygen(keys / "offline.txt")]
    name = "vault"
    vault: dict[str, Any] = {
        "name": name,
        "kind": "s3",
        "embedded": True,
        "bucket": "preserve-locked" if mode else "preserve-aips",
        "prefix": f"{name}-{uuid.uuid4().hex[:8]}",
        "encryption": "age",
        "age_recipients": recipients,
    }
    if mode:
        vault |= {"object_lock_mode": mode, "object_lock_days": 1}
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        targets=[vault, {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")}],
    )
    return settings, identity


def _ingest(settings: Settings, catalog: Catalog, name: str) -> str:
    path = settings.ingest_dir / name
    path.write_bytes(b"%PDF-1.4\n" + os.urandom(40_000))
    outcome = ingest_submission(settings, catalog, path)
    assert outcome.status == "stored", outcome.detail
    return outcome.aip_id


def _local_files(settings: Settings, aip_id: str) -> list[Path]:
    root = settings.target_path(settings.target("local")) / aip_id
    return [p for p in root.rglob("*") if p.is_file() and "/events/" not in p.as_posix()] if root.exists() else []


def test_compliance_locked_encrypted_replica_deleted_by_destroying_its_key(
    s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload's clock is set back a day less a window while ingesting (as in
    test_deaccession), so the one-day COMPLIANCE retention ends that window from now: before then
    the ciphertext stays (unreadable), after it the audit deletes it."""
    settings, identity = _settings(s3_settings, tmp_path, "COMPLIANCE")
    var = settings.target("vault").identity_env_name()
    catalog = Catalog(settings.catalog_url)
    for window in (20, 60, 240):
        monkeypatch.setenv(var, str(identity))
        shift = dt.timedelta(days=1) - dt.timedelta(seconds=window)
        with monkeypatch.context() as m:
            clock = lambda shift=shift: dt.datetime.now(dt.UTC) - shift  # noqa: E731
            m.setattr("preserve.storage.s3.upload.utcnow", clock)
            m.setattr("preserve.storage.s3.lock.utcnow", clock)
            aip_id = _ingest(settings, catalog, f"dossier-{window}.pdf")
        objects = {o.key: o for o in catalog.objects(aip_id, "vault")}
        assert objects and all(o.encrypted and o.lock_mode == "COMPLIANCE" for o in objects.values())
        until = max(o.lock_until for o in objects.values() if o.lock_until)
        assert catalog.key_of(aip_id, "vault") is not None
        d = deaccession.request(catalog, aip_id, reason="rights holder's demand", operator=ALICE)
        monkeypatch.delenv(var)  # carried out without the target's identity: it needs none
        report = deaccession.approve(settings, catalog, d.id, operator=BOB)
        approved = dt.datetime.now(dt.UTC)
        kept = [o for o in report.deaccession.objects if o.target == "vault" and o.stored_key and o.key in objects]
        if approved < until and all(o.method == DeletionMethod.KEY_DESTROYED.value for o in kept):
            break
    else:
        pytest.fail("the retention ended before the approval three times, the last with a 240 s window")
    prefix = f"{aip_id}/"
    assert report.ok and report.complete, report
    final = catalog.deaccession(d.id)
    assert final is not None and final.state is DeaccessionState.COMPLETED
    assert {o.state for o in final.objects} == {DeletionState.DELETED}
    assert _local_files(settings, aip_id) == []

    # the key object and the name index: no version left; the catalog's key destroyed
    assert _versions(settings, "vault", f"{aip_id}/key.age") == []
    assert _versions(settings, "vault", f"{aip_id}/index.age") == []
    key = catalog.key_of(aip_id, "vault")
    assert key is not None and key.destroyed and key.wrapped == b""
    vault = [o for o in final.objects if o.target == "vault"]
    assert {o.key for o in vault} >= {f"{aip_id}/key.age", f"{aip_id}/index.age"}
    # every ciphertext, the catalog's objects and the journal's (found by their opaque keys), kept by
    # COMPLIANCE and counted deleted by the key's destruction; they are still there
    shredded = [o for o in vault if o.method == DeletionMethod.KEY_DESTROYED.value]
    assert {o.key for o in shredded} >= set(objects) and len(shredded) > len(objects)
    left = [v for v in _versions(settings, "vault", prefix) if "VersionId" in v and "IsLatest" in v]
    assert sorted({v["Key"] for v in left}) == sorted(o.physical_key for o in shredded)
    events = {e.subject: e for e in catalog.events(aip_id, EventType.DELETION) if e.subject.startswith("vault:")}
    for o in shredded:
        e = events[f"vault:{o.key}"]
        assert e.outcome is Outcome.PASS and e.extra["state"] == "deleted"
        assert str(DeletionMethod.KEY_DESTROYED) in e.detail and "COMPLIANCE retention keeps" in e.detail
        assert "nobody can decrypt it" in e.detail and e.extra["authorized_by"] == ["alice", "bob"]

    # with the target's identity back, nothing of it can be decrypted: not through preserve ...
    monkeypatch.setenv(var, str(identity))
    film = next(k for k in objects if k.endswith(".pdf"))
    with open_store(settings, settings.target("vault")) as store:
        with pytest.raises(KeyUnavailable):
            b"".join(store.read_chunks(film))
        with pytest.raises(KeyUnavailable):
            list(store.list(prefix))
    # ... nor with the stock age tool: the ciphertext is encrypted to the destroyed AIP key only
    client, bucket, base = raw_s3(settings, "vault")
    try:
        blob = client.get_object(Bucket=bucket, Key=base + objects[film].stored_key)["Body"].read()
    finally:
        client.close()
    assert blob.startswith(b"age-encryption.org/v1\n")
    (tmp_path / "film.age").write_bytes(blob)
    tried = subprocess.run(["age", "-d", "-i", str(identity), str(tmp_path / "film.age")], capture_output=True)
    assert tried.returncode != 0 and tried.stdout == b""

    # the journal writes nothing more there (no new key object), the audit is quiet about what is kept
    assert journal.flush(settings, catalog).ok
    assert _versions(settings, "vault", f"{aip_id}/key.age") == []
    quiet = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id), now=lambda: approved)
    assert quiet.exit_code == 0, audit.format_report(quiet)
    assert all(f.ok for f in quiet.deaccession), audit.format_report(quiet)
    assert len(_versions(settings, "vault", prefix)) == len(left)

    # once the retention has ended, the audit deletes the ciphertext (quietly: it was already deleted)
    while dt.datetime.now(dt.UTC) <= until + dt.timedelta(seconds=1):
        time.sleep(0.5)
    done = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id))
    assert done.exit_code == 0 and all(f.ok for f in done.deaccession), audit.format_report(done)
    assert _versions(settings, "vault", prefix) == []
    gone = [
        e
        for e in catalog.events(aip_id, EventType.DELETION)
        if e.subject.startswith("vault:") and "now that the retention has ended" in e.detail
    ]
    assert len(gone) == len(shredded)
    assert catalog.deaccession(d.id).state is DeaccessionState.COMPLETED  # type: ignore[union-attr]
    assert audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id)).exit_code == 0
    catalog.close()


def test_unlocked_encrypted_replica_leaves_nothing_and_gets_no_new_key(
    s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, identity = _settings(s3_settings, tmp_path, None)
    monkeypatch.setenv(settings.target("vault").identity_env_name(), str(identity))
    catalog = Catalog(settings.catalog_url)
    aip_id = _ingest(settings, catalog, "lettre.pdf")
    assert journal.flush(settings, catalog).ok
    assert _versions(settings, "vault", f"{aip_id}/key.age")
    d = deaccession.request(catalog, aip_id, reason="deposited in error", operator=ALICE, settings=settings)
    report = deaccession.approve(settings, catalog, d.id, operator=BOB)
    assert report.ok and report.complete, report
    assert _versions(settings, "vault", f"{aip_id}/") == []  # ciphertext, journal, key object, index: all gone
    vault = [o for o in report.deaccession.objects if o.target == "vault"]
    assert vault and {o.method for o in vault} == {DeletionMethod.VERSIONS_DELETED.value}
    key = catalog.key_of(aip_id, "vault")
    assert key is not None and key.destroyed
    # later events (an audit) go to the plaintext replica's journal only: no new key on the vault
    assert audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id)).exit_code == 0
    flushed = journal.flush(settings, catalog, [aip_id])
    assert flushed.ok and all(w.target != "vault" for w in flushed.entries)
    assert _versions(settings, "vault", f"{aip_id}/") == []
    catalog.close()
