"""S3-compatible object store (boto3): checksummed, verified, resumable uploads with retries and
backoff, optional read-back, Object Lock set and verified on every object. Side effects: network
requests to the target's endpoint (uploads, aborts of unusable multipart uploads, deletes);
get_file writes a local file."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import math
import os
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import boto3
import botocore.exceptions as bex
import urllib3.exceptions
from botocore.config import Config

from preserve.config import Settings, TargetSettings
from preserve.core.errors import (
    ConfigError,
    FeatureNotHonoured,
    ObjectLocked,
    ObjectMissing,
    PreserveError,
    StorageError,
    StorageUnavailable,
    VerificationError,
)
from preserve.core.model import utcnow
from preserve.storage.base import (
    CHUNK_SIZE,
    MAX_KEY_BYTES,
    TEMP_PREFIX,
    Closing,
    ObjectInfo,
    UploadStats,
    check_key,
    check_prefix,
    fsync_dir,
)

log = logging.getLogger(__name__)

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB  # S3: every part but the last must be at least this big
MAX_PART_SIZE = 5 << 30  # S3: no part may be bigger
MAX_PARTS = 10_000  # S3: at most this many parts, so a 5 TiB object needs parts of ~525 MiB

_HEX64 = re.compile(r"[0-9a-f]{64}")
_MD5_ETAG = re.compile(r'"?([0-9a-f]{32})"?')
MAX_BACKOFF = 60.0  # seconds: the longest wait between two tries of one request
T = TypeVar("T")

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "Forbidden",
    "403",
    "ExpiredToken",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
    "RequestTimeTooSkewed",
    "InvalidSecurity",
}
_DIGEST_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_MISSING_CODES = {"NoSuchKey", "NoSuchVersion", "NotFound", "404"}
_TRANSIENT_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestTimeoutException",
    "OperationAborted",
}
_UNAVAILABLE_EXCEPTIONS = (
    bex.ConnectionError,
    bex.HTTPClientError,
    bex.IncompleteReadError,
    bex.NoCredentialsError,
    bex.PartialCredentialsError,
    bex.CredentialRetrievalError,
    urllib3.exceptions.HTTPError,
)


def part_size_for(size: int, threshold: int) -> int:
    """Part size for a multipart upload of ``size`` bytes: at least the threshold (and S3's 5 MiB
    minimum), big enough that the object fits in 10,000 parts, rounded up to a whole MiB. One
    part is held in memory at a time, so this is also the upload's memory bound."""
    part = max(MIN_PART_SIZE, threshold, math.ceil(size / MAX_PARTS))
    part = math.ceil(part / MiB) * MiB
    if part > MAX_PART_SIZE:
        raise StorageError(f"an object of {size} bytes is larger than S3 allows (10,000 parts of 5 GiB)")
    return part


def composite_sha256(part_digests: list[bytes]) -> str:
    """The checksum S3 reports for a multipart upload with SHA-256: base64 of the SHA-256 of the
    concatenated raw part digests, then ``-<number of parts>``."""
    joined = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{base64.b64encode(joined).decode('ascii')}-{len(part_digests)}"


def _same_checksum(reported: str | None, sent: str) -> bool:
    """The server's checksum equals ours. A composite may be reported without its "-N" suffix
    (moto does); the digest part must match either way, and a suffix must give the part count."""
    if not reported:
        return False
    digest, _, parts = reported.partition("-")
    want_digest, _, want_parts = sent.partition("-")
    return digest == want_digest and (not parts or parts == want_parts)


def _version_args(version_id: str | None) -> dict[str, str]:
    """Address the version we wrote. "null" is what an unversioned bucket reports; some servers
    refuse it as a versionId, and there is only one version to address anyway."""
    return {"VersionId": version_id} if version_id and version_id != "null" else {}


def b64_to_hex(value: str) -> str | None:
    """Hex of a full-object base64 SHA-256 checksum; None for composite ("...-N") or malformed."""
    if "-" in value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


@dataclass(frozen=True)
class UploadedPart:
    """One part of a multipart upload, as needed to complete (or later resume) it."""

    number: int
    size: int
    etag: str
    checksum_sha256: str | None  # base64; SeaweedFS 4.48 does not report it in list_parts


@dataclass(frozen=True)
class _Sent:
    """What we uploaded: the checksum the server should now report, and the version written.
    ``lock_until`` is the retention requested with the upload; None for an adopted (resumed)
    upload, whose retention is set afterwards (it was requested when that upload began)."""

    checksum_raw: str
    version_id: str | None
    lock_until: dt.datetime | None
    parts: int = 1
    parts_reused: int = 0


@dataclass
class _Tally:
    """Counters of one put_file (threads share a store, so never on the store itself)."""

    retries: int = 0


@dataclass
class _Plan:
    """The multipart upload a put_file writes into: a new one, or an interrupted one adopted."""

    upload_id: str
    part_size: int
    lock_until: dt.datetime | None
    existing: dict[int, UploadedPart] = field(default_factory=dict)  # part number -> part on the server
    adopted: bool = False


class _StaleParts(Exception):
    """Completing an adopted upload failed its checksum check: its parts are not our bytes."""


def fitting_part_size(parts: list[UploadedPart], size: int, default: int) -> int | None:
    """The part size an interrupted upload of ``size`` bytes was using, if its parts fit one
    (every listed part has exactly the length that part number must have); None when they do
    not, and the upload cannot be adopted. Tries the sizes of the listed parts, then ``default``."""
    if not parts:
        return default
    candidates = sorted({p.size for p in parts}, reverse=True) + [default]
    for part in candidates:
        if part < MIN_PART_SIZE and part < size or part > MAX_PART_SIZE or part * MAX_PARTS < size:
            continue
        count = max(1, math.ceil(size / part))
        if all(1 <= p.number <= count and p.size == min(part, size - (p.number - 1) * part) for p in parts):
            return part
    return None


def _holds(part: UploadedPart, data: bytes, checksum_b64: str) -> bool:
    """Does this part on the server hold exactly ``data``? By its SHA-256 when the server lists
    one (AWS), else by its ETag when that is a plain MD5 of the part (SeaweedFS, MinIO, Ceph
    without SSE-KMS). Anything else is not proof: the part is sent again. The completion is
    checked by the server against our SHA-256 of every part, and the object by its composite."""
    if part.checksum_sha256:
        return part.checksum_sha256 == checksum_b64
    m = _MD5_ETAG.fullmatch(part.etag or "")
    return bool(m) and hashlib.md5(data, usedforsecurity=False).hexdigest() == m.group(1)


def _read_exactly(f: BinaryIO, n: int, path: Path) -> bytes:
    """Read n bytes of the source; a short read means the file shrank under us."""
    try:
        data = f.read(n)
    except OSError as exc:
        raise VerificationError(f"source {path} could not be read: {exc}") from exc
    if len(data) != n:
        raise VerificationError(
            f"source {path} is shorter than the {n} bytes expected: it changed while being uploaded"
        )
    return data


def _assert_at_eof(f: BinaryIO, path: Path) -> None:
    try:
        extra = f.read(1)
    except OSError as exc:
        raise VerificationError(f"source {path} could not be read: {exc}") from exc
    if extra:
        raise VerificationError(f"source {path} is longer than expected: it changed while being uploaded")


class S3Store(Closing):
    """One S3 bucket (and prefix) as an ObjectStore, with its own boto3 client (thread-safe: the
    ingest's parallel uploads share one store per target).

    Retries happen at two levels: botocore's standard mode retries each request a few times at
    once (``max_attempts``), then our own loop tries the request again up to
    ``replication.max_attempts`` times with exponential backoff (``retry_backoff_seconds``,
    doubling, with jitter, at most 60 s) on 5xx errors, timeouts and dropped connections, and
    re-sends a part or PUT the server rejected as corrupt in transit. A server that has not
    answered a single request of this store yet is not waited for: a target that is simply down
    fails fast, one that goes away mid-transfer is waited for."""

    def __init__(
        self,
        settings: Settings,
        target: TargetSettings,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_attempts: int | None = None,
    ) -> None:
        if target.kind != "s3":
            raise ConfigError(f"target {target.name!r} is not an s3 target")
        if bool(target.object_lock_mode) != (target.object_lock_days > 0):
            raise ConfigError(f"target {target.name!r}: object_lock_mode and object_lock_days must be set together")
        self.name = target.name
        self.target = target
        self.bucket = target.bucket
        self.prefix = target.prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.multipart_threshold = settings.replication.multipart_threshold_mb * MiB
        self.attempts = max(1, settings.replication.max_attempts)
        self.backoff = settings.replication.retry_backoff_seconds
        self.read_back = target.read_back
        self._contacted = False  # has the server answered any request of this store?
        if max_attempts is None:
            max_attempts = min(3, self.attempts)
        self.endpoint = settings.endpoint_of(target) or None
        credentials = settings.credentials_of(target)
        config = Config(
            s3={
                "addressing_style": target.addressing_style,
                # Over plain http botocore would otherwise read and hash every body once more just
                # to sign it; the signed x-amz-checksum-sha256 header already protects the bytes.
                "payload_signing_enabled": False,
            },
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            tcp_keepalive=True,
            max_pool_connections=max(10, settings.replication.parallel_uploads + 2),
            # we send our own SHA-256 values; no CRC32 computed behind our back
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            session = boto3.session.Session(**credentials)
            self._client: Any = session.client(
                "s3", endpoint_url=self.endpoint, region_name=target.region, config=config
            )
        except bex.ProfileNotFound as exc:
            raise ConfigError(f"target {target.name!r}: AWS profile {target.profile!r} not found") from exc
        except (bex.BotoCoreError, ValueError) as exc:
            raise ConfigError(f"target {target.name!r}: cannot configure the S3 client: {exc}") from exc
        self._client.meta.events.register("after-call.s3", self._answered)

    def _answered(self, **_: Any) -> None:
        """botocore hook: a response (any status) came back, so the server is there."""
        self._contacted = True

    def close(self) -> None:
        self._client.close()

    # -- keys ----------------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        check_key(key)
        full = f"{self.prefix}/{key}" if self.prefix else key
        if len(full.encode("utf-8")) > MAX_KEY_BYTES:
            raise StorageError(
                f"object key {full!r} is {len(full.encode('utf-8'))} bytes in UTF-8; S3 allows at most {MAX_KEY_BYTES}",
                advice="Shorten the file or folder names in the submission.",
            )
        return full

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    # -- error translation ---------------------------------------------------------------------
    def _translate(self, exc: Exception, what: str) -> StorageError:
        where = f"{self.name} ({self.endpoint or 'AWS'}, bucket {self.bucket})"
        if isinstance(exc, bex.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            text = f"{what} on {where} failed: {code or status} {err.get('Message', '')}".rstrip()
            if code == "NoSuchBucket":
                return StorageUnavailable(f"{what} on {where} failed: the bucket does not exist")
            if code == "NoSuchUpload":  # aborted under us (lifecycle rule, another process)
                return StorageUnavailable(f"{text} (the multipart upload was aborted meanwhile)")
            if code in _DIGEST_CODES:
                return VerificationError(f"{text}: the server received different bytes than we sent")
            if code in _MISSING_CODES or status == 404:
                return ObjectMissing(text)
            if code in _CREDENTIAL_CODES or status in (401, 403):
                return StorageUnavailable(f"{text} (credentials refused or not permitted)")
            if code in _TRANSIENT_CODES or status >= 500:
                return StorageUnavailable(f"{text} (still failing after retries)")
            if code == "InvalidRequest" and self.target.object_lock_mode:
                text += " (Object Lock was requested: does the bucket have Object Lock enabled?)"
            return StorageError(text)
        if isinstance(exc, bex.FlexibleChecksumError):
            return VerificationError(f"{what} on {where}: the bytes received do not match the server's checksum: {exc}")
        if isinstance(exc, _UNAVAILABLE_EXCEPTIONS):
            return StorageUnavailable(f"{what} on {where} failed: {exc}")
        return StorageError(f"{what} on {where} failed: {exc}")

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """The boundary: botocore/urllib3 exceptions leave as preserve.core.errors types."""
        try:
            yield
        except PreserveError:
            raise
        except (bex.BotoCoreError, bex.ClientError, urllib3.exceptions.HTTPError) as exc:
            raise self._translate(exc, what) from exc

    # -- retries -------------------------------------------------------------------------------
    @staticmethod
    def _transient(exc: Exception, resend: bool) -> str | None:
        """Why trying again may help (None: it will not). ``resend``: the request carries a body
        the server checks against our SHA-256, so a digest rejection means bytes were damaged in
        transit and sending the same buffer again is the cure."""
        if isinstance(exc, bex.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if resend and code in _DIGEST_CODES:
                return f"{code}: the server received other bytes than we sent"
            if code in _TRANSIENT_CODES or status >= 500:
                return f"{code or status}"
            return None
        if isinstance(
            exc, (bex.ConnectionError, bex.HTTPClientError, bex.IncompleteReadError, urllib3.exceptions.HTTPError)
        ):
            return f"{type(exc).__name__}: {exc}"
        return None

    def _retrying(self, what: str, call: Callable[[], T], tally: _Tally, *, resend: bool = False) -> T:
        """``call()``, tried again with exponential backoff while it fails transiently (see the
        class docstring); other failures, and the last one, leave as preserve.core.errors types."""
        attempt = 1
        while True:
            try:
                return call()
            except PreserveError:
                raise
            except (bex.BotoCoreError, bex.ClientError, urllib3.exceptions.HTTPError) as exc:
                reason = self._transient(exc, resend)
                if reason is None or attempt >= self.attempts or not self._contacted:
                    raise self._translate(exc, what) from exc
                delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF) * random.uniform(0.75, 1.0)
                log.warning(
                    "%s on %s failed (%s); try %d of %d in %.1f s",
                    what,
                    self.name,
                    reason,
                    attempt + 1,
                    self.attempts,
                    delay,
                )
                tally.retries += 1
                time.sleep(delay)
                attempt += 1

    # -- reachability --------------------------------------------------------------------------
    def check_reachable(self) -> None:
        try:
            with self._errors("check"):
                self._client.head_bucket(Bucket=self.bucket)
        except ObjectMissing as exc:  # HEAD has no body, so a missing bucket is a bare 404
            raise StorageUnavailable(
                f"bucket {self.bucket!r} does not exist on target {self.name!r}",
                advice="Create the bucket (for the embedded server: `preserve services up`).",
            ) from exc

    # -- put -----------------------------------------------------------------------------------
    def _put_args(self) -> tuple[dict[str, Any], dt.datetime | None]:
        args: dict[str, Any] = {"Bucket": self.bucket, "ChecksumAlgorithm": "SHA256"}
        if self.target.storage_class:
            args["StorageClass"] = self.target.storage_class
        if self.target.server_side_encryption:
            args["ServerSideEncryption"] = self.target.server_side_encryption
        until = None
        if self.target.object_lock_mode:
            # whole seconds: servers keep retention at second precision
            until = (utcnow() + dt.timedelta(days=self.target.object_lock_days)).replace(microsecond=0)
            args["ObjectLockMode"] = self.target.object_lock_mode
            args["ObjectLockRetainUntilDate"] = until
        return args, until

    def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> ObjectInfo:
        """Upload with SHA-256 checksums the server must check, hash what was actually sent, then
        verify size, checksum and retention with a HEAD of the version written (and read the
        object back and re-hash it when the target asks for ``read_back``).

        Large files go up in parts, one part in memory at a time (memory bound: one part, see
        part_size_for, per concurrent put_file). An interrupted multipart upload of the same key
        is resumed: its parts that hold our bytes are kept, the rest are sent; uploads that
        cannot be adopted are aborted. A failure that retrying may cure later (the server is
        away: StorageUnavailable) leaves the multipart upload for the next put_file to resume;
        any other failure aborts it. Keys have one writer at a time (the ingest claim ensures
        it): a put_file adopts or aborts whatever multipart upload of its key it finds."""
        full = self._full(key)
        path = Path(path)
        sha256 = sha256.lower()
        if not _HEX64.fullmatch(sha256):
            raise StorageError(f"sha256 must be 64 hex digits, got {sha256!r}")
        try:
            actual_size = path.stat().st_size
        except OSError as exc:
            raise VerificationError(f"source {path} could not be read: {exc}") from exc
        if actual_size != size:
            raise VerificationError(
                f"source {path} is {actual_size} bytes, expected {size}: it changed since it was hashed"
            )
        multipart = size > 0 and size >= self.multipart_threshold
        tally = _Tally()
        with self._errors(f"upload of {key!r}"):
            if multipart:
                sent = self._put_multipart(key, full, path, sha256, size, tally)
            else:
                sent = self._put_single(key, full, path, sha256, size, tally)
            info = self._retrying(f"verification of {key!r}", lambda: self._verify(key, full, sent, size), tally)
            if self.target.object_lock_mode and sent.lock_until is None:
                info = self._extend_retention(key, full, info, tally)
            if self.read_back:
                self._read_back(key, full, info.version_id, sha256, size, tally)
        log.info(
            "stored %s (%d bytes, %s, %d part(s), %d reused, %d retries%s) on %s, verified",
            key,
            size,
            sent.checksum_raw,
            sent.parts,
            sent.parts_reused,
            tally.retries,
            ", read back" if self.read_back else "",
            self.name,
        )
        # The whole-file digest equals sha256 (checked while sending) and the server's checksum
        # matched digests computed from those same bytes, so the store vouches for it.
        stats = UploadStats(
            parts=sent.parts, parts_reused=sent.parts_reused, retries=tally.retries, read_back=self.read_back
        )
        return replace(info, sha256=sha256, upload=stats)

    def _put_single(self, key: str, full: str, path: Path, sha256: str, size: int, tally: _Tally) -> _Sent:
        """One PUT: the bytes are read once into memory (size < multipart threshold), hashed, and
        that same buffer is sent with its SHA-256 for the server to check (again, if it failed)."""
        try:
            with open(path, "rb") as f:
                data = _read_exactly(f, size, path)
                _assert_at_eof(f, path)
        except OSError as exc:
            raise VerificationError(f"source {path} could not be read: {exc}") from exc
        digest = hashlib.sha256(data).digest()
        if digest.hex() != sha256:
            raise VerificationError(
                f"source {path} hashes to {digest.hex()}, not {sha256}: it is "
                "corrupt or changed since it was hashed; nothing was uploaded"
            )
        checksum = base64.b64encode(digest).decode("ascii")
        args, until = self._put_args()
        resp = self._retrying(
            f"upload of {key!r}",
            lambda: self._client.put_object(Key=full, Body=data, ContentLength=size, ChecksumSHA256=checksum, **args),
            tally,
            resend=True,
        )
        return _Sent(checksum_raw=checksum, version_id=resp.get("VersionId"), lock_until=until)

    def _put_multipart(self, key: str, full: str, path: Path, sha256: str, size: int, tally: _Tally) -> _Sent:
        """Resume an interrupted upload of this key when one fits, else start a new one."""
        plan = self._adopt(key, full, size, tally)
        if plan is not None:
            try:
                return self._send_parts(key, full, path, sha256, size, plan, tally)
            except _StaleParts as exc:
                log.warning("%s on %s: %s; aborting that upload and starting again", key, self.name, exc)
                self._abort(full, plan.upload_id)
        args, until = self._put_args()
        upload_id = self._retrying(
            f"start of the upload of {key!r}", lambda: self._client.create_multipart_upload(Key=full, **args), tally
        )["UploadId"]
        plan = _Plan(upload_id, part_size_for(size, self.multipart_threshold), until)
        return self._send_parts(key, full, path, sha256, size, plan, tally)

    def _adopt(self, key: str, full: str, size: int, tally: _Tally) -> _Plan | None:
        """The interrupted multipart upload of this key with the most parts that fit this file's
        size; every other one is aborted, so none is left orphaned."""
        default = part_size_for(size, self.multipart_threshold)
        uploads = self._retrying(f"listing pending uploads of {key!r}", lambda: self._list_uploads(full), tally)
        fitting: list[tuple[int, dt.datetime, str, int, list[UploadedPart]]] = []
        for upload_id, initiated in uploads:
            parts = self._retrying(
                f"listing parts of {key!r}", lambda upload_id=upload_id: self._list_parts(full, upload_id), tally
            )
            part_size = fitting_part_size(parts, size, default)
            if part_size is None:
                log.warning(
                    "aborting the interrupted upload %s of %s on %s: its parts do not fit a file of %d bytes",
                    upload_id,
                    key,
                    self.name,
                    size,
                )
                self._abort(full, upload_id)
                continue
            fitting.append((len(parts), initiated, upload_id, part_size, parts))
        if not fitting:
            return None
        fitting.sort(key=lambda c: (c[0], c[1]), reverse=True)
        _, _, upload_id, part_size, parts = fitting[0]
        for _, _, other, _, _ in fitting[1:]:
            log.warning(
                "aborting the interrupted upload %s of %s on %s: another one has more parts", other, key, self.name
            )
            self._abort(full, other)
        log.info(
            "resuming the interrupted upload %s of %s on %s: %d part(s) of %d bytes on the server",
            upload_id,
            key,
            self.name,
            len(parts),
            part_size,
        )
        return _Plan(upload_id, part_size, None, {p.number: p for p in parts}, adopted=True)

    def _list_uploads(self, full: str) -> list[tuple[str, dt.datetime]]:
        found: list[tuple[str, dt.datetime]] = []
        for page in self._client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full):
            found += [
                (u["UploadId"], u.get("Initiated") or utcnow()) for u in page.get("Uploads", []) if u["Key"] == full
            ]
        return found

    def _list_parts(self, full: str, upload_id: str) -> list[UploadedPart]:
        parts: list[UploadedPart] = []
        for page in self._client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=full, UploadId=upload_id):
            parts += [
                UploadedPart(p["PartNumber"], p["Size"], p["ETag"], p.get("ChecksumSHA256"))
                for p in page.get("Parts", [])
            ]
        return sorted(parts, key=lambda p: p.number)

    def _send_parts(self, key: str, full: str, path: Path, sha256: str, size: int, plan: _Plan, tally: _Tally) -> _Sent:
        """Every part in order, one in memory at a time: hashed, kept if the server already holds
        exactly these bytes (a resume), else sent with its SHA-256; then the whole file's digest
        is compared with ``sha256`` and the upload completed. Aborted on any failure except one
        that leaves it resumable (StorageUnavailable, an interruption)."""
        count = max(1, math.ceil(size / plan.part_size))
        whole = hashlib.sha256()
        parts: list[UploadedPart] = []
        digests: list[bytes] = []
        reused = 0
        try:
            try:
                f = open(path, "rb")
            except OSError as exc:
                raise VerificationError(f"source {path} could not be read: {exc}") from exc
            with f:
                for number in range(1, count + 1):
                    length = min(plan.part_size, size - (number - 1) * plan.part_size)
                    data = _read_exactly(f, length, path)
                    whole.update(data)
                    digest = hashlib.sha256(data).digest()
                    checksum = base64.b64encode(digest).decode("ascii")
                    have = plan.existing.get(number)
                    if have is not None and have.size == length and _holds(have, data, checksum):
                        parts.append(UploadedPart(number, length, have.etag, checksum))
                        reused += 1
                    else:
                        parts.append(self._upload_part(key, full, plan.upload_id, number, count, data, checksum, tally))
                    del data
                    digests.append(digest)
                _assert_at_eof(f, path)
            if whole.hexdigest() != sha256:
                raise VerificationError(
                    f"source {path} hashes to {whole.hexdigest()}, not {sha256}: it is "
                    "corrupt or changed since it was hashed; the upload was aborted"
                )
            composite = composite_sha256(digests)
            version_id = self._complete(key, full, plan, parts, composite, tally)
        except _StaleParts:
            raise
        except (StorageUnavailable, KeyboardInterrupt, SystemExit):
            log.warning(
                "upload %s of %s on %s interrupted; the next put_file of this key resumes it",
                plan.upload_id,
                key,
                self.name,
            )
            raise
        except BaseException:
            self._abort(full, plan.upload_id)
            raise
        return _Sent(
            checksum_raw=composite, version_id=version_id, lock_until=plan.lock_until, parts=count, parts_reused=reused
        )

    def _upload_part(
        self, key: str, full: str, upload_id: str, number: int, count: int, data: bytes, checksum: str, tally: _Tally
    ) -> UploadedPart:
        resp = self._retrying(
            f"part {number} of {count} of {key!r}",
            lambda: self._client.upload_part(
                Bucket=self.bucket,
                Key=full,
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
            raise VerificationError(f"part {number} of {full!r}: server reports checksum {echoed}, we sent {checksum}")
        return UploadedPart(number, len(data), resp["ETag"], checksum)

    def _complete(
        self, key: str, full: str, plan: _Plan, parts: list[UploadedPart], composite: str, tally: _Tally
    ) -> str | None:
        """Complete the upload; the server checks every part against the SHA-256 we give. A retry
        whose first try did complete finds the upload gone: then the object's own checksum says
        whether it is ours."""
        tries = 0

        def once() -> str | None:
            nonlocal tries
            tries += 1
            try:
                resp = self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=plan.upload_id,
                    MultipartUpload={
                        "Parts": [
                            {"PartNumber": p.number, "ETag": p.etag, "ChecksumSHA256": p.checksum_sha256} for p in parts
                        ]
                    },
                )
            except bex.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "NoSuchUpload" and tries > 1:
                    head = self._client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
                    if _same_checksum(head.get("ChecksumSHA256"), composite):
                        return head.get("VersionId")
                if code in _DIGEST_CODES and plan.adopted:
                    raise _StaleParts(f"completing the resumed upload failed its checksum check ({code})") from exc
                raise
            return resp.get("VersionId")

        return self._retrying(f"completion of {key!r}", once, tally)

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except (bex.BotoCoreError, bex.ClientError, urllib3.exceptions.HTTPError) as exc:
            log.warning(
                "could not abort multipart upload %s of %s on %s (parts may remain until "
                "the bucket's lifecycle removes them): %s",
                upload_id,
                full,
                self.name,
                exc,
            )

    def pending_uploads(self, key: str) -> list[str]:
        """Upload ids of unfinished multipart uploads of this key (for a resume or a clean-up)."""
        full = self._full(key)
        with self._errors(f"listing pending uploads of {key!r}"):
            return [upload_id for upload_id, _ in self._list_uploads(full)]

    def existing_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """The parts an unfinished multipart upload already holds, in order. A resume must still
        re-read and re-hash those parts locally: servers may not report their checksums."""
        full = self._full(key)
        with self._errors(f"listing parts of {key!r}"):
            return self._list_parts(full, upload_id)

    def _extend_retention(self, key: str, full: str, info: ObjectInfo, tally: _Tally) -> ObjectInfo:
        """A resumed upload got the retention asked for when it began; lengthen it to the full
        period from now (lengthening is allowed in both modes), then check the server shows it."""
        until = (utcnow() + dt.timedelta(days=self.target.object_lock_days)).replace(microsecond=0)
        if info.lock_mode != self.target.object_lock_mode or info.lock_until is None or info.lock_until < until:
            extra = _version_args(info.version_id)
            self._retrying(
                f"retention of {key!r}",
                lambda: self._client.put_object_retention(
                    Bucket=self.bucket,
                    Key=full,
                    Retention={"Mode": self.target.object_lock_mode, "RetainUntilDate": until},
                    **extra,
                ),
                tally,
            )
            head = self._retrying(
                f"verification of {key!r}",
                lambda: self._client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED", **extra),
                tally,
            )
            info = self._info(key, head)
        self._check_retention(key, info, until)
        return info

    def _check_retention(self, key: str, info: ObjectInfo, until: dt.datetime) -> None:
        if (
            info.lock_mode != self.target.object_lock_mode
            or info.lock_until is None
            or info.lock_until < until - dt.timedelta(seconds=1)
        ):
            raise FeatureNotHonoured(
                f"{self.uri(key)}: asked for {self.target.object_lock_mode} retention until "
                f"{until.isoformat()}, the server shows {info.lock_mode or 'no retention'}"
                f"{f' until {info.lock_until.isoformat()}' if info.lock_until else ''}; the copy is NOT "
                "counted as verified",
                advice="The server silently ignored Object Lock. Use a bucket created "
                "with Object Lock on a server that enforces it, or remove object_lock_* from this target.",
            )

    def _read_back(self, key: str, full: str, version_id: str | None, sha256: str, size: int, tally: _Tally) -> None:
        """Stream the version just written and hash it (target.read_back): proof that does not
        rely on the server's own checksum bookkeeping."""
        extra = _version_args(version_id)

        def once() -> tuple[str, int]:
            resp = self._client.get_object(Bucket=self.bucket, Key=full, **extra)
            digest, n, body = hashlib.sha256(), 0, resp["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK_SIZE):
                    digest.update(chunk)
                    n += len(chunk)
            finally:
                body.close()
            return digest.hexdigest(), n

        got, n = self._retrying(f"read-back of {key!r}", once, tally)
        if n != size or got != sha256:
            raise VerificationError(
                f"{self.uri(key)}: read back {n} bytes hashing to {got}, sent {size} "
                f"bytes with {sha256}; the object is left in place but is not verified"
            )

    def _verify(self, key: str, full: str, sent: _Sent, size: int) -> ObjectInfo:
        """HEAD the version we wrote and compare size, checksum and retention."""
        extra = _version_args(sent.version_id)
        head = self._client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED", **extra)
        info = self._info(key, head)
        where = self.uri(key)
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
        if not _same_checksum(info.checksum_raw, sent.checksum_raw):
            raise VerificationError(
                f"{where}: stored checksum {info.checksum_raw} != "
                f"{sent.checksum_raw} sent; the object is left in place but is "
                "not verified"
            )
        if sent.lock_until is not None:
            self._check_retention(key, info, sent.lock_until)
        return info

    def _info(self, key: str, head: Mapping[str, Any]) -> ObjectInfo:
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

    # -- read ----------------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo | None:
        full = self._full(key)
        try:
            with self._errors(f"head of {key!r}"):
                resp = self._client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
        except ObjectMissing:
            # a HEAD 404 has no body, so a vanished bucket looks like a missing key: tell them apart
            self.check_reachable()
            return None
        return self._info(key, resp)

    def _get(self, key: str, what: str) -> dict[str, Any]:
        full = self._full(key)
        with self._errors(what):
            resp: dict[str, Any] = self._client.get_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
        return resp

    def read_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The GET happens now (so ObjectMissing is raised here); the body streams as iterated."""
        resp = self._get(key, f"read of {key!r}")
        return self._stream(resp, key, chunk_size)

    def _stream(self, resp: dict[str, Any], key: str, chunk_size: int) -> Iterator[bytes]:
        body = resp["Body"]
        try:
            with self._errors(f"read of {key!r}"):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def get_file(self, key: str, dest: Path) -> str:
        """Stream to a temporary name beside dest, fsync, rename. When the server knows the
        whole-object SHA-256 it is checked too (VerificationError, nothing left at dest). A
        connection dropped mid-download is picked up where it stopped (a ranged GET of the same
        version), with the same retries and backoff as uploads, so a 200 GB restore does not
        start over; a server that ignores the range makes it start over instead."""
        dest = Path(dest)
        full = self._full(key)
        resp = self._get(key, f"download of {key!r}")
        total = int(resp["ContentLength"])
        version = _version_args(resp.get("VersionId"))
        expected = resp.get("ChecksumSHA256")
        expected_hex = b64_to_hex(expected) if expected and resp.get("ChecksumType") != "COMPOSITE" else None
        tmp = dest.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        written = 0
        tally = _Tally()
        attempt = 1
        try:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as out:
                    while True:
                        body = resp["Body"]
                        try:
                            for chunk in body.iter_chunks(CHUNK_SIZE):
                                out.write(chunk)
                                digest.update(chunk)
                                written += len(chunk)
                            break
                        except (bex.BotoCoreError, urllib3.exceptions.HTTPError) as exc:
                            if self._transient(exc, False) is None or attempt >= self.attempts:
                                raise self._translate(exc, f"download of {key!r}") from exc
                            attempt += 1
                            tally.retries += 1
                            time.sleep(min(self.backoff * 2 ** (attempt - 2), MAX_BACKOFF) * random.uniform(0.75, 1.0))
                            log.warning(
                                "download of %s from %s dropped after %d bytes (%s); continuing",
                                key,
                                self.name,
                                written,
                                exc,
                            )
                        finally:
                            body.close()
                        resp = self._retrying(
                            f"download of {key!r}",
                            lambda written=written: self._client.get_object(
                                Bucket=self.bucket, Key=full, Range=f"bytes={written}-", **version
                            ),
                            tally,
                        )
                        if not str(resp.get("ContentRange", "")).startswith(f"bytes {written}-"):
                            out.seek(0)  # the range was not honoured: the whole object came again
                            out.truncate()
                            digest, written = hashlib.sha256(), 0
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                raise StorageError(f"cannot write {dest}: {exc}") from exc
            if written != total:
                raise VerificationError(f"{self.uri(key)}: received {written} bytes, the server announced {total}")
            if expected_hex is not None and digest.hexdigest() != expected_hex:
                raise VerificationError(
                    f"{self.uri(key)}: downloaded bytes hash to "
                    f"{digest.hexdigest()}, the server's checksum is {expected_hex}"
                )
            try:
                os.replace(tmp, dest)
                fsync_dir(dest.parent)
            except OSError as exc:
                raise StorageError(f"cannot write {dest}: {exc}") from exc
        finally:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        if tally.retries:
            log.info("downloaded %s from %s after %d retries", key, self.name, tally.retries)
        return digest.hexdigest()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        with self._errors(f"listing of {prefix!r}"):
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):  # a "folder" marker, not an object we store
                        continue
                    yield ObjectInfo(
                        key=self._relative(obj["Key"]),
                        size=int(obj["Size"]),
                        sha256=None,
                        checksum_raw=None,
                        storage_class=obj.get("StorageClass"),
                    )

    # -- delete --------------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Delete every version of the key (in a versioned bucket a plain DELETE would only hide
        the bytes behind a delete marker). If any version is under Object Lock retention or a
        legal hold, nothing is deleted and ObjectLocked says until when and what can be done."""
        full = self._full(key)
        with self._errors(f"delete of {key!r}"):
            versions: list[str] = []
            markers: list[str] = []
            for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=full):
                versions += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == full]
                markers += [m["VersionId"] for m in page.get("DeleteMarkers", []) if m["Key"] == full]
            locks = [lock for v in versions if (lock := self._lock_of(full, v)) is not None]
            if not locks:
                for version_id in versions + markers:
                    try:
                        self._client.delete_object(Bucket=self.bucket, Key=full, VersionId=version_id)
                    except bex.ClientError as exc:
                        code = exc.response.get("Error", {}).get("Code", "")
                        lock = self._lock_of(full, version_id) if code == "AccessDenied" else None
                        if lock is None:
                            raise
                        locks.append(lock)
        if locks:
            raise self._locked_error(key, len(versions), locks)

    def _locked_error(self, key: str, versions: int, locks: list[tuple[str, dt.datetime | None]]) -> ObjectLocked:
        latest = max((until for _, until in locks if until is not None), default=None)
        modes = sorted({mode for mode, _ in locks})
        when = f" until {latest:%Y-%m-%d %H:%M} UTC" if latest else ""
        advice = (
            f"preserve never deletes a copy under Object Lock. The retention ({', '.join(modes)}) ends{when}; "
            "nothing can remove it before then from preserve. COMPLIANCE retention cannot be shortened by "
            "anyone; GOVERNANCE retention only by a bucket administrator with the "
            "s3:BypassGovernanceRetention permission, outside preserve, and that is an archival decision "
            "to record."
        )
        return ObjectLocked(
            f"refused to delete {self.uri(key)}: {len(locks)} of its {max(versions, len(locks))} "
            f"version(s) are under Object Lock ({', '.join(modes)}){when}; nothing was deleted",
            advice=advice,
        )

    def _lock_of(self, full: str, version_id: str) -> tuple[str, dt.datetime | None] | None:
        """(mode, until) when this version may not be deleted now: retention in force, or a
        legal hold ("LEGAL HOLD", None); None when it may."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=full, VersionId=version_id)
        except bex.ClientError:
            return None
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return "LEGAL HOLD", None
        until = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockMode") and until is not None and until > utcnow():
            return str(head["ObjectLockMode"]), until
        return None
