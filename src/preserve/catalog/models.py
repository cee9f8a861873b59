"""SQLAlchemy table definitions of the catalog, the archive's record of truth. Works unchanged on
SQLite (default) and PostgreSQL. Declarations only; no I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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

    aip: Mapped[AipRow] = relationship(back_populates="objects")


class AccessRow(Base):
    """A published access copy (proxy, poster) of an AIP."""

    __tablename__ = "access_copies"
    __table_args__ = (UniqueConstraint("aip_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aip_id: Mapped[str] = mapped_column(ForeignKey("aips.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # proxy | poster | contact sheet
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
