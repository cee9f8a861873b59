"""Preservation events in the catalog: the append-only log (rows are only ever added, never updated
or deleted) and the conversion between its rows and `Event` values. Side effects: database reads
and writes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from preserve.catalog.engine import CatalogEngine, aware
from preserve.catalog.models import EventRow
from preserve.core.model import Agent, Event, EventType, Outcome, utcnow


class EventLog(CatalogEngine):
    """Adding events, and reading them by AIP, type or submission."""

    def add_events(self, aip_id: str | None, events: Sequence[Event], submission: str = "") -> None:
        with self._tx() as s:
            s.add_all(event_row(e, aip_id, submission) for e in events)

    def submission_events(self, submission: str) -> list[Event]:
        """Events recorded under a submission's name that belong to no AIP (quarantines, entries
        the watcher ignored, releases from quarantine), oldest first."""
        with self._session() as s:
            q = select(EventRow).where(EventRow.submission == submission, EventRow.aip_id.is_(None))
            return [event_from_row(r) for r in s.scalars(q.order_by(EventRow.at, EventRow.id))]

    def events(self, aip_id: str | None = None, type: EventType | None = None) -> list[Event]:
        with self._session() as s:
            q = select(EventRow)
            if aip_id:
                q = q.where(EventRow.aip_id == aip_id)
            if type:
                q = q.where(EventRow.type == type.value)
            return [event_from_row(r) for r in s.scalars(q.order_by(EventRow.at, EventRow.id))]


def event_from_row(r: EventRow) -> Event:
    return Event(
        type=EventType(r.type),
        outcome=Outcome(r.outcome),
        agent=Agent(r.agent_name, r.agent_version, r.agent_kind),
        detail=r.detail,
        at=aware(r.at) or utcnow(),
        subject=r.subject,
        extra=dict(r.extra or {}),
    )


def event_row(e: Event, aip_id: str | None, submission: str = "") -> EventRow:
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
