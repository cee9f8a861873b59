"""Message digests in one streaming pass: several algorithms at once, optionally copying the bytes
to a destination in the same read, so a 100 GB film is read exactly once. Memory is bounded by
the chunk size, whatever the file size."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence

from preserve.model import Digests

CHUNK_SIZE = 8 << 20
BAG_ALGORITHMS: tuple[str, ...] = ("sha256", "sha512")


class MultiHasher:
    """Feeds each chunk to every algorithm. hashlib releases the GIL on large buffers, so with two
    algorithms the updates run on two cores at once."""

    def __init__(self, algorithms: Sequence[str] = BAG_ALGORITHMS) -> None:
        self._hashes = {name: hashlib.new(name) for name in algorithms}
        self._pool = ThreadPoolExecutor(len(algorithms)) if len(algorithms) > 1 else None
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self.size += len(chunk)
        if self._pool is None or len(chunk) < (1 << 16):
            for h in self._hashes.values():
                h.update(chunk)
            return
        list(self._pool.map(lambda h: h.update(chunk), self._hashes.values()))

    def result(self) -> Digests:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        return Digests(size=self.size, values={n: h.hexdigest() for n, h in self._hashes.items()})

    def __enter__(self) -> "MultiHasher":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def digest_stream(stream: BinaryIO, algorithms: Sequence[str] = BAG_ALGORITHMS,
                  sink: BinaryIO | None = None) -> Digests:
    """Hash everything readable from ``stream``; write it to ``sink`` too when given."""
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    with MultiHasher(algorithms) as hasher:
        while True:
            n = stream.readinto(view)  # type: ignore[attr-defined]
            if not n:
                break
            chunk = view[:n]
            if sink is not None:
                sink.write(chunk)
            hasher.update(chunk)
        return hasher.result()


def digest_file(path: Path, algorithms: Sequence[str] = BAG_ALGORITHMS) -> Digests:
    with open(path, "rb", buffering=0) as fh:
        return digest_stream(fh, algorithms)


def digest_chunks(chunks: Iterable[bytes], algorithms: Sequence[str] = ("sha256",)) -> Digests:
    """Hash an iterator of chunks, e.g. an object streamed back from a replica."""
    with MultiHasher(algorithms) as hasher:
        for chunk in chunks:
            hasher.update(chunk)
        return hasher.result()


def copy_with_digests(src: Path, dst: Path, algorithms: Sequence[str] = BAG_ALGORITHMS) -> Digests:
    """Copy ``src`` to ``dst`` (created exclusively, fsynced) while hashing: one read of the source.
    The copy keeps the source's modification time; the source is opened read-only."""
    with open(src, "rb", buffering=0) as fin, open(dst, "xb") as fout:
        digests = digest_stream(fin, algorithms, sink=fout)
        fout.flush()
        os.fsync(fout.fileno())
    st = src.stat()
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    return digests
