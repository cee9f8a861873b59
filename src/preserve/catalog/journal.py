"""The journal's bookkeeping: which events of each AIP and which version inventories have been
written beside it on each target (`operations.journal` writes them, as event records and
inventories; a rebuild reads them back). An event is pending for a target until a record holding
it was written there. Rows are only ever added. Side effects: database reads and writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import exists, or_, select

from preserve.catalog.aips import version_record
from preserve.catalog.engine import CatalogEngine
from preserve.catalog.events import event_from_row
from preserve.catalog.models import (
    AipRow,
    AipVersionRow,
    DeaccessionObjectRow,
    EventExportRow,
    EventRow,
    JournalRecordRow,
    ReplicaRow,
)
from preserve.catalog.records import VersionRecord
from preserve.core.errors import CatalogError
from preserve.core.model import Event, utcnow


class JournalRepository(CatalogEngine):
    """What is still to be written beside each AIP on each target, and what was."""

    def journal_targets(self, aip_id: str) -> list[str]:
        """The targets that hold (or held, for a deaccessioned AIP) the AIP: where its journal goes."""
        with self._session() as s:
            reps = s.scalars(select(ReplicaRow.target).where(ReplicaRow.aip_id == aip_id))
            gone = s.scalars(select(DeaccessionObjectRow.target).where(DeaccessionObjectRow.aip_id == aip_id))
            return sorted({*reps, *gone})

    def journal_pending(self, aip_id: str, target: str) -> list[tuple[int, Event]]:
        """The AIP's events (ids and values) not yet in a record on ``target``, oldest first; with
        them, the events of its submission that belong to no AIP (`get_aip` shows them as the
        AIP's: an earlier quarantine of the same submission, say)."""
        with self._session() as s:
            name = s.scalar(select(AipRow.submission_name).where(AipRow.id == aip_id))
            done = exists().where(EventExportRow.event_id == EventRow.id, EventExportRow.target == target)
            mine = EventRow.aip_id == aip_id
            if name:
                mine = or_(mine, (EventRow.submission == name) & EventRow.aip_id.is_(None))
            q = select(EventRow).where(mine, ~done).order_by(EventRow.at, EventRow.id)
            return [(r.id, event_from_row(r)) for r in s.scalars(q)]

    def journal_versions_pending(self, aip_id: str, target: str) -> list[VersionRecord]:
        """The AIP's versions whose inventory is not yet on ``target``, oldest first."""
        with self._session() as s:
            written = set(
                s.scalars(
                    select(JournalRecordRow.version).where(
                        JournalRecordRow.aip_id == aip_id,
                        JournalRecordRow.target == target,
                        JournalRecordRow.kind == "version",
                    )
                )
            )
            q = select(AipVersionRow).where(AipVersionRow.aip_id == aip_id).order_by(AipVersionRow.number)
            return [version_record(v) for v in s.scalars(q) if v.number not in written]

    def journal_written(
        self,
        aip_id: str,
        target: str,
        key: str,
        *,
        event_ids: Sequence[int] = (),
        version: int | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        """Record that ``key`` was written (and verified) on ``target``: an event record holding
        ``event_ids``, or (with ``version``) that version's inventory."""
        if (version is None) == (not event_ids):
            raise CatalogError("a journal object is either an event record (event_ids) or an inventory (version)")
        with self._tx() as s:
            row = JournalRecordRow(
                aip_id=aip_id,
                target=target,
                key=key,
                kind="version" if version is not None else "events",
                version=version,
                events=len(event_ids),
                written_at=at or utcnow(),
            )
            s.add(row)
            s.flush()
            s.add_all(EventExportRow(event_id=i, target=target, record_id=row.id) for i in dict.fromkeys(event_ids))

    def journal_records(self, aip_id: str, target: str | None = None) -> list[tuple[str, str, str, int]]:
        """(target, kind, key, events) of every journal object written for the AIP, oldest first."""
        with self._session() as s:
            q = select(JournalRecordRow).where(JournalRecordRow.aip_id == aip_id)
            if target:
                q = q.where(JournalRecordRow.target == target)
            return [(r.target, r.kind, r.key, r.events) for r in s.scalars(q.order_by(JournalRecordRow.id))]

    def journal_aips_pending(self) -> list[str]:
        """AIPs with an event or a version inventory not yet written to a target that holds them
        (two queries over the whole catalog, whatever its size)."""
        with self._session() as s:
            holders = (
                select(ReplicaRow.aip_id.label("aip_id"), ReplicaRow.target.label("target"))
                .union(select(DeaccessionObjectRow.aip_id, DeaccessionObjectRow.target))
                .subquery()
            )
            done = exists().where(EventExportRow.event_id == EventRow.id, EventExportRow.target == holders.c.target)
            events = select(EventRow.aip_id).join(holders, holders.c.aip_id == EventRow.aip_id).where(~done).distinct()
            written = exists().where(
                JournalRecordRow.aip_id == AipVersionRow.aip_id,
                JournalRecordRow.target == holders.c.target,
                JournalRecordRow.kind == "version",
                JournalRecordRow.version == AipVersionRow.number,
            )
            versions = (
                select(AipVersionRow.aip_id)
                .join(holders, holders.c.aip_id == AipVersionRow.aip_id)
                .where(~written)
                .distinct()
            )
            found = {str(a) for a in s.scalars(events) if a} | {str(a) for a in s.scalars(versions)}
            order = {a: i for i, a in enumerate(s.scalars(select(AipRow.id).order_by(AipRow.created_at)))}
        return sorted(found, key=lambda a: order.get(a, len(order)))
