"""Object stores behind one protocol (S3-compatible buckets, filesystem directories), the factory
that opens one per configured target, and the agent recorded in events about them. Side effects:
none until a store is used.

Architecture: `base` holds the ObjectStore protocol and the key rules every store shares; `local`
and the `s3` package implement it; `crypt` wraps either for a target with ``encryption = "age"``; `replication` puts an AIP on every target and back-fills new
ones. A new backend implements ObjectStore (raising only preserve.core.errors types) and gets a
branch in `open_store` and `store_agent`."""

from __future__ import annotations

from preserve import tools
from preserve.config import Settings, TargetSettings
from preserve.core.errors import ConfigError
from preserve.core.model import Agent
from preserve.storage.base import ObjectInfo, ObjectStore, check_key

__all__ = ["ObjectInfo", "ObjectStore", "check_key", "open_store", "store_agent"]


def open_store(settings: Settings, target: TargetSettings) -> ObjectStore:
    """The store for one target, with its own client and credentials (never shared between
    targets); for an encrypted target, the EncryptedStore over it (its ``raw`` is the target as
    stored). Raises ConfigError for an unusable target configuration."""
    inner = _plain_store(settings, target)
    if not target.encrypted:
        return inner
    from preserve.storage.credentials import age_identity_file
    from preserve.storage.crypt import EncryptedStore

    return EncryptedStore(inner, target, age_identity_file(target))


def _plain_store(settings: Settings, target: TargetSettings) -> ObjectStore:
    if target.kind == "s3":
        from preserve.storage.s3 import S3Store  # boto3 is only imported when an S3 target is used

        return S3Store(settings, target)
    if target.kind == "filesystem":
        from preserve.storage.local import LocalStore

        return LocalStore(settings, target)
    raise ConfigError(f"target {target.name!r}: unknown kind {target.kind!r}")


def store_agent(kind: str) -> Agent:
    """The agent of events about a target of this kind (replication, back-fill): boto3 and its
    version for S3 targets, preserve itself for filesystem targets."""
    return tools.python_agent("boto3") if kind == "s3" else tools.preserve_agent()
