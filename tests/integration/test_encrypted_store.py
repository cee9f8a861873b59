"""The EncryptedStore's own rules, on a real filesystem target and a SeaweedFS of the test's own:
who may make an AIP's key, what a key record says about recipients, that a changed source is
never sent under an earlier attempt's keystream, and that a bucket which locks the key object
anyway is refused."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pyrage import x25519

from preserve.config import Settings, TargetSettings
from preserve.core.errors import KeyUnavailable, StorageError, VerificationError
from preserve.dev import services
from preserve.storage import open_store
from preserve.storage.base import Source
from preserve.storage.crypt import EncryptedStore, remembering_keys
from preserve.storage.local import LocalStore
from preserve.storage.s3 import S3Store
from tests.support import raw_s3

AIP = "7d1c7a2e-5b4f-4e8a-9c1d-2e3f4a5b6c7d"
MiB = 1 << 20


def _identity(tmp_path: Path) -> tuple[Path, str]:
    ident = x25519.Identity.generate()
    path = tmp_path / "id.txt"
    path.write_text(f"{ident}\n", encoding="utf-8")
    return path, str(ident.to_public())


def _target(tmp_path: Path, recipient: str) -> TargetSettings:
    return TargetSettings(
        name="vault", kind="filesystem", path=tmp_path / "vault", encryption="age", age_recipients=[recipient]
    )


def _store(settings: Settings, target: TargetSettings, identity: Path | None) -> EncryptedStore:
    return EncryptedStore(LocalStore(settings, target), target, identity)


def _put(store: EncryptedStore, key: str, data: bytes, tmp_path: Path) -> None:
    f = tmp_path / "payload"
    f.write_bytes(data)
    store.put_file(key, f, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def test_only_an_ingest_or_a_back_fill_makes_a_key(s3_settings: Settings, tmp_path: Path) -> None:
    identity, recipient = _identity(tmp_path)
    target = _target(tmp_path, recipient)
    # outside `remembering_keys` (a journal flush, a repair) a missing key object is never replaced
    with _store(s3_settings, target, identity) as store:
        with pytest.raises(KeyUnavailable, match="only an ingest or a back-fill makes one"):
            _put(store, f"{AIP}/bagit.txt", b"BagIt-Version: 1.0\n", tmp_path)
        assert store.read_key_object(AIP) is None
    with remembering_keys():
        with _store(s3_settings, target, None) as store:  # no identity needed to write a new AIP
            _put(store, f"{AIP}/bagit.txt", b"BagIt-Version: 1.0\n", tmp_path)
            made = store.key_record(AIP)
        # a second store of the same ingest goes on with the key it made, still without identity
        with _store(s3_settings, target, None) as again:
            _put(again, f"{AIP}/data/objects/信.txt", "信\n".encode() * 100, tmp_path)
    assert made is not None and made.recipients == (recipient,)
    # later, a store that only opens the key cannot tell whom it was wrapped to: unknown (rewrap)
    with _store(s3_settings, target, identity) as store:
        assert {i.key for i in store.list(f"{AIP}/")} == {f"{AIP}/bagit.txt", f"{AIP}/data/objects/信.txt"}
        opened = store.key_record(AIP)
        assert opened is not None and opened.recipients == () and opened.recipient == made.recipient
        # objects there and no key object: refused even inside an ingest, unless a sweep said the
        # leftovers may stay (locked ciphertext of an attempt never recorded)
        store.raw.delete(store.key_object_key(AIP))
        store.forget(AIP)
    with remembering_keys(), _store(s3_settings, target, identity) as store:
        with pytest.raises(KeyUnavailable, match="but not its key object"):
            _put(store, f"{AIP}/tagmanifest-sha256.txt", b"x\n", tmp_path)
        store.accept_leftovers(AIP)
        _put(store, f"{AIP}/tagmanifest-sha256.txt", b"x\n", tmp_path)
        new = store.key_record(AIP)
    assert new is not None and new.recipient != made.recipient


def test_a_source_that_changes_is_not_sent_under_the_earlier_keystream(s3_settings: Settings, tmp_path: Path) -> None:
    identity, recipient = _identity(tmp_path)
    target = _target(tmp_path, recipient)
    film = tmp_path / "film.mov"
    data = os.urandom(3 * MiB)
    film.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    key = f"{AIP}/data/objects/film.mov"
    with remembering_keys(), _store(s3_settings, target, identity) as store:
        _put(store, f"{AIP}/bagit.txt", b"BagIt-Version: 1.0\n", tmp_path)
        source = Source.of_file(film, sha256=sha, size=len(data))
        first = store.put_source(key, source)
        assert first.stored is not None
        again = store.put_source(key, source)  # the same file, unchanged: the very same ciphertext
        assert again.stored is not None and again.stored.sha256 == first.stored.sha256
        # the same bytes with another mtime (a change and back, a copy): another keystream
        os.utime(film, ns=(1_000_000_000, 1_000_000_000))
        moved = store.put_source(key, source)
        assert moved.stored is not None and moved.stored.sha256 != first.stored.sha256
        # changed while it is read: encryption stops at the first read after the change
        stream = store._encrypting_stream(key, source)  # the stream put_source sends
        try:
            head = stream.read(MiB)
            with open(film, "r+b") as f:
                f.seek(2 * MiB)
                f.write(b"\0" * 16)
            with pytest.raises(VerificationError, match="changed while it was being encrypted"):
                stream.read(MiB)
        finally:
            stream.close()
        assert len(head) == MiB


@pytest.fixture
def own_server(make_storage_settings: Callable[..., Settings]) -> Settings:
    settings = make_storage_settings()
    services.up(settings)
    yield settings  # type: ignore[misc]
    services.down(settings, timeout=5)


def test_a_bucket_that_locks_the_key_object_anyway_is_refused(own_server: Settings, tmp_path: Path) -> None:
    """A default retention on the bucket would make the key object impossible to destroy (and a
    deaccession of locked copies impossible): the first write of an AIP there fails, and says why."""
    _, recipient = _identity(tmp_path)
    plain = own_server.target("seaweed").model_dump(mode="json")
    target = TargetSettings.model_validate(
        {**plain, "bucket": "preserve-locked", "encryption": "age", "age_recipients": [recipient]}
    )
    settings = own_server.model_copy(update={"targets": [target, *own_server.targets[1:]]})
    client, bucket, _ = raw_s3(settings, "seaweed")
    try:
        client.put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
            },
        )
    finally:
        client.close()
    with remembering_keys(), open_store(settings, target) as store:
        assert isinstance(store, EncryptedStore) and isinstance(store.raw, S3Store)
        with pytest.raises(StorageError, match="default Object Lock retention"):
            _put(store, f"{AIP}/bagit.txt", b"BagIt-Version: 1.0\n", tmp_path)


def test_a_name_too_long_for_an_opaque_key_is_a_storage_error(s3_settings: Settings, tmp_path: Path) -> None:
    """A member name whose opaque form would pass S3's 1,024-byte key limit fails that target's
    upload as a StorageError (the other targets go on), never an unexpected exception."""
    _, recipient = _identity(tmp_path)
    with remembering_keys(), _store(s3_settings, _target(tmp_path, recipient), None) as store:
        with pytest.raises(StorageError, match="cannot store an object of AIP .* on an encrypted target") as caught:
            _put(store, f"{AIP}/data/objects/" + "长" * 250 + ".txt", b"x", tmp_path)
        assert "长" not in str(caught.value)  # the name is never quoted
