"""Plain values shared by every module: digests, file records, events and their vocabulary.
No I/O here."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any


def utcnow() -> dt.datetime:
    """The one clock; tests may monkeypatch it to simulate time passing."""
    return dt.datetime.now(dt.UTC)


class EventType(str, enum.Enum):
    """PREMIS event types (from the Library of Congress eventType vocabulary where one exists)."""

    INGESTION = "ingestion"
    MESSAGE_DIGEST_CALCULATION = "message digest calculation"
    FIXITY_CHECK = "fixity check"
    FORMAT_IDENTIFICATION = "format identification"
    METADATA_EXTRACTION = "metadata extraction"
    VALIDATION = "validation"
    VIRUS_CHECK = "virus check"
    NORMALIZATION = "normalization"
    CREATION = "creation"  # derivative (access copy) created
    METADATA_MODIFICATION = "metadata modification"  # scrubbing of access copies
    PACKING = "packing"  # bag built
    REPLICATION = "replication"
    REPAIR = "repair"  # PREMIS "recovery"
    ACCESSION = "accession"  # source moved out of the ingest folder
    QUARANTINE = "quarantine"
    DUPLICATE = "duplicate detection"
    ACCESS_DECISION = "access decision"
    RESTORE = "dissemination"
    FILENAME_CHANGE = "filename change"
    DELETION = "deletion"
    DEACCESSION = "deaccession"  # a request to remove an AIP, its approval by a second person, its end
    ENCRYPTION = "encryption"  # an AIP's key re-wrapped to an encrypted target's recipients (keys rewrap)


class Outcome(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    WARNING = "warning"
    NOT_PERFORMED = "not performed"


@dataclass(frozen=True)
class Agent:
    """Who or what performed an event: a tool with its version, or a person/role."""

    name: str
    version: str = ""
    kind: str = "software"  # software | person | organization

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()


@dataclass(frozen=True)
class Event:
    type: EventType
    outcome: Outcome
    agent: Agent
    detail: str = ""
    at: dt.datetime = field(default_factory=utcnow)
    #: the file (payload-relative path) or replica the event is about, if not the whole AIP
    subject: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Digests:
    """Hex digests of one byte stream, keyed by hashlib algorithm name, plus its length."""

    size: int
    values: dict[str, str]

    @property
    def sha256(self) -> str:
        return self.values["sha256"]

    @property
    def sha512(self) -> str:
        return self.values["sha512"]


class Role(str, enum.Enum):
    """What a file in a submission is, which decides how it is treated."""

    VIDEO = "video"
    AUDIO = "audio"
    SUBTITLE = "subtitle"
    IMAGE = "image"
    DOCUMENT = "document"
    SIDECAR = "sidecar"
    OTHER = "other"


@dataclass(frozen=True)
class PayloadFile:
    """One original file, as it sits in the bag's payload (``data/<path>``)."""

    path: str  # payload-relative, POSIX separators, NFC
    digests: Digests
    role: Role = Role.OTHER
    original_name_bytes: bytes | None = None  # set when the on-disk name differed (NFD, ...)

    @property
    def size(self) -> int:
        return self.digests.size


# -- status words recorded in the catalog -------------------------------------------------------
# StrEnum: each member is the very string stored in the database (no migration) and compares equal
# to it, and str()/f-strings give that word too, so the CLI's tables and JSON read as before.


class SubmissionStatus(enum.StrEnum):
    """Where a submission is in the ingest folder's life (the catalog's submission rows)."""

    NEW = "new"  # a claim's freshly inserted row, taken in the same transaction
    INGESTING = "ingesting"  # claimed by a worker that holds a lease on it
    STORED = "stored"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"


class AipStatus(enum.StrEnum):
    """The state of a whole AIP; every state but STORED and DEACCESSIONED means "act now" (set by
    audits and repair)."""

    STORED = "stored"
    AT_RISK = "at_risk"
    DAMAGED = "damaged"
    LOST = "lost"
    #: removed from the archive by two people's decision; only its tombstone stays (not "act now")
    DEACCESSIONED = "deaccessioned"


class ReplicaStatus(enum.StrEnum):
    """The last known state of a copy: one stored object, or a whole replica (verified only while
    every one of its objects is)."""

    VERIFIED = "verified"
    DAMAGED = "damaged"
    MISSING = "missing"
    PENDING = "pending"


class AccessLevel(enum.StrEnum):
    """Who may see an AIP's access copies."""

    OPEN = "open"  # published
    RESTRICTED = "restricted"  # stored at the restricted location, not published
    EMBARGOED = "embargoed"  # held until a date, then published
    DARK = "dark"  # no access copies at all
