"""Verification of S3 copies: the source is what was hashed, the stored object has our size and
checksum (and the retention asked for), and a read-back hashes to our SHA-256. Side effects: none
beyond reading the source (file or stream) it is handed; every check raises VerificationError or
FeatureNotHonoured, and the requests themselves are made by the store.

A server that silently drops a requested checksum or retention is refused (FeatureNotHonoured),
never counted as a verified copy."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from preserve.core.errors import FeatureNotHonoured, StorageError, VerificationError
from preserve.storage.base import ObjectInfo

_HEX64 = re.compile(r"[0-9a-f]{64}")


def checked_sha256(sha256: str) -> str:
    """The expected SHA-256 in lower-case hex; StorageError if it is not 64 hex digits."""
    sha256 = sha256.lower()
    if not _HEX64.fullmatch(sha256):
        raise StorageError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return sha256


def check_source_size(path: Path, size: int) -> None:
    """The source still has the size it had when it was hashed."""
    try:
        actual_size = path.stat().st_size
    except OSError as exc:
        raise VerificationError(f"source {path} could not be read: {exc}") from exc
    if actual_size != size:
        raise VerificationError(
            f"source {path} is {actual_size} bytes, expected {size}: it changed since it was hashed"
        )


def read_exactly(f: BinaryIO, n: int, label: str) -> bytes:
    """Read n bytes of the source stream (``label`` names it in messages); a short read means
    the source shrank under us (or, a stream, yields fewer bytes than its size). Only OSError
    becomes a VerificationError: anything else the stream raises (an encrypting reader's own
    VerificationError, say) leaves unchanged."""
    pieces: list[bytes] = []
    got = 0
    while got < n:  # a pipe, or a reader making its bytes on the fly, may return short reads
        try:
            chunk = f.read(n - got)
        except OSError as exc:
            raise VerificationError(f"source {label} could not be read: {exc}") from exc
        if not chunk:
            break
        pieces.append(chunk)
        got += len(chunk)
    if got != n:
        raise VerificationError(
            f"source {label} is shorter than the {n} bytes expected: it changed while being uploaded"
        )
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def assert_at_eof(f: BinaryIO, label: str) -> None:
    """Nothing follows the bytes we sent: a longer source changed while being uploaded."""
    try:
        extra = f.read(1)
    except OSError as exc:
        raise VerificationError(f"source {label} could not be read: {exc}") from exc
    if extra:
        raise VerificationError(f"source {label} is longer than expected: it changed while being uploaded")


def b64_to_hex(value: str) -> str | None:
    """Hex of a full-object base64 SHA-256 checksum; None for composite ("...-N") or malformed."""
    if "-" in value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def same_checksum(reported: str | None, sent: str) -> bool:
    """The server's checksum equals ours. A composite may be reported without its "-N" suffix
    (moto does); the digest part must match either way, and a suffix must give the part count."""
    if not reported:
        return False
    digest, _, parts = reported.partition("-")
    want_digest, _, want_parts = sent.partition("-")
    return digest == want_digest and (not parts or parts == want_parts)


def object_info(key: str, head: Mapping[str, Any]) -> ObjectInfo:
    """An ObjectInfo from a HEAD (or GET) response. The SHA-256 is only vouched for when the
    server reports a full-object checksum; a composite is not a file digest."""
    raw: str | None = head.get("ChecksumSHA256")
    composite = head.get("ChecksumType") == "COMPOSITE"
    return ObjectInfo(
        key=key,
        size=int(head["ContentLength"]),
        sha256=b64_to_hex(raw) if raw and not composite else None,
        checksum_raw=raw,
        version_id=head.get("VersionId"),
        lock_mode=head.get("ObjectLockMode"),
        lock_until=head.get("ObjectLockRetainUntilDate"),
        storage_class=head.get("StorageClass", "STANDARD"),  # S3 omits it for STANDARD
    )


def check_stored(where: str, info: ObjectInfo, size: int, checksum_sent: str) -> None:
    """The version written (``info``, from a HEAD with checksums) has the size and the checksum
    we sent. ``where`` is the object's URI, for the messages."""
    if info.size != size:
        raise VerificationError(
            f"{where}: stored size {info.size} != {size} sent; the object is left in place but is not verified"
        )
    if not info.checksum_raw:
        raise FeatureNotHonoured(
            f"{where}: the server returned no SHA-256 checksum for the object we "
            "sent with one, so it did not keep (or check) it; the copy is NOT counted "
            "as verified",
            advice="The server silently ignores S3 checksums. Use a "
            "server that supports them (SeaweedFS, MinIO, AWS) for this target.",
        )
    if not same_checksum(info.checksum_raw, checksum_sent):
        raise VerificationError(
            f"{where}: stored checksum {info.checksum_raw} != "
            f"{checksum_sent} sent; the object is left in place but is "
            "not verified"
        )


def check_retention(where: str, info: ObjectInfo, mode: str, until: dt.datetime) -> None:
    """The server shows the Object Lock ``mode`` we asked for, until ``until`` or later (servers
    keep retention at second precision)."""
    if info.lock_mode != mode or info.lock_until is None or info.lock_until < until - dt.timedelta(seconds=1):
        raise FeatureNotHonoured(
            f"{where}: asked for {mode} retention until "
            f"{until.isoformat()}, the server shows {info.lock_mode or 'no retention'}"
            f"{f' until {info.lock_until.isoformat()}' if info.lock_until else ''}; the copy is NOT "
            "counted as verified",
            advice="The server silently ignored Object Lock. Use a bucket created "
            "with Object Lock on a server that enforces it, or remove object_lock_* from this target.",
        )


def hash_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """The hex SHA-256 and length of a stream of bytes (a read-back)."""
    digest, n = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        n += len(chunk)
    return digest.hexdigest(), n


def check_read_back(where: str, got: str, n: int, sha256: str, size: int) -> None:
    """The object read back (``n`` bytes hashing to ``got``) is the file we sent."""
    if n != size or got != sha256:
        raise VerificationError(
            f"{where}: read back {n} bytes hashing to {got}, sent {size} "
            f"bytes with {sha256}; the object is left in place but is not verified"
        )
