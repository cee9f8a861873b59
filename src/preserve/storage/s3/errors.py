"""The S3 error table: what each botocore/urllib3 failure means in preserve.core.errors terms, and
which failures another try may cure. Side effects: none.

Callers only ever see preserve.core.errors types: `translated` is the boundary every request of
the S3 store passes through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions as bex
import urllib3.exceptions

from preserve.core.errors import (
    ObjectMissing,
    PreserveError,
    StorageError,
    StorageUnavailable,
    VerificationError,
)

#: what botocore and urllib3 raise; translated at the boundary, and the types retries look at
BOTO_ERRORS: tuple[type[Exception], ...] = (bex.BotoCoreError, bex.ClientError, urllib3.exceptions.HTTPError)

CREDENTIAL_CODES = frozenset(
    {
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
)
#: the server checked a body against our SHA-256 (or MD5) and it did not match
DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"})
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "404"})
#: the server is overloaded or failing: retried, and StorageUnavailable when retries run out
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestTimeoutException",
        "OperationAborted",
    }
)
#: throttling answers botocore's own ("standard" mode) retries used to retry before preserve
#: switched them off to keep a single retry layer; still retried, and translated as before
#: (StorageError unless TRANSIENT_CODES or the status says otherwise)
THROTTLING_CODES = frozenset(
    {
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
#: HTTP 429 Too Many Requests: retried (botocore's standard mode did), not in itself unavailability
THROTTLING_STATUS = 429

UNAVAILABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    bex.ConnectionError,
    bex.HTTPClientError,
    bex.IncompleteReadError,
    bex.NoCredentialsError,
    bex.PartialCredentialsError,
    bex.CredentialRetrievalError,
    urllib3.exceptions.HTTPError,
)
#: connection-level failures another try may cure (timeouts, resets, dropped connections)
RETRIED_EXCEPTIONS: tuple[type[Exception], ...] = (
    bex.ConnectionError,
    bex.HTTPClientError,
    bex.IncompleteReadError,
    urllib3.exceptions.HTTPError,
)


def error_code(exc: bex.ClientError) -> str:
    """The S3 error code of a refused request ("NoSuchKey", "SlowDown", ...); "" if none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: bex.ClientError) -> int:
    """The HTTP status of a refused request; 0 when botocore did not record one."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def translate(exc: BaseException, what: str, where: str, *, object_lock: bool) -> StorageError:
    """The preserve.core.errors form of a botocore/urllib3 failure of ``what`` (e.g. "upload of
    'a/b'") on ``where`` (target, endpoint and bucket); ``object_lock``: the target asks for
    Object Lock, which explains an InvalidRequest on a bucket without it."""
    if isinstance(exc, bex.ClientError):
        code = error_code(exc)
        status = http_status(exc)
        text = f"{what} on {where} failed: {code or status} {exc.response.get('Error', {}).get('Message', '')}".rstrip()
        if code == "NoSuchBucket":
            return StorageUnavailable(f"{what} on {where} failed: the bucket does not exist")
        if code == "NoSuchUpload":  # aborted under us (lifecycle rule, another process)
            return StorageUnavailable(f"{text} (the multipart upload was aborted meanwhile)")
        if code in DIGEST_CODES:
            return VerificationError(f"{text}: the server received different bytes than we sent")
        if code in MISSING_CODES or status == 404:
            return ObjectMissing(text)
        if code in CREDENTIAL_CODES or status in (401, 403):
            return StorageUnavailable(f"{text} (credentials refused or not permitted)")
        if code in TRANSIENT_CODES or status >= 500:
            return StorageUnavailable(f"{text} (still failing after retries)")
        if code == "InvalidRequest" and object_lock:
            text += " (Object Lock was requested: does the bucket have Object Lock enabled?)"
        return StorageError(text)
    if isinstance(exc, bex.FlexibleChecksumError):
        return VerificationError(f"{what} on {where}: the bytes received do not match the server's checksum: {exc}")
    if isinstance(exc, UNAVAILABLE_EXCEPTIONS):
        return StorageUnavailable(f"{what} on {where} failed: {exc}")
    return StorageError(f"{what} on {where} failed: {exc}")


def retry_reason(exc: BaseException, *, resend: bool) -> str | None:
    """Why trying again may help (None: it will not). ``resend``: the request carries a body the
    server checks against our SHA-256, so a digest rejection means bytes were damaged in transit
    and sending the same buffer again is the cure."""
    if isinstance(exc, bex.ClientError):
        code = error_code(exc)
        status = http_status(exc)
        if resend and code in DIGEST_CODES:
            return f"{code}: the server received other bytes than we sent"
        if code in TRANSIENT_CODES or code in THROTTLING_CODES or status >= 500 or status == THROTTLING_STATUS:
            return f"{code or status}"
        return None
    if isinstance(exc, RETRIED_EXCEPTIONS):
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def translated(what: str, where: str, *, object_lock: bool) -> Iterator[None]:
    """The boundary: botocore/urllib3 exceptions leave as preserve.core.errors types (see
    `translate`); preserve's own errors pass unchanged."""
    try:
        yield
    except PreserveError:
        raise
    except BOTO_ERRORS as exc:
        raise translate(exc, what, where, object_lock=object_lock) from exc
