"""Multipart uploads planned as pure values: part sizes within S3's limits, which parts an
interrupted upload of the same key already holds and whether it can be adopted, and the composite
checksum S3 reports for the whole. Side effects: none (no requests, no files).

S3 limits every part but the last to at least 5 MiB, no part to more than 5 GiB, and an upload
to 10,000 parts; a resume must reproduce the interrupted upload's part boundaries exactly, or its
parts cannot be kept."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from preserve.core.errors import StorageError

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB  # S3: every part but the last must be at least this big
MAX_PART_SIZE = 5 << 30  # S3: no part may be bigger
MAX_PARTS = 10_000  # S3: at most this many parts, so a 5 TiB object needs parts of ~525 MiB

_MD5_ETAG = re.compile(r'"?([0-9a-f]{32})"?')


@dataclass(frozen=True)
class UploadedPart:
    """One part of a multipart upload, as needed to complete (or later resume) it."""

    number: int
    size: int
    etag: str
    checksum_sha256: str | None  # base64; SeaweedFS 4.48 does not report it in list_parts


@dataclass(frozen=True)
class PendingUpload:
    """An unfinished multipart upload of a key found on the server, with the parts it holds."""

    upload_id: str
    initiated: dt.datetime
    parts: tuple[UploadedPart, ...]


@dataclass(frozen=True)
class Adoption:
    """What to do with the interrupted uploads of one key: resume ``chosen`` (None: start a new
    upload) in parts of ``part_size``, and abort every other one, so none is left orphaned."""

    chosen: PendingUpload | None
    part_size: int
    misfits: tuple[PendingUpload, ...] = ()  # their parts cannot belong to this file
    outnumbered: tuple[PendingUpload, ...] = ()  # they fit, but the chosen one has more parts


@dataclass(frozen=True)
class UploadPlan:
    """The multipart upload a put writes into: a new one, or an interrupted one adopted.
    ``lock_until`` is the retention requested when a new upload is created; None for an adopted
    one, whose retention is set once it is complete."""

    upload_id: str
    part_size: int
    lock_until: dt.datetime | None
    existing: Mapping[int, UploadedPart] = field(default_factory=dict)  # part number -> part on the server
    adopted: bool = False


class StaleParts(Exception):
    """Completing an adopted upload failed its checksum check: its parts are not our bytes."""


def part_size_for(size: int, threshold: int) -> int:
    """Part size for a multipart upload of ``size`` bytes: at least the threshold (and S3's 5 MiB
    minimum), big enough that the object fits in 10,000 parts, rounded up to a whole MiB. One
    part is held in memory at a time, so this is also the upload's memory bound."""
    part = max(MIN_PART_SIZE, threshold, math.ceil(size / MAX_PARTS))
    part = math.ceil(part / MiB) * MiB
    if part > MAX_PART_SIZE:
        raise StorageError(f"an object of {size} bytes is larger than S3 allows (10,000 parts of 5 GiB)")
    return part


def part_count(size: int, part_size: int) -> int:
    """How many parts a file of ``size`` bytes takes (an empty file still takes one)."""
    return max(1, math.ceil(size / part_size))


def part_length(number: int, part_size: int, size: int) -> int:
    """The length of part ``number`` (from 1) of a file of ``size`` bytes: ``part_size``, except
    for a shorter last part."""
    return min(part_size, size - (number - 1) * part_size)


def composite_sha256(part_digests: Sequence[bytes]) -> str:
    """The checksum S3 reports for a multipart upload with SHA-256: base64 of the SHA-256 of the
    concatenated raw part digests, then ``-<number of parts>``."""
    joined = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{base64.b64encode(joined).decode('ascii')}-{len(part_digests)}"


def fitting_part_size(parts: Sequence[UploadedPart], size: int, default: int) -> int | None:
    """The part size an interrupted upload of ``size`` bytes was using, if its parts fit one
    (every listed part has exactly the length that part number must have); None when they do
    not, and the upload cannot be adopted. Tries the sizes of the listed parts, then ``default``."""
    if not parts:
        return default
    candidates = sorted({p.size for p in parts}, reverse=True) + [default]
    for part in candidates:
        if part < MIN_PART_SIZE and part < size or part > MAX_PART_SIZE or part * MAX_PARTS < size:
            continue
        count = part_count(size, part)
        if all(1 <= p.number <= count and p.size == part_length(p.number, part, size) for p in parts):
            return part
    return None


def choose_upload(pending: Sequence[PendingUpload], size: int, default: int) -> Adoption:
    """Which interrupted upload of a key to resume for a file of ``size`` bytes: among those whose
    parts fit the file (`fitting_part_size`), the one with the most parts, the latest begun on a
    tie; every other one is to be aborted. ``default`` is the part size of a new upload."""
    fitting: list[tuple[PendingUpload, int]] = []
    misfits: list[PendingUpload] = []
    for upload in pending:
        part_size = fitting_part_size(upload.parts, size, default)
        if part_size is None:
            misfits.append(upload)
        else:
            fitting.append((upload, part_size))
    if not fitting:
        return Adoption(None, default, tuple(misfits))
    fitting.sort(key=lambda c: (len(c[0].parts), c[0].initiated), reverse=True)
    chosen, part_size = fitting[0]
    return Adoption(chosen, part_size, tuple(misfits), tuple(u for u, _ in fitting[1:]))


def part_holds(part: UploadedPart, data: bytes, checksum_b64: str) -> bool:
    """Does this part on the server hold exactly ``data``? By its SHA-256 when the server lists
    one (AWS), else by its ETag when that is a plain MD5 of the part (SeaweedFS, MinIO, Ceph
    without SSE-KMS). Anything else is not proof: the part is sent again. The completion is
    checked by the server against our SHA-256 of every part, and the object by its composite."""
    if part.checksum_sha256:
        return part.checksum_sha256 == checksum_b64
    m = _MD5_ETAG.fullmatch(part.etag or "")
    return m is not None and hashlib.md5(data, usedforsecurity=False).hexdigest() == m.group(1)
