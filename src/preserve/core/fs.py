"""Crash-safe, private files: the one write-temporary, fsync, rename helper, and the modes every
file and folder of the archive gets (0600 / 0700: only the archive's user can read them). Side
effects: creates, renames and removes files in the destination's directory, fsyncs that directory;
creates folders; `private_umask` changes the process umask.

A reader sees either the old file or the complete new one, never a partial file, and the new
name survives a power cut once the call returns. Temporary files are hidden (leading dot) and
created 0600, so nothing half-written is ever readable by other local users."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
#: the umask of every entry point (CLI, flows, `preserve serve`): tools it runs (ffmpeg, bagit,
#: SeaweedFS, the Prefect server) create files for the archive's user only
PRIVATE_UMASK = 0o077


def private_umask() -> int:
    """Make what this process (and every tool it starts) creates private from now on: the umask
    becomes 077, or stays stricter if it already was. Returns the previous umask."""
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    return old


def private_dir(path: Path) -> Path:
    """``mkdir -p`` where every folder it creates is 0700 whatever the umask (existing folders
    are left as they are: they may be a share or a home the archive does not own). Returns the path."""
    path = Path(path)
    missing: list[Path] = []
    d = path
    while not d.is_dir():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if not d.is_dir():
                raise
            continue  # made by someone else meanwhile: theirs
        os.chmod(d, PRIVATE_DIR)  # mkdir's mode is filtered by the umask; state it exactly
    return path


def make_private(path: Path) -> None:
    """Take group and other access away from ``path`` and, for a folder, everything under it:
    folders become 0700, files keep only their owner's bits (0644 becomes 0600; a read-only 0444
    stays read-only, 0400). Symbolic links are not followed and files with other hard links are
    left alone (tightening them would change a file outside this tree). Contents are never
    touched: this changes modes, not bytes. Files that are not ours are skipped."""
    path = Path(path)

    def tighten(p: Path, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            mode = PRIVATE_DIR
        elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            mode = stat.S_IMODE(st.st_mode) & 0o700
        else:
            return
        if stat.S_IMODE(st.st_mode) != mode:
            with contextlib.suppress(PermissionError):
                os.chmod(p, mode)

    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return
    tighten(path, top)
    if not stat.S_ISDIR(top.st_mode):
        return
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            p = Path(root) / name
            with contextlib.suppress(FileNotFoundError):
                tighten(p, os.lstat(p))


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
