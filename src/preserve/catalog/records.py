"""The values the catalog takes and returns (stored objects, replicas, access copies, AIP views, new
AIPs, submission states, alerts, AIP keys): frozen dataclasses, so ORM rows never leave the catalog. No I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from preserve.core.model import AccessLevel, AipStatus, Event, PayloadFile, ReplicaStatus, SubmissionStatus


@dataclass(frozen=True)
class StoredObject:
    target: str
    key: str
    size: int
    sha256: str
    verified_at: dt.datetime | None
    version_id: str = ""
    lock_mode: str = ""
    lock_until: dt.datetime | None = None
    status: ReplicaStatus = ReplicaStatus.VERIFIED
    aip_id: str = ""
    #: on an encrypted target: the opaque key the target holds, and the ciphertext's size and
    #: SHA-256; ``key``, ``size`` and ``sha256`` stay the plaintext's (the bag member's)
    stored_key: str = ""
    stored_size: int | None = None
    stored_sha256: str = ""

    @property
    def encrypted(self) -> bool:
        return self.stored_key != ""

    @property
    def physical_key(self) -> str:
        """The key of the bytes on the target (the opaque one, when encrypted)."""
        return self.stored_key or self.key

    @property
    def physical_size(self) -> int:
        """The size of the bytes on the target (the ciphertext's, when encrypted)."""
        return self.stored_size if self.stored_size is not None else self.size

    @property
    def physical_sha256(self) -> str:
        """The SHA-256 of the bytes on the target (the ciphertext's, when encrypted)."""
        return self.stored_sha256 or self.sha256


@dataclass(frozen=True)
class ReplicaRecord:
    target: str
    uri: str
    status: ReplicaStatus
    verified_at: dt.datetime | None
    objects: tuple[StoredObject, ...] = ()


@dataclass(frozen=True)
class AccessCopy:
    kind: str  # proxy | poster | contact sheet
    target: str
    key: str
    uri: str
    size: int
    sha256: str


@dataclass(frozen=True)
class FileView:
    path: str
    size: int
    sha256: str
    sha512: str
    role: str
    format_name: str = ""
    format_registry_key: str = ""
    #: the original file name's bytes (hex) when they were not valid UTF-8; "" otherwise
    original_name_hex: str = ""


@dataclass(frozen=True)
class VersionRecord:
    """One version of an AIP: 1 is the bag as ingested, each `preserve amend` adds the next.
    ``members`` maps every bag member path of the version to the object key that holds it (the
    same key on every target); sizes and SHA-256s are the objects'."""

    number: int
    created: dt.datetime
    reason: str  # "ingest" for version 1
    operator: str  # "" for version 1
    members: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AipView:
    id: str
    title: str
    created: dt.datetime
    status: AipStatus
    access_level: AccessLevel
    submission_name: str
    payload_oxum: str
    files: tuple[FileView, ...]
    replicas: tuple[ReplicaRecord, ...]
    access: tuple[AccessCopy, ...]
    events: tuple[Event, ...]
    #: oldest first; every stored AIP has at least version 1
    versions: tuple[VersionRecord, ...] = ()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def version(self) -> int:
        """The newest version's number (1 for an AIP never amended)."""
        return max((v.number for v in self.versions), default=1)


@dataclass(frozen=True)
class NewAip:
    """Everything the catalog needs to record a freshly stored AIP, in one transaction."""

    id: str
    title: str
    submission_name: str
    access_level: AccessLevel
    payload_oxum: str
    files: Sequence[PayloadFile]
    replicas: Sequence[ReplicaRecord]
    access: Sequence[AccessCopy]
    events: Sequence[Event]
    formats: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (format name, puid)
    #: identity of the submitted content (see content_key); "" derives it from all files
    content_key: str = ""


@dataclass(frozen=True)
class NewVersion:
    """What `preserve amend` records, in one transaction: the version (its number the current one
    + 1), the payload files it added or changed, its new objects on every target, its events and
    the AIP's new title (None: unchanged)."""

    aip_id: str
    version: VersionRecord
    files: Sequence[FileView]
    objects: Sequence[StoredObject]
    events: Sequence[Event]
    title: str | None = None


@dataclass(frozen=True)
class RebuiltAip:
    """What `preserve catalog rebuild` imports for one AIP, in one transaction: its state as the
    newest event record carried it (`Catalog.aip_state`, or `snapshot.default_state`), the current
    version's files, every version, every object on every target as the inventory pass found it,
    and its events (deduplicated, oldest first)."""

    state: Mapping[str, Any]
    files: Sequence[FileView]
    versions: Sequence[VersionRecord]
    objects: Sequence[StoredObject]
    events: Sequence[Event]


@dataclass(frozen=True)
class SubmissionState:
    name: str
    status: SubmissionStatus
    aip_id: str
    reason: str
    claimed_by: str
    lease_until: dt.datetime | None
    attempts: int


@dataclass(frozen=True)
class AlertRecord:
    key: str
    kind: str  # ingest-failed | damage | at-risk | test (named in preserve.operations.alerts)
    subject: str
    summary: str
    detail: dict[str, Any]
    created: dt.datetime
    attempts: int
    delivered: dt.datetime | None
    last_error: str


@dataclass(frozen=True)
class AipKeyRecord:
    """The key of one AIP on one encrypted target (`Catalog.record_key`): its public half
    (``recipient``, "age1..."), the key object's bytes (the AIP's identity wrapped to the target's
    ``recipients``) and their SHA-256; ``wrapped`` is empty once the key was destroyed."""

    aip_id: str
    target: str
    recipient: str
    wrapped: bytes
    sha256: str
    recipients: tuple[str, ...]
    created_at: dt.datetime
    verified_at: dt.datetime | None = None
    destroyed_at: dt.datetime | None = None

    @property
    def destroyed(self) -> bool:
        return self.destroyed_at is not None
