"""Downloading one S3 object to a local file, resumed where a dropped connection stopped (a ranged
GET of the same version) so a 200 GB restore does not start over. Side effects: network requests
through the connection; writes a temporary file beside the destination, fsyncs it and renames it
over the destination (nothing is left there on failure).

When the server knows the whole-object SHA-256 it is checked before the rename (VerificationError);
a server that ignores the range makes the download start over instead."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from preserve.core.errors import StorageError, VerificationError
from preserve.core.fs import fsync_dir
from preserve.core.retry import Retry
from preserve.storage.base import CHUNK_SIZE, TEMP_PREFIX
from preserve.storage.s3.client import Connection, ObjectAddress, Tally, version_args
from preserve.storage.s3.errors import retry_reason
from preserve.storage.s3.verify import b64_to_hex

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

log = logging.getLogger(__name__)


def download(conn: Connection, obj: ObjectAddress, resp: GetObjectOutputTypeDef, dest: Path) -> str:
    """Stream ``resp`` (the GET of ``obj`` already made) to a temporary name beside ``dest``,
    fsync, check, rename; returns the hex SHA-256 of what was written. A connection dropped
    mid-body is one failed try of the retry policy: the next try asks for the rest."""
    total = int(resp["ContentLength"])
    version = version_args(resp.get("VersionId"))
    expected = resp.get("ChecksumSHA256")
    expected_hex = b64_to_hex(expected) if expected and resp.get("ChecksumType") != "COMPOSITE" else None
    tmp = dest.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    written = 0
    pending: GetObjectOutputTypeDef | None = resp  # the response whose body is to be streamed next
    streaming = False  # did the last failure happen while streaming a body (vs. asking for one)?
    tally = Tally()
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:

                def once() -> None:
                    """One try: ask for the rest when no response is pending, then stream it."""
                    nonlocal pending, digest, written, streaming
                    streaming = False
                    if pending is None:
                        pending = conn.client.get_object(
                            Bucket=conn.bucket, Key=obj.full, Range=f"bytes={written}-", **version
                        )
                        if not str(pending.get("ContentRange", "")).startswith(f"bytes {written}-"):
                            out.seek(0)  # the range was not honoured: the whole object came again
                            out.truncate()
                            digest, written = hashlib.sha256(), 0
                    body, pending = pending["Body"], None
                    streaming = True
                    try:
                        for chunk in body.iter_chunks(CHUNK_SIZE):
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                    finally:
                        body.close()

                what = f"download of {obj.key!r}"

                def retrying(retry: Retry) -> None:
                    if streaming:
                        log.warning(
                            "download of %s from %s dropped after %d bytes (%s); continuing",
                            obj.key,
                            conn.name,
                            written,
                            retry.error,
                        )
                    else:
                        log.warning(
                            "%s on %s failed (%s); try %d of %d in %.1f s",
                            what,
                            conn.name,
                            retry_reason(retry.error, resend=False),
                            retry.attempt + 1,
                            retry.attempts,
                            retry.delay,
                        )

                conn.call(what, once, tally, on_retry=retrying)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write {dest}: {exc}") from exc
        if written != total:
            raise VerificationError(f"{obj.uri}: received {written} bytes, the server announced {total}")
        if expected_hex is not None and digest.hexdigest() != expected_hex:
            raise VerificationError(
                f"{obj.uri}: downloaded bytes hash to {digest.hexdigest()}, the server's checksum is {expected_hex}"
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
        log.info("downloaded %s from %s after %d retries", obj.key, conn.name, tally.retries)
    return digest.hexdigest()
