"""Message digests in one streaming pass: several algorithms at once, optionally copying the bytes
to a destination in the same read, so a 100 GB film is read exactly once. Reading, writing and
hashing overlap: while one chunk is hashed on worker threads (hashlib releases the GIL for large
buffers), the next is read and the current one written. Memory is bounded by two chunks per
stream, whatever the file size."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from preserve.core.model import Digests

CHUNK_SIZE = 8 << 20
BAG_ALGORITHMS: tuple[str, ...] = ("sha256", "sha512")
#: below this, hashing in the caller's thread is cheaper than handing the chunk to a worker
_ASYNC_MIN = 1 << 16


class MultiHasher:
    """Feeds each chunk to every algorithm, each on a worker thread of its own, so several
    algorithms run on several cores and hashing overlaps the caller's I/O.

    ``update`` returns once the chunk is hashed, unless the chunk is an immutable ``bytes``
    object: then it returns at once and the chunk is hashed while the caller fetches the next
    one (a stream read back from a replica overlaps its hashing this way). ``update_async``
    does the same for any buffer, for callers that promise not to touch it until the next
    ``update*`` or ``result`` call (digest_stream alternates two buffers for this)."""

    def __init__(self, algorithms: Sequence[str] = BAG_ALGORITHMS) -> None:
        self._hashes = [hashlib.new(name) for name in algorithms]
        self._names = list(algorithms)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self.size = 0

    def _wait(self) -> None:
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        if isinstance(chunk, bytes):
            self.update_async(chunk)
            return
        self._wait()
        self.size += len(chunk)
        if len(self._hashes) == 1 or len(chunk) < _ASYNC_MIN:
            for h in self._hashes:
                h.update(chunk)
            return
        self._submit(chunk)
        self._wait()

    def update_async(self, chunk: bytes | bytearray | memoryview) -> None:
        """Start hashing ``chunk`` and return; the chunk must stay unchanged until the next
        update*/result call, which first waits for this one."""
        self._wait()
        self.size += len(chunk)
        if len(chunk) < _ASYNC_MIN:
            for h in self._hashes:
                h.update(chunk)
            return
        self._submit(chunk)

    def _submit(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self._hashes), thread_name_prefix="digest")
        self._pending = [self._pool.submit(h.update, chunk) for h in self._hashes]

    def result(self) -> Digests:
        self._wait()
        self.close()
        return Digests(
            size=self.size, values={n: h.hexdigest() for n, h in zip(self._names, self._hashes, strict=True)}
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> MultiHasher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def digest_stream(
    stream: BinaryIO, algorithms: Sequence[str] = BAG_ALGORITHMS, sink: BinaryIO | None = None
) -> Digests:
    """Hash everything readable from ``stream``; write it to ``sink`` too when given. Two
    buffers alternate: chunk n is hashed in the background while it is written and chunk n+1 is
    read into the other buffer."""
    buffers = [memoryview(bytearray(CHUNK_SIZE)), memoryview(bytearray(CHUNK_SIZE))]
    turn = 0
    with MultiHasher(algorithms) as hasher:
        while True:
            view = buffers[turn]
            n = stream.readinto(view)  # type: ignore[attr-defined]
            if not n:
                break
            chunk = view[:n]
            # waits for the chunk before (the other buffer), never for one in this buffer
            hasher.update_async(chunk)
            if sink is not None:
                sink.write(chunk)
            turn ^= 1
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


def copy_with_digests(
    src: Path, dst: Path, algorithms: Sequence[str] = BAG_ALGORITHMS, *, durable: bool = True
) -> Digests:
    """Copy ``src`` to ``dst`` (created exclusively) while hashing: one read of the source. The
    copy keeps the source's modification time; the source is opened read-only. ``durable``
    fsyncs the copy before returning. A copy that is only read back by this process and is made
    again from the source after a crash (the staging bag) need not wait for the disk: skipping
    the fsync lets the kernel write it back while the ingest goes on."""
    with open(src, "rb", buffering=0) as fin, open(dst, "xb") as fout:
        digests = digest_stream(fin, algorithms, sink=fout)
        fout.flush()
        if durable:
            os.fsync(fout.fileno())
    st = src.stat()
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    return digests
