"""Audits, key objects and key management on encrypted targets (issue 16), on real components:
SeaweedFS for an age-encrypted S3 target, a filesystem target (plain or encrypted), identities
made by the stock `age-keygen`, and what the targets hold damaged behind preserve's back (boto3,
the file itself). Without any identity the audit checks the ciphertext against its recorded
digest; with ``decrypt`` it checks the plaintext too; a key object deleted or damaged is found,
alerted and put back from the catalog; rewrap and export give keys the stock `age` opens."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preserve import cli
from preserve.catalog import Catalog, StoredObject
from preserve.catalog.records import ReplicaRecord
from preserve.config import Settings
from preserve.core.errors import ConfigError
from preserve.core.model import Agent, EventType, Outcome
from preserve.operations import audit, keys
from preserve.pipeline import ingest_submission
from tests.support import isolated_settings, raw_s3, write_config

pytestmark = pytest.mark.skipif(
    shutil.which("age") is None or shutil.which("age-keygen") is None,
    reason="needs the stock age CLI (apt install age)",
)

FILES = (("report-a.pdf", 300_000), ("report-b.txt", 120_000))


def keygen(path: Path) -> str:
    """A new identity file written by the stock age-keygen; returns its public key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def age_decrypt(identity: Path, src: Path, dest: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["age", "-d", "-i", str(identity), "-o", str(dest), str(src)], capture_output=True)


@dataclasses.dataclass
class Archive:
    settings: Settings
    catalog: Catalog
    aips: list[str]
    online: Path  # an identity of the encrypted target(s)
    offline: Path  # another one (the offline recipient)
    originals: dict[str, bytes]  # payload file name -> bytes
    monkeypatch: pytest.MonkeyPatch

    def identity(self, target: str, path: Path | None) -> None:
        var = self.settings.target(target).identity_env_name()
        if path is None:
            self.monkeypatch.delenv(var, raising=False)
        else:
            self.monkeypatch.setenv(var, str(path))


def _archive(
    s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, encrypt: tuple[str, ...]
) -> Iterator[Archive]:
    online, offline = tmp_path / "keys" / "online.txt", tmp_path / "keys" / "offline.txt"
    recipients = [keygen(online), keygen(offline)]
    base = isolated_settings(s3_settings, tmp_path)
    targets = []
    for name in ("seaweed", "local"):
        t = base.target(name).model_dump(mode="json")
        if name in encrypt:
            t |= {"encryption": "age", "age_recipients": recipients, "custody": "third-party"}
        targets.append(t)
    settings = isolated_settings(s3_settings, tmp_path, targets=targets)
    for name in encrypt:
        monkeypatch.setenv(settings.target(name).identity_env_name(), str(online))
    catalog = Catalog(settings.catalog_url)
    aips, originals = [], {}
    for name, size in FILES:
        path = settings.ingest_dir / name
        data = os.urandom(size)
        path.write_bytes(data)
        originals[name] = data
        outcome = ingest_submission(settings, catalog, path)
        assert outcome.status == "stored", outcome.detail
        aips.append(outcome.aip_id)
    for name in ("seaweed", "local"):  # the audits start without any identity
        monkeypatch.delenv(settings.target(name).identity_env_name(), raising=False)
    yield Archive(settings, catalog, aips, online, offline, originals, monkeypatch)
    catalog.close()


@pytest.fixture()
def s3_encrypted(s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """Two AIPs on an encrypted SeaweedFS target and a plaintext filesystem target."""
    yield from _archive(s3_settings, tmp_path, monkeypatch, encrypt=("seaweed",))


@pytest.fixture()
def fs_encrypted(s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """Two AIPs on a plaintext SeaweedFS target and an encrypted filesystem target."""
    yield from _archive(s3_settings, tmp_path, monkeypatch, encrypt=("local",))


def _payload(catalog: Catalog, aip_id: str, target: str) -> StoredObject:
    return next(o for o in catalog.objects(aip_id, target) if "/data/objects/" in o.key)


def _s3_get(settings: Settings, key: str) -> bytes:
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        return bytes(client.get_object(Bucket=bucket, Key=prefix + key)["Body"].read())
    finally:
        client.close()


def _s3_put(settings: Settings, key: str, body: bytes) -> None:
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        client.put_object(Bucket=bucket, Key=prefix + key, Body=body)
    finally:
        client.close()


def _s3_delete(settings: Settings, key: str) -> None:
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        client.delete_object(Bucket=bucket, Key=prefix + key)
    finally:
        client.close()


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def _full(a: Archive, **kw: Any) -> audit.AuditReport:
    return audit.run_audit(a.settings, a.catalog, audit.AuditScope(full=True), **kw)


# -- without any identity ----------------------------------------------------------------------------
def test_keyless_audit_passes_then_finds_a_flipped_ciphertext_byte(s3_encrypted: Archive) -> None:
    a = s3_encrypted
    report = _full(a)
    assert report.exit_code == 0, audit.format_report(report)
    enc = [o for o in a.catalog.objects(target="seaweed")]
    assert enc and all(o.encrypted for o in enc)
    checked = {(c.target, c.key): c for c in report.checks}
    assert all(checked[("seaweed", o.key)].encrypted and checked[("seaweed", o.key)].reread for o in enc)
    assert not any(c.decrypted for c in report.checks)  # nothing could be, and nothing was
    # the bytes read on the encrypted target are the ciphertext's, as stored
    assert sum(c.bytes_read for c in report.checks if c.target == "seaweed") == sum(o.physical_size for o in enc)
    assert [(k.aip_id, k.problem) for k in report.key_checks] == [(aip, "") for aip in sorted(a.aips)]
    for aip in a.aips:
        rec = a.catalog.key_of(aip, "seaweed")
        assert rec is not None and rec.verified_at is not None and rec.verified_at >= report.started_at

    # one byte of one ciphertext flipped, behind preserve's back
    obj = _payload(a.catalog, a.aips[0], "seaweed")
    original = _s3_get(a.settings, obj.physical_key)
    _s3_put(a.settings, obj.physical_key, _flip(original, len(original) // 2))
    report = _full(a)
    assert report.exit_code == 1
    [bad] = report.failures
    assert (bad.target, bad.key, bad.problem, bad.encrypted) == ("seaweed", obj.key, "checksum", True)
    assert bad.expected == f"ciphertext sha256 {obj.stored_sha256}"
    # writing it again encrypted needs the target's identity: not repaired, and the reason says so
    [repair] = report.repairs
    assert not repair.ok and a.settings.target("seaweed").identity_env_name() in repair.detail
    events = a.catalog.events(a.aips[0], EventType.FIXITY_CHECK)
    assert any(e.outcome is Outcome.FAIL and "ciphertext sha256" in e.detail for e in events)

    # with the identity, the copy is made again from the plaintext replica (plain -> encrypted)
    a.identity("seaweed", a.online)
    report = _full(a)
    assert report.exit_code == 1 and [r.ok for r in report.repairs] == [True]
    assert "restored from local" in report.repairs[0].detail
    # encrypted again under the same opaque name (the keystream also depends on the source file's
    # size and mtime, so the bytes need not be the ingest's): the catalog records what is there now
    repaired = _s3_get(a.settings, obj.physical_key)
    assert repaired.startswith(b"age-encryption.org/v1\n") and len(repaired) == len(original)
    after = _payload(a.catalog, a.aips[0], "seaweed")
    assert (after.stored_key, after.stored_size, after.status) == (obj.stored_key, obj.stored_size, "verified")
    assert after.stored_sha256 == hashlib.sha256(repaired).hexdigest()
    decrypted = _full(a, decrypt=True)  # and it decrypts to the file ingested
    assert decrypted.exit_code == 0 and all(c.decrypted for c in decrypted.checks if c.target == "seaweed")
    a.identity("seaweed", None)
    again = _full(a)
    assert again.exit_code == 0, audit.format_report(again)


def test_encrypted_copy_repairs_a_plaintext_one(s3_encrypted: Archive) -> None:
    """encrypted -> plain: the good copy is decrypted (with its target's identity) on the way."""
    a = s3_encrypted
    obj = _payload(a.catalog, a.aips[1], "local")
    path = a.settings.target_path(a.settings.target("local")) / obj.key
    path.write_bytes(_flip(path.read_bytes(), 10))
    a.identity("seaweed", a.online)
    report = _full(a)
    assert [(c.target, c.key, c.problem) for c in report.failures] == [("local", obj.key, "checksum")]
    [repair] = report.repairs
    assert repair.ok and repair.source == "seaweed", repair.detail
    assert path.read_bytes() == a.originals["report-b.txt"]
    assert _full(a).exit_code == 0


# -- decrypt -----------------------------------------------------------------------------------------
def test_decrypt_passes_and_finds_what_only_decryption_can(fs_encrypted: Archive) -> None:
    a = fs_encrypted
    a.identity("local", a.online)
    report = _full(a, decrypt=True)
    assert report.exit_code == 0, audit.format_report(report)
    local = [c for c in report.checks if c.target == "local"]
    assert local and all(c.decrypted and c.encrypted for c in local)
    assert not any(c.decrypted for c in report.checks if c.target == "seaweed")  # plaintext there
    assert not report.unclassified  # with the keys open, every opaque name was told apart

    # a ciphertext replaced, and the catalog made to record the replacement's digest: the keyless
    # audit has nothing to object to, only decrypting shows the object is not what was ingested
    obj = _payload(a.catalog, a.aips[0], "local")
    path = a.settings.target_path(a.settings.target("local")) / obj.physical_key
    good = path.read_bytes()
    bad = _flip(good, len(good) - 20)  # inside the last chunk's tag
    path.write_bytes(bad)
    _record_stored_sha(a.catalog, obj, hashlib.sha256(bad).hexdigest())
    assert _full(a).exit_code == 0
    report = _full(a, decrypt=True)
    [found] = report.failures
    assert (found.key, found.problem, found.decrypted) == (obj.key, "decryption", True)
    assert "authentication" in found.found or "damaged" in found.found
    [repair] = report.repairs
    assert repair.ok and repair.source == "seaweed", repair.detail
    now = path.read_bytes()
    assert now != bad and now.startswith(b"age-encryption.org/v1\n")
    fixed = _payload(a.catalog, a.aips[0], "local")
    assert fixed.stored_sha256 == hashlib.sha256(now).hexdigest()  # the catalog records what is stored now
    assert _full(a, decrypt=True).exit_code == 0


def _record_stored_sha(catalog: Catalog, obj: StoredObject, sha: str) -> None:
    _rerecord(catalog, obj, stored_sha256=sha)


def _rerecord(catalog: Catalog, obj: StoredObject, **changes: Any) -> None:
    """The catalog's record of one object changed behind preserve's back."""
    aip = catalog.get_aip(obj.aip_id)
    assert aip is not None
    rep = next(r for r in aip.replicas if r.target == obj.target)
    objects = tuple(dataclasses.replace(o, **changes) if o.key == obj.key else o for o in rep.objects)
    catalog.upsert_replica(obj.aip_id, ReplicaRecord(rep.target, rep.uri, rep.status, rep.verified_at, objects))


def test_repair_on_an_encrypted_target_never_writes_plaintext(fs_encrypted: Archive) -> None:
    """An object of an encrypted target whose record lacks its stored form (opaque key, ciphertext
    size and digest: a catalog rebuilt or edited) is repaired through the encrypted store: written
    encrypted under its opaque name, never as plaintext under its own, and recorded as stored."""
    a = fs_encrypted
    obj = _payload(a.catalog, a.aips[0], "local")
    assert obj.encrypted
    _rerecord(a.catalog, obj, stored_key="", stored_size=None, stored_sha256="")
    root = a.settings.target_path(a.settings.target("local"))
    (root / obj.physical_key).unlink()  # and its copy is gone

    # without the identity nothing can be written encrypted: not repaired, and the reason says so
    report = _full(a)
    [bad] = report.failures
    assert (bad.key, bad.problem) == (obj.key, "missing")
    [repair] = report.repairs
    assert not repair.ok and a.settings.target("local").identity_env_name() in repair.detail
    assert not (root / obj.physical_key).exists() and not (root / obj.key).exists()

    a.identity("local", a.online)
    report = _full(a)
    [repair] = report.repairs
    assert repair.ok and repair.source == "seaweed", repair.detail
    assert "encrypted (ciphertext sha256" in repair.detail and "opaque name" in repair.detail
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert files and not (root / obj.key).exists()
    for p in files:  # the key objects, the name indexes, every object and event record: all age files
        assert p.read_bytes().startswith(b"age-encryption.org/v1\n"), p
        rel = p.relative_to(root).as_posix()
        assert "report-" not in rel and "data/objects" not in rel, rel
    assert (root / obj.physical_key).is_file()
    again = _payload(a.catalog, a.aips[0], "local")
    # recorded as stored now: its opaque name (the same as the ingest's), the ciphertext's size and digest
    assert (again.stored_key, again.stored_size) == (obj.stored_key, obj.stored_size)
    assert again.stored_sha256 == hashlib.sha256((root / obj.physical_key).read_bytes()).hexdigest()
    assert again.status == "verified"
    a.identity("local", None)
    assert _full(a).exit_code == 0


def test_decrypt_without_or_with_a_wrong_identity_is_a_clear_error(fs_encrypted: Archive, tmp_path: Path) -> None:
    a = fs_encrypted
    var = a.settings.target("local").identity_env_name()
    report = _full(a, decrypt=True)
    assert report.exit_code == 2
    [error] = report.errors
    assert error.startswith("local: --decrypt:") and var in error and "no identity" in error
    assert not report.failures and all(c.reread for c in report.checks)  # still checked as stored

    stranger = tmp_path / "stranger.txt"
    keygen(stranger)
    a.identity("local", stranger)
    report = _full(a, decrypt=True)
    assert report.exit_code == 2 and not report.failures
    [error] = report.errors
    assert error.startswith("local: --decrypt:") and var in error and "not encrypted to the identity" in error
    assert f"{len(a.aips)} AIP(s)" in error
    # the command line says it too, and exits 2
    config = write_config(a.settings, tmp_path / "preserve.toml")
    code = cli.main(["--config", str(config), "audit", "--direct", "--full", "--decrypt"])
    assert code == 2


# -- key objects ---------------------------------------------------------------------------------------
def test_a_deleted_or_damaged_key_object_is_found_alerted_and_put_back(s3_encrypted: Archive) -> None:
    a = s3_encrypted
    gone, hurt = a.aips
    rec_gone, rec_hurt = a.catalog.key_of(gone, "seaweed"), a.catalog.key_of(hurt, "seaweed")
    assert rec_gone is not None and rec_hurt is not None
    _s3_delete(a.settings, f"{gone}/key.age")
    _s3_put(a.settings, f"{hurt}/key.age", _flip(rec_hurt.wrapped, 40))

    report = _full(a)  # no identity needed for any of it
    assert report.exit_code == 1
    problems = {k.aip_id: k.problem for k in report.key_failures}
    assert problems == {gone: "missing", hurt: "checksum"}
    assert all(
        f"{aip}/key.age" in r.key and r.ok and r.source == "catalog"
        for aip, r in zip(sorted(problems), sorted((r for r in report.repairs), key=lambda r: r.aip_id), strict=True)
    )
    assert _s3_get(a.settings, f"{gone}/key.age") == rec_gone.wrapped
    assert _s3_get(a.settings, f"{hurt}/key.age") == rec_hurt.wrapped
    text = audit.format_report(report)
    assert f"KEY seaweed:{gone}/key.age: missing" in text and "put back from the catalog" in text
    # an alert per AIP, naming the key object
    sent = [al for al in a.catalog.alerts() if al.kind == "damage" and "key object" in al.summary]
    assert {al.subject for al in sent} == {gone, hurt}
    # recorded as failed fixity checks and repairs of the key object
    fails = [e for e in a.catalog.events(gone, EventType.FIXITY_CHECK) if e.outcome is Outcome.FAIL]
    assert any(e.subject == f"seaweed:{gone}/key.age" and "missing" in e.detail for e in fails)
    repairs = a.catalog.events(gone, EventType.REPAIR)
    assert repairs and repairs[-1].outcome is Outcome.PASS
    verified = a.catalog.key_of(gone, "seaweed")
    assert verified is not None and verified.verified_at is not None and verified.verified_at >= report.started_at
    # and the AIP reads again through the key object put back
    a.identity("seaweed", a.online)
    again = _full(a, decrypt=True)
    assert again.exit_code == 0, audit.format_report(again)
    assert all(c.decrypted for c in again.checks if c.target == "seaweed")


def test_an_oversized_key_object_is_damage_put_back_not_a_crash(s3_encrypted: Archive) -> None:
    """100 KiB of garbage where the key object belongs (more than a key object can be): the
    audit goes on, reports the key object damaged, alerts, and puts it back from the catalog."""
    a = s3_encrypted
    aip = a.aips[0]
    rec = a.catalog.key_of(aip, "seaweed")
    assert rec is not None
    _s3_put(a.settings, f"{aip}/key.age", os.urandom(100 << 10))
    report = _full(a)
    assert report.exit_code == 1 and not report.errors, audit.format_report(report)
    [damaged] = report.key_failures
    assert (damaged.aip_id, damaged.problem) == (aip, "checksum") and "not a key object" in damaged.detail
    [repair] = report.repairs
    assert repair.ok and repair.source == "catalog" and repair.key == f"{aip}/key.age", repair.detail
    assert _s3_get(a.settings, f"{aip}/key.age") == rec.wrapped
    assert len(report.checks) == len(a.catalog.objects())  # every object was still checked
    assert any(al.subject == aip and "key object" in al.summary for al in a.catalog.alerts())
    assert _full(a).exit_code == 0


def test_a_key_object_the_catalog_lacks_is_recorded_with_the_identity(s3_encrypted: Archive) -> None:
    a = s3_encrypted
    aip = a.aips[0]
    rec = a.catalog.key_of(aip, "seaweed")
    assert rec is not None
    with a.catalog._tx() as s:  # the catalog lost the record (restored from an old backup, say)
        from preserve.catalog.models import AipKeyRow

        s.query(AipKeyRow).filter_by(aip_id=aip, target="seaweed").delete()
    report = _full(a)
    assert report.exit_code == 0  # a warning, not damage
    assert any("key not in catalog" in w for w in report.warnings)
    assert a.catalog.key_of(aip, "seaweed") is None
    a.identity("seaweed", a.online)
    report = _full(a)
    assert report.exit_code == 0 and not report.warnings
    again = a.catalog.key_of(aip, "seaweed")
    assert again is not None and (again.sha256, again.recipient) == (rec.sha256, rec.recipient)


# -- rewrap and export -----------------------------------------------------------------------------------
def _with_recipients(settings: Settings, target: str, recipients: list[str]) -> Settings:
    t = settings.target(target)
    targets = [t.model_copy(update={"age_recipients": recipients}) if x.name == target else x for x in settings.targets]
    return settings.model_copy(update={"targets": targets})


def test_rewrap_to_an_added_recipient_whose_identity_alone_then_decrypts(s3_encrypted: Archive, tmp_path: Path) -> None:
    a = s3_encrypted
    added = tmp_path / "keys" / "added.txt"
    recipient = keygen(added)
    old = a.settings.target("seaweed").age_recipients
    wider = _with_recipients(a.settings, "seaweed", [*old, recipient])
    who = Agent("Ana Archivist", kind="person")
    # re-wrapping opens each key: without the identity, nothing changes and it says why
    report = keys.rewrap(wider, a.catalog, operator=who)
    assert report.exit_code == 2 and a.settings.target("seaweed").identity_env_name() in report.errors[0]
    a.identity("seaweed", a.online)
    films_before = {o.physical_key: _s3_get(a.settings, o.physical_key) for o in a.catalog.objects(target="seaweed")}
    report = keys.rewrap(wider, a.catalog, operator=who)
    assert report.exit_code == 0, report.lines()
    assert sorted(r.aip_id for r in report.results if r.status == "rewrapped") == sorted(a.aips)
    assert all(r.added == (recipient,) and not r.removed for r in report.results)
    for aip in a.aips:
        rec = a.catalog.key_of(aip, "seaweed")
        assert rec is not None and rec.recipients == (*old, recipient)
        assert _s3_get(a.settings, f"{aip}/key.age") == rec.wrapped
        [ev] = a.catalog.events(aip, EventType.ENCRYPTION)
        assert ev.outcome is Outcome.PASS and ev.extra["operator"] == "Ana Archivist" and ev.agent.name == "pyrage"
    # the films were not touched
    assert {k: _s3_get(a.settings, k) for k in films_before} == films_before
    # a second run has nothing to do
    assert keys.rewrap(wider, a.catalog, operator=who).results == []

    # the added identity alone: the stock age opens the key object, then the film
    aip = a.aips[0]
    obj = _payload(a.catalog, aip, "seaweed")
    work = tmp_path / "by-hand"
    work.mkdir()
    (work / "key.age").write_bytes(_s3_get(a.settings, f"{aip}/key.age"))
    (work / "film.age").write_bytes(_s3_get(a.settings, obj.physical_key))
    assert age_decrypt(added, work / "key.age", work / "aip-key.txt").returncode == 0
    assert age_decrypt(work / "aip-key.txt", work / "film.age", work / "film").returncode == 0
    assert (work / "film").read_bytes() == a.originals["report-a.pdf"]
    # and preserve with only that identity decrypts every object
    a.identity("seaweed", added)
    audited = audit.run_audit(wider, a.catalog, audit.AuditScope(full=True), decrypt=True)
    assert audited.exit_code == 0, audit.format_report(audited)
    assert all(c.decrypted for c in audited.checks if c.target == "seaweed")

    # removing the online recipient: its identity no longer opens the key object
    # (through the command line, as an operator does it: edit the config, then rewrap)
    narrower = _with_recipients(a.settings, "seaweed", [old[1], recipient])
    config = write_config(narrower, tmp_path / "preserve.toml")
    assert cli.main(["--config", str(config), "keys", "rewrap", "--target", "seaweed", "--operator", "Bo"]) == 0
    for aip in a.aips:
        rec = a.catalog.key_of(aip, "seaweed")
        assert rec is not None and rec.recipients == (old[1], recipient)
        last = a.catalog.events(aip, EventType.ENCRYPTION)[-1]
        assert last.extra["removed"] == [old[0]] and last.extra["operator"] == "Bo"
    (work / "key2.age").write_bytes(_s3_get(a.settings, f"{aip}/key.age"))
    assert age_decrypt(a.online, work / "key2.age", work / "no.txt").returncode != 0
    assert age_decrypt(a.offline, work / "key2.age", work / "yes.txt").returncode == 0
    with pytest.raises(ConfigError):
        keys.rewrap(narrower, a.catalog, operator=who, target="local")  # not an encrypted target


def _key_versions(settings: Settings, aip: str) -> tuple[list[str], list[str]]:
    """The version ids and delete-marker ids the bucket holds of the AIP's key object."""
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        full = f"{prefix}{aip}/key.age"
        page = client.list_object_versions(Bucket=bucket, Prefix=full)
        versions = [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == full]
        markers = [m["VersionId"] for m in page.get("DeleteMarkers", []) if m["Key"] == full]
        return versions, markers
    finally:
        client.close()


def _key_version_body(settings: Settings, aip: str, version_id: str) -> bytes:
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        return bytes(
            client.get_object(Bucket=bucket, Key=f"{prefix}{aip}/key.age", VersionId=version_id)["Body"].read()
        )
    finally:
        client.close()


def test_rewrap_removing_a_recipient_keeps_only_the_new_key_object(
    s3_encrypted: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier versions of each key object (readable by the removed recipient) are deleted,
    and only they: the new key object is written once and never deleted, so the target holds a
    key object throughout, whatever happens in between."""
    from preserve.storage.s3 import S3Store

    a = s3_encrypted
    online, offline = a.settings.target("seaweed").age_recipients
    narrower = _with_recipients(a.settings, "seaweed", [offline])
    before = {aip: _key_versions(a.settings, aip) for aip in a.aips}
    assert all(len(v) == 1 and not m for v, m in before.values())  # the versioned bucket: one, from the ingest
    written: list[tuple[str, str | None]] = []  # (key, version id) of every key object put
    deleted: list[str] = []  # version ids deleted
    put, purge_version = S3Store.put_source, S3Store._purge_version

    def spy_put(self: S3Store, key: str, source: Any, *, retain: bool = True) -> Any:
        info = put(self, key, source, retain=retain)
        if key.endswith("/key.age"):
            written.append((key, info.version_id))
        return info

    def spy_purge_version(self: S3Store, full: str, version_id: str, bypass: bool) -> None:
        purge_version(self, full, version_id, bypass)
        deleted.append(version_id)

    monkeypatch.setattr(S3Store, "put_source", spy_put)
    monkeypatch.setattr(S3Store, "_purge_version", spy_purge_version)
    a.identity("seaweed", a.online)
    report = keys.rewrap(narrower, a.catalog, operator=Agent("Ana", kind="person"))
    assert report.exit_code == 0 and not report.warnings, report.lines()
    assert all(r.removed == (online,) for r in report.results) and len(report.results) == len(a.aips)
    # one put per key object, and no version it wrote was deleted
    assert sorted(k for k, _ in written) == sorted(f"{aip}/key.age" for aip in a.aips)
    new = {k.partition("/")[0]: v for k, v in written}
    assert not set(new.values()) & set(deleted)
    assert sorted(deleted) == sorted(v for vs, _ in before.values() for v in vs)
    for aip in a.aips:
        rec = a.catalog.key_of(aip, "seaweed")
        assert rec is not None and rec.recipients == (offline,)
        versions, markers = _key_versions(a.settings, aip)
        assert versions == [new[aip]] and not markers  # exactly one: the new wrapping
        body = _key_version_body(a.settings, aip, versions[0])
        assert body == rec.wrapped == _s3_get(a.settings, f"{aip}/key.age")
        (tmp_path / "k.age").write_bytes(body)
        assert age_decrypt(a.online, tmp_path / "k.age", tmp_path / "no.txt").returncode != 0
        assert age_decrypt(a.offline, tmp_path / "k.age", tmp_path / "yes.txt").returncode == 0


def test_export_writes_keys_the_stock_age_opens(s3_encrypted: Archive, tmp_path: Path) -> None:
    a = s3_encrypted
    dest = tmp_path / "escrow"
    report = keys.export(a.settings, a.catalog, dest)
    assert report.exit_code == 0 and len(report.written) == len(a.aips)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert stat.S_IMODE((dest / "seaweed").stat().st_mode) == 0o700
    for aip in a.aips:
        path = dest / "seaweed" / f"{aip}.key.age"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        rec = a.catalog.key_of(aip, "seaweed")
        assert rec is not None and path.read_bytes() == rec.wrapped
    assert not (dest / "local").exists()  # a plaintext target has no keys
    readme = (dest / "README.txt").read_text()
    assert "age -d -i TARGET-IDENTITY.txt" in readme and "age -d -i aip-key.txt" in readme
    check = subprocess.run(["sha256sum", "-c", "manifest-sha256.txt"], cwd=dest, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == len(a.aips), check.stdout

    # the two steps of the README, with the offline identity and the stock tool only
    aip = a.aips[1]
    obj = _payload(a.catalog, aip, "seaweed")
    (tmp_path / "film.age").write_bytes(_s3_get(a.settings, obj.physical_key))
    step1 = age_decrypt(a.offline, dest / "seaweed" / f"{aip}.key.age", tmp_path / "aip-key.txt")
    assert step1.returncode == 0, step1.stderr
    assert age_decrypt(tmp_path / "aip-key.txt", tmp_path / "film.age", tmp_path / "film").returncode == 0
    assert (tmp_path / "film").read_bytes() == a.originals["report-b.txt"]

    # a folder holding something else is refused; an earlier export is brought up to date
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError):
        keys.export(a.settings, a.catalog, other)
    assert keys.export(a.settings, a.catalog, dest).exit_code == 0
    config = write_config(a.settings, tmp_path / "preserve.toml")
    assert cli.main(["--config", str(config), "keys", "export", str(other)]) == 2
    assert cli.main(["--config", str(config), "keys", "export", str(tmp_path / "escrow2")]) == 0
    assert sorted(p.name for p in (tmp_path / "escrow2" / "seaweed").iterdir()) == sorted(
        f"{x}.key.age" for x in a.aips
    )


def test_status_shows_encryption_custody_and_unverified_keys(s3_encrypted: Archive, tmp_path: Path) -> None:
    import json

    a = s3_encrypted
    config = write_config(a.settings, tmp_path / "preserve.toml")

    def status() -> dict[str, Any]:
        res = subprocess.run(
            [sys.executable, "-m", "preserve.cli", "--config", str(config), "status", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ},
        )
        return {t["target"]: t for t in json.loads(res.stdout)["targets"]}

    targets = status()
    assert targets["seaweed"]["encrypted"] is True and targets["seaweed"]["custody"] == "third-party"
    assert targets["seaweed"]["encrypted_objects"] == targets["seaweed"]["objects"] > 0
    assert targets["seaweed"]["keys_unverified"] == 0  # verified when they were written
    assert targets["local"]["encrypted"] is False and targets["local"]["keys_unverified"] == 0
    _s3_delete(a.settings, f"{a.aips[0]}/key.age")
    with a.catalog._tx() as s:  # as if the audit had not seen it for long: never verified
        from preserve.catalog.models import AipKeyRow

        s.query(AipKeyRow).filter_by(aip_id=a.aips[0], target="seaweed").update({"verified_at": None})
    assert status()["seaweed"]["keys_unverified"] == 1
    _full(a)  # finds it missing, puts it back, marks it verified
    assert status()["seaweed"]["keys_unverified"] == 0
