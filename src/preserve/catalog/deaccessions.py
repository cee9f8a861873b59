"""Deaccessions in the catalog: a request to remove an AIP, its cancellation or its approval by a
second person, then the tombstone that stays (reason, people, dates, the digests of every file) and
the deletion of each of its objects on each replica (to do, done, scheduled for the day its
retention ends, failed, or found again after it was deleted). Approval moves the AIP's objects out
of `objects` into the deletion records in the same transaction that marks it deaccessioned, so
from then on audits check that they are gone, not that they are there. Side effects: database
reads and writes."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from preserve.catalog.engine import CatalogEngine, aware, insert_ignore
from preserve.catalog.events import event_row
from preserve.catalog.models import (
    AipRow,
    DeaccessionObjectRow,
    DeaccessionRow,
    FileRow,
    ObjectRow,
    ReplicaRow,
)
from preserve.catalog.records import FileView
from preserve.core.errors import CatalogError, ConfigError
from preserve.core.model import AipStatus, Event, utcnow


class DeaccessionState(enum.StrEnum):
    """Where a deaccession is: asked by one person, cancelled, approved by a second person (being
    carried out: access withdrawn, objects deleted or scheduled), completed (every object gone)."""

    REQUESTED = "requested"
    CANCELLED = "cancelled"
    APPROVED = "approved"
    COMPLETED = "completed"


class DeletionState(enum.StrEnum):
    """Where the deletion of one object on one replica is."""

    PENDING = "pending"  # approved, not attempted yet (or the attempt was interrupted)
    DELETED = "deleted"  # every version and delete marker gone, verified by listing the versions
    SCHEDULED = "scheduled"  # Object Lock keeps it until due_at; the audit deletes it then
    FAILED = "failed"  # the attempt failed (unreachable, credentials may not delete); retried
    REAPPEARED = "reappeared"  # found again after it was deleted; left for a person (see README)


#: the deaccession states in which the AIP is being (or has been) removed
CARRIED_OUT = (DeaccessionState.APPROVED, DeaccessionState.COMPLETED)
#: the states in which the request is still open: a second request for the AIP is refused
OPEN = (DeaccessionState.REQUESTED, DeaccessionState.APPROVED)


@dataclass(frozen=True)
class ObjectDeletion:
    """The deletion record of one object of a deaccessioned AIP on one replica."""

    deaccession_id: str
    aip_id: str
    target: str
    key: str
    size: int
    sha256: str
    state: DeletionState
    version_id: str = ""
    lock_mode: str = ""
    lock_until: dt.datetime | None = None
    due_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    versions_deleted: int = 0
    method: str = ""
    detail: str = ""
    attempts: int = 0
    checked_at: dt.datetime | None = None
    #: the opaque key the target holds it under (an encrypted target); "" for a plaintext object
    stored_key: str = ""

    @property
    def physical_key(self) -> str:
        """The key to delete on the target (the opaque one, when encrypted)."""
        return self.stored_key or self.key


@dataclass(frozen=True)
class Deaccession:
    """One deaccession request and, once approved, the AIP's tombstone."""

    id: str
    aip_id: str
    state: DeaccessionState
    reason: str
    requested_by: str
    requested_at: dt.datetime
    approved_by: str = ""
    approved_at: dt.datetime | None = None
    cancelled_by: str = ""
    cancelled_at: dt.datetime | None = None
    withdrawn_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    files: tuple[FileView, ...] = ()
    objects: tuple[ObjectDeletion, ...] = field(default_factory=tuple)

    @property
    def carried_out(self) -> bool:
        return self.state in CARRIED_OUT

    def objects_in(self, *states: DeletionState) -> list[ObjectDeletion]:
        return [o for o in self.objects if o.state in states]


def same_person(a: str, b: str) -> bool:
    """Operator names compared as people would: case and surrounding blanks do not make a second
    person."""
    return a.strip().casefold() == b.strip().casefold()


class DeaccessionRepository(CatalogEngine):
    """Requests, approvals, cancellations, tombstones and the per-object deletion records."""

    def request_deaccession(
        self, request_id: str, aip_id: str, *, reason: str, requested_by: str, events: Sequence[Event] = ()
    ) -> Deaccession:
        """Record a request. ConfigError when the AIP is unknown, already deaccessioned, or already
        has an open request (which it names)."""
        now = utcnow()
        with self._tx() as s:
            aip = s.get(AipRow, aip_id, with_for_update=True)
            if aip is None:
                raise ConfigError(f"no AIP {aip_id!r} in the catalog", advice="Check the id with `preserve list`.")
            if aip.status == AipStatus.DEACCESSIONED:
                raise ConfigError(f"AIP {aip_id} is already deaccessioned", advice=f"See `preserve show {aip_id}`.")
            open_ = s.scalar(
                select(DeaccessionRow)
                .where(DeaccessionRow.aip_id == aip_id, DeaccessionRow.state.in_([st.value for st in OPEN]))
                .limit(1)
            )
            if open_ is not None:
                raise ConfigError(
                    f"a deaccession of AIP {aip_id} is already requested: request {open_.id} by "
                    f"{open_.requested_by} on {aware(open_.requested_at) or now:%Y-%m-%d %H:%M} UTC ({open_.state})",
                    advice=f"Approve it (`preserve deaccession approve {open_.id}`, by another person) or cancel it "
                    f"(`preserve deaccession cancel {open_.id}`); nothing was changed.",
                )
            row = DeaccessionRow(
                id=request_id,
                aip_id=aip_id,
                state=DeaccessionState.REQUESTED.value,
                reason=reason,
                requested_by=requested_by,
                requested_at=now,
                files=[],
            )
            s.add(row)
            s.add_all(event_row(e, aip_id) for e in events)
            s.flush()
            return _deaccession(row, [])

    def deaccession(self, ref: str) -> Deaccession | None:
        """One request by id or unique id prefix, with its deletion records."""
        with self._session() as s:
            row = s.get(DeaccessionRow, ref)
            if row is None and ref:
                matches = list(s.scalars(select(DeaccessionRow).where(DeaccessionRow.id.startswith(ref)).limit(2)))
                row = matches[0] if len(matches) == 1 else None
            return None if row is None else _deaccession(row, _objects(s, row.id))

    def deaccessions(
        self, *, aip_id: str | None = None, states: Iterable[DeaccessionState] | None = None
    ) -> list[Deaccession]:
        """Requests, oldest first, with their deletion records."""
        with self._session() as s:
            q = select(DeaccessionRow)
            if aip_id:
                q = q.where(DeaccessionRow.aip_id == aip_id)
            if states is not None:
                q = q.where(DeaccessionRow.state.in_([DeaccessionState(st).value for st in states]))
            rows = list(s.scalars(q.order_by(DeaccessionRow.requested_at, DeaccessionRow.id)))
            return [_deaccession(r, _objects(s, r.id)) for r in rows]

    def tombstone(self, aip_id: str) -> Deaccession | None:
        """The approved (or completed) deaccession of an AIP: what stays of it."""
        found = self.deaccessions(aip_id=aip_id, states=CARRIED_OUT)
        return found[-1] if found else None

    def cancel_deaccession(self, request_id: str, *, cancelled_by: str, events: Sequence[Event] = ()) -> Deaccession:
        """Cancel a request not yet approved (ConfigError otherwise: an approved deaccession has
        started deleting and cannot be undone)."""
        with self._tx() as s:
            row = self._locked(s, request_id)
            if row.state != DeaccessionState.REQUESTED:
                raise ConfigError(
                    f"deaccession request {row.id} is {row.state}, so it cannot be cancelled"
                    + (" (deleting has begun and cannot be undone)" if row.state in CARRIED_OUT else ""),
                    advice=f"See `preserve deaccession list` and `preserve show {row.aip_id}`.",
                )
            row.state = DeaccessionState.CANCELLED.value
            row.cancelled_by, row.cancelled_at = cancelled_by, utcnow()
            s.add_all(event_row(e, row.aip_id) for e in events)
            s.flush()
            return _deaccession(row, [])

    def approve_deaccession(self, request_id: str, *, approved_by: str, events: Sequence[Event] = ()) -> Deaccession:
        """The second person's approval, written before anything is deleted, in one transaction:
        the request becomes approved, the AIP deaccessioned, its files' digests are kept in the
        tombstone, and its stored objects become deletion records (pending); its replica and object
        rows go, so audits no longer expect them. ConfigError when the approver is the requester or
        the request is not waiting for approval."""
        now = utcnow()
        with self._tx() as s:
            row = self._locked(s, request_id)
            if row.state != DeaccessionState.REQUESTED:
                raise ConfigError(f"deaccession request {row.id} is {row.state}, not waiting for approval")
            if same_person(row.requested_by, approved_by):
                raise ConfigError(f"{approved_by} requested deaccession {row.id}; a second person must approve it")
            aip = s.get(AipRow, row.aip_id, with_for_update=True)
            if aip is None:
                raise CatalogError(f"deaccession {row.id}: AIP {row.aip_id} is not in the catalog")
            row.files = [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "sha512": f.sha512, "role": f.role}
                for f in s.scalars(select(FileRow).where(FileRow.aip_id == aip.id).order_by(FileRow.path))
            ]
            for o in s.scalars(select(ObjectRow).where(ObjectRow.aip_id == aip.id)):
                s.add(
                    DeaccessionObjectRow(
                        deaccession_id=row.id,
                        aip_id=aip.id,
                        target=o.target,
                        key=o.key,
                        size=o.size,
                        sha256=o.sha256,
                        version_id=o.version_id,
                        lock_mode=o.lock_mode,
                        lock_until=o.lock_until,
                        stored_key=o.stored_key or "",
                        state=DeletionState.PENDING.value,
                    )
                )
                s.delete(o)
            for r in s.scalars(select(ReplicaRow).where(ReplicaRow.aip_id == aip.id)):
                s.delete(r)
            aip.status = AipStatus.DEACCESSIONED.value
            row.state = DeaccessionState.APPROVED.value
            row.approved_by, row.approved_at = approved_by, now
            s.add_all(event_row(e, aip.id) for e in events)
            s.flush()
            return _deaccession(row, _objects(s, row.id))

    def add_deletions(self, request_id: str, found: Sequence[tuple[str, str, int]], *, state: DeletionState) -> int:
        """Deletion records for objects found under the AIP's prefix that the catalog never had
        (target, key, size); those already recorded are left as they are, whether by their key or,
        on an encrypted target, by the opaque key the target holds them under. Returns how many
        were new."""
        if not found:
            return 0
        with self._tx() as s:
            row = self._locked(s, request_id)
            had = _object_rows(s, row.id)
            before = len(had)
            opaque = {(o.target, o.stored_key) for o in had if o.stored_key}
            for target, key, size in found:
                if (target, key) in opaque:
                    continue
                s.execute(
                    insert_ignore(s, DeaccessionObjectRow).values(
                        deaccession_id=row.id,
                        aip_id=row.aip_id,
                        target=target,
                        key=key,
                        size=size,
                        sha256="",
                        stored_key="",
                        version_id="",
                        lock_mode="",
                        state=DeletionState(state).value,
                        versions_deleted=0,
                        method="",
                        detail="found under the AIP's prefix; not in the catalog's record of it",
                        attempts=0,
                    )
                )
            return len(_objects(s, row.id)) - before

    def record_deletion(
        self,
        request_id: str,
        target: str,
        key: str,
        *,
        state: DeletionState,
        detail: str,
        at: dt.datetime,
        attempted: bool = True,
        due_at: dt.datetime | None = None,
        versions_deleted: int = 0,
        method: str = "",
        events: Sequence[Event] = (),
    ) -> None:
        """The outcome of an attempt to delete one object (``attempted``), or of an audit's look
        at it: its new state, why, and when it is due (scheduled)."""
        with self._tx() as s:
            o = s.scalar(
                select(DeaccessionObjectRow).where(
                    DeaccessionObjectRow.deaccession_id == request_id,
                    DeaccessionObjectRow.target == target,
                    DeaccessionObjectRow.key == key,
                )
            )
            if o is None:
                raise CatalogError(f"deaccession {request_id} has no object {target}:{key}")
            o.state = DeletionState(state).value
            o.detail = detail
            o.checked_at = at
            if attempted:
                o.attempts = (o.attempts or 0) + 1
                o.versions_deleted = (o.versions_deleted or 0) + versions_deleted
            if method:
                o.method = method
            if state is DeletionState.DELETED:
                o.deleted_at, o.due_at = at, None
            elif state is DeletionState.SCHEDULED:
                o.due_at = due_at
            s.add_all(event_row(e, o.aip_id) for e in events)

    def mark_withdrawn(self, request_id: str, *, at: dt.datetime) -> None:
        with self._tx() as s:
            self._locked(s, request_id).withdrawn_at = at

    def complete_deaccession(self, request_id: str, *, at: dt.datetime, events: Sequence[Event] = ()) -> bool:
        """Mark a deaccession completed once access is withdrawn and every object is deleted.
        False (nothing written) while anything is left."""
        with self._tx() as s:
            row = self._locked(s, request_id)
            if row.state != DeaccessionState.APPROVED or row.withdrawn_at is None:
                return False
            if any(o.state != DeletionState.DELETED for o in _object_rows(s, row.id)):
                return False
            row.state, row.completed_at = DeaccessionState.COMPLETED.value, at
            s.add_all(event_row(e, row.aip_id) for e in events)
            return True

    def deletions_to_do(self, now: dt.datetime) -> list[ObjectDeletion]:
        """What the audit carries out: deletions pending or failed, and scheduled ones now due."""
        with self._session() as s:
            q = (
                select(DeaccessionObjectRow)
                .join(DeaccessionRow, DeaccessionRow.id == DeaccessionObjectRow.deaccession_id)
                .where(DeaccessionRow.state.in_([st.value for st in CARRIED_OUT]))
                .where(
                    or_(
                        DeaccessionObjectRow.state.in_([DeletionState.PENDING.value, DeletionState.FAILED.value]),
                        (DeaccessionObjectRow.state == DeletionState.SCHEDULED.value)
                        & (DeaccessionObjectRow.due_at <= now),
                    )
                )
                .order_by(DeaccessionObjectRow.aip_id, DeaccessionObjectRow.target, DeaccessionObjectRow.key)
            )
            return [_object(o) for o in s.scalars(q)]

    def _locked(self, s: Session, request_id: str) -> DeaccessionRow:
        row = s.get(DeaccessionRow, request_id, with_for_update=True)
        if row is None:
            raise ConfigError(
                f"no deaccession request {request_id!r}", advice="See `preserve deaccession list` for the ids."
            )
        return row


def _object_rows(s: Session, request_id: str) -> list[DeaccessionObjectRow]:
    q = select(DeaccessionObjectRow).where(DeaccessionObjectRow.deaccession_id == request_id)
    return list(s.scalars(q.order_by(DeaccessionObjectRow.target, DeaccessionObjectRow.key)))


def _objects(s: Session, request_id: str) -> list[ObjectDeletion]:
    return [_object(o) for o in _object_rows(s, request_id)]


def _object(o: DeaccessionObjectRow) -> ObjectDeletion:
    return ObjectDeletion(
        deaccession_id=o.deaccession_id,
        aip_id=o.aip_id,
        target=o.target,
        key=o.key,
        size=o.size,
        sha256=o.sha256,
        state=DeletionState(o.state),
        version_id=o.version_id,
        lock_mode=o.lock_mode,
        lock_until=aware(o.lock_until),
        due_at=aware(o.due_at),
        deleted_at=aware(o.deleted_at),
        versions_deleted=o.versions_deleted or 0,
        method=o.method,
        detail=o.detail,
        attempts=o.attempts or 0,
        checked_at=aware(o.checked_at),
        stored_key=o.stored_key or "",
    )


def _deaccession(row: DeaccessionRow, objects: list[ObjectDeletion]) -> Deaccession:
    return Deaccession(
        id=row.id,
        aip_id=row.aip_id,
        state=DeaccessionState(row.state),
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=aware(row.requested_at) or utcnow(),
        approved_by=row.approved_by or "",
        approved_at=aware(row.approved_at),
        cancelled_by=row.cancelled_by or "",
        cancelled_at=aware(row.cancelled_at),
        withdrawn_at=aware(row.withdrawn_at),
        completed_at=aware(row.completed_at),
        files=tuple(
            FileView(f["path"], int(f["size"]), f["sha256"], f["sha512"], str(f.get("role", "")))
            for f in (row.files or [])
        ),
        objects=tuple(objects),
    )
