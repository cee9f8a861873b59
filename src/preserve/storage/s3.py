"""S3-compatible object store (boto3): checksummed, verified uploads, optional Object Lock.
Side effects: network requests to the target's endpoint; get_file writes a local file."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import math
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

import boto3
import botocore.exceptions as bex
import urllib3.exceptions
from botocore.config import Config

from preserve.errors import (
    ConfigError,
    FeatureNotHonoured,
    ObjectLocked,
    ObjectMissing,
    PreserveError,
    StorageError,
    StorageUnavailable,
    VerificationError,
)
from preserve.model import utcnow
from preserve.settings import Settings, TargetSettings
from preserve.storage.base import (
    CHUNK_SIZE,
    MAX_KEY_BYTES,
    TEMP_PREFIX,
    ObjectInfo,
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

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "403",
                     "ExpiredToken", "InvalidToken", "AuthorizationHeaderMalformed",
                     "RequestTimeTooSkewed", "InvalidSecurity"}
_DIGEST_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_MISSING_CODES = {"NoSuchKey", "NoSuchVersion", "NotFound", "404"}
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                    "ThrottlingException", "RequestTimeoutException", "OperationAborted"}
_UNAVAILABLE_EXCEPTIONS = (bex.ConnectionError, bex.HTTPClientError, bex.IncompleteReadError,
                           bex.NoCredentialsError, bex.PartialCredentialsError,
                           bex.CredentialRetrievalError, urllib3.exceptions.HTTPError)


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
    """What we uploaded: the checksum the server should now report, and the version written."""

    checksum_raw: str
    version_id: str | None
    lock_until: dt.datetime | None


def _read_exactly(f: BinaryIO, n: int, path: Path) -> bytes:
    """Read n bytes of the source; a short read means the file shrank under us."""
    try:
        data = f.read(n)
    except OSError as exc:
        raise VerificationError(f"source {path} could not be read: {exc}") from exc
    if len(data) != n:
        raise VerificationError(f"source {path} is shorter than the {n} bytes expected: it changed "
                                "while being uploaded")
    return data


def _assert_at_eof(f: BinaryIO, path: Path) -> None:
    try:
        extra = f.read(1)
    except OSError as exc:
        raise VerificationError(f"source {path} could not be read: {exc}") from exc
    if extra:
        raise VerificationError(f"source {path} is longer than expected: it changed while being uploaded")


class S3Store:
    """One S3 bucket (and prefix) as an ObjectStore, with its own boto3 client."""

    def __init__(self, settings: Settings, target: TargetSettings, *, connect_timeout: float = 10.0,
                 read_timeout: float = 120.0, max_attempts: int = 3) -> None:
        if target.kind != "s3":
            raise ConfigError(f"target {target.name!r} is not an s3 target")
        if bool(target.object_lock_mode) != (target.object_lock_days > 0):
            raise ConfigError(f"target {target.name!r}: object_lock_mode and object_lock_days must be "
                              "set together")
        self.name = target.name
        self.target = target
        self.bucket = target.bucket
        self.prefix = target.prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.multipart_threshold = settings.replication.multipart_threshold_mb * MiB
        self.endpoint = settings.endpoint_of(target) or None
        credentials = settings.credentials_of(target)
        config = Config(
            s3={"addressing_style": target.addressing_style,
                # Over plain http botocore would otherwise read and hash every body once more just
                # to sign it; the signed x-amz-checksum-sha256 header already protects the bytes.
                "payload_signing_enabled": False},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            tcp_keepalive=True,
            # we send our own SHA-256 values; no CRC32 computed behind our back
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            session = boto3.session.Session(**credentials)
            self._client: Any = session.client("s3", endpoint_url=self.endpoint,
                                               region_name=target.region, config=config)
        except bex.ProfileNotFound as exc:
            raise ConfigError(f"target {target.name!r}: AWS profile {target.profile!r} not found") from exc
        except (bex.BotoCoreError, ValueError) as exc:
            raise ConfigError(f"target {target.name!r}: cannot configure the S3 client: {exc}") from exc

    def close(self) -> None:
        self._client.close()

    # -- keys ----------------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        check_key(key)
        full = f"{self.prefix}/{key}" if self.prefix else key
        if len(full.encode("utf-8")) > MAX_KEY_BYTES:
            raise StorageError(f"object key {full!r} is {len(full.encode('utf-8'))} bytes in UTF-8; "
                               f"S3 allows at most {MAX_KEY_BYTES}",
                               advice="Shorten the file or folder names in the submission.")
        return full

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

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
            return VerificationError(f"{what} on {where}: the bytes received do not match the "
                                     f"server's checksum: {exc}")
        if isinstance(exc, _UNAVAILABLE_EXCEPTIONS):
            return StorageUnavailable(f"{what} on {where} failed: {exc}")
        return StorageError(f"{what} on {where} failed: {exc}")

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """The boundary: botocore/urllib3 exceptions leave as preserve.errors types."""
        try:
            yield
        except PreserveError:
            raise
        except (bex.BotoCoreError, bex.ClientError, urllib3.exceptions.HTTPError) as exc:
            raise self._translate(exc, what) from exc

    # -- reachability --------------------------------------------------------------------------
    def check_reachable(self) -> None:
        try:
            with self._errors("check"):
                self._client.head_bucket(Bucket=self.bucket)
        except ObjectMissing as exc:  # HEAD has no body, so a missing bucket is a bare 404
            raise StorageUnavailable(f"bucket {self.bucket!r} does not exist on target {self.name!r}",
                                     advice="Create the bucket (for the embedded server: "
                                            "`preserve services up`).") from exc

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
        verify size, checksum and retention with a HEAD of the version written."""
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
            raise VerificationError(f"source {path} is {actual_size} bytes, expected {size}: it changed "
                                    "since it was hashed")
        multipart = size > 0 and size >= self.multipart_threshold
        with self._errors(f"upload of {key!r}"):
            if multipart:
                sent = self._put_multipart(full, path, sha256, size)
            else:
                sent = self._put_single(full, path, sha256, size)
            info = self._verify(key, full, sent, size)
        log.info("stored %s (%d bytes, %s) on %s, verified", key, size, sent.checksum_raw, self.name)
        # The whole-file digest equals sha256 (checked while sending) and the server's checksum
        # matched digests computed from those same bytes, so the store vouches for it.
        return replace(info, sha256=sha256)

    def _put_single(self, full: str, path: Path, sha256: str, size: int) -> _Sent:
        """One PUT: the bytes are read once into memory (size < multipart threshold), hashed, and
        that same buffer is sent with its SHA-256 for the server to check."""
        try:
            with open(path, "rb") as f:
                data = _read_exactly(f, size, path)
                _assert_at_eof(f, path)
        except OSError as exc:
            raise VerificationError(f"source {path} could not be read: {exc}") from exc
        digest = hashlib.sha256(data).digest()
        if digest.hex() != sha256:
            raise VerificationError(f"source {path} hashes to {digest.hex()}, not {sha256}: it is "
                                    "corrupt or changed since it was hashed; nothing was uploaded")
        checksum = base64.b64encode(digest).decode("ascii")
        args, until = self._put_args()
        resp = self._client.put_object(Key=full, Body=data, ContentLength=size,
                                       ChecksumSHA256=checksum, **args)
        return _Sent(checksum_raw=checksum, version_id=resp.get("VersionId"), lock_until=until)

    def _put_multipart(self, full: str, path: Path, sha256: str, size: int) -> _Sent:
        """Multipart upload, one part in memory at a time, each with its SHA-256. The upload is
        aborted on any failure, so no orphaned parts remain (a resume would call
        ``existing_parts`` instead of aborting)."""
        part_size = part_size_for(size, self.multipart_threshold)
        args, until = self._put_args()
        upload_id = self._client.create_multipart_upload(Key=full, **args)["UploadId"]
        try:
            parts, digests = self._upload_parts(full, upload_id, path, size, part_size, sha256)
            resp = self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag,
                                            "ChecksumSHA256": p.checksum_sha256} for p in parts]})
        except BaseException:
            self._abort(full, upload_id)
            raise
        return _Sent(checksum_raw=composite_sha256(digests), version_id=resp.get("VersionId"),
                     lock_until=until)

    def _upload_parts(self, full: str, upload_id: str, path: Path, size: int, part_size: int,
                      sha256: str) -> tuple[list[UploadedPart], list[bytes]]:
        count = max(1, math.ceil(size / part_size))
        whole = hashlib.sha256()
        parts: list[UploadedPart] = []
        digests: list[bytes] = []
        try:
            f = open(path, "rb")
        except OSError as exc:
            raise VerificationError(f"source {path} could not be read: {exc}") from exc
        with f:
            for number in range(1, count + 1):
                length = min(part_size, size - (number - 1) * part_size)
                data = _read_exactly(f, length, path)
                whole.update(data)
                digest = hashlib.sha256(data).digest()
                checksum = base64.b64encode(digest).decode("ascii")
                resp = self._client.upload_part(Bucket=self.bucket, Key=full, UploadId=upload_id,
                                                PartNumber=number, Body=data, ContentLength=length,
                                                ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
                del data
                echoed = resp.get("ChecksumSHA256")
                if echoed is not None and echoed != checksum:
                    raise VerificationError(f"part {number} of {full!r}: server reports checksum "
                                            f"{echoed}, we sent {checksum}")
                parts.append(UploadedPart(number, length, resp["ETag"], checksum))
                digests.append(digest)
            _assert_at_eof(f, path)
        if whole.hexdigest() != sha256:
            raise VerificationError(f"source {path} hashes to {whole.hexdigest()}, not {sha256}: it is "
                                    "corrupt or changed since it was hashed; the upload was aborted")
        return parts, digests

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except (bex.BotoCoreError, bex.ClientError, urllib3.exceptions.HTTPError) as exc:
            log.warning("could not abort multipart upload %s of %s on %s (parts may remain until "
                        "the bucket's lifecycle removes them): %s", upload_id, full, self.name, exc)

    def pending_uploads(self, key: str) -> list[str]:
        """Upload ids of unfinished multipart uploads of this key (for a resume or a clean-up)."""
        full = self._full(key)
        ids: list[str] = []
        with self._errors(f"listing pending uploads of {key!r}"):
            for page in self._client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.bucket, Prefix=full):
                ids += [u["UploadId"] for u in page.get("Uploads", []) if u["Key"] == full]
        return ids

    def existing_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """The parts an unfinished multipart upload already holds, in order. A resume must still
        re-read and re-hash those parts locally: servers may not report their checksums."""
        full = self._full(key)
        parts: list[UploadedPart] = []
        with self._errors(f"listing parts of {key!r}"):
            for page in self._client.get_paginator("list_parts").paginate(
                    Bucket=self.bucket, Key=full, UploadId=upload_id):
                parts += [UploadedPart(p["PartNumber"], p["Size"], p["ETag"], p.get("ChecksumSHA256"))
                          for p in page.get("Parts", [])]
        return sorted(parts, key=lambda p: p.number)

    def _verify(self, key: str, full: str, sent: _Sent, size: int) -> ObjectInfo:
        """HEAD the version we wrote and compare size, checksum and retention."""
        extra = {"VersionId": sent.version_id} if sent.version_id else {}
        head = self._client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED", **extra)
        info = self._info(key, head)
        where = self.uri(key)
        if info.size != size:
            raise VerificationError(f"{where}: stored size {info.size} != {size} sent; the object "
                                    "is left in place but is not verified")
        if not info.checksum_raw:
            raise FeatureNotHonoured(f"{where}: the server returned no SHA-256 checksum, so the copy "
                                     "cannot be verified without reading it back")
        if info.checksum_raw != sent.checksum_raw:
            raise VerificationError(f"{where}: stored checksum {info.checksum_raw} != "
                                    f"{sent.checksum_raw} sent; the object is left in place but is "
                                    "not verified")
        if sent.lock_until is not None:
            if (info.lock_mode != self.target.object_lock_mode or info.lock_until is None
                    or info.lock_until < sent.lock_until - dt.timedelta(seconds=1)):
                raise FeatureNotHonoured(
                    f"{where}: asked for {self.target.object_lock_mode} retention until "
                    f"{sent.lock_until.isoformat()}, the server shows {info.lock_mode} until "
                    f"{info.lock_until}")
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
            resp: dict[str, Any] = self._client.get_object(Bucket=self.bucket, Key=full,
                                                           ChecksumMode="ENABLED")
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
        whole-object SHA-256 it is checked too (VerificationError, nothing left at dest)."""
        dest = Path(dest)
        resp = self._get(key, f"download of {key!r}")
        expected = resp.get("ChecksumSHA256")
        expected_hex = b64_to_hex(expected) if expected else None
        tmp = dest.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        written = 0
        try:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as out:
                    for chunk in self._stream(resp, key, CHUNK_SIZE):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                raise StorageError(f"cannot write {dest}: {exc}") from exc
            if written != int(resp["ContentLength"]):
                raise VerificationError(f"{self.uri(key)}: received {written} bytes, the server "
                                        f"announced {resp['ContentLength']}")
            if expected_hex is not None and digest.hexdigest() != expected_hex:
                raise VerificationError(f"{self.uri(key)}: downloaded bytes hash to "
                                        f"{digest.hexdigest()}, the server's checksum is {expected_hex}")
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
        return digest.hexdigest()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        with self._errors(f"listing of {prefix!r}"):
            for page in self._client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=full_prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):  # a "folder" marker, not an object we store
                        continue
                    yield ObjectInfo(key=self._relative(obj["Key"]), size=int(obj["Size"]),
                                     sha256=None, checksum_raw=None,
                                     storage_class=obj.get("StorageClass"))

    # -- delete --------------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Delete every version of the key (in a versioned bucket a plain DELETE would only hide
        the bytes behind a delete marker). Versions under retention make it raise ObjectLocked."""
        full = self._full(key)
        with self._errors(f"delete of {key!r}"):
            versions: list[str] = []
            markers: list[str] = []
            for page in self._client.get_paginator("list_object_versions").paginate(
                    Bucket=self.bucket, Prefix=full):
                versions += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == full]
                markers += [m["VersionId"] for m in page.get("DeleteMarkers", []) if m["Key"] == full]
            locked: list[str] = []
            for version_id in versions + markers:
                try:
                    self._client.delete_object(Bucket=self.bucket, Key=full, VersionId=version_id)
                except bex.ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code == "AccessDenied" and self._is_locked(full, version_id):
                        locked.append(version_id)
                        continue
                    raise
        if locked:
            raise ObjectLocked(f"{self.uri(key)}: {len(locked)} version(s) are under Object Lock "
                               f"retention or legal hold and were not deleted")

    def _is_locked(self, full: str, version_id: str) -> bool:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=full, VersionId=version_id)
        except bex.ClientError:
            return False
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return True
        until = head.get("ObjectLockRetainUntilDate")
        return bool(head.get("ObjectLockMode")) and until is not None and until > utcnow()

