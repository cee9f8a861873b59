"""Object stores against a real SeaweedFS (the s3_settings fixture) and the local filesystem."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from preserve.config import Settings, TargetSettings
from preserve.core.errors import (
    ObjectLocked,
    ObjectMissing,
    StorageError,
    StorageUnavailable,
    VerificationError,
)
from preserve.core.retry import RetryPolicy
from preserve.storage import ObjectStore, open_store
from preserve.storage.s3 import S3Store
from preserve.storage.s3.multipart import composite_sha256, part_size_for

pytestmark = pytest.mark.timeout(120)

FILM = "流浪北京 1990.mov"  # NFC


def make_file(path: Path, size: int) -> tuple[str, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), size


def with_threshold(settings: Settings, mb: int) -> Settings:
    return settings.model_copy(
        update={"replication": settings.replication.model_copy(update={"multipart_threshold_mb": mb})}
    )


@pytest.fixture(params=["s3", "filesystem"])
def store(request: pytest.FixtureRequest, s3_settings: Settings) -> Iterator[ObjectStore]:
    opened = open_store(s3_settings, s3_settings.target("seaweed" if request.param == "s3" else "local"))
    yield opened
    opened.close()


@pytest.fixture
def run() -> str:
    """A key prefix of its own for each test (the server is shared by the session)."""
    return f"t-{uuid.uuid4().hex[:12]}"


def test_round_trip_with_chinese_nfc_key(store: ObjectStore, run: str, tmp_path: Path) -> None:
    src = tmp_path / FILM
    sha, size = make_file(src, 300_000)
    key = f"{run}/{FILM}"

    info = store.put_file(key, src, sha256=sha, size=size)
    assert (info.key, info.size, info.sha256) == (key, size, sha)

    head = store.head(key)
    assert head is not None and head.size == size
    if isinstance(store, S3Store):
        # single PUT: the server vouches for the whole-object SHA-256
        assert head.sha256 == sha
        assert head.checksum_raw == base64.b64encode(bytes.fromhex(sha)).decode()
        assert store.uri(key) == f"s3://preserve-aips/aips/{key}"
    else:
        assert head.sha256 is None  # the filesystem store never hashes on head
        on_disk = os.listdir(os.fsencode(store.root / run))  # type: ignore[attr-defined]
        assert on_disk == [FILM.encode("utf-8")]  # the exact NFC UTF-8 name, no escaping
        assert store.uri(key).startswith("file:///")

    dest = tmp_path / "restored" / FILM
    assert store.get_file(key, dest) == sha
    assert dest.read_bytes() == src.read_bytes()
    assert not [p for p in dest.parent.iterdir() if p.name != FILM]  # no temporary left behind
    assert b"".join(store.read_chunks(key, chunk_size=65536)) == src.read_bytes()
    assert [(o.key, o.size) for o in store.list(run)] == [(key, size)]


def test_empty_file(store: ObjectStore, run: str, tmp_path: Path) -> None:
    src = tmp_path / "empty"
    src.write_bytes(b"")
    info = store.put_file(f"{run}/empty", src, sha256=hashlib.sha256(b"").hexdigest(), size=0)
    assert info.size == 0
    assert store.get_file(f"{run}/empty", tmp_path / "out") == hashlib.sha256(b"").hexdigest()


def test_multipart_verifies_composite_checksum(s3_settings: Settings, run: str, tmp_path: Path) -> None:
    settings = with_threshold(s3_settings, 5)
    store = open_store(settings, settings.target("seaweed"))
    assert isinstance(store, S3Store)
    src = tmp_path / "big.mkv"
    sha, size = make_file(src, 12 * 1024 * 1024)
    key = f"{run}/big.mkv"

    info = store.put_file(key, src, sha256=sha, size=size)

    data = src.read_bytes()
    part = part_size_for(size, 5 << 20)
    assert part == 5 << 20
    expected = composite_sha256([hashlib.sha256(data[i : i + part]).digest() for i in range(0, size, part)])
    assert expected.endswith("-3")
    assert info.checksum_raw == expected and info.sha256 == sha
    head = store.head(key)
    assert head is not None
    assert head.checksum_raw == expected and head.sha256 is None  # a composite is not a file digest
    assert store.get_file(key, tmp_path / "back.mkv") == sha
    assert store.pending_uploads(key) == []


@pytest.mark.parametrize("kind", ["s3-single", "s3-multipart", "filesystem"])
def test_wrong_sha256_raises_and_leaves_nothing(kind: str, s3_settings: Settings, run: str, tmp_path: Path) -> None:
    settings = with_threshold(s3_settings, 5)
    store = open_store(settings, settings.target("local" if kind == "filesystem" else "seaweed"))
    src = tmp_path / "film.mov"
    _, size = make_file(src, 6 << 20 if kind == "s3-multipart" else 100_000)
    key = f"{run}/film.mov"

    with pytest.raises(VerificationError):
        store.put_file(key, src, sha256="0" * 64, size=size)

    assert store.head(key) is None
    assert list(store.list(run)) == []
    if isinstance(store, S3Store):
        assert store.pending_uploads(key) == []  # the multipart upload was aborted
    else:
        leftovers = list((store.root / run).iterdir()) if (store.root / run).exists() else []  # type: ignore[attr-defined]
        assert leftovers == []


def test_size_mismatch_is_refused_before_upload(store: ObjectStore, run: str, tmp_path: Path) -> None:
    src = tmp_path / "f"
    sha, size = make_file(src, 1000)
    with pytest.raises(VerificationError):
        store.put_file(f"{run}/f", src, sha256=sha, size=size + 1)
    assert store.head(f"{run}/f") is None


def test_missing_key(store: ObjectStore, run: str, tmp_path: Path) -> None:
    assert store.head(f"{run}/nothing") is None
    with pytest.raises(ObjectMissing):
        store.read_chunks(f"{run}/nothing")
    with pytest.raises(ObjectMissing):
        store.get_file(f"{run}/nothing", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    store.delete(f"{run}/nothing")  # deleting what is not there is a no-op


def test_list_prefix(store: ObjectStore, run: str, tmp_path: Path) -> None:
    sizes = {"a/1": 10, "a/2": 20, "ab/3": 30, "b/4": 40}
    for name, size in sizes.items():
        sha, _ = make_file(tmp_path / name, size)
        store.put_file(f"{run}/{name}", tmp_path / name, sha256=sha, size=size)

    def keys(prefix: str) -> list[tuple[str, int]]:
        return [(o.key, o.size) for o in store.list(prefix)]

    assert keys(f"{run}/a/") == [(f"{run}/a/1", 10), (f"{run}/a/2", 20)]
    assert keys(f"{run}/a") == [(f"{run}/a/1", 10), (f"{run}/a/2", 20), (f"{run}/ab/3", 30)]
    assert len(keys(run)) == 4
    assert keys(f"{run}/zzz") == []


def test_delete(store: ObjectStore, run: str, tmp_path: Path) -> None:
    sha, size = make_file(tmp_path / "f", 5000)
    key = f"{run}/dir/f"
    store.put_file(key, tmp_path / "f", sha256=sha, size=size)
    store.put_file(key, tmp_path / "f", sha256=sha, size=size)  # a second version in S3
    store.delete(key)
    assert store.head(key) is None
    assert list(store.list(run)) == []
    if isinstance(store, S3Store):  # every version is gone, not just hidden by a delete marker
        versions = store._client.list_object_versions(Bucket=store.bucket, Prefix=f"aips/{key}")
        assert not versions.get("Versions") and not versions.get("DeleteMarkers")
    else:
        assert not (store.root / run).exists()  # type: ignore[attr-defined]  # empty dirs pruned


@pytest.mark.parametrize(
    "key", ["../escape", "/abs", "a//b", "a/./b", "a/../b", "dir/", "", "a\x00b", "e\u0301.mov", "x/.preserve-tmp.1"]
)
def test_unsafe_keys_are_refused(store: ObjectStore, key: str, tmp_path: Path) -> None:
    sha, size = make_file(tmp_path / "f", 10)
    with pytest.raises(StorageError):
        store.put_file(key, tmp_path / "f", sha256=sha, size=size)


def test_overlong_keys_are_refused(store: ObjectStore, tmp_path: Path) -> None:
    sha, size = make_file(tmp_path / "f", 10)
    # 300 bytes in one segment is too long for a filesystem; 1100 bytes too long for S3
    key = "x" * 300 if not isinstance(store, S3Store) else "/".join(["y" * 200] * 6)
    with pytest.raises(StorageError, match="bytes"):
        store.put_file(key, tmp_path / "f", sha256=sha, size=size)


def locked_target(bucket: str = "preserve-locked") -> TargetSettings:
    return TargetSettings(
        name="locked",
        kind="s3",
        embedded=True,
        bucket=bucket,
        prefix="vault",
        object_lock_mode="GOVERNANCE",
        object_lock_days=1,
    )


@pytest.mark.parametrize("threshold_mb", [64, 5])
def test_object_lock_retention(threshold_mb: int, s3_settings: Settings, run: str, tmp_path: Path) -> None:
    settings = with_threshold(s3_settings, threshold_mb)
    store = open_store(settings, locked_target())
    sha, size = make_file(tmp_path / "f", 6 << 20)
    key = f"{run}/{FILM}"

    info = store.put_file(key, tmp_path / "f", sha256=sha, size=size)

    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)
    assert info.lock_mode == "GOVERNANCE" and info.lock_until is not None and info.lock_until > soon
    head = store.head(key)
    assert head is not None and head.lock_mode == "GOVERNANCE" and head.version_id
    with pytest.raises(ObjectLocked):
        store.delete(key)
    assert store.head(key) is not None
    assert store.get_file(key, tmp_path / "back") == sha


def test_lock_requested_on_bucket_without_lock_is_an_error(s3_settings: Settings, run: str, tmp_path: Path) -> None:
    target = locked_target(bucket="preserve-aips")
    store = open_store(s3_settings, target)
    sha, size = make_file(tmp_path / "f", 100)
    with pytest.raises(StorageError):
        store.put_file(f"{run}/f", tmp_path / "f", sha256=sha, size=size)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint_fails_fast(s3_settings: Settings, run: str, tmp_path: Path) -> None:
    target = TargetSettings(
        name="gone", kind="s3", embedded=True, bucket="preserve-aips", endpoint=f"http://127.0.0.1:{_closed_port()}"
    )
    store = open_store(s3_settings, target)
    sha, size = make_file(tmp_path / "f", 100)
    t0 = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.check_reachable()
    with pytest.raises(StorageUnavailable):
        store.put_file(f"{run}/f", tmp_path / "f", sha256=sha, size=size)
    with pytest.raises(StorageUnavailable):
        store.head(f"{run}/f")
    with pytest.raises(StorageUnavailable):
        list(store.list())
    assert time.monotonic() - t0 < 15


def test_unreachable_with_short_timeouts(s3_settings: Settings) -> None:
    target = TargetSettings(
        name="gone", kind="s3", embedded=True, bucket="preserve-aips", endpoint=f"http://127.0.0.1:{_closed_port()}"
    )
    store = S3Store(s3_settings, target, connect_timeout=0.5, read_timeout=1, retry=RetryPolicy(attempts=1))
    t0 = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.check_reachable()
    assert time.monotonic() - t0 < 2


def test_bad_credentials_are_storage_unavailable(
    s3_settings: Settings, run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = TargetSettings(
        name="badcreds", kind="s3", bucket="preserve-aips", endpoint=s3_settings.services.s3_endpoint
    )
    monkeypatch.setenv("PRESERVE_BADCREDS_ACCESS_KEY_ID", "NOTAKEY")
    monkeypatch.setenv("PRESERVE_BADCREDS_SECRET_ACCESS_KEY", "not-a-secret")
    store = open_store(s3_settings, target)
    sha, size = make_file(tmp_path / "f", 100)
    with pytest.raises(StorageUnavailable):
        store.check_reachable()
    with pytest.raises(StorageUnavailable):
        store.put_file(f"{run}/f", tmp_path / "f", sha256=sha, size=size)


def test_missing_bucket_is_not_a_missing_key(s3_settings: Settings, tmp_path: Path) -> None:
    target = TargetSettings(name="nobucket", kind="s3", embedded=True, bucket="no-such-bucket")
    store = open_store(s3_settings, target)
    with pytest.raises(StorageUnavailable):
        store.head("anything")
    with pytest.raises(StorageUnavailable):
        store.check_reachable()
    # the embedded server runs with -s3.autoCreateBucket=false: no bucket appears by accident
    sha, size = make_file(tmp_path / "f", 100)
    with pytest.raises(StorageUnavailable):
        store.put_file("anything", tmp_path / "f", sha256=sha, size=size)
    with pytest.raises(StorageUnavailable):
        store.check_reachable()
