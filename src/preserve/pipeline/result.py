"""The one result of an ingest, as the CLI, the watcher, the dashboard and the Prefect flow see it;
`to_dict`/`from_dict` carry it across the flow boundary (JSON-safe). Pure values, no I/O."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preserve.core import redact
from preserve.core.model import Agent, Event, EventType, Outcome


class IngestStatus(enum.StrEnum):
    """How one ingest ended."""

    STORED = "stored"  # a new AIP, every required replica verified and recorded
    DUPLICATE = "duplicate"  # the same content is already an AIP; recorded, not stored twice
    QUARANTINED = "quarantined"  # moved to failed/ with its report; nothing was lost
    SKIPPED = "skipped"  # not taken: gone from the ingest folder, or another worker holds it
    ERROR = "error"  # the ingest run itself crashed before deciding (seen across the flow boundary)

    @property
    def ok(self) -> bool:
        return self in (IngestStatus.STORED, IngestStatus.DUPLICATE)


@dataclass(frozen=True)
class FileSummary:
    """One original, as the ingest report shows it."""

    path: str
    size: int
    sha256: str
    duration: float | None = None
    video_codec: str = ""
    width: int | None = None
    height: int | None = None
    audio_codec: str = ""


@dataclass(frozen=True)
class ReplicaSummary:
    target: str
    status: str
    objects: int
    uri: str
    verified_at: dt.datetime | None = None


@dataclass(frozen=True)
class AccessSummary:
    kind: str
    uri: str
    size: int
    sha256: str


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did. ``detail`` is shareable (`preserve.core.redact`: it never quotes sidecar
    values or link targets); the events are those recorded before the ingest ended, in order (the
    quarantine event, too, says only the shareable reason)."""

    submission: str
    status: IngestStatus
    aip_id: str = ""
    detail: str = ""
    quarantine_dir: Path | None = None
    title: str = ""
    files: tuple[FileSummary, ...] = ()
    payload_oxum: str = ""
    replicas: tuple[ReplicaSummary, ...] = ()
    access: tuple[AccessSummary, ...] = ()
    events: tuple[Event, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission": self.submission,
            "status": self.status.value,
            "aip_id": self.aip_id,
            "detail": self.detail,
            "quarantine_dir": str(self.quarantine_dir) if self.quarantine_dir else None,
            "title": self.title,
            "files": [vars(f) for f in self.files],
            "payload_oxum": self.payload_oxum,
            "replicas": [
                {**vars(r), "verified_at": r.verified_at.isoformat() if r.verified_at else None} for r in self.replicas
            ],
            "access": [vars(a) for a in self.access],
            "events": [_event_dict(e) for e in self.events],
            "timings": dict(self.timings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestResult:
        quarantine = data.get("quarantine_dir")
        return cls(
            submission=str(data["submission"]),
            status=IngestStatus(data["status"]),
            aip_id=str(data.get("aip_id") or ""),
            detail=str(data.get("detail") or ""),
            quarantine_dir=Path(quarantine) if quarantine else None,
            title=str(data.get("title") or ""),
            files=tuple(FileSummary(**f) for f in data.get("files", ())),
            payload_oxum=str(data.get("payload_oxum") or ""),
            replicas=tuple(
                ReplicaSummary(**{**r, "verified_at": _datetime(r.get("verified_at"))})
                for r in data.get("replicas", ())
            ),
            access=tuple(AccessSummary(**a) for a in data.get("access", ())),
            events=tuple(_event_of(e) for e in data.get("events", ())),
            timings={str(k): float(v) for k, v in (data.get("timings") or {}).items()},
        )

    @classmethod
    def crashed(cls, submission: str, failure: BaseException | str) -> IngestResult:
        """The result of an ingest run that crashed before it could decide anything: ``failure``
        is the exception (told as `preserve.core.redact` lets it out) or a text that is shareable."""
        detail = redact.describe(failure) if isinstance(failure, BaseException) else failure
        return cls(submission=submission, status=IngestStatus.ERROR, detail=detail)


def _datetime(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _event_dict(e: Event) -> dict[str, Any]:
    return {
        "type": e.type.value,
        "outcome": e.outcome.value,
        "agent": {"name": e.agent.name, "version": e.agent.version, "kind": e.agent.kind},
        "detail": e.detail,
        "at": e.at.isoformat(),
        "subject": e.subject,
        "extra": dict(e.extra),
    }


def _event_of(d: Mapping[str, Any]) -> Event:
    agent = d.get("agent") or {}
    return Event(
        type=EventType(d["type"]),
        outcome=Outcome(d["outcome"]),
        agent=Agent(str(agent.get("name", "")), str(agent.get("version", "")), str(agent.get("kind", "software"))),
        detail=str(d.get("detail", "")),
        at=dt.datetime.fromisoformat(d["at"]),
        subject=str(d.get("subject", "")),
        extra=dict(d.get("extra") or {}),
    )
