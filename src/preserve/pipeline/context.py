"""What every ingest step may use: the settings, the catalog, who this ingest is (source, AIP id,
worker, attempt, the archivist's decisions), and where its events and progress go. Side effects:
none here; the catalog is the steps' own to write.

The context is immutable; the event log and the byte meter are append-only sinks, so that the
events a step recorded before it failed still reach the quarantine report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import Agent, Event, EventType, Outcome
from preserve.core.progress import MediaProgress, Meter
from preserve.intake import submission as submissions


class EventLog:
    """The events of one ingest, in the order they happened. Append-only."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def record(
        self, type: EventType, outcome: Outcome, agent: Agent, detail: str = "", subject: str = "", **extra: object
    ) -> Event:
        event = Event(type=type, outcome=outcome, agent=agent, detail=detail, subject=subject, extra=dict(extra))
        self._events.append(event)
        return event

    def add(self, *events: Event) -> None:
        self._events.extend(events)

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(tuple(self._events))

    def __len__(self) -> int:
        return len(self._events)


@dataclass(frozen=True)
class IngestContext:
    """One ingest of one submission. ``attempt`` is the claim's attempt number under this AIP id:
    from 2 on, an earlier attempt may have left unrecorded objects behind in storage."""

    settings: Settings
    catalog: Catalog
    source: Path
    aip_id: str
    worker: str
    attempt: int = 1
    accept_invalid: bool = False  # an archivist accepted media that does not decode (`retry --accept-invalid`)
    log: EventLog = field(default_factory=EventLog)
    meter: Meter = field(default_factory=Meter)
    #: hears how far a transcode or decode of a film has got (see `MediaProgress`); None: nobody
    media_progress: MediaProgress | None = None

    @property
    def name(self) -> str:
        """The submission's key in the catalog (its name in the ingest folder)."""
        return submissions.key_for(self.source)

    @property
    def work_dir(self) -> Path:
        return self.settings.staging_dir / self.aip_id

    @property
    def bag_dir(self) -> Path:
        return self.work_dir / "bag"
