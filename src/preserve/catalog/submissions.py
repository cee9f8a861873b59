"""Submissions in the catalog: worker claims with leases, and the marks that end a submission's
ingest (quarantined, duplicate; stored is written with its AIP). The claim gives the AIP id up
front, so a crashed ingest is redone under the same id instead of leaving a second AIP. Side
effects: database reads and writes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import select

from preserve.catalog.engine import CatalogEngine, aware, insert_ignore
from preserve.catalog.events import event_row
from preserve.catalog.models import SubmissionRow
from preserve.catalog.records import SubmissionState
from preserve.core.model import Event, SubmissionStatus, utcnow


class SubmissionRepository(CatalogEngine):
    """Claims, leases and outcomes of the submissions in the ingest folder."""

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
                insert_ignore(s, SubmissionRow).values(
                    name=name,
                    status=SubmissionStatus.NEW.value,
                    aip_id=str(uuid.uuid4()),
                    claimed_by="",
                    reason="",
                    updated_at=now,
                    attempts=0,
                )
            )
            row = s.get(SubmissionRow, name, with_for_update=True, populate_existing=True)
            if row is None:  # just inserted, or already there, and locked: cannot be absent
                raise AssertionError(f"submission row {name!r} vanished inside its claim's transaction")
            status = SubmissionStatus(row.status)
            if status is SubmissionStatus.NEW:
                pass
            elif (
                status is SubmissionStatus.INGESTING
                and row.claimed_by != worker
                and (aware(row.lease_until) or now) > now
                and not holder_is_dead(row.claimed_by)
            ):
                return None
            elif status in (SubmissionStatus.STORED, SubmissionStatus.DUPLICATE):
                return None
            row.status = SubmissionStatus.INGESTING.value
            row.claimed_by = worker
            row.lease_until = now + dt.timedelta(seconds=lease_seconds)
            row.updated_at = now
            row.attempts = (row.attempts or 0) + 1
            row.reason = ""
            s.flush()
            return submission_state(row)

    def renew_lease(self, name: str, worker: str, lease_seconds: float) -> bool:
        """Extend ``worker``'s lease on the submission; False when the worker no longer holds it
        (another worker took it over, or it is no longer claimed): then it must stop."""
        with self._tx() as s:
            row = s.get(SubmissionRow, name)
            if row is not None and row.claimed_by == worker:
                row.lease_until = utcnow() + dt.timedelta(seconds=lease_seconds)
                return True
            return False

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
            return submission_state(row) if row else None

    def submissions(self, status: SubmissionStatus | None = None) -> list[SubmissionState]:
        with self._session() as s:
            q = select(SubmissionRow).order_by(SubmissionRow.updated_at)
            if status:
                q = q.where(SubmissionRow.status == SubmissionStatus(status).value)
            return [submission_state(r) for r in s.scalars(q)]

    def mark_quarantined(self, name: str, reason: str, events: Sequence[Event], aip_id: str | None = None) -> None:
        with self._tx() as s:
            row = s.get(SubmissionRow, name)
            if row is None:
                row = SubmissionRow(name=name, aip_id=aip_id or "", updated_at=utcnow(), attempts=1)
                s.add(row)
            row.status, row.reason = SubmissionStatus.QUARANTINED.value, reason
            row.updated_at, row.lease_until = utcnow(), None
            s.add_all(event_row(e, None, name) for e in events)

    def mark_duplicate(self, name: str, existing_aip: str, events: Sequence[Event]) -> None:
        with self._tx() as s:
            row = s.get(SubmissionRow, name)
            if row is None:
                row = SubmissionRow(name=name, updated_at=utcnow(), attempts=1)
                s.add(row)
            row.status, row.aip_id = SubmissionStatus.DUPLICATE.value, existing_aip
            row.reason = f"same content as AIP {existing_aip}"
            row.updated_at, row.lease_until = utcnow(), None
            s.add_all(event_row(e, existing_aip, name) for e in events)


def submission_state(r: SubmissionRow) -> SubmissionState:
    return SubmissionState(
        name=r.name,
        status=SubmissionStatus(r.status),
        aip_id=r.aip_id,
        reason=r.reason,
        claimed_by=r.claimed_by,
        lease_until=aware(r.lease_until),
        attempts=r.attempts or 0,
    )
