"""Access changes in the catalog: an operator's decision to change an AIP's access level (a
withdrawal is a change to dark), written as an intent before any copy moves, then completed in one
transaction with the AIP's new level and access copies once they are verified. While a change to
dark is the AIP's latest decision (or a change to a private level is pending), nothing may publish
it (`publication_withheld`). Side effects:
database reads and writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from preserve.catalog.engine import CatalogEngine, aware
from preserve.catalog.events import event_row
from preserve.catalog.models import AccessChangeRow, AccessRow, AipRow
from preserve.catalog.records import AccessCopy
from preserve.core.errors import CatalogError
from preserve.core.model import AccessLevel, Agent, AipStatus, Event, utcnow

#: the states of an access change: written (not yet carried out and verified), carried out, or
#: replaced by a later decision before it was carried out (a withdrawal always replaces)
PENDING, DONE, SUPERSEDED = "pending", "done", "superseded"


@dataclass(frozen=True)
class AccessChangeRecord:
    """One recorded access change."""

    id: int
    aip_id: str
    from_level: AccessLevel
    to_level: AccessLevel
    until: dt.date | None
    reason: str
    operator: str
    state: str
    requested_at: dt.datetime
    completed_at: dt.datetime | None = None
    attempts: int = 0
    last_error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    dashboard_cleaned_at: dt.datetime | None = None

    @property
    def pending(self) -> bool:
        return self.state == PENDING

    @property
    def is_withdrawal(self) -> bool:
        return self.to_level is AccessLevel.DARK


class AccessChangeRepository(CatalogEngine):
    """Writing, carrying out and listing access changes."""

    def begin_access_change(
        self,
        aip_id: str,
        *,
        from_level: AccessLevel,
        to_level: AccessLevel,
        until: dt.date | None,
        reason: str,
        operator: Agent,
        supersede: bool = False,
    ) -> tuple[AccessChangeRecord, bool]:
        """Write the intent, before anything is moved. Returns the change to carry out and whether
        it was already pending (the same level and date asked again: resumed, its first reason and
        operator kept). A different pending change is superseded when ``supersede`` (a withdrawal
        goes ahead whatever is pending), else CatalogError names it."""
        with self._tx() as s:
            if s.get(AipRow, aip_id, with_for_update=True) is None:
                raise CatalogError(f"no AIP {aip_id}")
            pending = list(
                s.scalars(
                    select(AccessChangeRow)
                    .where(AccessChangeRow.aip_id == aip_id, AccessChangeRow.state == PENDING)
                    .order_by(AccessChangeRow.id)
                    .with_for_update()
                )
            )
            for row in pending:
                if row.to_level == AccessLevel(to_level).value and row.until == until:
                    return _record(row), True
            if pending and not supersede:
                other = pending[-1]
                raise CatalogError(
                    f"AIP {aip_id}: a change to {other.to_level} asked by {other.operator} at "
                    f"{aware(other.requested_at):%Y-%m-%d %H:%M} UTC is still being carried out",
                    advice="Wait until it is done (`preserve status` lists it), or withdraw the film, which always "
                    "goes ahead.",
                )
            for row in pending:
                row.state = SUPERSEDED
                row.completed_at = utcnow()
            row = AccessChangeRow(
                aip_id=aip_id,
                from_level=AccessLevel(from_level).value,
                to_level=AccessLevel(to_level).value,
                until=until,
                reason=reason,
                operator=operator.name,
                state=PENDING,
                requested_at=utcnow(),
                attempts=0,
                last_error="",
                detail={},
            )
            s.add(row)
            s.flush()
            return _record(row), False

    def access_changes(self, aip_id: str | None = None, *, pending_only: bool = False) -> list[AccessChangeRecord]:
        """Access changes, oldest first (of one AIP, or all; only those still pending)."""
        with self._session() as s:
            q = select(AccessChangeRow)
            if aip_id is not None:
                q = q.where(AccessChangeRow.aip_id == aip_id)
            if pending_only:
                q = q.where(AccessChangeRow.state == PENDING)
            return [_record(r) for r in s.scalars(q.order_by(AccessChangeRow.id))]

    def access_change(self, change_id: int) -> AccessChangeRecord | None:
        with self._session() as s:
            row = s.get(AccessChangeRow, change_id)
            return _record(row) if row is not None else None

    def publication_withheld(self, aip_id: str) -> bool:
        """True when nothing else may publish the AIP's access copies now: it is deaccessioned, or
        its latest access decision by an operator is dark (carried out or still pending: from the
        moment it is written), or is a change to restricted or embargoed not carried out yet (an
        embargo extended while the old date passes must not be released on the old date)."""
        with self._session() as s:
            return withheld(s, aip_id)

    def access_change_attempted(
        self, change_id: int, *, error: str, detail: dict[str, Any], events: Sequence[Event] = ()
    ) -> None:
        """Count an attempt that did not finish the change (``error`` says why), with what it found."""
        with self._tx() as s:
            row = s.get(AccessChangeRow, change_id, with_for_update=True)
            if row is None:
                raise CatalogError(f"no access change {change_id}")
            row.attempts = (row.attempts or 0) + 1
            row.last_error = error
            row.detail = dict(detail)
            s.add_all(event_row(e, row.aip_id) for e in events)

    def complete_access_change(
        self,
        change_id: int,
        *,
        copies: Sequence[AccessCopy],
        events: Sequence[Event],
        detail: dict[str, Any],
    ) -> AccessChangeRecord:
        """In one transaction: the AIP's access copies are now ``copies`` and its level the change's,
        the events say so, and the change is done. CatalogError if the change is no longer pending
        (a withdrawal superseded it meanwhile): then nothing is recorded."""
        with self._tx() as s:
            row = s.get(AccessChangeRow, change_id, with_for_update=True)
            if row is None:
                raise CatalogError(f"no access change {change_id}")
            if row.state != PENDING:
                raise CatalogError(
                    f"access change {change_id} of AIP {row.aip_id} is {row.state}: a later decision replaced it"
                )
            aip = s.get(AipRow, row.aip_id, with_for_update=True)
            if aip is None:
                raise CatalogError(f"no AIP {row.aip_id}")
            aip.access.clear()
            s.flush()
            for a in copies:
                aip.access.append(
                    AccessRow(kind=a.kind, target=a.target, key=a.key, uri=a.uri, size=a.size, sha256=a.sha256)
                )
            aip.access_level = row.to_level
            row.state = DONE
            row.completed_at = utcnow()
            row.attempts = (row.attempts or 0) + 1
            row.last_error = ""
            row.detail = dict(detail)
            s.add_all(event_row(e, row.aip_id) for e in events)
            s.flush()
            return _record(row)

    # -- the dashboard (withdrawals only; the flows clean it, the catalog remembers) -------------
    def dashboard_cleanup_due(self) -> list[AccessChangeRecord]:
        """Withdrawals carried out whose ingest runs may still be on the Prefect dashboard."""
        with self._session() as s:
            q = select(AccessChangeRow).where(
                AccessChangeRow.state == DONE,
                AccessChangeRow.to_level == AccessLevel.DARK.value,
                AccessChangeRow.dashboard_cleaned_at.is_(None),
            )
            return [_record(r) for r in s.scalars(q.order_by(AccessChangeRow.id))]

    def dashboard_cleaned(self, change_id: int, events: Sequence[Event] = ()) -> None:
        with self._tx() as s:
            row = s.get(AccessChangeRow, change_id, with_for_update=True)
            if row is None:
                raise CatalogError(f"no access change {change_id}")
            row.dashboard_cleaned_at = utcnow()
            s.add_all(event_row(e, row.aip_id) for e in events)

    def request_dashboard_cleanup(self, aip_id: str) -> None:
        """A run about a withdrawn AIP was added to the dashboard (a re-submission): clean it again."""
        with self._tx() as s:
            row = _latest(s, aip_id)
            if row is not None and row.to_level == AccessLevel.DARK.value and row.state == DONE:
                row.dashboard_cleaned_at = None


def withheld(s: Session, aip_id: str) -> bool:
    """`publication_withheld`, inside the caller's session (a writer that locked the AIP row
    re-checks it in the transaction of its write)."""
    status = s.scalar(select(AipRow.status).where(AipRow.id == aip_id))
    if status == AipStatus.DEACCESSIONED.value:
        return True
    row = _latest(s, aip_id)
    if row is None:
        return False
    if row.to_level == AccessLevel.DARK.value:
        return True
    return row.state == PENDING and row.to_level != AccessLevel.OPEN.value


def _latest(s: Session, aip_id: str) -> AccessChangeRow | None:
    """The AIP's latest decision that still counts (pending or done)."""
    return s.scalar(
        select(AccessChangeRow)
        .where(AccessChangeRow.aip_id == aip_id, AccessChangeRow.state != SUPERSEDED)
        .order_by(AccessChangeRow.id.desc())
        .limit(1)
    )


def _record(r: AccessChangeRow) -> AccessChangeRecord:
    return AccessChangeRecord(
        id=r.id,
        aip_id=r.aip_id,
        from_level=AccessLevel(r.from_level),
        to_level=AccessLevel(r.to_level),
        until=r.until,
        reason=r.reason,
        operator=r.operator,
        state=r.state,
        requested_at=aware(r.requested_at) or utcnow(),
        completed_at=aware(r.completed_at),
        attempts=r.attempts or 0,
        last_error=r.last_error or "",
        detail=dict(r.detail or {}),
        dashboard_cleaned_at=aware(r.dashboard_cleaned_at),
    )
