"""The catalog interface: the only code that talks to the database. It takes and returns plain
values; ORM rows never leave this module. Side effects: database reads and writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, func, make_url, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from preserve.catalog import schema
from preserve.catalog.models import (
    AccessRow,
    AipRow,
    AlertRow,
    EventRow,
    FileRow,
    ObjectRow,
    ReplicaRow,
    SubmissionRow,
)

if TYPE_CHECKING:
    from preserve.catalog.views import CatalogStatus
from preserve.core.errors import CatalogError
from preserve.core.model import Agent, Event, EventType, Outcome, PayloadFile, utcnow


# -- values ------------------------------------------------------------------------------------
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
    status: str = "verified"
    aip_id: str = ""


@dataclass(frozen=True)
class ReplicaRecord:
    target: str
    uri: str
    status: str
    verified_at: dt.datetime | None
    objects: tuple[StoredObject, ...] = ()


@dataclass(frozen=True)
class AccessCopy:
    kind: str
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
    status: str
    access_level: str
    submission_name: str
    payload_oxum: str
    files: tuple[FileView, ...]
    replicas: tuple[ReplicaRecord, ...]
    access: tuple[AccessCopy, ...]
    events: tuple[Event, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """The `preserve show --json` contract."""
        return {
            "id": self.id,
            "title": self.title,
            "created": self.created.isoformat(),
            "status": self.status,
            "access_level": self.access_level,
            "size": self.size,
            "files": [
                {
                    "path": f.path,
                    "size": f.size,
                    "sha256": f.sha256,
                    "sha512": f.sha512,
                    "role": f.role,
                    "format": f.format_name,
                    "puid": f.format_registry_key,
                }
                for f in self.files
            ],
            "replicas": [
                {
                    "name": r.target,
                    "uri": r.uri,
                    "status": r.status,
                    "verified_at": r.verified_at.isoformat() if r.verified_at else None,
                }
                for r in self.replicas
            ],
            "access": [{"kind": a.kind, "uri": a.uri, "size": a.size, "sha256": a.sha256} for a in self.access],
            "events": [event_json(e) for e in self.events],
        }


def event_json(e: Event) -> dict[str, Any]:
    return {
        "type": e.type.value,
        "outcome": e.outcome.value,
        "at": e.at.isoformat(),
        "agent": str(e.agent),
        "detail": e.detail,
        "subject": e.subject,
    }


@dataclass(frozen=True)
class NewAip:
    """Everything the catalog needs to record a freshly stored AIP, in one transaction."""

    id: str
    title: str
    submission_name: str
    access_level: str
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
    status: str
    aip_id: str
    reason: str
    claimed_by: str
    lease_until: dt.datetime | None
    attempts: int


def content_key(files: Sequence[PayloadFile]) -> str:
    """Identity of a submission's content: the same files (names and bytes) give the same key."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.digests.sha256}\n".encode())
    return h.hexdigest()


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite drops tzinfo; everything in preserve is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _event_from_row(r: EventRow) -> Event:
    return Event(
        type=EventType(r.type),
        outcome=Outcome(r.outcome),
        agent=Agent(r.agent_name, r.agent_version, r.agent_kind),
        detail=r.detail,
        at=_aware(r.at) or utcnow(),
        subject=r.subject,
        extra=dict(r.extra or {}),
    )


def _event_row(e: Event, aip_id: str | None, submission: str = "") -> EventRow:
    return EventRow(
        aip_id=aip_id,
        submission=submission,
        type=e.type.value,
        outcome=e.outcome.value,
        at=e.at,
        agent_name=e.agent.name,
        agent_version=e.agent.version,
        agent_kind=e.agent.kind,
        subject=e.subject,
        detail=e.detail,
        extra=dict(e.extra),
    )


class Catalog:
    """Repository over the catalog database (SQLite by default, PostgreSQL at scale)."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            sqlite = parsed.get_backend_name() == "sqlite"
            self.engine: Engine = create_engine(
                url, future=True, pool_pre_ping=True, connect_args={"timeout": 30} if sqlite else {}
            )
            if url.startswith("sqlite"):
                event.listen(self.engine, "connect", _sqlite_pragmas)
                event.listen(self.engine, "begin", _sqlite_begin)
            schema.upgrade(self.engine)  # Alembic migrations to head (never create_all)
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot open catalog {url}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: write transactions: BEGIN IMMEDIATE on SQLite, so two processes never both read and
        #: then fail to upgrade to a write lock; PostgreSQL uses row locks (FOR UPDATE) instead
        self._write_sessions = sessionmaker(self.engine.execution_options(preserve_write=True), expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self) -> Session:
        return self._sessions()

    def _tx(self) -> _Tx:
        return _Tx(self)

    # -- submissions: claims and outcomes -----------------------------------------------------
    def claim_submission(
        self,
        name: str,
        worker: str,
        lease_seconds: float,
        now: dt.datetime | None = None,
        holder_is_dead: Callable[[str], bool] = lambda _holder: False,
    ) -> SubmissionState | None:
        """Take a submission for ingest, or None if another live worker holds it or it is done.
        A previous claim whose lease expired, or whose holder is known dead, is taken over,
        keeping its AIP id, so a crashed ingest is redone rather than duplicated."""
        now = now or utcnow()
        with self._tx() as s:
            # Insert-if-absent, then lock the row: on PostgreSQL two workers on two machines
            # serialise on the row lock (SELECT ... FOR UPDATE) and the second sees the first's
            # claim; on SQLite the write transaction (BEGIN IMMEDIATE) serialises them.
            s.execute(
                _insert_ignore(s, SubmissionRow).values(
                    name=name,
                    status="new",
                    aip_id=str(uuid.uuid4()),
                    claimed_by="",
                    reason="",
                    updated_at=now,
                    attempts=0,
                )
            )
            row = s.get(SubmissionRow, name, with_for_update=True, populate_existing=True)
            assert row is not None
            if row.status == "new":
                pass
            elif (
                row.status == "ingesting"
                and row.claimed_by != worker
                and (_aware(row.lease_until) or now) > now
                and not holder_is_dead(row.claimed_by)
            ):
                return None
            elif row.status in ("stored", "duplicate"):
                return None
            row.status = "ingesting"
            row.claimed_by = worker
            row.lease_until = now + dt.timedelta(seconds=lease_seconds)
            row.updated_at = now
            row.attempts = (row.attempts or 0) + 1
            row.reason = ""
            s.flush()
            return _submission_state(row)

    def renew_lease(self, name: str, worker: str, lease_seconds: float) -> None:
        with self._tx() as s:
            row = s.get(SubmissionRow, name)
            if row is not None and row.claimed_by == worker:
                row.lease_until = utcnow() + dt.timedelta(seconds=lease_seconds)

    def finish_submission(self, name: str) -> None:
        """Forget a submission once its source has left the ingest folder (the AIP and the events
        keep its history), so a later, different drop under the same name is a new submission."""
        with self._tx() as s:
            row = s.get(SubmissionRow, name)
            if row is not None:
                s.delete(row)

    def submission(self, name: str) -> SubmissionState | None:
        with self._session() as s:
            row = s.get(SubmissionRow, name)
            return _submission_state(row) if row else None

    def submissions(self, status: str | None = None) -> list[SubmissionState]:
        with self._session() as s:
            q = select(SubmissionRow).order_by(SubmissionRow.updated_at)
            if status:
                q = q.where(SubmissionRow.status == status)
            return [_submission_state(r) for r in s.scalars(q)]

    def mark_quarantined(self, name: str, reason: str, events: Sequence[Event], aip_id: str | None = None) -> None:
        with self._tx() as s:
            row = s.get(SubmissionRow, name)
            if row is None:
                row = SubmissionRow(name=name, aip_id=aip_id or "", updated_at=utcnow(), attempts=1)
                s.add(row)
            row.status, row.reason, row.updated_at, row.lease_until = "quarantined", reason, utcnow(), None
            s.add_all(_event_row(e, None, name) for e in events)

    def mark_duplicate(self, name: str, existing_aip: str, events: Sequence[Event]) -> None:
        with self._tx() as s:
            row = s.get(SubmissionRow, name)
            if row is None:
                row = SubmissionRow(name=name, updated_at=utcnow(), attempts=1)
                s.add(row)
            row.status, row.aip_id, row.reason = "duplicate", existing_aip, f"same content as AIP {existing_aip}"
            row.updated_at, row.lease_until = utcnow(), None
            s.add_all(_event_row(e, existing_aip, name) for e in events)

    # -- AIPs ----------------------------------------------------------------------------------
    def record_aip(self, aip: NewAip, *, claimed_by: str | None = None) -> None:
        """Write a stored AIP, its files, verified replicas, access copies and events, and mark its
        submission stored, all in one transaction: the record of truth is written last and whole.
        With ``claimed_by``, the write happens only while that worker still holds the claim: a
        worker whose lease was taken over (it lost the catalog for a whole lease) must not record
        objects the new holder may already have swept."""
        for r in aip.replicas:
            if r.status == "verified" and r.verified_at is None:
                raise CatalogError(f"replica {r.target} marked verified without a verification time")
        now = utcnow()
        with self._tx() as s:
            if s.get(AipRow, aip.id) is not None:
                raise CatalogError(f"AIP {aip.id} is already recorded")
            row = AipRow(
                id=aip.id,
                title=aip.title,
                submission_name=aip.submission_name,
                created_at=now,
                status="stored",
                access_level=aip.access_level,
                payload_oxum=aip.payload_oxum,
                content_key=aip.content_key or content_key(aip.files),
            )
            for f in aip.files:
                fmt, puid = aip.formats.get(f.path, ("", ""))
                row.files.append(
                    FileRow(
                        path=f.path,
                        size=f.size,
                        sha256=f.digests.sha256,
                        sha512=f.digests.sha512,
                        role=f.role.value,
                        format_name=fmt,
                        format_registry_key=puid,
                        original_name_hex=(f.original_name_bytes or b"").hex(),
                    )
                )
            for r in aip.replicas:
                row.replicas.append(ReplicaRow(target=r.target, uri=r.uri, status=r.status, verified_at=r.verified_at))
                for o in r.objects:
                    row.objects.append(_object_row(o, r.target))
            for a in aip.access:
                row.access.append(
                    AccessRow(kind=a.kind, target=a.target, key=a.key, uri=a.uri, size=a.size, sha256=a.sha256)
                )
            s.add(row)
            s.add_all(_event_row(e, aip.id, aip.submission_name) for e in aip.events)
            sub = s.get(SubmissionRow, aip.submission_name, with_for_update=True)
            if claimed_by is not None and (sub is None or sub.claimed_by != claimed_by):
                raise CatalogError(
                    f"{aip.submission_name}: this worker no longer holds the claim "
                    f"(now {sub.claimed_by if sub else 'nobody'}); not recording AIP {aip.id}"
                )
            if sub is None:
                sub = SubmissionRow(name=aip.submission_name, updated_at=now, attempts=1)
                s.add(sub)
            sub.status, sub.aip_id, sub.updated_at, sub.lease_until, sub.reason = "stored", aip.id, now, None, ""

    def add_events(self, aip_id: str | None, events: Sequence[Event], submission: str = "") -> None:
        with self._tx() as s:
            s.add_all(_event_row(e, aip_id, submission) for e in events)

    def submission_events(self, submission: str) -> list[Event]:
        """Events recorded under a submission's name that belong to no AIP (quarantines, entries
        the watcher ignored, releases from quarantine), oldest first."""
        with self._session() as s:
            q = select(EventRow).where(EventRow.submission == submission, EventRow.aip_id.is_(None))
            return [_event_from_row(r) for r in s.scalars(q.order_by(EventRow.at, EventRow.id))]

    def get_aip(self, aip_id: str) -> AipView | None:
        with self._session() as s:
            row = s.get(AipRow, aip_id)
            if row is None:
                matches = list(s.scalars(select(AipRow).where(AipRow.id.startswith(aip_id)).limit(2)))
                row = matches[0] if len(matches) == 1 else None
            if row is None:
                return None
            events = s.scalars(
                select(EventRow)
                .where(
                    or_(
                        EventRow.aip_id == row.id,
                        (EventRow.submission == row.submission_name) & (EventRow.aip_id.is_(None)),
                    )
                )
                .order_by(EventRow.at, EventRow.id)
            )
            return _aip_view(row, [_event_from_row(e) for e in events])

    def list_aips(self) -> list[AipView]:
        with self._session() as s:
            rows = s.scalars(select(AipRow).order_by(AipRow.created_at))
            return [_aip_view(r, []) for r in rows]

    def find_by_content(self, key: str) -> str | None:
        with self._session() as s:
            return s.scalar(select(AipRow.id).where(AipRow.content_key == key).limit(1))

    def set_aip_status(self, aip_id: str, status: str) -> None:
        with self._tx() as s:
            row = s.get(AipRow, aip_id)
            if row is None:
                raise CatalogError(f"no AIP {aip_id}")
            row.status = status

    # -- access copies and access levels (embargo release) -------------------------------------
    def aip_ids_with_access_level(self, level: str) -> list[str]:
        with self._session() as s:
            return list(s.scalars(select(AipRow.id).where(AipRow.access_level == level).order_by(AipRow.created_at)))

    def replace_access(
        self, aip_id: str, copies: Sequence[AccessCopy], *, access_level: str, events: Sequence[Event] = ()
    ) -> None:
        """Record where an AIP's access copies now are and its new access level (an embargo
        released), with the events saying so, in one transaction."""
        with self._tx() as s:
            aip = s.get(AipRow, aip_id)
            if aip is None:
                raise CatalogError(f"no AIP {aip_id}")
            aip.access.clear()
            s.flush()
            for a in copies:
                aip.access.append(
                    AccessRow(kind=a.kind, target=a.target, key=a.key, uri=a.uri, size=a.size, sha256=a.sha256)
                )
            aip.access_level = access_level
            s.add_all(_event_row(e, aip_id) for e in events)

    # -- replicas and objects (audits, back-fill, repair) ---------------------------------------
    def objects(self, aip_id: str | None = None, target: str | None = None) -> list[StoredObject]:
        with self._session() as s:
            q = select(ObjectRow)
            if aip_id:
                q = q.where(ObjectRow.aip_id == aip_id)
            if target:
                q = q.where(ObjectRow.target == target)
            return [_stored_object(r) for r in s.scalars(q.order_by(ObjectRow.aip_id, ObjectRow.target, ObjectRow.key))]

    def record_object_check(
        self,
        aip_id: str,
        target: str,
        key: str,
        *,
        status: str,
        verified_at: dt.datetime | None,
        version_id: str | None = None,
        events: Sequence[Event] = (),
    ) -> None:
        """Record the outcome of a check of one object. ``verified_at`` is set only by a caller that
        has just compared the object's bytes with our SHA-256."""
        with self._tx() as s:
            row = s.scalar(
                select(ObjectRow).where(ObjectRow.aip_id == aip_id, ObjectRow.target == target, ObjectRow.key == key)
            )
            if row is None:
                raise CatalogError(f"no object {target}:{key} for AIP {aip_id}")
            row.status = status
            if verified_at is not None:
                row.last_verified_at = verified_at
            if version_id is not None:
                row.version_id = version_id
            s.add_all(_event_row(e, aip_id) for e in events)
            _refresh_replica(s, aip_id, target)

    def upsert_replica(self, aip_id: str, replica: ReplicaRecord, events: Sequence[Event] = ()) -> None:
        """Add (back-fill) or replace one replica of an existing AIP, with its objects."""
        with self._tx() as s:
            aip = s.get(AipRow, aip_id)
            if aip is None:
                raise CatalogError(f"no AIP {aip_id}")
            for r in list(aip.replicas):
                if r.target == replica.target:
                    aip.replicas.remove(r)
            for o in list(aip.objects):
                if o.target == replica.target:
                    aip.objects.remove(o)
            s.flush()
            aip.replicas.append(
                ReplicaRow(
                    target=replica.target, uri=replica.uri, status=replica.status, verified_at=replica.verified_at
                )
            )
            for o in replica.objects:
                aip.objects.append(_object_row(o, replica.target))
            s.add_all(_event_row(e, aip_id) for e in events)

    def events(self, aip_id: str | None = None, type: EventType | None = None) -> list[Event]:
        with self._session() as s:
            q = select(EventRow)
            if aip_id:
                q = q.where(EventRow.aip_id == aip_id)
            if type:
                q = q.where(EventRow.type == type.value)
            return [_event_from_row(r) for r in s.scalars(q.order_by(EventRow.at, EventRow.id))]

    def stats(self) -> dict[str, Any]:
        with self._session() as s:
            return {
                "aips": s.scalar(select(func.count()).select_from(AipRow)) or 0,
                "bytes": s.scalar(select(func.coalesce(func.sum(FileRow.size), 0))) or 0,
                "files": s.scalar(select(func.count()).select_from(FileRow)) or 0,
            }

    # -- operators: status, alerts, claims of dead workers (issue 7) ----------------------------
    def status(
        self, *, audit_interval_days: int = 90, min_verified_replicas: int = 1, now: dt.datetime | None = None
    ) -> CatalogStatus:
        """Everything `preserve status` shows, from aggregate queries."""
        from preserve.catalog.views import summarize

        with self._session() as s:
            return summarize(s, now or utcnow(), audit_interval_days, min_verified_replicas)

    def record_alert(self, key: str, kind: str, subject: str, summary: str, detail: dict[str, Any]) -> bool:
        """Write an alert before delivering it. False when this condition (``key``) was already
        alerted and delivered, so the same damage is not announced twice."""
        with self._tx() as s:
            s.execute(
                _insert_ignore(s, AlertRow).values(
                    key=key,
                    kind=kind,
                    subject=subject,
                    summary=summary,
                    detail=detail,
                    created_at=utcnow(),
                    attempts=0,
                    last_error="",
                )
            )
            row = s.scalar(select(AlertRow).where(AlertRow.key == key).with_for_update())
            return row is not None and row.delivered_at is None

    def alert_attempted(self, key: str, error: str = "") -> None:
        """Count a delivery attempt; ``error`` empty means every channel accepted it."""
        with self._tx() as s:
            row = s.scalar(select(AlertRow).where(AlertRow.key == key).with_for_update())
            if row is None:
                return
            row.attempts = (row.attempts or 0) + 1
            row.last_error = error
            if not error:
                row.delivered_at = utcnow()

    def alerts(self, *, undelivered_only: bool = False, limit: int = 100) -> list[AlertRecord]:
        with self._session() as s:
            q = select(AlertRow).order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(limit)
            if undelivered_only:
                q = q.where(AlertRow.delivered_at.is_(None))
            return [
                AlertRecord(
                    r.key,
                    r.kind,
                    r.subject,
                    r.summary,
                    dict(r.detail or {}),
                    _aware(r.created_at) or utcnow(),
                    r.attempts or 0,
                    _aware(r.delivered_at),
                    r.last_error,
                )
                for r in s.scalars(q)
            ]

    def damaged_objects(self) -> list[StoredObject]:
        """Objects whose last check found them damaged or missing (what damage alerts are about)."""
        with self._session() as s:
            q = (
                select(ObjectRow)
                .where(ObjectRow.status.in_(("damaged", "missing")))
                .order_by(ObjectRow.aip_id, ObjectRow.target, ObjectRow.key)
            )
            return [_stored_object(r) for r in s.scalars(q)]


@dataclass(frozen=True)
class AlertRecord:
    key: str
    kind: str
    subject: str
    summary: str
    detail: dict[str, Any]
    created: dt.datetime
    attempts: int
    delivered: dt.datetime | None
    last_error: str


class _Tx:
    """A session that commits on success and rolls back (and raises CatalogError) on failure."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def __enter__(self) -> Session:
        self._s = self._catalog._write_sessions()
        self._s.begin()
        return self._s

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            if exc_type is None:
                try:
                    self._s.commit()
                except SQLAlchemyError as err:
                    self._s.rollback()
                    raise CatalogError(f"catalog write failed: {err}") from err
            else:
                self._s.rollback()
                if isinstance(exc, SQLAlchemyError):
                    raise CatalogError(f"catalog operation failed: {exc}") from exc
        finally:
            self._s.close()
        return False


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # pysqlite's own BEGIN handling off: _sqlite_begin emits it
    cur = dbapi_conn.cursor()
    # the wait first: switching a fresh file to WAL takes a lock, and a second process opening the
    # catalog at the same moment must wait for it rather than fail with "database is locked"
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _insert_ignore(s: Session, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING in the session's dialect (SQLite or PostgreSQL)."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _sqlite_begin(conn: Any) -> None:
    """SQLAlchemy's recipe for real SQLite transactions: writers take the write lock up front
    (waiting up to busy_timeout) instead of failing when a reader's snapshot went stale."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("preserve_write") else "BEGIN")


def _object_row(o: StoredObject, target: str) -> ObjectRow:
    return ObjectRow(
        target=target,
        key=o.key,
        size=o.size,
        sha256=o.sha256,
        status=o.status,
        last_verified_at=o.verified_at,
        version_id=o.version_id or "",
        lock_mode=o.lock_mode or "",
        lock_until=o.lock_until,
    )


def _stored_object(r: ObjectRow) -> StoredObject:
    return StoredObject(
        target=r.target,
        key=r.key,
        size=r.size,
        sha256=r.sha256,
        verified_at=_aware(r.last_verified_at),
        version_id=r.version_id,
        lock_mode=r.lock_mode,
        lock_until=_aware(r.lock_until),
        status=r.status,
        aip_id=r.aip_id,
    )


def _refresh_replica(s: Session, aip_id: str, target: str) -> None:
    """A replica is verified only while every one of its objects is."""
    rows = list(s.scalars(select(ObjectRow).where(ObjectRow.aip_id == aip_id, ObjectRow.target == target)))
    rep = s.scalar(select(ReplicaRow).where(ReplicaRow.aip_id == aip_id, ReplicaRow.target == target))
    if rep is None or not rows:
        return
    bad = [r.status for r in rows if r.status != "verified"]
    rep.status = "verified" if not bad else ("missing" if all(b == "missing" for b in bad) else "damaged")
    if not bad:
        rep.verified_at = min(_aware(r.last_verified_at) or utcnow() for r in rows)


def _submission_state(r: SubmissionRow) -> SubmissionState:
    return SubmissionState(
        name=r.name,
        status=r.status,
        aip_id=r.aip_id,
        reason=r.reason,
        claimed_by=r.claimed_by,
        lease_until=_aware(r.lease_until),
        attempts=r.attempts or 0,
    )


def _aip_view(row: AipRow, events: list[Event]) -> AipView:
    objs: dict[str, list[StoredObject]] = {}
    for o in row.objects:
        objs.setdefault(o.target, []).append(_stored_object(o))
    return AipView(
        id=row.id,
        title=row.title,
        created=_aware(row.created_at) or utcnow(),
        status=row.status,
        access_level=row.access_level,
        submission_name=row.submission_name,
        payload_oxum=row.payload_oxum,
        files=tuple(
            FileView(f.path, f.size, f.sha256, f.sha512, f.role, f.format_name, f.format_registry_key)
            for f in row.files
        ),
        replicas=tuple(
            ReplicaRecord(r.target, r.uri, r.status, _aware(r.verified_at), tuple(objs.get(r.target, ())))
            for r in row.replicas
        ),
        access=tuple(AccessCopy(a.kind, a.target, a.key, a.uri, a.size, a.sha256) for a in row.access),
        events=tuple(events),
    )


def iter_due_objects(objects: Sequence[StoredObject]) -> Iterator[StoredObject]:
    """Least recently verified first (never-verified before all)."""
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    yield from sorted(objects, key=lambda o: (o.verified_at or epoch, o.aip_id, o.target, o.key))
