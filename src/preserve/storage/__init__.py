"""Object stores behind one protocol (S3-compatible buckets, filesystem directories) and the
factory that opens one per configured target. Side effects: none until a store is used."""

from __future__ import annotations

from preserve.config import Settings, TargetSettings
from preserve.core.errors import ConfigError
from preserve.storage.base import ObjectInfo, ObjectStore, check_key

__all__ = ["ObjectInfo", "ObjectStore", "check_key", "open_store"]


def open_store(settings: Settings, target: TargetSettings) -> ObjectStore:
    """The store for one target, with its own client and credentials (never shared between
    targets). Raises ConfigError for an unusable target configuration."""
    if target.kind == "s3":
        from preserve.storage.s3 import S3Store  # boto3 is only imported when an S3 target is used

        return S3Store(settings, target)
    if target.kind == "filesystem":
        from preserve.storage.local import LocalStore

        return LocalStore(settings, target)
    raise ConfigError(f"target {target.name!r}: unknown kind {target.kind!r}")
