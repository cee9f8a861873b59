"""Object Lock on S3 targets: the retention every upload asks for, lengthening it on a resumed
upload, and telling which versions of a key may not be deleted and why. Side effects: `extend`
and `lock_of` make requests (retention, HEAD) through the connection; the rest is pure.

preserve never deletes a copy under Object Lock: a delete that meets retention or a legal hold
is refused as a whole (ObjectLocked) with the date it ends and what can be done."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import botocore.exceptions as bex

from preserve.core.errors import ObjectLocked
from preserve.core.model import utcnow
from preserve.storage.base import ObjectInfo
from preserve.storage.s3.client import Connection, ObjectAddress, Tally, version_args
from preserve.storage.s3.verify import check_retention, object_info

#: (mode, until) of a version that may not be deleted now; until is None for a legal hold
Lock = tuple[str, dt.datetime | None]


def retain_until(days: int, now: dt.datetime) -> dt.datetime:
    """The end of a retention of ``days`` from ``now``, in whole seconds (servers keep retention
    at second precision)."""
    return (now + dt.timedelta(days=days)).replace(microsecond=0)


def extend(
    conn: Connection,
    obj: ObjectAddress,
    mode: Literal["GOVERNANCE", "COMPLIANCE"],
    days: int,
    info: ObjectInfo,
    tally: Tally,
) -> ObjectInfo:
    """A resumed upload got the retention asked for when it began; lengthen it to ``days`` from
    now (lengthening is allowed in both modes), then check the server shows it."""
    until = retain_until(days, utcnow())
    if info.lock_mode != mode or info.lock_until is None or info.lock_until < until:
        extra = version_args(info.version_id)
        conn.call(
            f"retention of {obj.key!r}",
            lambda: conn.client.put_object_retention(
                Bucket=conn.bucket,
                Key=obj.full,
                Retention={"Mode": mode, "RetainUntilDate": until},
                **extra,
            ),
            tally,
        )
        head = conn.call(
            f"verification of {obj.key!r}",
            lambda: conn.client.head_object(Bucket=conn.bucket, Key=obj.full, ChecksumMode="ENABLED", **extra),
            tally,
        )
        info = object_info(obj.key, head)
    check_retention(obj.uri, info, mode, until)
    return info


def lock_in_force(head: Mapping[str, Any], now: dt.datetime) -> Lock | None:
    """(mode, until) when the version this HEAD describes may not be deleted at ``now``:
    retention in force, or a legal hold ("LEGAL HOLD", None); None when it may."""
    if head.get("ObjectLockLegalHoldStatus") == "ON":
        return "LEGAL HOLD", None
    until: dt.datetime | None = head.get("ObjectLockRetainUntilDate")
    if head.get("ObjectLockMode") and until is not None and until > now:
        return str(head["ObjectLockMode"]), until
    return None


def lock_of(conn: Connection, full: str, version_id: str) -> Lock | None:
    """The lock on one version (see `lock_in_force`); None also when it cannot be read."""
    try:
        # retried, but not translated: a refusal means "not locked" here, and the caller's
        # boundary translates anything else
        head = conn.retried(
            f"lock check of {full!r}",
            lambda: conn.client.head_object(Bucket=conn.bucket, Key=full, VersionId=version_id),
        )
    except bex.ClientError:
        return None
    return lock_in_force(head, utcnow())


def locked_error(uri: str, versions: int, locks: Sequence[Lock]) -> ObjectLocked:
    """The refusal to delete ``uri``: how many of its versions are locked, until when, and what
    can (and cannot) be done about it."""
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
        f"refused to delete {uri}: {len(locks)} of its {max(versions, len(locks))} "
        f"version(s) are under Object Lock ({', '.join(modes)}){when}; nothing was deleted",
        advice=advice,
    )
