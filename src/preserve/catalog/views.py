"""What `preserve status` reports, computed from the catalog with aggregate queries (no per-AIP
loading, so it stays fast on a large archive): holdings, replicas per target (with, on encrypted
targets, the AIPs whose key object was not found intact within the audit interval), fixity age
and bytes overdue, quarantined submissions, AIPs at risk, alerts not delivered, access changes and
deaccessions in progress; `with_targets` adds what only the config knows (whether a target
encrypts, its custody). Read-only."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from preserve.catalog.deaccessions import DeaccessionState, DeletionState
from preserve.catalog.engine import aware
from preserve.catalog.models import (
    AccessChangeRow,
    AipKeyRow,
    AipRow,
    AlertRow,
    DeaccessionObjectRow,
    DeaccessionRow,
    FileRow,
    ObjectRow,
    ReplicaRow,
    SubmissionRow,
)
from preserve.config import TargetSettings
from preserve.core.model import AipStatus, ReplicaStatus, SubmissionStatus

UNIDENTIFIED = "(not identified)"
#: AIP statuses that mean "act now" (set by audits and repair)
AT_RISK_STATUSES = frozenset({AipStatus.AT_RISK, AipStatus.DAMAGED, AipStatus.LOST})


@dataclass(frozen=True)
class FormatCount:
    format: str
    files: int
    bytes: int


@dataclass(frozen=True)
class TargetCount:
    target: str
    replicas: int
    verified: int
    damaged: int
    missing: int
    other: int
    objects: int
    bytes: int
    #: objects stored encrypted there (ciphertext under opaque names), from the catalog
    encrypted_objects: int = 0
    #: AIPs with encrypted objects there whose key object has no record, or was not found
    #: intact by an audit within the audit interval (or never)
    keys_unverified: int = 0
    #: from the config (`with_targets`): whether the target encrypts what is written to it, and
    #: who keeps it ("archive" | "third-party"; "" for a target no longer configured)
    encrypted: bool = False
    custody: str = ""


@dataclass(frozen=True)
class Quarantined:
    name: str
    reason: str
    since: dt.datetime
    attempts: int


@dataclass(frozen=True)
class AtRisk:
    aip_id: str
    title: str
    verified_replicas: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class AccessChangeInProgress:
    """A withdrawal (a change to dark) or another change of access level not yet carried out and
    verified: a copy may still be where the decision says it must not be."""

    aip_id: str
    from_level: str
    to_level: str
    operator: str
    since: dt.datetime
    attempts: int
    last_error: str


@dataclass(frozen=True)
class DeaccessionInProgress:
    """A deaccession not completed: requested and waiting for a second person, or approved and
    still being carried out (access not yet verified withdrawn, or objects not yet deleted:
    pending, failed, found again, or scheduled for the end of their retention)."""

    request: str
    aip_id: str
    state: str  # requested | approved
    requested_by: str
    requested_at: dt.datetime
    approved_by: str
    approved_at: dt.datetime | None
    access_withdrawn: bool
    deleted: int
    scheduled: int
    pending: int
    failed: int
    reappeared: int
    #: the earliest end of a retention a scheduled deletion waits for
    next_due: dt.datetime | None

    @property
    def approved(self) -> bool:
        return self.state == DeaccessionState.APPROVED.value

    @property
    def stuck(self) -> bool:
        """Approved, and something a person should look at: access not yet withdrawn, deletions
        pending or failed, or objects found again. Deletions that only wait for the end of their
        Object Lock retention are not: a COMPLIANCE lock of years would otherwise keep `preserve
        status` red for years, and a warning that is always on is a warning nobody reads."""
        return self.approved and bool(not self.access_withdrawn or self.pending or self.failed or self.reappeared)


@dataclass(frozen=True)
class CatalogStatus:
    at: dt.datetime
    aips: int
    bytes: int
    files: int
    formats: tuple[FormatCount, ...]
    targets: tuple[TargetCount, ...]
    objects: int
    objects_never_verified: int
    oldest_verification: dt.datetime | None
    audit_interval_days: int
    objects_overdue: int
    bytes_overdue: int
    quarantined: tuple[Quarantined, ...]
    at_risk: tuple[AtRisk, ...]
    ingesting: int
    undelivered_alerts: int
    min_verified_replicas: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: withdrawals and other access changes in progress (pending), oldest first
    access_changes: tuple[AccessChangeInProgress, ...] = ()
    #: deaccessions requested or approved and not completed, oldest request first
    deaccessions: tuple[DeaccessionInProgress, ...] = ()
    #: AIPs with events or a version inventory not yet written beside them on every replica
    #: (the journal: `preserve serve`'s housekeeping writes them; a rebuild would miss them)
    journal_pending: int = 0

    @property
    def needs_attention(self) -> bool:
        """Something an operator should look at; a deaccession waiting for its second person, or one
        whose only remaining deletions wait for their retention to end, does not count; one whose
        withdrawal or deletions are unfinished, failed or found again does."""
        return bool(
            self.quarantined
            or self.at_risk
            or self.objects_overdue
            or self.undelivered_alerts
            or self.access_changes
            or any(d.stuck for d in self.deaccessions)
            or any(t.keys_unverified for t in self.targets)
        )


def summarize(s: Session, now: dt.datetime, audit_interval_days: int, min_verified_replicas: int) -> CatalogStatus:
    aips = s.scalar(select(func.count()).select_from(AipRow)) or 0
    total_bytes, files = s.execute(select(func.coalesce(func.sum(FileRow.size), 0), func.count(FileRow.id))).one()
    formats = tuple(
        FormatCount(fmt or UNIDENTIFIED, n, int(b or 0))
        for fmt, n, b in s.execute(
            select(FileRow.format_name, func.count(FileRow.id), func.sum(FileRow.size))
            .group_by(FileRow.format_name)
            .order_by(func.sum(FileRow.size).desc())
        )
    )

    def n_status(value: ReplicaStatus) -> ColumnElement[int]:
        return func.sum(case((ReplicaRow.status == value.value, 1), else_=0))

    rep = {
        t: (n, v or 0, d or 0, m or 0)
        for t, n, v, d, m in s.execute(
            select(
                ReplicaRow.target,
                func.count(ReplicaRow.id),
                n_status(ReplicaStatus.VERIFIED),
                n_status(ReplicaStatus.DAMAGED),
                n_status(ReplicaStatus.MISSING),
            ).group_by(ReplicaRow.target)
        )
    }
    objs = {
        t: (n, int(b or 0))
        for t, n, b in s.execute(
            select(ObjectRow.target, func.count(ObjectRow.id), func.sum(ObjectRow.size)).group_by(ObjectRow.target)
        )
    }
    due = now - dt.timedelta(days=audit_interval_days)
    encrypted: dict[str, int] = {
        t: int(n or 0)
        for t, n in s.execute(
            select(ObjectRow.target, func.count(ObjectRow.id))
            .where(ObjectRow.stored_key != "")
            .group_by(ObjectRow.target)
        )
    }
    verified_key = exists().where(
        and_(
            AipKeyRow.aip_id == ObjectRow.aip_id,
            AipKeyRow.target == ObjectRow.target,
            AipKeyRow.destroyed_at.is_(None),
            AipKeyRow.verified_at >= due,
        )
    )
    unverified: dict[str, int] = {
        t: int(n or 0)
        for t, n in s.execute(
            select(ObjectRow.target, func.count(func.distinct(ObjectRow.aip_id)))
            .join(AipRow, AipRow.id == ObjectRow.aip_id)
            .where(ObjectRow.stored_key != "", AipRow.status != AipStatus.DEACCESSIONED.value, ~verified_key)
            .group_by(ObjectRow.target)
        )
    }
    targets = []
    for t in sorted(set(rep) | set(objs)):
        n, v, d, m = rep.get(t, (0, 0, 0, 0))
        targets.append(
            TargetCount(
                t,
                n,
                v,
                d,
                m,
                n - v - d - m,
                *objs.get(t, (0, 0)),
                encrypted_objects=int(encrypted.get(t, 0) or 0),
                keys_unverified=int(unverified.get(t, 0) or 0),
            )
        )

    overdue = (ObjectRow.last_verified_at.is_(None)) | (ObjectRow.last_verified_at < due)
    n_objects, never, oldest = s.execute(
        select(
            func.count(ObjectRow.id),
            func.sum(case((ObjectRow.last_verified_at.is_(None), 1), else_=0)),
            func.min(ObjectRow.last_verified_at),
        )
    ).one()
    n_overdue, b_overdue = s.execute(
        select(func.count(ObjectRow.id), func.coalesce(func.sum(ObjectRow.size), 0)).where(overdue)
    ).one()

    quarantined = tuple(
        Quarantined(r.name, r.reason, aware(r.updated_at) or now, r.attempts or 0)
        for r in s.scalars(
            select(SubmissionRow)
            .where(SubmissionRow.status == SubmissionStatus.QUARANTINED.value)
            .order_by(SubmissionRow.updated_at)
        )
    )
    ingesting = (
        s.scalar(
            select(func.count())
            .select_from(SubmissionRow)
            .where(SubmissionRow.status == SubmissionStatus.INGESTING.value)
        )
        or 0
    )

    # at risk: flagged by an audit or repair, or fewer verified replicas than policy requires, or
    # any replica that is damaged or missing
    per_aip: dict[str, list[tuple[str, str]]] = {}
    for aip_id, target, status in s.execute(select(ReplicaRow.aip_id, ReplicaRow.target, ReplicaRow.status)):
        per_aip.setdefault(aip_id, []).append((target, status))
    at_risk: list[AtRisk] = []
    for aip_id, title, status in s.execute(select(AipRow.id, AipRow.title, AipRow.status).order_by(AipRow.created_at)):
        if status == AipStatus.DEACCESSIONED:  # its copies were deleted on purpose: not at risk
            continue
        reps = per_aip.get(aip_id, [])
        verified = sum(st == ReplicaStatus.VERIFIED for _, st in reps)
        reasons = [f"marked {status}"] if status in AT_RISK_STATUSES else []
        if verified < min_verified_replicas:
            reasons.append(f"{verified} verified replica(s), policy requires {min_verified_replicas}")
        reasons += [f"replica {t} {st}" for t, st in reps if st in (ReplicaStatus.DAMAGED, ReplicaStatus.MISSING)]
        if reasons:
            at_risk.append(AtRisk(aip_id, title, verified, tuple(reasons)))

    undelivered = s.scalar(select(func.count()).select_from(AlertRow).where(AlertRow.delivered_at.is_(None))) or 0
    changes = tuple(
        AccessChangeInProgress(
            r.aip_id, r.from_level, r.to_level, r.operator, aware(r.requested_at) or now, r.attempts or 0, r.last_error
        )
        for r in s.scalars(
            select(AccessChangeRow).where(AccessChangeRow.state == "pending").order_by(AccessChangeRow.id)
        )
    )
    return CatalogStatus(
        at=now,
        aips=aips,
        bytes=int(total_bytes or 0),
        files=int(files or 0),
        formats=formats,
        targets=tuple(targets),
        objects=int(n_objects or 0),
        objects_never_verified=int(never or 0),
        oldest_verification=aware(oldest),
        audit_interval_days=audit_interval_days,
        objects_overdue=int(n_overdue or 0),
        bytes_overdue=int(b_overdue or 0),
        quarantined=quarantined,
        at_risk=tuple(at_risk),
        ingesting=ingesting,
        undelivered_alerts=undelivered,
        min_verified_replicas=min_verified_replicas,
        access_changes=changes,
        deaccessions=_deaccessions(s, now),
    )


def with_targets(status: CatalogStatus, targets: Sequence[TargetSettings]) -> CatalogStatus:
    """The status with what the config says of each target it has replicas on: whether it
    encrypts and its custody (a target no longer configured keeps encrypted False, custody "")."""
    configured = {t.name: t for t in targets}
    rows = tuple(
        dataclasses.replace(r, encrypted=configured[r.target].encrypted, custody=configured[r.target].custody)
        if r.target in configured
        else r
        for r in status.targets
    )
    return dataclasses.replace(status, targets=rows)


def _deaccessions(s: Session, now: dt.datetime) -> tuple[DeaccessionInProgress, ...]:
    """Deaccessions requested or approved, with their deletions counted by state."""
    open_states = [DeaccessionState.REQUESTED.value, DeaccessionState.APPROVED.value]
    counts: dict[tuple[str, str], int] = {}
    next_due: dict[str, dt.datetime | None] = {}
    for request, state, n, due in s.execute(
        select(
            DeaccessionObjectRow.deaccession_id,
            DeaccessionObjectRow.state,
            func.count(DeaccessionObjectRow.id),
            func.min(DeaccessionObjectRow.due_at),
        )
        .join(DeaccessionRow, DeaccessionRow.id == DeaccessionObjectRow.deaccession_id)
        .where(DeaccessionRow.state.in_(open_states))
        .group_by(DeaccessionObjectRow.deaccession_id, DeaccessionObjectRow.state)
    ):
        counts[(request, state)] = int(n or 0)
        if state == DeletionState.SCHEDULED.value:
            next_due[request] = aware(due)
    rows = s.scalars(
        select(DeaccessionRow)
        .where(DeaccessionRow.state.in_(open_states))
        .order_by(DeaccessionRow.requested_at, DeaccessionRow.id)
    )
    return tuple(
        DeaccessionInProgress(
            request=r.id,
            aip_id=r.aip_id,
            state=r.state,
            requested_by=r.requested_by,
            requested_at=aware(r.requested_at) or now,
            approved_by=r.approved_by or "",
            approved_at=aware(r.approved_at),
            access_withdrawn=r.withdrawn_at is not None,
            deleted=counts.get((r.id, DeletionState.DELETED.value), 0),
            scheduled=counts.get((r.id, DeletionState.SCHEDULED.value), 0),
            pending=counts.get((r.id, DeletionState.PENDING.value), 0),
            failed=counts.get((r.id, DeletionState.FAILED.value), 0),
            reappeared=counts.get((r.id, DeletionState.REAPPEARED.value), 0),
            next_due=next_due.get(r.id),
        )
        for r in rows
    )
