"""The one protocol every object store implements (S3, local filesystem), its ObjectInfo and
UploadStats values, the key rules they share, and the two reads every caller needs (a small
object whole, the SHA-256 of any object). Side effects: none of its own (the reads go through the
store given)."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, Self, runtime_checkable

from preserve.core.errors import StorageError
from preserve.core.fs import PRIVATE_FILE, private_dir
from preserve.core.fs import fsync_dir as fsync_dir  # re-exported: it used to live here

#: S3's limit on a whole key (prefix included), in UTF-8 bytes
MAX_KEY_BYTES = 1024
#: default read size for streaming reads and hashing
CHUNK_SIZE = 8 << 20
#: name prefix of the temporary files stores write before renaming; keys may not use it
TEMP_PREFIX = ".preserve-tmp."


@dataclass(frozen=True)
class UploadStats:
    """How one put_file went: how many parts it took, how many of them an interrupted earlier
    upload had already sent (a resume), how many requests had to be retried, and whether the
    stored object was also read back and re-hashed."""

    parts: int = 1
    parts_reused: int = 0
    retries: int = 0
    read_back: bool = False


@dataclass(frozen=True)
class Source:
    """Bytes to store: ``size`` bytes that ``open()`` yields afresh for every attempt (a file, or
    the ciphertext an encrypted store makes from one while it is read). ``sha256`` is the digest
    they must have (a mismatch fails the put, nothing is kept); None when it cannot be known
    before they are read (ciphertext made on the fly): the store then hashes what it sends and
    returns that digest, verified against the server as any other. ``label`` names the source in
    errors (a path on the archive's own machine; never sent to a store)."""

    label: str
    size: int
    open: Callable[[], BinaryIO]
    sha256: str | None

    @classmethod
    def of_file(cls, path: Path, *, sha256: str, size: int) -> Source:
        path = Path(path)
        return cls(label=str(path), size=size, open=lambda: open(path, "rb"), sha256=sha256)


@dataclass(frozen=True)
class StoredForm:
    """What an encrypted store actually holds for one object: the opaque key, and the size and
    SHA-256 of the ciphertext (the digest an audit without any key re-reads against)."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ObjectInfo:
    """What a store can tell about one stored object."""

    key: str  # relative to the target's prefix
    size: int
    #: hex SHA-256 of the WHOLE object when the store can vouch for it (S3 single-part
    #: ChecksumSHA256; after put_file, the digest it verified); None when it cannot
    sha256: str | None
    #: the checksum as the server reported it, verbatim (e.g. "b64...=-3" for a multipart upload)
    checksum_raw: str | None
    version_id: str | None = None
    lock_mode: str | None = None
    lock_until: datetime | None = None
    storage_class: str | None = None
    #: set by put_file only
    upload: UploadStats | None = None
    #: set by list_versions only: this entry is a delete marker (it hides the key, holds no bytes)
    delete_marker: bool = False
    #: set by an encrypted store only (``key``, ``size`` and ``sha256`` above are then the
    #: plaintext's): the object as the target holds it
    stored: StoredForm | None = None


@dataclass(frozen=True)
class Retained:
    """A version a purge had to leave: under Object Lock retention (``mode`` GOVERNANCE or
    COMPLIANCE) until ``until``, or under a legal hold (``mode`` "LEGAL HOLD", ``until`` None)."""

    version_id: str
    mode: str
    until: datetime | None


@dataclass(frozen=True)
class Purge:
    """What `ObjectStore.purge` did to one key: the versions (and delete markers) it deleted, how
    many of them only with a governance bypass, and the versions retention kept."""

    key: str
    deleted: tuple[str, ...] = ()
    retained: tuple[Retained, ...] = ()
    bypassed: int = 0

    @property
    def retained_until(self) -> datetime | None:
        """When the last retained version may be deleted; None when none is retained or a legal
        hold (no date) keeps one."""
        if not self.retained or any(r.until is None for r in self.retained):
            return None
        return max(r.until for r in self.retained if r.until is not None)


@runtime_checkable
class ObjectStore(Protocol):
    """A place that keeps bytes under keys. Implementations raise only preserve.core.errors types."""

    name: str

    def uri(self, key: str) -> str:
        """``s3://bucket/prefix/key`` or ``file:///abs/path``; for logs and PREMIS records."""
        ...

    def check_reachable(self) -> None:
        """Raise StorageUnavailable unless the store answers and accepts our credentials."""
        ...

    def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> ObjectInfo:
        """Store the file under key and verify it against ``sha256``/``size`` (VerificationError,
        FeatureNotHonoured); returns the verified ObjectInfo. Same as
        ``put_source(key, Source.of_file(path, sha256=sha256, size=size))``."""
        ...

    def put_source(self, key: str, source: Source, *, retain: bool = True) -> ObjectInfo:
        """Store ``source`` under key, streamed (one part in memory at a time), and verify it:
        against ``source.sha256`` when given, else against the digest of what was sent (returned
        as ``sha256``). ``retain=False`` writes the object without the target's Object Lock
        retention (an encrypted AIP's key object and name index: destroying the key must stay
        possible while the ciphertext is locked)."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's info, None when it does not exist. Never reads the body."""
        ...

    def read_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream the object's bytes; ObjectMissing if it does not exist."""
        ...

    def get_file(self, key: str, dest: Path) -> str:
        """Download to dest (a temporary name, then rename); the hex SHA-256 of what was written."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with prefix (plain string prefix, as S3 does)."""
        ...

    def list_versions(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every stored version (and delete marker) of every key starting with prefix, each with
        its ``version_id``: what a versioned bucket still holds after a plain delete. A store without
        versions lists each object once. Nothing listed means nothing under the prefix is fetchable."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object's bytes, every version of them (and any delete marker); ObjectLocked
        when retention refuses. Missing key: no-op."""
        ...

    def purge(self, key: str, *, bypass_governance: bool = False) -> Purge:
        """Delete every version of the key that may be deleted now (a deaccession): versions under
        COMPLIANCE retention or a legal hold, and GOVERNANCE ones unless ``bypass_governance``,
        are left and listed in ``retained`` (their delete markers too, so none becomes current);
        the rest, and then the delete markers, are deleted. Missing key: nothing deleted.
        StorageUnavailable when the credentials may not delete."""
        ...

    def close(self) -> None:
        """Release network connections. Idle keep-alive connections left open after a GET make
        SeaweedFS take ~30 s to shut down, so close stores you are done with."""
        ...

    def __enter__(self) -> ObjectStore:
        """``with open_store(settings, target) as store:`` closes the store on the way out."""
        ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Closing:
    """The context-manager half of ObjectStore, shared by the implementations."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_key(key: str) -> str:
    """Refuse keys that would mean different things on different stores, so S3 and filesystem
    targets stay interchangeable: relative POSIX paths in NFC, with no empty, '.' or '..'
    segments and no control characters. Returns the key unchanged (never rewrites it)."""
    if not isinstance(key, str) or not key:
        raise StorageError(f"object key must be a non-empty string, got {key!r}")
    if unicodedata.normalize("NFC", key) != key:
        raise StorageError(f"object key {key!r} is not in Unicode NFC; normalise names before storing")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise StorageError(f"object key {key!r} contains control characters")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StorageError(f"object key {key!r} is not valid UTF-8") from exc
    if key.startswith("/") or key.endswith("/"):
        raise StorageError(f"object key {key!r} must be relative and name a file (no leading or trailing '/')")
    segments = key.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise StorageError(f"object key {key!r} has an empty, '.' or '..' path segment")
    if segments[-1].startswith(TEMP_PREFIX):
        raise StorageError(f"object key {key!r} uses the reserved name prefix {TEMP_PREFIX!r}")
    return key


def object_key(aip_id: str, member: str) -> str:
    """The object key of one bag member (``data/objects/...``, ``bagit.txt``) under its AIP.
    Names are kept as they are (UTF-8, NFC, any script) except that ``%`` and control characters
    (a newline in a film's name, say) are percent-encoded: object keys cannot safely carry them,
    and the encoding is reversible (`member_path`), so such a file is stored, not refused."""
    encoded = "".join(f"%{ord(c):02X}" if c == "%" or ord(c) < 0x20 or ord(c) == 0x7F else c for c in member)
    return f"{aip_id}/{encoded}"


def member_path(aip_id: str, key: str) -> str:
    """The bag member a key of `object_key` names (the inverse of its encoding)."""
    rel = key.removeprefix(f"{aip_id}/")
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), rel)


def check_prefix(prefix: str) -> str:
    """A listing prefix: '' or a string that could start a valid key."""
    if prefix:
        if prefix.startswith("/") or unicodedata.normalize("NFC", prefix) != prefix:
            raise StorageError(f"listing prefix {prefix!r} must be relative and in NFC")
        if any(seg in (".", "..") for seg in prefix.split("/")[:-1]):
            raise StorageError(f"listing prefix {prefix!r} has a '.' or '..' segment")
    return prefix


#: the default bound of `read_small`: far above any tag file, inventory or event record preserve writes
SMALL_OBJECT_LIMIT = 256 << 20


def read_small(store: ObjectStore, key: str, limit: int = SMALL_OBJECT_LIMIT) -> bytes:
    """A small object (a tag file, a version inventory, an event record) read whole; StorageError
    once it passes ``limit`` bytes, so a huge object put where a small one belongs is never read
    into memory."""
    out = bytearray()
    for chunk in store.read_chunks(key):
        out += chunk
        if len(out) > limit:
            raise StorageError(f"{key} is larger than {limit} bytes: not a tag file, inventory or event record")
    return bytes(out)


def write_chunks(dest: Path, chunks: Iterable[bytes]) -> str:
    """Write a downloaded object to ``dest``: under a temporary name beside it (0600, fsynced),
    then renamed into place; the hex SHA-256 of what was written. StorageError when the disk
    refuses; nothing is left under the temporary name."""
    dest = Path(dest)
    tmp = dest.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    try:
        try:
            private_dir(dest.parent)
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        except OSError as exc:
            raise StorageError(f"cannot write {dest}: {exc}") from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return digest.hexdigest()


def sha256_of(store: ObjectStore, key: str) -> str:
    """The hex SHA-256 of a stored object, streamed (constant memory)."""
    h = hashlib.sha256()
    for chunk in store.read_chunks(key):
        h.update(chunk)
    return h.hexdigest()
