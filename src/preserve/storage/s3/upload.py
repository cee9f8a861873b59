"""Sending one source (a file, or a stream such as ciphertext made while it is read) to S3: a
single checksummed PUT, or a multipart upload that resumes an interrupted one of the same key
(keeping its parts that hold our bytes) or starts afresh. Side effects: reads the source, one part
in memory at a time; network requests through the connection (uploads, completions, aborts of
multipart uploads that cannot be used).

Keys have one writer at a time (the ingest claim ensures it): an upload adopts or aborts whatever
multipart upload of its key it finds. A failure that retrying may cure later (the server is away:
StorageUnavailable, or an interruption) leaves a multipart upload for the next put of the key to
resume; any other failure, including any exception the source stream raises, aborts it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, BinaryIO

import botocore.exceptions as bex

from preserve.config import TargetSettings
from preserve.core.errors import StorageUnavailable, VerificationError
from preserve.core.model import utcnow
from preserve.storage.base import Source
from preserve.storage.s3.client import Connection, ObjectAddress, Tally
from preserve.storage.s3.errors import BOTO_ERRORS, DIGEST_CODES, error_code
from preserve.storage.s3.lock import retain_until
from preserve.storage.s3.multipart import (
    PendingUpload,
    StaleParts,
    UploadedPart,
    UploadPlan,
    choose_upload,
    composite_sha256,
    part_count,
    part_holds,
    part_length,
    part_size_for,
)
from preserve.storage.s3.verify import assert_at_eof, read_exactly, same_checksum

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """What we uploaded: the hex SHA-256 of the whole of it (the source's own, checked, or the
    one computed while sending when the source had none), the checksum the server should now
    report, and the version written. ``lock_until`` is the retention requested with the upload;
    None for an adopted (resumed) upload, whose retention is set afterwards (it was requested
    when that upload began), and for one sent without retention."""

    sha256: str
    checksum_raw: str
    version_id: str | None
    lock_until: dt.datetime | None
    parts: int = 1
    parts_reused: int = 0


def request_args(
    bucket: str, target: TargetSettings, *, retain: bool = True
) -> tuple[dict[str, Any], dt.datetime | None]:
    """The arguments of a PUT or of a new multipart upload (checksum algorithm, storage class,
    encryption, retention), and the retention's end when the target asks for Object Lock.
    ``retain=False`` asks for no retention even then (the object must stay deletable; a bucket
    whose own default retention is set still applies it, which the server decides, not us).
    The values are plain strings from the settings, checked by the server; the boto3 stubs'
    Literal types for them cannot be checked from configuration, hence ``Any``."""
    args: dict[str, Any] = {"Bucket": bucket, "ChecksumAlgorithm": "SHA256"}
    if target.storage_class:
        args["StorageClass"] = target.storage_class
    if target.server_side_encryption:
        args["ServerSideEncryption"] = target.server_side_encryption
    until = None
    if retain and target.object_lock_mode:
        until = retain_until(target.object_lock_days, utcnow())
        args["ObjectLockMode"] = target.object_lock_mode
        args["ObjectLockRetainUntilDate"] = until
    return args, until


def open_source(source: Source) -> BinaryIO:
    """A fresh stream of the source's bytes; an OSError opening it is a VerificationError (the
    source cannot be read), anything else the source raises leaves unchanged."""
    try:
        return source.open()
    except OSError as exc:
        raise VerificationError(f"source {source.label} could not be read: {exc}") from exc


def mismatch(source: Source, got: str, outcome: str) -> VerificationError:
    """The source's bytes do not hash to the digest it was given."""
    return VerificationError(
        f"source {source.label} hashes to {got}, not {source.sha256}: it is "
        f"corrupt or changed since it was hashed; {outcome}"
    )


def put_single(
    conn: Connection, obj: ObjectAddress, target: TargetSettings, source: Source, tally: Tally, *, retain: bool = True
) -> Sent:
    """One PUT: the bytes are read once into memory (size < multipart threshold), hashed,
    compared with the source's digest when it has one, and that same buffer is sent with its
    SHA-256 for the server to check (again, if it failed)."""
    f = open_source(source)
    try:
        data = read_exactly(f, source.size, source.label)
        assert_at_eof(f, source.label)
    finally:
        f.close()
    digest = hashlib.sha256(data).digest()
    if source.sha256 is not None and digest.hex() != source.sha256:
        raise mismatch(source, digest.hex(), "nothing was uploaded")
    checksum = base64.b64encode(digest).decode("ascii")
    args, until = request_args(conn.bucket, target, retain=retain)
    resp = conn.call(
        f"upload of {obj.key!r}",
        lambda: conn.client.put_object(
            Key=obj.full, Body=data, ContentLength=source.size, ChecksumSHA256=checksum, **args
        ),
        tally,
        resend=True,
    )
    return Sent(sha256=digest.hex(), checksum_raw=checksum, version_id=resp.get("VersionId"), lock_until=until)


def put_multipart(
    conn: Connection,
    obj: ObjectAddress,
    target: TargetSettings,
    source: Source,
    threshold: int,
    tally: Tally,
    *,
    retain: bool = True,
) -> Sent:
    """Resume an interrupted upload of this key when one fits, else start a new one. Each
    attempt reads the source afresh (`Source.open`)."""
    size = source.size
    plan = adopt(conn, obj, size, threshold, tally)
    if plan is not None:
        try:
            return send_parts(conn, obj, source, plan, tally)
        except StaleParts as exc:
            log.warning("%s on %s: %s; aborting that upload and starting again", obj.key, conn.name, exc)
            abort(conn, obj.full, plan.upload_id, tally)
    args, until = request_args(conn.bucket, target, retain=retain)
    created = conn.call(
        f"start of the upload of {obj.key!r}",
        lambda: conn.client.create_multipart_upload(Key=obj.full, **args),
        tally,
    )
    plan = UploadPlan(created["UploadId"], part_size_for(size, threshold), until)
    return send_parts(conn, obj, source, plan, tally)


def adopt(conn: Connection, obj: ObjectAddress, size: int, threshold: int, tally: Tally) -> UploadPlan | None:
    """The interrupted multipart upload of this key with the most parts that fit this file's
    size (multipart.choose_upload); every other one is aborted, so none is left orphaned."""
    default = part_size_for(size, threshold)
    uploads = conn.call(f"listing pending uploads of {obj.key!r}", lambda: list_uploads(conn, obj.full), tally)

    def parts_of(upload_id: str) -> tuple[UploadedPart, ...]:
        return tuple(conn.call(f"listing parts of {obj.key!r}", lambda: list_parts(conn, obj.full, upload_id), tally))

    pending = [PendingUpload(upload_id, initiated, parts_of(upload_id)) for upload_id, initiated in uploads]
    choice = choose_upload(pending, size, default)
    for misfit in choice.misfits:
        log.warning(
            "aborting the interrupted upload %s of %s on %s: its parts do not fit a file of %d bytes",
            misfit.upload_id,
            obj.key,
            conn.name,
            size,
        )
        abort(conn, obj.full, misfit.upload_id, tally)
    for other in choice.outnumbered:
        log.warning(
            "aborting the interrupted upload %s of %s on %s: another one has more parts",
            other.upload_id,
            obj.key,
            conn.name,
        )
        abort(conn, obj.full, other.upload_id, tally)
    chosen = choice.chosen
    if chosen is None:
        return None
    log.info(
        "resuming the interrupted upload %s of %s on %s: %d part(s) of %d bytes on the server",
        chosen.upload_id,
        obj.key,
        conn.name,
        len(chosen.parts),
        choice.part_size,
    )
    return UploadPlan(chosen.upload_id, choice.part_size, None, {p.number: p for p in chosen.parts}, adopted=True)


def list_uploads(conn: Connection, full: str) -> list[tuple[str, dt.datetime]]:
    """(upload id, initiated) of every unfinished multipart upload of exactly this key."""
    found: list[tuple[str, dt.datetime]] = []
    for page in conn.client.get_paginator("list_multipart_uploads").paginate(Bucket=conn.bucket, Prefix=full):
        found += [(u["UploadId"], u.get("Initiated") or utcnow()) for u in page.get("Uploads", []) if u["Key"] == full]
    return found


def list_parts(conn: Connection, full: str, upload_id: str) -> list[UploadedPart]:
    """The parts an unfinished multipart upload holds, in part-number order."""
    parts: list[UploadedPart] = []
    for page in conn.client.get_paginator("list_parts").paginate(Bucket=conn.bucket, Key=full, UploadId=upload_id):
        parts += [
            UploadedPart(p["PartNumber"], p["Size"], p["ETag"], p.get("ChecksumSHA256")) for p in page.get("Parts", [])
        ]
    return sorted(parts, key=lambda p: p.number)


def send_parts(conn: Connection, obj: ObjectAddress, source: Source, plan: UploadPlan, tally: Tally) -> Sent:
    """Every part in order, one in memory at a time, read from a fresh stream of the source:
    hashed, kept if the server already holds exactly these bytes (a resume), else sent with its
    SHA-256; then the whole source's digest is compared with ``source.sha256`` (when it has one;
    else it is the digest returned) and the upload completed. Aborted on any failure except one
    that leaves it resumable (StorageUnavailable, an interruption); whatever the stream raises
    aborts it and leaves unchanged."""
    size = source.size
    count = part_count(size, plan.part_size)
    whole = hashlib.sha256()
    parts: list[UploadedPart] = []
    digests: list[bytes] = []
    reused = 0
    try:
        f = open_source(source)
        try:
            for number in range(1, count + 1):
                length = part_length(number, plan.part_size, size)
                data = read_exactly(f, length, source.label)
                whole.update(data)
                digest = hashlib.sha256(data).digest()
                checksum = base64.b64encode(digest).decode("ascii")
                have = plan.existing.get(number)
                if have is not None and have.size == length and part_holds(have, data, checksum):
                    parts.append(UploadedPart(number, length, have.etag, checksum))
                    reused += 1
                else:
                    parts.append(upload_part(conn, obj, plan.upload_id, number, count, data, checksum, tally))
                del data
                digests.append(digest)
            assert_at_eof(f, source.label)
        finally:
            f.close()
        if source.sha256 is not None and whole.hexdigest() != source.sha256:
            raise mismatch(source, whole.hexdigest(), "the upload was aborted")
        composite = composite_sha256(digests)
        version_id = complete(conn, obj, plan, parts, composite, tally)
    except StaleParts:
        raise
    except (StorageUnavailable, KeyboardInterrupt, SystemExit):
        log.warning(
            "upload %s of %s on %s interrupted; the next put of this key resumes it",
            plan.upload_id,
            obj.key,
            conn.name,
        )
        raise
    except BaseException:
        abort(conn, obj.full, plan.upload_id, tally)
        raise
    return Sent(
        sha256=whole.hexdigest(),
        checksum_raw=composite,
        version_id=version_id,
        lock_until=plan.lock_until,
        parts=count,
        parts_reused=reused,
    )


def upload_part(
    conn: Connection,
    obj: ObjectAddress,
    upload_id: str,
    number: int,
    count: int,
    data: bytes,
    checksum: str,
    tally: Tally,
) -> UploadedPart:
    """Send one part with its SHA-256 (again, if the server found it damaged in transit)."""
    resp = conn.call(
        f"part {number} of {count} of {obj.key!r}",
        lambda: conn.client.upload_part(
            Bucket=conn.bucket,
            Key=obj.full,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ContentLength=len(data),
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
        ),
        tally,
        resend=True,
    )
    echoed = resp.get("ChecksumSHA256")
    if echoed is not None and echoed != checksum:
        raise VerificationError(f"part {number} of {obj.full!r}: server reports checksum {echoed}, we sent {checksum}")
    return UploadedPart(number, len(data), resp["ETag"], checksum)


def complete(
    conn: Connection, obj: ObjectAddress, plan: UploadPlan, parts: list[UploadedPart], composite: str, tally: Tally
) -> str | None:
    """Complete the upload; the server checks every part against the SHA-256 we give. A retry
    whose first try did complete finds the upload gone: then the object's own checksum says
    whether it is ours. Returns the version written."""
    tries = 0

    def once() -> str | None:
        nonlocal tries
        tries += 1
        try:
            resp = conn.client.complete_multipart_upload(
                Bucket=conn.bucket,
                Key=obj.full,
                UploadId=plan.upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": p.number, "ETag": p.etag, "ChecksumSHA256": p.checksum_sha256 or ""}
                        for p in parts
                    ]
                },
            )
        except bex.ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchUpload" and tries > 1:
                head = conn.client.head_object(Bucket=conn.bucket, Key=obj.full, ChecksumMode="ENABLED")
                if same_checksum(head.get("ChecksumSHA256"), composite):
                    return head.get("VersionId")
            if code in DIGEST_CODES and plan.adopted:
                raise StaleParts(f"completing the resumed upload failed its checksum check ({code})") from exc
            raise
        return resp.get("VersionId")

    return conn.call(f"completion of {obj.key!r}", once, tally)


def abort(conn: Connection, full: str, upload_id: str, tally: Tally | None = None) -> None:
    """Abort a multipart upload, best effort: the bucket's lifecycle rule removes what is left."""
    try:
        conn.retried(
            f"abort of the upload {upload_id} of {full!r}",
            lambda: conn.client.abort_multipart_upload(Bucket=conn.bucket, Key=full, UploadId=upload_id),
            tally,
        )
    except BOTO_ERRORS as exc:
        log.warning(
            "could not abort multipart upload %s of %s on %s (parts may remain until "
            "the bucket's lifecycle removes them): %s",
            upload_id,
            full,
            conn.name,
            exc,
        )
