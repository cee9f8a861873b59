"""One-pass digests: right values, one read, copy identical, memory bounded by the chunk size."""

import hashlib
import os
from pathlib import Path

import pytest

from preserve.fixity import digest


def test_multi_digest_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * digest.CHUNK_SIZE + 12345)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    d = digest.digest_file(src)
    assert d.size == len(data)
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert d.sha512 == hashlib.sha512(data).hexdigest()


def test_copy_with_digests_reads_once_and_copies_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(2 * digest.CHUNK_SIZE + 7)
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(data)
    os.utime(src, (1_000_000, 1_000_000))
    reads: list[int] = []
    real_stream = digest.digest_stream

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def readinto(self, view):
            n = self.fh.readinto(view)
            reads.append(n)
            return n

    monkeypatch.setattr(digest, "digest_stream", lambda s, a, sink=None: real_stream(Counting(s), a, sink))
    d = digest.copy_with_digests(src, dst)
    assert dst.read_bytes() == data
    assert sum(reads) == len(data)  # every byte read exactly once
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert dst.stat().st_mtime == src.stat().st_mtime


def test_copy_never_overwrites(tmp_path: Path) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"x")
    dst.write_bytes(b"existing")
    with pytest.raises(FileExistsError):
        digest.copy_with_digests(src, dst)
    assert dst.read_bytes() == b"existing"


def test_digest_chunks() -> None:
    chunks = [b"abc", b"def" * 100000]
    assert digest.digest_chunks(chunks).values["sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_hashing_overlaps_io_but_never_sees_a_reused_buffer() -> None:
    """update() hashes a mutable buffer before returning (callers reuse their buffers), while an
    immutable bytes chunk may be hashed in the background: both give hashlib's values."""
    parts = [os.urandom(300_000) for _ in range(5)]
    expected = {a: hashlib.new(a, b"".join(parts)).hexdigest() for a in ("sha256", "sha512")}
    reused = digest.MultiHasher(("sha256", "sha512"))
    buf = bytearray(300_000)
    for p in parts:
        buf[:] = p
        reused.update(buf)
        buf[:] = b"\0" * len(buf)  # the caller overwrites its buffer as soon as update returns
    assert reused.result().values == expected
    background = digest.MultiHasher(("sha256", "sha512"))
    for p in parts:
        background.update(p)
    assert background.result().values == expected
    assert digest.digest_chunks(parts, ("sha256", "sha512")).values == expected
