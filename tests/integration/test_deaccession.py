"""Deaccession with two people against the real SeaweedFS (versioned buckets, Object Lock enforced;
session server from tests/conftest.py) and the filesystem replica, catalog on SQLite (and on a real
PostgreSQL where marked): the requester cannot approve, a second person can; access is withdrawn
first (the real `operations.withdraw`); every version of every object goes from an unlocked
replica; GOVERNANCE objects are deleted with a bypass only where the target allows it, otherwise
(and under COMPLIANCE) scheduled and deleted by the audit once the retention has ended; the
tombstone, the events and the PREMIS record; restore refused; audits quiet about what is gone and
loud about what is still there after its date or comes back; credentials that may not delete and
an access location that is down leave everything recorded and resumable."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from preserve import cli
from preserve.catalog import Catalog
from preserve.catalog.deaccessions import DeaccessionState, DeletionState
from preserve.config import Settings
from preserve.core.model import Agent, AipStatus, EventType, Outcome
from preserve.operations import access_change, audit, deaccession
from preserve.pipeline import ingest_submission
from preserve.storage import layout, open_store
from tests.mediafactory import make_clip
from tests.support import isolated_settings, raw_s3, write_config

ALICE, BOB = Agent("alice", kind="person"), Agent("bob", kind="person")


def _versions(settings: Settings, target: str, aip_id: str) -> list[dict[str, Any]]:
    """Every version and delete marker under the AIP's prefix on an S3 target, read behind
    preserve's back, but for the journal's event records: deaccession keeps them (they carry the
    tombstone; `_records` counts them)."""
    client, bucket, prefix = raw_s3(settings, target)
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=f"{prefix}{aip_id}/"):
        found += page.get("Versions", []) + page.get("DeleteMarkers", [])
    return [v for v in found if layout.classify(aip_id, v["Key"].removeprefix(prefix)) != "event-record"]


def _records(settings: Settings, target: str, aip_id: str) -> list[str]:
    """The journal's event records beside the AIP on a target (they outlive a deaccession)."""
    with open_store(settings, settings.target(target)) as store:
        return [o.key for o in store.list(f"{aip_id}/") if layout.classify(aip_id, o.key) == "event-record"]


def _access_versions(settings: Settings, aip_id: str) -> list[str]:
    """Every version of anything of the AIP anywhere in the access bucket (open, restricted, embargoed)."""
    client, bucket, _ = raw_s3(settings, "access")
    keys: list[str] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        keys += [v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if aip_id in v["Key"]]
    return keys


def _local_files(settings: Settings, aip_id: str) -> list[Path]:
    """Every file under the AIP's prefix on the filesystem replica, but for the journal's event records."""
    base = settings.target_path(settings.target("local"))
    root = base / aip_id
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return [p for p in files if layout.classify(aip_id, p.relative_to(base).as_posix()) != "event-record"]


def _document(settings: Settings, name: str, size: int = 40_000) -> Path:
    path = settings.ingest_dir / name
    path.write_bytes(os.urandom(size))
    return path


def _ingest(settings: Settings, catalog: Catalog, source: Path) -> str:
    outcome = ingest_submission(settings, catalog, source)
    assert outcome.status == "stored", outcome.detail
    return outcome.aip_id


def _locked_target(name: str, mode: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "s3",
        "embedded": True,
        "bucket": "preserve-locked",
        "prefix": f"{name}-{uuid.uuid4().hex[:8]}",
        "object_lock_mode": mode,
        "object_lock_days": 1,
        **extra,
    }


# -- the whole story, through the command line ---------------------------------------------------
def test_two_people_deaccession_a_published_film_everywhere(
    s3_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = isolated_settings(s3_settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    catalog = Catalog(settings.catalog_url)
    folder = settings.ingest_dir / "night train"
    folder.mkdir()
    make_clip(folder / "night train.mp4", duration=1.0)
    (folder / "metadata.yaml").write_text("title: Night Train\naccess: {level: open}\n", encoding="utf-8")
    aip_id = _ingest(settings, catalog, folder)
    assert catalog.get_aip(aip_id).access and _access_versions(settings, aip_id)  # published
    # older versions and a delete marker on the versioned replica, and an object the catalog never had
    client, bucket, prefix = raw_s3(settings, "seaweed")
    client.put_object(Bucket=bucket, Key=f"{prefix}{aip_id}/bagit.txt", Body=b"BagIt-Version: 1.0\n")
    client.delete_object(Bucket=bucket, Key=f"{prefix}{aip_id}/bag-info.txt")
    client.put_object(Bucket=bucket, Key=f"{prefix}{aip_id}/leftover.part", Body=b"half an upload")
    recorded = len(catalog.objects(aip_id, "seaweed")) + 1  # and version 1's inventory, beside the bag
    assert len(_versions(settings, "seaweed", aip_id)) == recorded + 3 and _local_files(settings, aip_id)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["--config", config, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("--operator", "alice", "deaccession", "request", aip_id, "--reason", "the filmmaker asked")
    assert code == 0, err
    request_id = out.strip()
    assert catalog.deaccession(request_id).requested_by == "alice" and "approve" in err

    code, _, err = run("deaccession", "request", aip_id, "--reason", "twice", "--operator", "bob")
    assert code == 2 and f"already requested: request {request_id}" in err
    code, _, err = run("--operator", "alice", "deaccession", "approve", request_id)
    assert code == 2 and "refused: alice requested" in err and "a second person must" in err
    assert catalog.get_aip(aip_id).status is AipStatus.STORED and _local_files(settings, aip_id)  # nothing touched
    code, _, err = run("--operator", "bob", "deaccession", "approve", "no-such-request")
    assert code == 2 and "no deaccession request" in err

    code, out, err = run("deaccession", "approve", request_id, "--operator", "bob")
    assert code == 0, out + err
    assert "access withdrawn" in out and "deaccession completed" in out
    assert "never deletes sources" in out  # the submission in done/ is the archivist's to remove

    # gone: every version on the versioned replica, the filesystem replica, every access copy
    assert _versions(settings, "seaweed", aip_id) == []
    assert _local_files(settings, aip_id) == []
    assert _access_versions(settings, aip_id) == []
    d = catalog.deaccession(request_id)
    assert d.state is DeaccessionState.COMPLETED and d.withdrawn_at and d.completed_at
    assert {o.state for o in d.objects} == {DeletionState.DELETED}
    assert ("seaweed", f"{aip_id}/leftover.part") in {(o.target, o.key) for o in d.objects}
    assert sum(o.versions_deleted for o in d.objects if o.target == "seaweed") == recorded + 3

    # the tombstone in `show --json`; `list` marks it
    code, out, _ = run("show", aip_id, "--json")
    shown = json.loads(out)
    assert shown["status"] == "deaccessioned" and shown["replicas"] == [] and shown["access"] == []
    tomb = shown["tombstone"]
    assert (tomb["request"], tomb["requested_by"], tomb["approved_by"]) == (request_id, "alice", "bob")
    assert tomb["reason"] == "the filmmaker asked" and tomb["approved_at"] and tomb["completed_at"]
    assert {f["path"] for f in tomb["files"]} == {f.path for f in catalog.get_aip(aip_id).files}
    assert all(len(f["sha256"]) == 64 and len(f["sha512"]) == 128 for f in tomb["files"])
    assert all(x["state"] == "deleted" and x["deleted_at"] for x in tomb["deletions"])
    assert {x["replica"] for x in tomb["deletions"]} == {"seaweed", "local"}
    code, out, _ = run("list", "--json")
    assert next(a for a in json.loads(out) if a["id"] == aip_id)["status"] == "deaccessioned"
    code, out, _ = run("show", aip_id)
    assert "DEACCESSIONED (completed)" in out and "bob" in out

    # the events: the decisions by their people, one deletion per object, naming both
    events = catalog.events(aip_id)
    steps = [(e.extra.get("step"), e.agent.name) for e in events if e.type is EventType.DEACCESSION]
    assert steps == [("requested", "alice"), ("approval refused", "alice"), ("approved", "bob"), ("completed", "bob")]
    deletions = [e for e in events if e.type is EventType.DELETION and e.extra.get("request") == request_id]
    assert len(deletions) == len(d.objects) and all(e.outcome is Outcome.PASS for e in deletions)
    assert all(e.extra["authorized_by"] == ["alice", "bob"] and e.extra["operator"] == "bob" for e in deletions)
    assert any(e.type is EventType.ACCESS_DECISION and e.extra.get("to_level") == "dark" for e in events)

    # PREMIS: valid, with the deletion events linked to their files and to both people
    premis_file = tmp_path / "premis.xml"
    code, _, err = run("premis", aip_id, "-o", str(premis_file))
    assert code == 0, err
    xml = premis_file.read_text(encoding="utf-8")
    assert xml.count(">deletion<") >= len(d.objects) and ">deaccession<" in xml
    assert xml.count("<linkingAgentRole>authorizer</linkingAgentRole>") >= 2 * len(d.objects)
    assert "<agentName>alice</agentName>" in xml and "<agentName>bob</agentName>" in xml

    # afterwards: restore refuses, nothing is copied back, the audit is quiet
    code, _, err = run("restore", aip_id, str(tmp_path / "back"))
    assert code == 1 and "deaccessioned" in err and not (tmp_path / "back" / aip_id).exists()
    code, out, _ = run("replicate")
    assert code == 0 and aip_id not in out
    report = audit.run_audit(settings, catalog, audit.AuditScope(full=True))
    assert report.exit_code == 0 and report.deaccession == [], audit.format_report(report)
    code, _, err = run("deaccession", "request", aip_id, "--reason", "again")
    assert code == 2 and "already deaccessioned" in err

    # ...and loud about an object that reappears (left in place, reported at every audit until gone)
    client.put_object(Bucket=bucket, Key=f"{prefix}{aip_id}/bagit.txt", Body=b"BagIt-Version: 1.0\n")
    for _ in range(2):
        report = audit.run_audit(settings, catalog, audit.AuditScope())
        assert report.exit_code == 1 and [(f.problem, f.key) for f in report.deaccession] == [
            ("reappeared", f"{aip_id}/bagit.txt")
        ]
        assert "DEACCESSION REAPPEARED" in audit.format_report(report)
    assert len(_versions(settings, "seaweed", aip_id)) == 1
    found_again = [e for e in catalog.events(aip_id, EventType.DELETION) if e.outcome is Outcome.FAIL]
    assert len(found_again) == 1 and "found on seaweed after its deletion" in found_again[0].detail
    code, out, err = run("--operator", "carol", "deaccession", "approve", request_id)  # resume: delete it again
    assert code == 0 and "resumed" in out, out + err
    assert _versions(settings, "seaweed", aip_id) == []
    assert audit.run_audit(settings, catalog, audit.AuditScope()).exit_code == 0
    catalog.close()


def test_a_cancelled_request_cannot_be_approved_and_list_shows_it(
    s3_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = isolated_settings(s3_settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    with Catalog(settings.catalog_url) as catalog:
        aip_id = _ingest(settings, catalog, _document(settings, "diary.txt"))
    monkeypatch.setenv("PRESERVE_OPERATOR", "dana")  # the operator from the environment
    assert cli.main(["--config", config, "deaccession", "request", aip_id, "--reason", "by mistake"]) == 0
    request_id = capsys.readouterr().out.strip()
    assert cli.main(["--config", config, "--operator", "erin", "deaccession", "cancel", request_id]) == 0
    assert "nothing was deleted" in capsys.readouterr().out
    assert cli.main(["--config", config, "--operator", "erin", "deaccession", "approve", request_id]) == 2
    assert "was cancelled by erin" in capsys.readouterr().err
    assert cli.main(["--config", config, "deaccession", "list"]) == 0
    out = capsys.readouterr().out
    assert request_id in out and "cancelled" in out and "dana" in out
    assert cli.main(["--config", config, "deaccession", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(x["request"], x["state"], x["requested_by"]) for x in listed] == [(request_id, "cancelled", "dana")]
    with Catalog(settings.catalog_url) as catalog:  # nothing lost
        assert catalog.get_aip(aip_id).status is AipStatus.STORED
        # (and version 1's inventory, beside the bag)
        assert len(_versions(settings, "seaweed", aip_id)) == len(catalog.objects(aip_id, "seaweed")) + 1
    assert cli.main(["--config", config, "restore", aip_id, str(tmp_path / "back")]) == 0


# -- Object Lock -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_governance_lock_bypassed_only_where_allowed(
    s3_settings: Settings,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    archive = {} if backend == "sqlite" else {"catalog_url": request.getfixturevalue("postgres_server").new_database()}
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        archive=archive,
        targets=[
            _locked_target("gov-bypass", "GOVERNANCE", allow_governance_bypass=True),
            _locked_target("gov-kept", "GOVERNANCE"),
        ],
    )
    catalog = Catalog(settings.catalog_url)
    aip_id = _ingest(settings, catalog, _document(settings, "letters.pdf"))
    kept_until = {o.key: o.lock_until for o in catalog.objects(aip_id, "gov-kept")}
    with open_store(settings, settings.target("gov-kept")) as store:  # version 1's inventory is locked too
        inventory = store.head(layout.version_inventory_key(aip_id, 1))
        assert inventory is not None
        kept_until[inventory.key] = inventory.lock_until
    assert all(u and u > dt.datetime.now(dt.UTC) + dt.timedelta(hours=23) for u in kept_until.values())
    attention_before = catalog.status().needs_attention
    d = deaccession.request(catalog, aip_id, reason="rights withdrawn", operator=ALICE)
    # `preserve status`: a request waiting for its second person is shown, but needs no attention
    waiting = catalog.status()
    assert [(x.request, x.state, x.requested_by) for x in waiting.deaccessions] == [(d.id, "requested", "alice")]
    assert waiting.needs_attention == attention_before
    report = deaccession.approve(settings, catalog, d.id, operator=BOB)
    assert report.ok and report.withdrawn and not report.complete  # nothing failed; some of it waits
    # ...an approved one whose only remaining deletions wait for their retention is shown with its
    # counts, and needs no attention (a lock of years would otherwise keep the status red for years)
    code = cli.main(["--config", str(write_config(settings, tmp_path / "preserve.toml")), "status", "--json"])
    st = json.loads(capsys.readouterr().out)
    # (the withdrawal's alert, undelivered here where no channel is configured, counts on its own)
    expected = attention_before or st["undelivered_alerts"] > 0
    assert code == (1 if expected else 0) and st["needs_attention"] is expected
    [item] = st["deaccessions"]
    assert (item["request"], item["aip_id"], item["state"], item["approved_by"]) == (d.id, aip_id, "approved", "bob")
    assert item["needs_attention"] is False and item["access_withdrawn"] is True
    assert (item["deleted"], item["scheduled"], item["pending"], item["failed"]) == (
        len(catalog.deaccession(d.id).objects_in(DeletionState.DELETED)),
        len(kept_until),
        0,
        0,
    )
    assert item["deleted"] > 0 and dt.datetime.fromisoformat(item["next_due"]) == min(kept_until.values())

    assert _versions(settings, "gov-bypass", aip_id) == []  # deleted now, with the bypass
    bypassed = [o for o in report.deaccession.objects if o.target == "gov-bypass"]
    assert bypassed and all(o.state is DeletionState.DELETED and "bypassed" in o.method for o in bypassed)
    kept = [o for o in report.deaccession.objects if o.target == "gov-kept"]
    assert kept and all(o.state is DeletionState.SCHEDULED for o in kept)
    assert {o.key: o.due_at for o in kept} == kept_until  # the day its retention ends
    assert all("allow_governance_bypass = false" in o.detail for o in kept)
    assert len(_versions(settings, "gov-kept", aip_id)) == len(kept)  # still there, never reported deleted
    scheduled = [e for e in catalog.events(aip_id, EventType.DELETION) if e.outcome is Outcome.NOT_PERFORMED]
    assert len(scheduled) == len(kept) and all("scheduled for" in e.detail for e in scheduled)

    # the audit: quiet while the date has not come...
    quiet = audit.run_audit(settings, catalog, audit.AuditScope())
    assert quiet.exit_code == 0 and quiet.deaccession == [], audit.format_report(quiet)
    # ...loud once it has (by the audit's clock) and the object is still there: the server still refuses
    later = max(kept_until.values()) + dt.timedelta(hours=1)
    loud = audit.run_audit(settings, catalog, audit.AuditScope(), now=lambda: later)
    assert loud.exit_code == 1 and {f.problem for f in loud.deaccession} == {"overdue"}, audit.format_report(loud)
    assert "DEACCESSION OVERDUE" in audit.format_report(loud)
    assert len(_versions(settings, "gov-kept", aip_id)) == len(kept)
    assert catalog.deaccession(d.id).state is DeaccessionState.APPROVED
    catalog.close()


def test_compliance_lock_scheduled_then_deleted_by_the_audit(
    s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMPLIANCE retention of seconds: the upload's clock (`utcnow` in storage.s3.upload) is set
    back a day less a window while ingesting, so its one-day retention ends that window from now;
    nothing can delete the objects before then, and the scheduled audit deletes them once it has
    ended. A machine too slow to approve within the window (the retention ended first, so the
    objects were simply deleted) tries again with a longer one."""
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        targets=[
            _locked_target("vault", "COMPLIANCE"),
            {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")},
        ],
    )
    catalog = Catalog(settings.catalog_url)
    for window in (15, 60, 240):
        shift = dt.timedelta(days=1) - dt.timedelta(seconds=window)
        with monkeypatch.context() as m:
            clock = lambda shift=shift: dt.datetime.now(dt.UTC) - shift  # noqa: E731
            m.setattr("preserve.storage.s3.upload.utcnow", clock)
            m.setattr("preserve.storage.s3.lock.utcnow", clock)
            aip_id = _ingest(settings, catalog, _document(settings, f"ledger-{window}.pdf"))
        until = max(o.lock_until for o in catalog.objects(aip_id, "vault") if o.lock_until)
        assert until <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=window)
        d = deaccession.request(catalog, aip_id, reason="court order", operator=ALICE)
        report = deaccession.approve(settings, catalog, d.id, operator=BOB)
        approved = dt.datetime.now(dt.UTC)  # the audit's clock below: before the end of the retention
        vault = [o for o in report.deaccession.objects if o.target == "vault"]
        if vault and all(o.state is DeletionState.SCHEDULED for o in vault) and approved < until:
            break
    else:
        pytest.fail("the retention ended before the approval three times, the last with a 240 s window")
    assert report.ok and not report.complete
    assert _local_files(settings, aip_id) == []
    assert all("COMPLIANCE" in o.detail for o in vault)
    assert len(_versions(settings, "vault", aip_id)) == len(vault)

    # not due yet by the audit's clock (still before the end of the retention): quiet, nothing tried
    quiet = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id), now=lambda: approved)
    assert quiet.exit_code == 0 and quiet.deaccession == [], audit.format_report(quiet)
    assert len(_versions(settings, "vault", aip_id)) == len(vault)
    while dt.datetime.now(dt.UTC) <= until + dt.timedelta(seconds=1):  # the retention's real end (seconds)
        time.sleep(0.5)
    done = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id))
    assert done.exit_code == 0, audit.format_report(done)
    assert sorted(f.key for f in done.deaccession if f.ok) == sorted(o.key for o in vault)
    assert _versions(settings, "vault", aip_id) == []
    final = catalog.deaccession(d.id)
    assert final.state is DeaccessionState.COMPLETED and {o.state for o in final.objects} == {DeletionState.DELETED}
    passes = [
        e
        for e in catalog.events(aip_id, EventType.DELETION)
        if e.subject.startswith("vault:") and e.outcome is Outcome.PASS
    ]
    assert len(passes) == len(vault) and all(e.extra["authorized_by"] == ["alice", "bob"] for e in passes)
    assert audit.run_audit(settings, catalog, audit.AuditScope()).exit_code == 0
    catalog.close()


# -- faults ------------------------------------------------------------------------------------------
def test_credentials_that_may_not_delete_leave_it_recorded_until_they_can(
    s3_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bucket policy denies deletes (as an IAM policy without s3:DeleteObjectVersion would): the
    copy there is reported as not deleted, with what to do; once deletes are allowed, the audit
    finishes it."""
    bucket = f"nodelete-{uuid.uuid4().hex[:8]}"
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        targets=[
            {"name": "vault", "kind": "s3", "embedded": True, "bucket": bucket, "prefix": "p"},
            {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")},
        ],
    )
    client, _, _ = raw_s3(settings, "vault")
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    catalog = Catalog(settings.catalog_url)
    aip_id = _ingest(settings, catalog, _document(settings, "minutes.pdf"))
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny))
    try:
        config = str(write_config(settings, tmp_path / "preserve.toml"))
        request_id = deaccession.request(catalog, aip_id, reason="r", operator=ALICE).id
        code = cli.main(["--config", config, "--operator", "bob", "deaccession", "approve", request_id])
        out, err = capsys.readouterr()
        assert code == 1, out + err
        assert "may not delete object versions" in out and "s3:DeleteObjectVersion" in out
        assert "nothing is reported deleted that is not gone" in err
        d = catalog.deaccession(request_id)
        on_vault = [o for o in d.objects if o.target == "vault"]
        assert on_vault and all(o.state is DeletionState.FAILED for o in on_vault)
        assert all(o.state is DeletionState.DELETED for o in d.objects if o.target == "local")
        assert len(_versions(settings, "vault", aip_id)) == len(on_vault)
        assert not [
            e
            for e in catalog.events(aip_id, EventType.DELETION)
            if e.subject.startswith("vault:") and e.outcome is Outcome.PASS
        ]
        failing = audit.run_audit(settings, catalog, audit.AuditScope())
        assert failing.exit_code == 2 and any("may not delete" in e for e in failing.errors)
    finally:
        client.delete_bucket_policy(Bucket=bucket)
    fixed = audit.run_audit(settings, catalog, audit.AuditScope())  # the audit retries what failed
    assert fixed.exit_code == 0, audit.format_report(fixed)
    assert _versions(settings, "vault", aip_id) == []
    assert catalog.deaccession(request_id).state is DeaccessionState.COMPLETED
    catalog.close()


def test_access_location_down_the_deaccession_waits_for_the_withdrawal(
    s3_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access first: while an access location is down the withdrawal cannot be verified, so no
    replica object is touched and the request stays approved (exit 1, saying so). Once the location
    is back, approving again finishes one; housekeeping's withdrawal then the audit finish another."""
    settings = isolated_settings(s3_settings, tmp_path)
    catalog = Catalog(settings.catalog_url)
    first = _ingest(settings, catalog, _document(settings, "notes.pdf"))
    second = _ingest(settings, catalog, _document(settings, "memo.pdf"))
    assert settings.access_target is not None
    down = settings.model_copy(
        update={"access_target": settings.access_target.model_copy(update={"endpoint": "http://127.0.0.1:9"})}
    )
    before = {a: (len(_versions(settings, "seaweed", a)), len(_local_files(settings, a))) for a in (first, second)}
    recorded = {a: len(catalog.objects(a)) for a in (first, second)}  # the inventories are found later
    assert all(n_s3 and n_local for n_s3, n_local in before.values())
    d1 = deaccession.request(catalog, first, reason="r", operator=ALICE)
    d2 = deaccession.request(catalog, second, reason="r", operator=ALICE)

    report = deaccession.approve(down, catalog, d1.id, operator=BOB)
    assert not report.withdrawn and not report.ok and not report.outcomes
    assert "nothing was deleted from the replicas" in report.problems[0] and len(report.problems) > 1
    code = cli.main(
        [
            "--config",
            str(write_config(down, tmp_path / "down.toml")),
            "--operator",
            "bob",
            "deaccession",
            "approve",
            d2.id,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "access NOT yet withdrawn" in out and "nothing was deleted from the replicas" in out
    for d, aip_id in ((d1, first), (d2, second)):
        now = catalog.deaccession(d.id)
        assert now.state is DeaccessionState.APPROVED and now.withdrawn_at is None
        assert now.objects and {o.state for o in now.objects} == {DeletionState.PENDING}
        assert (len(_versions(settings, "seaweed", aip_id)), len(_local_files(settings, aip_id))) == before[aip_id]
        assert not [e for e in catalog.events(aip_id, EventType.DELETION) if e.extra.get("request") == d.id]
    # `preserve status` shows both as in progress, the access not withdrawn and the objects to delete
    monkeypatch.setenv("COLUMNS", "300")
    assert cli.main(["--config", str(write_config(settings, tmp_path / "preserve.toml")), "status"]) == 1
    shown = capsys.readouterr().out
    assert "deaccessions in progress" in shown and d1.id in shown and d2.id in shown
    assert shown.count("not yet withdrawn") == 2 and f"{recorded[first]} to delete" in shown
    # the audit while the location is still down deletes nothing either, and says why
    waiting = audit.run_audit(down, catalog, audit.AuditScope())
    assert waiting.exit_code == 2 and any("not verified withdrawn" in e for e in waiting.errors)
    assert all(len(_versions(settings, "seaweed", a)) == before[a][0] for a in (first, second))

    # the location is back: approving again (anyone may resume an approved one) finishes the first...
    resumed = deaccession.approve(settings, catalog, d1.id, operator=ALICE)
    assert resumed.resumed and resumed.withdrawn and resumed.ok and resumed.complete
    assert catalog.deaccession(d1.id).approved_by == "bob"
    assert _versions(settings, "seaweed", first) == [] and _local_files(settings, first) == []
    # ...and housekeeping finishes the second's withdrawal, then the audit its deletions
    assert [outcome for change, outcome in access_change.finish_pending(settings, catalog)] == ["done"]
    done = audit.run_audit(settings, catalog, audit.AuditScope())
    assert done.exit_code == 0, audit.format_report(done)
    final = catalog.deaccession(d2.id)
    assert final.state is DeaccessionState.COMPLETED and final.withdrawn_at and final.completed_at
    assert final.withdrawn_at >= (final.approved_at or final.withdrawn_at)
    assert _versions(settings, "seaweed", second) == [] and _local_files(settings, second) == []
    assert catalog.status().deaccessions == ()  # nothing in progress any more
    catalog.close()
