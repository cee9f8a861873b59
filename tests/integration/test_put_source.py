"""`ObjectStore.put_source` against a real SeaweedFS (the s3_settings fixture) and a filesystem
target: streams without a known digest (hashed as they are sent, verified by the server and by a
read-back), a stream that fails mid-way, a resumed upload of one (after a real SIGKILL), objects
written without Object Lock retention on a locked bucket, and streams of the wrong length."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import random
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from preserve.config import Settings, TargetSettings
from preserve.core.errors import ObjectLocked, VerificationError
from preserve.storage import ObjectStore, open_store
from preserve.storage.base import Source
from preserve.storage.local import LocalStore
from preserve.storage.s3 import S3Store
from preserve.storage.s3.multipart import composite_sha256
from tests.support import raw_s3

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def tuned(settings: Settings, **replication_values: Any) -> Settings:
    return settings.model_copy(update={"replication": settings.replication.model_copy(update=replication_values)})


def payload(size: int, seed: int) -> bytes:
    """The same bytes for the same seed, in this process and in a child."""
    return random.Random(seed).randbytes(size)


class Opened:
    """A Source.open that counts the streams it gives and remembers them (to check they are closed)."""

    def __init__(self, make: Callable[[], BinaryIO]) -> None:
        self.make = make
        self.streams: list[BinaryIO] = []

    def __call__(self) -> BinaryIO:
        stream = self.make()
        self.streams.append(stream)
        return stream

    @property
    def all_closed(self) -> bool:
        return bool(self.streams) and all(s.closed for s in self.streams)


class Failing(io.BytesIO):
    """A stream whose read() raises ``error`` once ``after`` bytes have been read (an encrypting
    reader finding that the plaintext changed under it, say)."""

    def __init__(self, data: bytes, after: int, error: BaseException) -> None:
        super().__init__(data)
        self.after = after
        self.error = error

    def read(self, n: int | None = -1) -> bytes:
        left = self.after - self.tell()
        if left <= 0:
            raise self.error
        return super().read(left if n is None or n < 0 else min(n, left))  # a short read, then the error


def stream_source(data: bytes, *, sha256: str | None = None, size: int | None = None) -> tuple[Source, Opened]:
    opened = Opened(lambda: io.BytesIO(data))
    source = Source(label="test stream", size=len(data) if size is None else size, open=opened, sha256=sha256)
    return source, opened


@pytest.fixture
def run() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(s3_settings: Settings) -> Settings:
    """The session's server with a 5 MiB multipart threshold (a 12 MiB object takes 3 parts)."""
    return tuned(s3_settings, multipart_threshold_mb=5)


@pytest.fixture(params=["s3", "filesystem"])
def store(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[ObjectStore]:
    target = (
        settings.target("seaweed")
        if request.param == "s3"
        else TargetSettings(name="disk", kind="filesystem", path=tmp_path / "disk")
    )
    with open_store(settings, target) as opened:
        yield opened


def assert_nothing_left(store: ObjectStore, key: str, run: str) -> None:
    assert store.head(key) is None
    assert list(store.list_versions(run)) == []
    if isinstance(store, S3Store):
        assert store.pending_uploads(key) == []
    else:
        assert isinstance(store, LocalStore)
        folder = store.root / run
        assert not folder.exists() or list(folder.iterdir()) == []  # no temporary file either


# -- no digest known beforehand: hashed as sent, verified all the same ------------------------------
def test_single_part_without_digest_returns_the_digest_the_server_checked(
    settings: Settings, run: str, tmp_path: Path
) -> None:
    data = payload(300_000, seed=1)
    digest = hashlib.sha256(data).digest()
    target = settings.target("seaweed").model_copy(update={"read_back": True})
    source, opened = stream_source(data)
    with open_store(settings, target) as store:
        info = store.put_source(f"{run}/key-object", source)
        assert info.sha256 == digest.hex() and info.size == len(data)
        assert info.upload is not None and info.upload.parts == 1 and info.upload.read_back
        assert opened.all_closed and len(opened.streams) == 1
        assert store.get_file(f"{run}/key-object", tmp_path / "back") == digest.hex()
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        head = client.head_object(Bucket=bucket, Key=f"{prefix}{run}/key-object", ChecksumMode="ENABLED")
    finally:
        client.close()
    assert head["ChecksumSHA256"] == base64.b64encode(digest).decode("ascii")


def test_multipart_without_digest_returns_the_whole_digest(settings: Settings, run: str, tmp_path: Path) -> None:
    data = payload(12 * MiB, seed=2)
    target = settings.target("seaweed").model_copy(update={"read_back": True})
    source, opened = stream_source(data)
    with open_store(settings, target) as store:
        info = store.put_source(f"{run}/ciphertext", source)
        assert info.upload is not None and (info.upload.parts, info.upload.parts_reused) == (3, 0)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        parts = [hashlib.sha256(data[i : i + 5 * MiB]).digest() for i in range(0, len(data), 5 * MiB)]
        assert info.checksum_raw == composite_sha256(parts)
        assert opened.all_closed
        assert store.get_file(f"{run}/ciphertext", tmp_path / "back") == info.sha256


def test_filesystem_without_digest(run: str, settings: Settings, tmp_path: Path) -> None:
    data = payload(100_000, seed=3)
    source, opened = stream_source(data)
    with open_store(settings, TargetSettings(name="disk", kind="filesystem", path=tmp_path / "disk")) as store:
        info = store.put_source(f"{run}/key-object", source, retain=False)
        assert info.sha256 == hashlib.sha256(data).hexdigest() and info.size == len(data)
        assert opened.all_closed
        assert store.get_file(f"{run}/key-object", tmp_path / "back") == info.sha256


@pytest.mark.parametrize("size", [100_000, 12 * MiB], ids=["single", "multipart"])
def test_stream_with_a_digest_that_does_not_match_is_refused(
    store: ObjectStore, run: str, size: int, tmp_path: Path
) -> None:
    data = payload(size, seed=4)
    source, opened = stream_source(data, sha256=hashlib.sha256(data[:-1] + b"x").hexdigest())
    with pytest.raises(VerificationError, match="test stream hashes to|test stream gave"):
        store.put_source(f"{run}/f", source)
    assert opened.all_closed
    assert_nothing_left(store, f"{run}/f", run)
    good, _ = stream_source(data, sha256=hashlib.sha256(data).hexdigest())
    assert store.put_source(f"{run}/f", good).sha256 == hashlib.sha256(data).hexdigest()


# -- a stream that fails mid-way ------------------------------------------------------------------
@pytest.mark.parametrize("size", [1 * MiB, 12 * MiB], ids=["single", "multipart"])
def test_stream_raising_mid_way_leaves_nothing(store: ObjectStore, run: str, size: int) -> None:
    """The stream's own exception comes out unchanged; a multipart upload with a part already on
    the server (the failure is in part 2) is aborted."""
    error = VerificationError("plaintext changed while it was being encrypted")
    data = payload(size, seed=5)
    opened = Opened(lambda: Failing(data, after=size // 2 + 1, error=error))
    source = Source(label="test stream", size=size, open=opened, sha256=None)
    with pytest.raises(VerificationError) as caught:
        store.put_source(f"{run}/f", source)
    assert caught.value is error
    assert opened.all_closed
    assert_nothing_left(store, f"{run}/f", run)


# -- resumed after a real crash ---------------------------------------------------------------------
CHILD = """
import io, os, random, signal, sys
sys.path.insert(0, {src!r})
from pathlib import Path
from preserve.config import Settings
from preserve.storage import open_store
from preserve.storage.base import Source

settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
size, kill_at = int(sys.argv[3]), int(sys.argv[4])
data = random.Random(int(sys.argv[5])).randbytes(size)

class Dying(io.BytesIO):
    def read(self, n=-1):
        if self.tell() >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # uncatchable: nothing is aborted or cleaned up
        return super().read(n)

with open_store(settings, settings.target("seaweed")) as store:
    store.put_source(sys.argv[2], Source("stream", size, lambda: Dying(data), None))
sys.exit(3)  # not reached
"""


def test_upload_without_digest_killed_then_resumed_reuses_parts(settings: Settings, run: str, tmp_path: Path) -> None:
    """A child process SIGKILLs itself while reading part 3 (parts 1 and 2 are on the server);
    a put_source of a stream of the same bytes, still without a digest, keeps those two parts."""
    size, seed, key = 12 * MiB, 6, f"{run}/ciphertext"
    cfg = tmp_path / "settings.json"
    cfg.write_text(settings.model_dump_json())
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(src=str(ROOT / "src")), str(cfg), key, str(size), str(10 * MiB), str(seed)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    data = payload(size, seed)
    with open_store(settings, settings.target("seaweed")) as store:
        assert isinstance(store, S3Store)
        [pending] = store.pending_uploads(key)
        assert [p.number for p in store.existing_parts(key, pending)] == [1, 2]
        assert store.head(key) is None

        source, opened = stream_source(data)
        info = store.put_source(key, source)

        assert info.upload is not None and (info.upload.parts, info.upload.parts_reused) == (3, 2)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert opened.all_closed
        assert store.pending_uploads(key) == []
        assert store.get_file(key, tmp_path / "back") == info.sha256


def test_resume_with_other_bytes_sends_every_part_again(settings: Settings, run: str, tmp_path: Path) -> None:
    """Parts on the server that do not hold the new stream's bytes (a fresh ciphertext of the same
    size) are not kept: the object stored is the new stream's."""
    size, key = 12 * MiB, f"{run}/ciphertext"
    old = payload(size, seed=7)
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        upload = client.create_multipart_upload(Bucket=bucket, Key=prefix + key, ChecksumAlgorithm="SHA256")
        for n in (1, 2):
            body = old[(n - 1) * 5 * MiB : n * 5 * MiB]
            client.upload_part(
                Bucket=bucket,
                Key=prefix + key,
                UploadId=upload["UploadId"],
                PartNumber=n,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
            )
    finally:
        client.close()
    new = payload(size, seed=8)
    with open_store(settings, settings.target("seaweed")) as store:
        assert isinstance(store, S3Store)
        info = store.put_source(key, stream_source(new)[0])
        assert info.upload is not None and (info.upload.parts, info.upload.parts_reused) == (3, 0)
        assert info.sha256 == hashlib.sha256(new).hexdigest()
        assert store.pending_uploads(key) == []
        assert store.get_file(key, tmp_path / "back") == info.sha256


# -- retain=False on an Object Lock bucket ------------------------------------------------------------
LOCKED = TargetSettings(
    name="locked",
    kind="s3",
    embedded=True,
    bucket="preserve-locked",
    prefix="vault",
    object_lock_mode="GOVERNANCE",
    object_lock_days=1,
)


@pytest.mark.parametrize("size", [100_000, 12 * MiB], ids=["single", "multipart"])
def test_retain_false_leaves_a_deletable_object_on_a_locked_bucket(
    settings: Settings, run: str, size: int, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"targets": [*settings.targets, LOCKED]})
    data = payload(size, seed=9)
    client, bucket, prefix = raw_s3(settings, "locked")
    with contextlib.closing(client), open_store(settings, settings.target("locked")) as store:
        info = store.put_source(f"{run}/keys", stream_source(data)[0], retain=False)
        assert info.lock_mode is None and info.lock_until is None
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        head = client.head_object(Bucket=bucket, Key=f"{prefix}{run}/keys", VersionId=info.version_id)
        assert "ObjectLockMode" not in head and "ObjectLockRetainUntilDate" not in head
        store.delete(f"{run}/keys")  # no retention: it can go
        assert store.head(f"{run}/keys") is None and list(store.list_versions(f"{run}/keys")) == []

        # the same bytes put the ordinary way are locked, and refused deletion
        (tmp_path / "f").write_bytes(data)
        locked = store.put_file(f"{run}/film", tmp_path / "f", sha256=info.sha256, size=size)
        assert locked.lock_mode == "GOVERNANCE" and locked.lock_until is not None
        head = client.head_object(Bucket=bucket, Key=f"{prefix}{run}/film", VersionId=locked.version_id)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        with pytest.raises(ObjectLocked):
            store.delete(f"{run}/film")
        assert store.head(f"{run}/film") is not None


# -- the stream is not the size it claims ---------------------------------------------------------------
@pytest.mark.parametrize("size", [100_000, 12 * MiB], ids=["single", "multipart"])
@pytest.mark.parametrize("delta", [-1, 1], ids=["shorter", "longer"])
@pytest.mark.parametrize("with_digest", [False, True], ids=["no-digest", "digest"])
def test_stream_of_the_wrong_length_is_refused(
    store: ObjectStore, run: str, size: int, delta: int, with_digest: bool
) -> None:
    data = payload(size + delta, seed=10)
    sha = hashlib.sha256(data).hexdigest() if with_digest else None
    source, opened = stream_source(data, sha256=sha, size=size)
    with pytest.raises(VerificationError, match="shorter|longer|gave"):
        store.put_source(f"{run}/f", source)
    assert opened.all_closed
    assert_nothing_left(store, f"{run}/f", run)
