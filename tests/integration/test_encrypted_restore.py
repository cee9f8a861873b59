"""Getting films and the catalog back from an age-encrypted replica (issue 16), on the real SeaweedFS
and filesystem, with identities made by the stock age-keygen: a restore from the encrypted replica
alone gives a valid bag, byte for byte the one on the plaintext replica and every original under
its exact name; a missing or wrong identity, or a damaged ciphertext, on the first (encrypted)
replica is reported, naming the variable, and the restore comes from the plaintext one; the
journal's flush without the identity leaves the records pending and says why; and a catalog
rebuilt from the encrypted replica alone records each object's ciphertext (key, size, SHA-256)
and the AIP's key, or, without the identity, is refused naming the variable."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from preserve import cli
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.errors import KeyUnavailable
from preserve.core.model import EventType, Outcome, ReplicaStatus, utcnow
from preserve.operations import journal, rebuild, restore
from preserve.pipeline import ingest_submission
from preserve.storage import layout, open_store
from preserve.storage.crypt import EncryptedStore
from tests.support import isolated_settings, raw_s3, write_config

pytestmark = pytest.mark.skipif(shutil.which("age-keygen") is None, reason="needs the stock age CLI (apt install age)")

FOLDER = "Ciné été 1968"
FILES = {
    "affiche — 流浪北京.pdf": b"%PDF-1.4\n" + bytes(range(256)) * 300,
    "lettre à Sébastien.txt": "écrit à la main, le 3 mai\n".encode() * 400,
    "dossier de presse/critique n°1 — Télérama.txt": b"un film admirable\n" * 50,
}


def keygen(path: Path) -> str:
    """A new identity file written by the stock age-keygen; returns its public key."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def encrypted(
    s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, Catalog, str, Path]]:
    """An encrypted SeaweedFS target first, a plaintext filesystem one second; one AIP ingested."""
    keys = tmp_path / "keys"
    keys.mkdir()
    identity = keys / "seaweed.txt"
    recipients = [keygen(identity), keygen(keys / "offline.txt")]
    base = isolated_settings(s3_settings, tmp_path)
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        targets=[
            {**base.target("seaweed").model_dump(mode="json"), "encryption": "age", "age_recipients": recipients},
            base.target("local").model_dump(mode="json"),
        ],
    )
    monkeypatch.setenv(settings.target("seaweed").identity_env_name(), str(identity))
    folder = settings.ingest_dir / FOLDER
    folder.mkdir()
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    catalog = Catalog(settings.catalog_url)
    outcome = ingest_submission(settings, catalog, folder)
    assert outcome.status == "stored", outcome.detail
    yield settings, catalog, outcome.aip_id, identity
    catalog.close()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_restore_from_the_encrypted_replica_alone(
    encrypted: tuple[Settings, Catalog, str, Path], tmp_path: Path
) -> None:
    settings, catalog, aip_id, _ = encrypted
    aip = catalog.get_aip(aip_id)
    assert aip is not None
    sealed = next(r for r in aip.replicas if r.target == "seaweed")
    assert sealed.objects and all(o.encrypted for o in sealed.objects)

    got = restore.restore(settings, catalog, aip_id, tmp_path / "from-encrypted", replica="seaweed")
    assert got.ok and got.replica == "seaweed" and got.attempts == ()
    plain = restore.restore(settings, catalog, aip_id, tmp_path / "from-plain", replica="local")
    assert plain.ok and plain.replica == "local"

    mine, theirs = _tree(got.path), _tree(plain.path)
    assert mine == theirs  # every member, tag files and PREMIS included, byte for byte
    assert len(mine) == len(sealed.objects)
    for name, data in FILES.items():  # every original under its exact name (revealed from the opaque keys)
        assert mine[f"data/objects/{name}"] == data
    # what the catalog records of the plaintext is what came back
    for o in sealed.objects:
        member = o.key.removeprefix(f"{aip_id}/")
        assert hashlib.sha256(mine[member]).hexdigest() == o.sha256 and len(mine[member]) == o.size
    passes = [e for e in catalog.events(aip_id, EventType.RESTORE) if e.outcome is Outcome.PASS]
    assert {e.subject for e in passes} == {"seaweed", "local"}


def test_missing_wrong_identity_and_damaged_ciphertext_fall_back_to_the_plain_replica(
    encrypted: tuple[Settings, Catalog, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, catalog, aip_id, identity = encrypted
    var = settings.target("seaweed").identity_env_name()

    # no identity configured: the encrypted replica (first in order) is skipped, naming the variable
    monkeypatch.delenv(var)
    got = restore.restore(settings, catalog, aip_id, tmp_path / "no-identity")
    assert got.ok and got.replica == "local"
    assert len(got.attempts) == 1 and got.attempts[0].startswith("seaweed: ") and var in got.attempts[0]
    assert _tree(got.path)["data/objects/lettre à Sébastien.txt"] == FILES["lettre à Sébastien.txt"]
    failed = [e for e in catalog.events(aip_id, EventType.RESTORE) if e.outcome is Outcome.FAIL]
    assert len(failed) == 1 and failed[0].subject == "seaweed" and var in failed[0].detail

    # an identity that is none of the target's recipients: the same, and the variable named too
    stranger = tmp_path / "stranger.txt"
    keygen(stranger)
    monkeypatch.setenv(var, str(stranger))
    got = restore.restore(settings, catalog, aip_id, tmp_path / "wrong-identity")
    assert got.ok and got.replica == "local"
    assert "not encrypted to the identity" in got.attempts[0] and var in got.attempts[0]

    # the right identity, but a ciphertext damaged behind preserve's back: decryption fails, next replica
    monkeypatch.setenv(var, str(identity))
    aip = catalog.get_aip(aip_id)
    assert aip is not None
    letter = next(
        o for r in aip.replicas if r.target == "seaweed" for o in r.objects if o.key.endswith("lettre à Sébastien.txt")
    )
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        body = bytearray(client.get_object(Bucket=bucket, Key=prefix + letter.stored_key)["Body"].read())
        body[len(body) // 2] ^= 0x01
        client.put_object(Bucket=bucket, Key=prefix + letter.stored_key, Body=bytes(body))
    finally:
        client.close()
    got = restore.restore(settings, catalog, aip_id, tmp_path / "damaged")
    assert got.ok and got.replica == "local"
    assert got.attempts[0].startswith("seaweed: decryption failed")


def test_journal_flush_without_the_identity_stays_pending_and_says_why(
    encrypted: tuple[Settings, Catalog, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, catalog, aip_id, identity = encrypted
    var = settings.target("seaweed").identity_env_name()
    assert journal.flush(settings, catalog).ok
    monkeypatch.delenv(var)
    # a restore records a dissemination event: its journal cannot go to the encrypted replica now
    assert restore.restore(settings, catalog, aip_id, tmp_path / "out", replica="local").ok
    report = journal.flush(settings, catalog, [aip_id])
    assert [(w.target, w.ok) for w in report.entries] == [("seaweed", False)]
    assert var in report.entries[0].error and "KeyUnavailable" in report.entries[0].error
    assert catalog.journal_pending(aip_id, "seaweed") and not catalog.journal_pending(aip_id, "local")

    monkeypatch.setenv(var, str(identity))
    report = journal.flush(settings, catalog, [aip_id])
    assert report.ok and [w.target for w in report.entries if w.record] == ["seaweed"]
    assert not catalog.journal_pending(aip_id, "seaweed")
    # the records are listed under events/ by their revealed names, and read back decrypted
    with open_store(settings, settings.target("seaweed")) as store:
        assert isinstance(store, EncryptedStore)
        records = [i.key for i in store.list(f"{aip_id}/") if layout.classify(aip_id, i.key) == "event-record"]
        assert report.entries[0].record in records
        assert b"premis" in b"".join(store.read_chunks(report.entries[0].record)).lower()
        raw = [i.key for i in store.raw.list(f"{aip_id}/")]
    assert not any("/events/" in k for k in raw)


def test_catalog_rebuilt_from_the_encrypted_replica(
    encrypted: tuple[Settings, Catalog, str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, catalog, aip_id, identity = encrypted
    assert journal.flush(settings, catalog).ok
    before = catalog.get_aip(aip_id)
    assert before is not None
    had = {o.key: o for r in before.replicas if r.target == "seaweed" for o in r.objects}
    key = catalog.key_of(aip_id, "seaweed")
    assert key is not None
    var = settings.target("seaweed").identity_env_name()

    # without the identity: refused before anything is written, naming the variable; no traceback
    monkeypatch.delenv(var)
    fresh = Catalog(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    try:
        with pytest.raises(KeyUnavailable) as refused:
            rebuild.rebuild(settings, fresh, "seaweed")
        assert var in str(refused.value)
        assert fresh.is_empty() and fresh.rebuild_running() is None
        rebuilt_settings = settings.model_copy(update={"catalog_url": f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"})
        config = write_config(rebuilt_settings, tmp_path / "preserve.toml")
        code = cli.main(["--config", str(config), "catalog", "rebuild", "--from", "seaweed"])
        err = capsys.readouterr().err
        assert code != 0 and var in err and "Traceback" not in err

        # with it: the AIP comes back, with each object's ciphertext and the AIP's key
        monkeypatch.setenv(var, str(identity))
        started = utcnow()
        report = rebuild.rebuild(settings, fresh, "seaweed")
        assert report.imported == (aip_id,) and not report.errors, report.errors
        assert not report.not_preserve and not report.damage, report
        after = fresh.get_aip(aip_id)
        assert after is not None
        got = {o.key: o for r in after.replicas if r.target == "seaweed" for o in r.objects}
        assert set(got) == set(had)
        for k, o in got.items():
            assert (o.sha256, o.size) == (had[k].sha256, had[k].size)
            assert (o.stored_key, o.stored_size, o.stored_sha256) == (
                had[k].stored_key,
                had[k].stored_size,
                had[k].stored_sha256,
            )
            assert o.status is not ReplicaStatus.DAMAGED
        plain = {o.key for r in after.replicas if r.target == "local" for o in r.objects}
        assert plain == set(had)
        assert all(not o.encrypted for r in after.replicas if r.target == "local" for o in r.objects)
        rec = fresh.key_of(aip_id, "seaweed")
        assert rec is not None and not rec.destroyed
        assert (rec.recipient, rec.wrapped, rec.sha256) == (key.recipient, key.wrapped, key.sha256)
        assert rec.verified_at is not None and rec.verified_at >= started  # as found on the target now
        # the rebuilt catalog restores from the encrypted replica alone
        assert restore.restore(settings, fresh, aip_id, tmp_path / "restored", replica="seaweed").ok
    finally:
        fresh.close()
