"""`S3Store`: one S3-compatible bucket (and prefix) as an ObjectStore, the facade over the S3
modules: checksummed, verified, resumable uploads (upload, multipart), optional read-back and
Object Lock set and verified on every object (verify, lock), resumable downloads (download),
locked deletes refused (a deaccession's purge deletes only what retention allows). Side effects: network requests to the target's endpoint (uploads, aborts
of unusable multipart uploads, deletes); get_file writes a local file."""

from __future__ import annotations

import builtins
import functools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import botocore.exceptions as bex

from preserve.config import Settings, TargetSettings
from preserve.core.errors import ConfigError, ObjectMissing, StorageError, StorageUnavailable
from preserve.core.retry import RetryPolicy
from preserve.storage.base import (
    CHUNK_SIZE,
    MAX_KEY_BYTES,
    Closing,
    ObjectInfo,
    Purge,
    Retained,
    Source,
    UploadStats,
    check_key,
    check_prefix,
)
from preserve.storage.s3 import lock
from preserve.storage.s3.client import (
    Connection,
    ObjectAddress,
    Tally,
    client_config,
    make_client,
    retry_policy,
    version_args,
)
from preserve.storage.s3.download import download
from preserve.storage.s3.errors import error_code
from preserve.storage.s3.multipart import MiB, UploadedPart
from preserve.storage.s3.upload import Sent, list_parts, list_uploads, put_multipart, put_single
from preserve.storage.s3.verify import (
    check_read_back,
    check_retention,
    check_source_size,
    check_stored,
    checked_sha256,
    hash_chunks,
    object_info,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import (
        GetObjectOutputTypeDef,
        ListObjectsV2OutputTypeDef,
        ListObjectVersionsOutputTypeDef,
    )

log = logging.getLogger(__name__)


class S3Store(Closing):
    """One S3 bucket (and prefix) as an ObjectStore, with its own boto3 client (thread-safe: the
    ingest's parallel uploads share one store per target).

    Every request goes through one retry layer (client.Connection, under preserve.core.retry's
    policy; botocore's own retries are off): it is tried up to ``replication.max_attempts``
    times with exponential backoff (``retry_backoff_seconds``, doubling, with jitter, at most
    60 s) on 5xx errors, throttling, timeouts and dropped connections, and a part or PUT the
    server rejected as corrupt in transit is sent again. A server that has not answered a single
    request of this store yet is not waited for: a target that is simply down fails fast, one
    that goes away mid-transfer is waited for. ``retry`` replaces the settings' policy, and
    ``credentials`` (boto3 session keywords) the credentials the settings find for the target."""

    def __init__(
        self,
        settings: Settings,
        target: TargetSettings,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        credentials: Mapping[str, str] | None = None,
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
        self.retry = retry if retry is not None else retry_policy(settings.replication)
        self.read_back = target.read_back
        self.endpoint = settings.endpoint_of(target) or None
        config = client_config(
            target,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            parallel_uploads=settings.replication.parallel_uploads,
        )
        self._client = make_client(settings, target, config, credentials)
        self._conn = Connection(
            self._client,
            name=self.name,
            bucket=self.bucket,
            endpoint=self.endpoint,
            object_lock=bool(target.object_lock_mode),
            policy=self.retry,
        )

    def close(self) -> None:
        self._conn.close()

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

    def _address(self, key: str) -> ObjectAddress:
        full = self._full(key)
        return ObjectAddress(key=key, full=full, uri=f"s3://{self.bucket}/{full}")

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def uri(self, key: str) -> str:
        return self._address(key).uri

    # -- reachability --------------------------------------------------------------------------
    def check_reachable(self) -> None:
        try:
            self._conn.call("check", lambda: self._client.head_bucket(Bucket=self.bucket))
        except ObjectMissing as exc:  # HEAD has no body, so a missing bucket is a bare 404
            raise StorageUnavailable(
                f"bucket {self.bucket!r} does not exist on target {self.name!r}",
                advice="Create the bucket (for the embedded server: `preserve services up`).",
            ) from exc

    # -- put -----------------------------------------------------------------------------------
    def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> ObjectInfo:
        """`put_source` of the file, after checking that it still has the size it was hashed
        with (VerificationError before anything is sent)."""
        self._address(key)
        path = Path(path)
        sha256 = checked_sha256(sha256)
        check_source_size(path, size)
        return self.put_source(key, Source.of_file(path, sha256=sha256, size=size))

    def put_source(self, key: str, source: Source, *, retain: bool = True) -> ObjectInfo:
        """Upload with SHA-256 checksums the server must check, hash what was actually sent, then
        verify size, checksum and retention with a HEAD of the version written (and read the
        object back and re-hash it when the target asks for ``read_back``). The whole digest
        must equal ``source.sha256`` before the upload completes (else VerificationError, nothing
        kept); a source without one is hashed as it is sent, and that digest is returned (and
        is the one a read-back must give). A stream yielding fewer or more than ``source.size``
        bytes is a VerificationError; anything else its read() raises aborts the upload and
        leaves unchanged.

        Large sources go up in parts, one part in memory at a time (memory bound: one part, see
        multipart.part_size_for, per concurrent put). An interrupted multipart upload of the
        same key is resumed: its parts that hold our bytes (re-read from the new stream and
        compared) are kept, the rest are sent; uploads that cannot be adopted are aborted. A
        failure that retrying may cure later (the server is away: StorageUnavailable) leaves the
        multipart upload for the next put to resume; any other failure aborts it. Keys have one
        writer at a time (the ingest claim ensures it): a put adopts or aborts whatever
        multipart upload of its key it finds.

        ``retain=False`` sends no ObjectLockMode/RetainUntilDate and neither sets nor checks
        retention afterwards. A bucket with a *default* retention rule still locks the object
        (the server applies it); the returned ObjectInfo then shows that lock (a warning is
        logged), as it would a resumed upload begun by a retained put of the same key."""
        obj = self._address(key)
        if source.sha256 is not None:
            source = replace(source, sha256=checked_sha256(source.sha256))
        size = source.size
        multipart = size > 0 and size >= self.multipart_threshold
        tally = Tally()
        with self._conn.errors(f"upload of {key!r}"):
            if multipart:
                sent = put_multipart(
                    self._conn, obj, self.target, source, self.multipart_threshold, tally, retain=retain
                )
            else:
                sent = put_single(self._conn, obj, self.target, source, tally, retain=retain)
            info = self._conn.call(f"verification of {key!r}", lambda: self._verify(obj, sent, size), tally)
            mode = self.target.object_lock_mode
            if retain and mode and sent.lock_until is None:
                info = lock.extend(self._conn, obj, mode, self.target.object_lock_days, info, tally)
            if self.read_back:
                self._read_back(obj, info.version_id, sent.sha256, size, tally)
        if not retain and info.lock_mode:
            log.warning(
                "%s on %s was stored without retention asked for, but the server shows %s retention%s "
                "(a bucket default, or a resumed upload begun with it)",
                key,
                self.name,
                info.lock_mode,
                f" until {info.lock_until.isoformat()}" if info.lock_until else "",
            )
        log.info(
            "stored %s (%d bytes, %s, %d part(s), %d reused, %d retries%s%s) on %s, verified",
            key,
            size,
            sent.checksum_raw,
            sent.parts,
            sent.parts_reused,
            tally.retries,
            ", read back" if self.read_back else "",
            "" if retain else ", no retention asked for",
            self.name,
        )
        # The whole digest is sent.sha256 (the source's own, checked while sending, or computed
        # from the bytes sent) and the server's checksum matched digests computed from those same
        # bytes, so the store vouches for it.
        stats = UploadStats(
            parts=sent.parts, parts_reused=sent.parts_reused, retries=tally.retries, read_back=self.read_back
        )
        return replace(info, sha256=sent.sha256, upload=stats)

    def _verify(self, obj: ObjectAddress, sent: Sent, size: int) -> ObjectInfo:
        """HEAD the version we wrote and compare size, checksum and retention."""
        extra = version_args(sent.version_id)
        head = self._client.head_object(Bucket=self.bucket, Key=obj.full, ChecksumMode="ENABLED", **extra)
        info = object_info(obj.key, head)
        check_stored(obj.uri, info, size, sent.checksum_raw)
        if sent.lock_until is not None:
            check_retention(obj.uri, info, self.target.object_lock_mode, sent.lock_until)
        return info

    def _read_back(self, obj: ObjectAddress, version_id: str | None, sha256: str, size: int, tally: Tally) -> None:
        """Stream the version just written and hash it (target.read_back): proof that does not
        rely on the server's own checksum bookkeeping."""
        extra = version_args(version_id)

        def once() -> tuple[str, int]:
            body = self._client.get_object(Bucket=self.bucket, Key=obj.full, **extra)["Body"]
            try:
                return hash_chunks(body.iter_chunks(CHUNK_SIZE))
            finally:
                body.close()

        got, n = self._conn.call(f"read-back of {obj.key!r}", once, tally)
        check_read_back(obj.uri, got, n, sha256, size)

    def pending_uploads(self, key: str) -> builtins.list[str]:
        """Upload ids of unfinished multipart uploads of this key (for a resume or a clean-up)."""
        full = self._full(key)
        uploads = self._conn.call(f"listing pending uploads of {key!r}", lambda: list_uploads(self._conn, full))
        return [upload_id for upload_id, _ in uploads]

    def existing_parts(self, key: str, upload_id: str) -> builtins.list[UploadedPart]:
        """The parts an unfinished multipart upload already holds, in order. A resume must still
        re-read and re-hash those parts locally: servers may not report their checksums."""
        full = self._full(key)
        return self._conn.call(f"listing parts of {key!r}", lambda: list_parts(self._conn, full, upload_id))

    # -- read ----------------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo | None:
        obj = self._address(key)
        try:
            resp = self._conn.call(
                f"head of {key!r}",
                lambda: self._client.head_object(Bucket=self.bucket, Key=obj.full, ChecksumMode="ENABLED"),
            )
        except ObjectMissing:
            # a HEAD 404 has no body, so a vanished bucket looks like a missing key: tell them apart
            self.check_reachable()
            return None
        return object_info(key, resp)

    def _get(self, obj: ObjectAddress, what: str) -> GetObjectOutputTypeDef:
        return self._conn.call(
            what, lambda: self._client.get_object(Bucket=self.bucket, Key=obj.full, ChecksumMode="ENABLED")
        )

    def read_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The GET happens now (so ObjectMissing is raised here); the body streams as iterated."""
        resp = self._get(self._address(key), f"read of {key!r}")
        return self._stream(resp, key, chunk_size)

    def _stream(self, resp: GetObjectOutputTypeDef, key: str, chunk_size: int) -> Iterator[bytes]:
        body = resp["Body"]
        try:
            with self._conn.errors(f"read of {key!r}"):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def get_file(self, key: str, dest: Path) -> str:
        """Stream to a temporary name beside dest, fsync, rename (see download.download). When the
        server knows the whole-object SHA-256 it is checked too (VerificationError, nothing left
        at dest). A connection dropped mid-download is picked up where it stopped (a ranged GET of
        the same version), with the same retries and backoff as uploads, so a 200 GB restore does
        not start over; a server that ignores the range makes it start over instead."""
        obj = self._address(key)
        resp = self._get(obj, f"download of {key!r}")
        return download(self._conn, obj, resp, Path(dest))

    def _list_page(self, full_prefix: str, token: str | None) -> ListObjectsV2OutputTypeDef:
        if token is None:
            return self._client.list_objects_v2(Bucket=self.bucket, Prefix=full_prefix)
        return self._client.list_objects_v2(Bucket=self.bucket, Prefix=full_prefix, ContinuationToken=token)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """One request per page of 1,000 keys, each under the retry policy."""
        check_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        token: str | None = None
        while True:
            page = self._conn.call(f"listing of {prefix!r}", functools.partial(self._list_page, full_prefix, token))
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
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _versions_page(self, full_prefix: str, marker: tuple[str, str] | None) -> ListObjectVersionsOutputTypeDef:
        if marker is None:
            return self._client.list_object_versions(Bucket=self.bucket, Prefix=full_prefix)
        return self._client.list_object_versions(
            Bucket=self.bucket, Prefix=full_prefix, KeyMarker=marker[0], VersionIdMarker=marker[1]
        )

    def list_versions(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every version and delete marker under the prefix (ListObjectVersions, one request per
        page, each under the retry policy): what a versioned bucket still holds after a plain delete."""
        check_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        marker: tuple[str, str] | None = None
        while True:
            page = self._conn.call(
                f"listing versions of {prefix!r}", functools.partial(self._versions_page, full_prefix, marker)
            )
            for v in page.get("Versions", []):
                if not v["Key"].endswith("/"):
                    yield ObjectInfo(
                        key=self._relative(v["Key"]),
                        size=int(v.get("Size", 0)),
                        sha256=None,
                        checksum_raw=None,
                        version_id=v.get("VersionId"),
                        storage_class=v.get("StorageClass"),
                    )
            for m in page.get("DeleteMarkers", []):
                if not m["Key"].endswith("/"):
                    yield ObjectInfo(
                        key=self._relative(m["Key"]),
                        size=0,
                        sha256=None,
                        checksum_raw=None,
                        version_id=m.get("VersionId"),
                        delete_marker=True,
                    )
            if not page.get("IsTruncated"):
                return
            marker = (page.get("NextKeyMarker", ""), page.get("NextVersionIdMarker", ""))

    # -- delete --------------------------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Delete every version of the key (in a versioned bucket a plain DELETE would only hide
        the bytes behind a delete marker). If any version is under Object Lock retention or a
        legal hold, nothing is deleted and ObjectLocked says until when and what can be done."""
        obj = self._address(key)
        what = f"delete of {key!r}"
        with self._conn.errors(what):
            versions, markers = self._conn.retried(what, functools.partial(self._versions, obj.full))
            locks = [found for v in versions if (found := lock.lock_of(self._conn, obj.full, v)) is not None]
            if not locks:
                for version_id in versions + markers:
                    try:
                        self._conn.retried(what, functools.partial(self._delete_version, obj.full, version_id))
                    except bex.ClientError as exc:
                        found = (
                            lock.lock_of(self._conn, obj.full, version_id)
                            if error_code(exc) == "AccessDenied"
                            else None
                        )
                        if found is None:
                            raise
                        locks.append(found)
        if locks:
            raise lock.locked_error(obj.uri, len(versions), locks)

    def _versions(self, full: str) -> tuple[builtins.list[str], builtins.list[str]]:
        """The version ids and the delete-marker ids of exactly this key."""
        versions: builtins.list[str] = []
        markers: builtins.list[str] = []
        for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=full):
            versions += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == full]
            markers += [m["VersionId"] for m in page.get("DeleteMarkers", []) if m["Key"] == full]
        return versions, markers

    def _delete_version(self, full: str, version_id: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=full, VersionId=version_id)

    def purge(self, key: str, *, bypass_governance: bool = False) -> Purge:
        """Delete every version of the key that may go now, leave (and list) those retention or a
        legal hold keeps; GOVERNANCE retention is bypassed (BypassGovernanceRetention, which the
        credentials must be allowed) only with ``bypass_governance``. Used by deaccession alone:
        every other delete refuses locked copies as a whole (`delete`)."""
        obj = self._address(key)
        what = f"deletion of {key!r}"
        deleted: builtins.list[str] = []
        retained: builtins.list[Retained] = []
        bypassed = 0
        with self._conn.errors(what):
            versions, markers = self._conn.retried(what, functools.partial(self._versions, obj.full))
            for version_id in versions:
                found = lock.lock_of(self._conn, obj.full, version_id)
                bypass = found is not None and found[0] == "GOVERNANCE" and bypass_governance
                if found is not None and not bypass:
                    retained.append(Retained(version_id, *found))
                    continue
                try:
                    self._conn.retried(what, functools.partial(self._purge_version, obj.full, version_id, bypass))
                except bex.ClientError as exc:
                    if error_code(exc) != "AccessDenied":
                        raise
                    found = lock.lock_of(self._conn, obj.full, version_id)
                    if found is None or bypass:  # not a lock: these credentials may not delete
                        raise StorageUnavailable(
                            f"{what} on {self._conn.where} refused (AccessDenied): the credentials of target "
                            f"{self.name!r} may not delete object versions"
                            + (" with a governance bypass" if bypass else ""),
                            advice=f"Give target {self.name!r}'s credentials s3:DeleteObjectVersion"
                            + (" and s3:BypassGovernanceRetention" if bypass else "")
                            + ", then run the deletion again. Nothing was reported deleted that is not gone.",
                        ) from exc
                    retained.append(Retained(version_id, *found))
                    continue
                deleted.append(version_id)
                bypassed += bypass
            if not retained:  # a marker removed before its versions are gone would make one current
                for marker in markers:
                    self._conn.retried(what, functools.partial(self._purge_version, obj.full, marker, False))
                    deleted.append(marker)
        return Purge(key, tuple(deleted), tuple(retained), bypassed)

    def _purge_version(self, full: str, version_id: str, bypass: bool) -> None:
        extra = version_args(version_id)
        if bypass:
            self._client.delete_object(Bucket=self.bucket, Key=full, BypassGovernanceRetention=True, **extra)
        else:
            self._client.delete_object(Bucket=self.bucket, Key=full, **extra)
