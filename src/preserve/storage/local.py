"""Filesystem object store: keys are files under the target's root, written atomically (temp file,
fsync, rename) from a file or any stream, and verified by re-reading them. Side effects: creates,
renames and deletes files and directories under the root; folders are created 0700 and stored
files made read-only for the archive's user alone (0400): no other local user can list or read a
replica."""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from preserve.config import Settings, TargetSettings
from preserve.core.errors import (
    ConfigError,
    ObjectMissing,
    StorageError,
    StorageUnavailable,
    VerificationError,
)
from preserve.core.fs import PRIVATE_DIR, PRIVATE_FILE, fsync_dir, private_dir
from preserve.storage.base import (
    CHUNK_SIZE,
    TEMP_PREFIX,
    Closing,
    ObjectInfo,
    Purge,
    Source,
    UploadStats,
    check_key,
    check_prefix,
    write_chunks,
)

log = logging.getLogger(__name__)

NAME_MAX = 255  # bytes per path segment on common Linux filesystems
#: a stored object: the archive's user may read it, nobody may write it in place, nobody else may read it
STORED_FILE = 0o400


def _drop_cache(fd: int) -> None:
    """Ask the kernel to forget the file's cached pages, so the verifying re-read comes from the
    disk rather than from the memory we just wrote from (best effort; Linux honours it for clean
    pages after fsync)."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def _make_dirs(directory: Path) -> None:
    """mkdir -p with private (0700) folders, fsyncing each new directory's parent so the path
    survives a crash too."""
    missing: list[Path] = []
    d = directory
    while not d.is_dir():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR)
            os.chmod(d, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            if not d.is_dir():
                raise
        fsync_dir(d.parent)


def _hash_file(f: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class LocalStore(Closing):
    """A directory (local disk or mount) as an ObjectStore."""

    def __init__(self, settings: Settings, target: TargetSettings) -> None:
        if target.kind != "filesystem":
            raise ConfigError(f"target {target.name!r} is not a filesystem target")
        if target.object_lock_mode or target.object_lock_days:
            # asked-for protection that cannot be given is refused, never silently dropped
            raise ConfigError(
                f"target {target.name!r}: a filesystem target cannot enforce Object Lock; "
                "remove object_lock_mode/object_lock_days or use an S3 target with Object Lock"
            )
        self.name = target.name
        root = settings.target_path(target)
        prefix = target.prefix.strip("/")
        if prefix:
            check_key(prefix)
            root = root / prefix
        self.root = root

    def close(self) -> None:
        """Nothing to release: files are opened and closed per call."""

    # -- keys ----------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        check_key(key)
        for segment in key.split("/"):
            if len(segment.encode("utf-8")) > NAME_MAX:
                raise StorageError(
                    f"object key {key!r}: the name {segment!r} is longer than "
                    f"{NAME_MAX} bytes, too long for a filesystem",
                    advice="Shorten the file or folder names in the submission.",
                )
        return self.root / key

    def _check_inside(self, path: Path) -> None:
        """Refuse to follow a symlinked directory out of the root."""
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path.parent)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise StorageError(f"{path} resolves outside the target root {self.root} (a symlink?)")

    def uri(self, key: str) -> str:
        return self._path(key).absolute().as_uri()

    def check_reachable(self) -> None:
        try:
            private_dir(self.root)
        except OSError as exc:
            raise StorageUnavailable(f"target {self.name!r}: cannot create {self.root}: {exc}") from exc
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"target {self.name!r}: {self.root} is not a writable directory")

    # -- put -----------------------------------------------------------------------------------
    def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> ObjectInfo:
        """`put_source` of the file, after checking that it still has the size it was hashed
        with (VerificationError before anything is written)."""
        self._path(key)
        path = Path(path)
        try:
            actual_size = path.stat().st_size
        except OSError as exc:
            raise VerificationError(f"source {path} could not be read: {exc}") from exc
        if actual_size != size:
            raise VerificationError(
                f"source {path} is {actual_size} bytes, expected {size}: it changed since it was hashed"
            )
        return self.put_source(key, Source.of_file(path, sha256=sha256, size=size))

    def put_source(self, key: str, source: Source, *, retain: bool = True) -> ObjectInfo:
        """Copy the source's stream to a temporary file beside the destination, one chunk in
        memory at a time, hashing what is written; then re-read it from disk and compare size and
        SHA-256 (``source.sha256``, or when it has none the digest of what was written, which is
        returned) before the rename makes it visible. A stream yielding fewer or more than
        ``source.size`` bytes is a VerificationError; anything else it raises leaves unchanged.
        On any failure nothing is left under the key (an earlier object there stays untouched).
        ``retain`` is ignored: a directory has no retention."""
        dest = self._path(key)
        size = source.size
        expected = source.sha256.lower() if source.sha256 is not None else None
        try:
            _make_dirs(dest.parent)
        except OSError as exc:
            raise StorageUnavailable(f"target {self.name!r}: cannot create {dest.parent}: {exc}") from exc
        self._check_inside(dest)
        tmp = dest.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            written_hex, written = self._copy(source, tmp)
            if written != size or (expected is not None and written_hex != expected):
                gave = f"{written} bytes hashing to {written_hex}" if written <= size else f"more than {size} bytes"
                wanted = f"{size} bytes with {expected}" if expected is not None else f"{size} bytes"
                raise VerificationError(
                    f"source {source.label} gave {gave}, expected {wanted}: it is "
                    "corrupt or changed since it was hashed; nothing was stored"
                )
            sha256 = written_hex
            try:
                with open(tmp, "rb") as f:
                    reread_hex, reread = _hash_file(f)
            except OSError as exc:
                raise StorageUnavailable(f"target {self.name!r}: cannot re-read {tmp}: {exc}") from exc
            if reread != size or reread_hex != sha256:
                raise VerificationError(
                    f"{self.uri(key)}: re-read {reread} bytes hashing to "
                    f"{reread_hex}, wrote {size} bytes with {sha256}: the disk "
                    "did not keep what was written"
                )
            try:
                os.chmod(tmp, STORED_FILE)
                os.replace(tmp, dest)
                fsync_dir(dest.parent)
            except OSError as exc:
                raise StorageUnavailable(f"target {self.name!r}: cannot put {dest} in place: {exc}") from exc
        finally:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        log.info("stored %s (%d bytes) on %s, verified by re-reading", key, size, self.name)
        return ObjectInfo(
            key=key, size=size, sha256=sha256, checksum_raw=None, upload=UploadStats(parts=1, read_back=True)
        )

    def _copy(self, source: Source, tmp: Path) -> tuple[str, int]:
        """Copy the source's stream to a new tmp file; returns the hex SHA-256 and size of what
        was written. Stops once the stream has given more than ``source.size`` bytes (the size
        returned is then larger than expected, the hash of no interest)."""
        digest = hashlib.sha256()
        size = 0
        try:
            src = source.open()
        except OSError as exc:
            raise VerificationError(f"source {source.label} could not be read: {exc}") from exc
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
            except OSError as exc:
                raise StorageUnavailable(f"target {self.name!r}: cannot create {tmp}: {exc}") from exc
            with open(fd, "wb") as out:
                while size <= source.size:
                    try:
                        chunk = src.read(min(CHUNK_SIZE, source.size - size + 1))
                    except OSError as exc:
                        raise VerificationError(f"source {source.label} could not be read: {exc}") from exc
                    if not chunk:
                        break
                    digest.update(chunk)
                    size += len(chunk)
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise StorageUnavailable(f"target {self.name!r}: writing {tmp} failed: {exc}") from exc
                if size > source.size:
                    return digest.hexdigest(), size  # refused by the caller: nothing to flush
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise StorageUnavailable(f"target {self.name!r}: writing {tmp} failed: {exc}") from exc
                _drop_cache(out.fileno())
        finally:
            src.close()
        return digest.hexdigest(), size

    # -- read ----------------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo | None:
        """Size only: hashing on every head would read the whole file."""
        path = self._path(key)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise StorageUnavailable(f"target {self.name!r}: cannot stat {path}: {exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{path} exists but is not a regular file")
        return ObjectInfo(key=key, size=st.st_size, sha256=None, checksum_raw=None)

    def _open(self, key: str) -> BinaryIO:
        path = self._path(key)
        self._check_inside(path)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise StorageError(f"{path} exists but is not a regular file")
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectMissing(f"{self.uri(key)} does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"target {self.name!r}: cannot open {path}: {exc}") from exc

    def read_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The file is opened now (so ObjectMissing is raised here); it is read as iterated."""
        return self._stream(self._open(key), key, chunk_size)

    def _stream(self, f: BinaryIO, key: str, chunk_size: int) -> Iterator[bytes]:
        with f:
            while True:
                try:
                    chunk = f.read(chunk_size)
                except OSError as exc:
                    raise StorageUnavailable(f"target {self.name!r}: reading {key!r} failed: {exc}") from exc
                if not chunk:
                    return
                yield chunk

    def get_file(self, key: str, dest: Path) -> str:
        src = self._open(key)
        try:
            return write_chunks(Path(dest), self._stream(src, key, CHUNK_SIZE))
        finally:
            src.close()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Regular files under the root whose key starts with prefix, sorted like S3 (by UTF-8
        bytes). Temporary files and symlinks are not objects and are skipped."""
        check_prefix(prefix)
        start_rel = prefix.rpartition("/")[0]
        start = self.root / start_rel if start_rel else self.root
        found: list[ObjectInfo] = []
        try:
            self._walk(start, start_rel, prefix, found)
        except OSError as exc:
            raise StorageUnavailable(f"target {self.name!r}: listing {start} failed: {exc}") from exc
        found.sort(key=lambda info: info.key.encode("utf-8", "surrogateescape"))
        return iter(found)

    def list_versions(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """A directory keeps no versions: each file once, as `list` gives it."""
        return self.list(prefix)

    def _walk(self, directory: Path, rel: str, prefix: str, found: builtins.list[ObjectInfo]) -> None:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            key = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if key.startswith(prefix) or prefix.startswith(key + "/"):
                    self._walk(Path(entry.path), key, prefix, found)
            elif (
                entry.is_file(follow_symlinks=False)
                and not entry.name.startswith(TEMP_PREFIX)
                and key.startswith(prefix)
            ):
                found.append(
                    ObjectInfo(key=key, size=entry.stat(follow_symlinks=False).st_size, sha256=None, checksum_raw=None)
                )

    # -- delete --------------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Unlink the file (a missing key is a no-op), then prune directories left empty."""
        path = self._path(key)
        self._check_inside(path)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageUnavailable(f"target {self.name!r}: cannot delete {path}: {exc}") from exc
        parent = path.parent
        try:
            fsync_dir(parent)
            while parent != self.root and self.root in parent.parents:
                parent.rmdir()  # only succeeds when empty
                parent = parent.parent
        except OSError:
            pass

    def purge(self, key: str, *, bypass_governance: bool = False) -> Purge:
        """A directory has no versions and no Object Lock: `delete`, saying whether there was a file."""
        existed = os.path.lexists(self._path(key))
        self.delete(key)
        return Purge(key, deleted=("",) if existed else ())
