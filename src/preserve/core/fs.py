"""Crash-safe file writes: the one write-temporary, fsync, rename helper. Side effects: creates,
renames and removes files in the destination's directory, and fsyncs that directory.

A reader sees either the old file or the complete new one, never a partial file, and the new
name survives a power cut once the call returns. Temporary files are hidden (leading dot) and
created 0600, so nothing half-written is ever readable by other local users."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

PRIVATE_FILE = 0o600


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (a rename or a new file) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(path: Path, *, mode: int = PRIVATE_FILE, suffix: str = ".partial") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception the
    temporary file (written by the caller or a tool it ran) is fsynced and renamed over ``path``.
    On an exception it is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str, *, mode: int = PRIVATE_FILE) -> None:
    """Write ``data`` (str is written as UTF-8) to ``path`` atomically and durably."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_target(path, mode=mode, suffix=".tmp") as tmp, open(tmp, "wb") as fh:
        fh.write(raw)
