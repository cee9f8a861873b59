"""Putting a quarantined submission back (`preserve retry NAME`): its untouched source and
companions move from failed/NAME/ into the ingest folder, the release is recorded as an event,
and the catalog keeps its row so the next attempt reuses the same AIP id. Side effects: renames
out of failed/, removes that folder's own REPORT.txt/report.json, one catalog event."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.errors import ConfigError
from preserve.core.model import Agent, Event, EventType, Outcome
from preserve.intake import disposition
from preserve.intake import submission as submissions


@dataclass(frozen=True)
class Released:
    source: Path  # where the submission is now, in the ingest folder
    companions: tuple[Path, ...]
    previous_problem: str  # "<code>: <public text>" from the quarantine report (never the sidecar values)


def quarantined(settings: Settings) -> list[str]:
    """Names that `retry` accepts: the folders under failed/."""
    try:
        return sorted(submissions.key_for(p) for p in settings.failed_dir.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def _find(settings: Settings, name: str) -> Path:
    wanted = unicodedata.normalize("NFC", name.rstrip("/"))
    for p in settings.failed_dir.iterdir() if settings.failed_dir.is_dir() else ():
        if p.is_dir() and not p.is_symlink() and submissions.key_for(p) == wanted:
            return p
    known = quarantined(settings)
    raise ConfigError(
        f"nothing called {name!r} in {settings.failed_dir}"
        + (f"; quarantined: {', '.join(known[:20])}" if known else "; failed/ is empty"),
        advice="Give the name of a folder under failed/ (as `preserve retry` lists it).",
    )


def release(
    settings: Settings, catalog: Catalog, name: str, *, accept_invalid: bool = False, operator: Agent | None = None
) -> Released:
    """Move failed/NAME/<source> (and its sidecar files) back into the ingest folder. Refuses to
    overwrite anything there. Raises ConfigError for an unknown NAME or a clash."""
    folder = _find(settings, name)
    own = set(disposition.reports_in(folder))
    report = disposition.read_report(folder)
    entries = [p for p in folder.iterdir() if p.name not in own]
    source = _source_in(entries, str(report.get("submission", "")))
    companions = tuple(p for p in entries if p != source and submissions.companion_of(p.name) == source.name)
    dest = settings.ingest_dir / source.name
    clashes = [
        settings.ingest_dir / p.name for p in (*companions, source) if os.path.lexists(settings.ingest_dir / p.name)
    ]
    if clashes:
        raise ConfigError(
            f"{', '.join(str(c) for c in clashes)} already exist(s) in the ingest folder; nothing was moved",
            advice="Move or rename the entry in the ingest folder first.",
        )
    for c in companions:  # companions first: when the watcher sees the source, its sidecar is there
        os.rename(c, settings.ingest_dir / c.name)
    os.rename(source, dest)
    if not [p for p in folder.iterdir() if p.name not in own]:
        for r in own:
            (folder / r).unlink(missing_ok=True)
        folder.rmdir()
    # the report's public line: its full message may quote sidecar values, which stay in failed/
    problem = str(report.get("public") or report.get("code") or "?")
    key = submissions.key_for(dest)
    catalog.add_events(
        None,
        [
            Event(
                EventType.QUARANTINE,
                Outcome.PASS,
                operator or Agent("archivist", "", "person"),
                "released from quarantine for a new attempt"
                + (" (to be accepted as it is, --accept-invalid)" if accept_invalid else "")
                + f"; the problem was {problem}",
                subject=key,
            )
        ],
        submission=key,
    )
    return Released(dest, tuple(settings.ingest_dir / c.name for c in companions), problem)


def _source_in(entries: list[Path], recorded: str) -> Path:
    """The quarantined source: the entry the report names, or else the one entry that is not a
    companion (an archivist may have renamed it while fixing it)."""
    for p in entries:
        if recorded and submissions.key_for(p) == unicodedata.normalize("NFC", recorded):
            return p
    candidates = [p for p in entries if submissions.companion_of(p.name) not in {e.name for e in entries}]
    if len(candidates) == 1:
        return candidates[0]
    raise ConfigError(
        f"cannot tell which of {[p.name for p in entries]} is the submission to put back",
        advice="Leave exactly the submission (and its sidecar files) in the failed/ folder, and retry.",
    )
