"""The boto3 client of one S3 target, and `Connection`: the one way its requests are sent, under
the library's one retry policy (preserve.core.retry) and translated at the boundary. Side effects:
creating a client reads the target's credentials (environment, AWS profile or the embedded
server's file); `Connection.call` makes the network requests it is given and sleeps between
tries.

One retry layer: botocore's own retries are switched off (``total_max_attempts`` 1), so every
request is tried exactly ``replication.max_attempts`` times at most, with the waits of
``replication.retry_backoff_seconds`` (doubling, with jitter, at most 60 s). Before that,
botocore's standard mode retried each request up to three more times inside each of preserve's
tries, unseen by the tally of retries and by the documented ``max_attempts``. What is retried is
the union of what both layers retried (see errors.retry_reason)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, TypeVar

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from preserve.config import ReplicationSettings, Settings, TargetSettings
from preserve.core.errors import ConfigError
from preserve.core.retry import Retry, RetryPolicy
from preserve.storage.credentials import credentials_for
from preserve.storage.s3.errors import BOTO_ERRORS, retry_reason, translated

if TYPE_CHECKING:  # the stubs (boto3-stubs[s3]) are a development dependency, not needed at run time
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BACKOFF = 60.0  # seconds: the longest wait between two tries of one request
JITTER = 0.25  # each wait is 75-100 % of the doubled delay


def retry_policy(replication: ReplicationSettings) -> RetryPolicy:
    """The retry policy the ``[replication]`` settings ask for."""
    return RetryPolicy(
        attempts=max(1, replication.max_attempts),
        base_delay=replication.retry_backoff_seconds,
        max_delay=MAX_BACKOFF,
        jitter=JITTER,
    )


def client_config(
    target: TargetSettings, *, connect_timeout: float, read_timeout: float, parallel_uploads: int
) -> Config:
    """botocore's configuration for one target: no retries of its own (see the module docstring),
    our own checksums only, and a connection pool for the parallel uploads."""
    return Config(
        s3={
            "addressing_style": target.addressing_style,
            # Over plain http botocore would otherwise read and hash every body once more just
            # to sign it; the signed x-amz-checksum-sha256 header already protects the bytes.
            "payload_signing_enabled": False,
        },
        # one try per call: Connection.call is the only retry layer (an explicit value here also
        # overrides AWS_MAX_ATTEMPTS / AWS_RETRY_MODE from the environment)
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        tcp_keepalive=True,
        max_pool_connections=max(10, parallel_uploads + 2),
        # we send our own SHA-256 values; no CRC32 computed behind our back
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def make_client(
    settings: Settings, target: TargetSettings, config: Config, credentials: Mapping[str, str] | None = None
) -> S3Client:
    """A client of its own for this target, with the target's own credentials (never shared):
    ``credentials`` as boto3 session keywords (an access key and secret, or a profile name),
    by default the ones the settings find for it. Raises ConfigError when the client cannot be
    configured."""
    if credentials is None:
        credentials = credentials_for(settings, target)
    try:
        session = boto3.session.Session(
            aws_access_key_id=credentials.get("aws_access_key_id"),
            aws_secret_access_key=credentials.get("aws_secret_access_key"),
            profile_name=credentials.get("profile_name"),
        )
        return session.client(
            "s3", endpoint_url=settings.endpoint_of(target) or None, region_name=target.region, config=config
        )
    except bex.ProfileNotFound as exc:
        raise ConfigError(f"target {target.name!r}: AWS profile {target.profile!r} not found") from exc
    except (bex.BotoCoreError, ValueError) as exc:
        raise ConfigError(f"target {target.name!r}: cannot configure the S3 client: {exc}") from exc


class VersionArgs(TypedDict, total=False):
    """The keyword arguments that address one version of an object (none: the latest)."""

    VersionId: str


def version_args(version_id: str | None) -> VersionArgs:
    """Address the version we wrote. "null" is what an unversioned bucket reports; some servers
    refuse it as a versionId, and there is only one version to address anyway."""
    return {"VersionId": version_id} if version_id and version_id != "null" else {}


@dataclass(frozen=True)
class ObjectAddress:
    """One object as the store names it: ``key`` relative to the target's prefix (for messages
    and ObjectInfo), ``full`` the S3 key, ``uri`` for logs and errors."""

    key: str
    full: str
    uri: str


@dataclass
class Tally:
    """Counters of one put_file or get_file (threads share a store, so never on the store)."""

    retries: int = 0


class Connection:
    """A target's client and bucket, and `call`, through which every request to it goes.

    A server that has not answered a single request of this connection yet is not waited for:
    a target that is simply down fails fast, one that goes away mid-transfer is waited for."""

    def __init__(
        self,
        client: S3Client,
        *,
        name: str,
        bucket: str,
        endpoint: str | None,
        object_lock: bool,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.name = name
        self.bucket = bucket
        self.where = f"{name} ({endpoint or 'AWS'}, bucket {bucket})"
        self.object_lock = object_lock
        self.policy = policy
        self._sleep = sleep
        self.contacted = False  # has the server answered any request of this connection?
        client.meta.events.register("after-call.s3", self._answered)

    def _answered(self, **_: object) -> None:
        """botocore hook: a response (any status, errors included) came back, so the server is there."""
        self.contacted = True

    def errors(self, what: str) -> AbstractContextManager[None]:
        """The boundary for ``what``: botocore/urllib3 exceptions leave as preserve's own."""
        return translated(what, self.where, object_lock=self.object_lock)

    def call(
        self,
        what: str,
        request: Callable[[], T],
        tally: Tally | None = None,
        *,
        resend: bool = False,
        on_retry: Callable[[Retry], None] | None = None,
    ) -> T:
        """``request()`` under the retry policy (`retried`); the last failure, and any other,
        leaves as a preserve.core.errors type."""
        with self.errors(what):
            return self.retried(what, request, tally, resend=resend, on_retry=on_retry)

    def retried(
        self,
        what: str,
        request: Callable[[], T],
        tally: Tally | None = None,
        *,
        resend: bool = False,
        on_retry: Callable[[Retry], None] | None = None,
    ) -> T:
        """``request()``, tried again under the retry policy while it fails in a way another try
        may cure (5xx, throttling, timeouts, dropped connections; with ``resend``, a body the
        server found damaged), once the server has answered at all. Each retry is logged (or
        told to ``on_retry``) and counted in ``tally``. The last failure leaves untranslated:
        use `call` unless the caller's own boundary translates it."""

        def worth_another_try(exc: Exception) -> bool:
            return self.contacted and retry_reason(exc, resend=resend) is not None

        def retrying(retry: Retry) -> None:
            if on_retry is not None:
                on_retry(retry)
            else:
                log.warning(
                    "%s on %s failed (%s); try %d of %d in %.1f s",
                    what,
                    self.name,
                    retry_reason(retry.error, resend=resend),
                    retry.attempt + 1,
                    retry.attempts,
                    retry.delay,
                )
            if tally is not None:
                tally.retries += 1

        return self.policy.call(
            request, retry_on=BOTO_ERRORS, retry_if=worth_another_try, on_retry=retrying, sleep=self._sleep
        )

    def close(self) -> None:
        self.client.close()
