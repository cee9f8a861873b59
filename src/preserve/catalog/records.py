"""The values the catalog takes and returns (stored objects, replicas, access copies, AIP views, new
AIPs, submission states, alerts): frozen dataclasses, so ORM rows never leave the catalog. No I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
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

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


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
