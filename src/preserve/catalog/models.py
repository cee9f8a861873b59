"""SQLAlchemy table definitions of the catalog, the archive's record of truth. Works unchanged on
SQLite (default) and PostgreSQL. Declarations only; no I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class AipRow(Base):
    __tablename__ = "aips"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    submission_name: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(32), default="stored")  # stored | at_risk
    access_level: Mapped[str] = mapped_column(String(32), default="open")
    payload_oxum: Mapped[str] = mapped_column(String(64), default="")
    #: sha256 over the sorted (path, sha256) payload list: how a re-submission is recognised
    content_key: Mapped[str] = mapped_column(String(64), index=True, default="")
    #: how many times the AIP's state was read for an event record: each record carries its number,
    #: so a rebuild takes the newest state even when records were written out of order
    state_seq: Mapped[int] = mapped_column(Integer, default=0)

    files: Mapped[list[FileRow]] = relationship(
        back_populates="aip", cascade="all, delete-orphan", order_by="FileRow.path"
    )
    replicas: Mapped[list[ReplicaRow]] = relationship(
        back_populates="aip", cascade="all, delete-orphan", order_by="ReplicaRow.target"
    )
    objects: Mapped[list[ObjectRow]] = relationship(
        back_populates="aip", cascade="all, delete-orphan", order_by="(ObjectRow.target, ObjectRow.key)"
    )
    access: Mapped[list[AccessRow]] = relationship(back_populates="aip", cascade="all, delete-orphan")
    versions: Mapped[list[AipVersionRow]] = relationship(
        back_populates="aip", cascade="all, delete-orphan", order_by="AipVersionRow.number"
    )


class FileRow(Base):
    """One original (payload) file of an AIP."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("aip_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)  # bag-relative, e.g. data/objects/film.mov
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    sha512: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32), default="other")
    format_name: Mapped[str] = mapped_column(Text, default="")
    format_registry_key: Mapped[str] = mapped_column(String(64), default="")  # PRONOM PUID
    original_name_hex: Mapped[str] = mapped_column(Text, default="")

    aip: Mapped[AipRow] = relationship(back_populates="files")


class ReplicaRow(Base):
    """One copy of a whole AIP on one storage target."""

    __tablename__ = "replicas"
    __table_args__ = (UniqueConstraint("aip_id", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(128))
    uri: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))  # verified | damaged | missing | pending
    verified_at: Mapped[dt.datetime | None]

    aip: Mapped[AipRow] = relationship(back_populates="replicas")


class ObjectRow(Base):
    """One stored object (a payload or tag file of the bag) on one target: what audits re-read."""

    __tablename__ = "objects"
    __table_args__ = (UniqueConstraint("aip_id", "target", "key"), Index("ix_objects_due", "last_verified_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(Text)  # relative to the target's prefix
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="verified")
    last_verified_at: Mapped[dt.datetime | None]
    version_id: Mapped[str] = mapped_column(Text, default="")
    lock_mode: Mapped[str] = mapped_column(String(32), default="")
    lock_until: Mapped[dt.datetime | None]
    #: on an encrypted target: the opaque key the target holds the ciphertext under, and the
    #: ciphertext's size and SHA-256 (what an audit without any key re-reads against); ``key``,
    #: ``size`` and ``sha256`` stay the plaintext's. Empty (NULL) for a plaintext object.
    stored_key: Mapped[str] = mapped_column(Text, default="", server_default="")
    stored_size: Mapped[int | None] = mapped_column(BigInteger)
    stored_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")

    aip: Mapped[AipRow] = relationship(back_populates="objects")


class AccessRow(Base):
    """A stored access copy of an AIP (proxy, poster, contact sheet, text tracks, IIIF manifest,
    page); one per key (several text tracks share a kind)."""

    __tablename__ = "access_copies"
    __table_args__ = (UniqueConstraint("aip_id", "key", name="uq_access_copies_aip_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # proxy | poster | contact sheet | subtitles | manifest | page
    target: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(Text)
    uri: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))

    aip: Mapped[AipRow] = relationship(back_populates="access")


class EventRow(Base):
    """A preservation event. Rows are only ever added, never updated or deleted."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str | None] = mapped_column(String(64), index=True)
    submission: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime]
    agent_name: Mapped[str] = mapped_column(Text)
    agent_version: Mapped[str] = mapped_column(Text, default="")
    agent_kind: Mapped[str] = mapped_column(String(32), default="software")
    subject: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SubmissionRow(Base):
    """A submission's life in the ingest folder: claimed (with a lease), stored, quarantined or a
    duplicate. The claim gives the AIP id up front, so a crashed ingest is redone under the same
    id instead of leaving a second AIP."""

    __tablename__ = "submissions"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(String(32))  # ingesting | stored | quarantined | duplicate
    aip_id: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    claimed_by: Mapped[str] = mapped_column(Text, default="")
    lease_until: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class AlertRow(Base):
    """A notification to the operators (failed ingest, damage, AIP at risk). Written before it is
    delivered, so an alert that could not be sent stays visible (`preserve status`) and is retried;
    ``key`` makes the same condition alert once."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(512), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)  # ingest-failed | damage | at-risk
    subject: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[dt.datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")


class AccessChangeRow(Base):
    """An operator's decision to change an AIP's access level (a withdrawal is a change to dark),
    written as an intent before any copy is moved or removed: while it is pending nothing may
    publish the AIP against it, and housekeeping (or the next run) carries it out. The AIP's own
    access_level changes only once the copies are verified where the new level wants them."""

    __tablename__ = "access_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(String(64), index=True)
    from_level: Mapped[str] = mapped_column(String(32))
    to_level: Mapped[str] = mapped_column(String(32))
    until: Mapped[dt.date | None]  # the embargo date, for a change to embargoed
    reason: Mapped[str] = mapped_column(Text, default="")
    operator: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | done | superseded
    requested_at: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    #: what the last attempt removed, moved and found remaining
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: when the Prefect dashboard was cleaned of the AIP's ingest runs (withdrawals only)
    dashboard_cleaned_at: Mapped[dt.datetime | None]


class DeaccessionRow(Base):
    """A request to remove an AIP from the archive, its approval by a second person and, from then
    on, its tombstone: why, who asked, who approved, when, and the digests of every file it held.
    Never deleted (repository: `preserve.catalog.deaccessions`)."""

    __tablename__ = "deaccessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the request id (a UUID)
    aip_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # requested | cancelled | approved | completed
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[dt.datetime]
    approved_by: Mapped[str] = mapped_column(Text, default="")
    approved_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[str] = mapped_column(Text, default="")
    cancelled_at: Mapped[dt.datetime | None]
    #: access verified withdrawn everywhere (the first step of carrying it out)
    withdrawn_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    #: the AIP's files when it was approved: [{"path", "size", "sha256", "sha512"}, ...]
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class DeaccessionObjectRow(Base):
    """One object of a deaccessioned AIP on one replica, and its deletion: still to do, done (every
    version, verified absent), scheduled for the day its retention ends, or failed (retried by the
    audit). Moved here from `objects` on approval, so audits stop expecting it."""

    __tablename__ = "deaccession_objects"
    __table_args__ = (UniqueConstraint("deaccession_id", "target", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deaccession_id: Mapped[str] = mapped_column(ForeignKey("deaccessions.id", ondelete="CASCADE"), index=True)
    aip_id: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), default="")  # "" for an object the catalog never had
    version_id: Mapped[str] = mapped_column(Text, default="")
    lock_mode: Mapped[str] = mapped_column(String(32), default="")
    lock_until: Mapped[dt.datetime | None]
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | deleted | scheduled | failed
    due_at: Mapped[dt.datetime | None]  # scheduled: when the retention ends
    deleted_at: Mapped[dt.datetime | None]
    versions_deleted: Mapped[int] = mapped_column(Integer, default=0)
    method: Mapped[str] = mapped_column(Text, default="")  # how it went (see operations.deaccession)
    detail: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    checked_at: Mapped[dt.datetime | None]  # last time an audit looked for it
    #: the opaque key the target holds it under (an encrypted target); "" for a plaintext object
    stored_key: Mapped[str] = mapped_column(Text, default="", server_default="")


class AipKeyRow(Base):
    """The key of one AIP on one encrypted target: its public half (the age recipient its objects
    are encrypted to) and the key object, the AIP's age identity wrapped to the target's
    recipients, as stored beside the AIP. Not tied to the AIP row: when a deaccession destroys the
    key, the row stays (``wrapped`` emptied, ``destroyed_at`` set) as the record of it."""

    __tablename__ = "aip_keys"
    __table_args__ = (UniqueConstraint("aip_id", "target", name="uq_aip_keys_aip_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(Text)  # the AIP key's own public key, "age1..."
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)  # the key object's bytes; b"" once destroyed
    sha256: Mapped[str] = mapped_column(String(64))  # of ``wrapped`` as written
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)  # the target recipients it is wrapped to
    created_at: Mapped[dt.datetime]
    verified_at: Mapped[dt.datetime | None]  # when the key object on the target was last found intact
    destroyed_at: Mapped[dt.datetime | None]


class AipVersionRow(Base):
    """One version of an AIP: version 1 is the bag as ingested; each `preserve amend` adds one.
    ``members`` maps every bag member path of that version to the object key holding it (the same
    key on every target); sizes and digests are in `objects`. Rows are only ever added."""

    __tablename__ = "aip_versions"
    __table_args__ = (UniqueConstraint("aip_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    operator: Mapped[str] = mapped_column(Text, default="")
    members: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    aip: Mapped[AipRow] = relationship(back_populates="versions")


class JournalRecordRow(Base):
    """One object the journal wrote beside an AIP on one target: an event record (``kind``
    "events") or a version inventory ("version", with its number). Rows are only ever added."""

    __tablename__ = "journal_records"
    __table_args__ = (Index("ix_journal_records_aip_target", "aip_id", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # events | version
    version: Mapped[int | None] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer, default=0)
    written_at: Mapped[dt.datetime]


class EventExportRow(Base):
    """That an event is in an event record on a target (what is still to be written is every event
    of a stored AIP without a row here for that target)."""

    __tablename__ = "event_exports"
    __table_args__ = (UniqueConstraint("event_id", "target"), Index("ix_event_exports_target", "target", "event_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(128))
    record_id: Mapped[int] = mapped_column(ForeignKey("journal_records.id", ondelete="CASCADE"), index=True)


class RebuildRow(Base):
    """A `preserve catalog rebuild`: from which replica, when it began and ended, and its report.
    An unfinished one (``finished_at`` NULL) is resumed by the next run."""

    __tablename__ = "rebuilds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
