"""Watching the ingest folder by polling, which works on NFS and SMB shares where inotify does not:
which top-level entries are submissions, when each is complete (its size, file count and newest
mtime unchanged for `stable_seconds`, or a READY marker), and a pass or a loop that hands every
ready submission to an ingest function and goes on whatever happens to one of them.
Side effects: reads directory entries and file metadata (never file contents); records an event
the first time an entry is ignored; whatever `ingest_fn` does."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from preserve import tools
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core import redact
from preserve.core.model import Event, EventType, Outcome
from preserve.intake import recovery
from preserve.intake import submission as submissions

log = logging.getLogger(__name__)

#: folders the pipeline itself keeps inside the ingest folder
OWN_FOLDERS = ("done", "failed")
#: after an unexpected error, wait this long (doubling per failure, capped) before trying again
BACKOFF_FIRST_SECONDS = 60.0
BACKOFF_MAX_SECONDS = 3600.0

Clock = Callable[[], float]


# -- values ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """What an entry looks like from the outside, without reading it: for a folder, the totals
    over everything below it (links and special files counted, never followed)."""

    size: int
    files: int
    newest_mtime_ns: int
    error: str = ""  # an entry that cannot be listed is reported to ingest, which quarantines it


@dataclass(frozen=True)
class Ready:
    path: Path
    name: str  # NFC, printable
    reason: str  # "unchanged for N s" | "READY marker"


@dataclass(frozen=True)
class Waiting:
    name: str
    reason: str


@dataclass(frozen=True)
class Ignored:
    name: str
    reason: str


@dataclass(frozen=True)
class Look:
    """One look at the ingest folder: a finding, never an exception."""

    ready: tuple[Ready, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    ignored: tuple[Ignored, ...] = ()


@dataclass(frozen=True)
class Handled:
    """What became of one ready submission (the same fields `preserve ingest` prints)."""

    submission: str
    status: str  # stored | duplicate | quarantined | skipped | error
    aip_id: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("stored", "duplicate", "skipped")

    @classmethod
    def of(cls, result: IngestOutcome, name: str) -> Handled:
        """From what the ingest function returned (the pipeline's IngestResult, or a Handled)."""
        return cls(result.submission or name, str(result.status), result.aip_id, result.detail)


class IngestOutcome(Protocol):
    """What the watcher needs of an ingest's result; `preserve.pipeline.IngestResult` is one (the
    watcher sits below the pipeline, which it never imports: the ingest function is passed in)."""

    @property
    def submission(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def aip_id(self) -> str: ...
    @property
    def detail(self) -> str: ...


@dataclass(frozen=True)
class PassReport:
    handled: tuple[Handled, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    recovered: tuple[recovery.Recovered, ...] = ()

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.handled)


@dataclass
class _Seen:
    snapshot: Snapshot
    since: float  # clock time at which the entry last changed (or was first seen)
    changes: int = 0


@dataclass
class WatchState:
    """What the watcher remembers between polls, so stability is measured across them. Explicit,
    so tests can drive it with a fake clock."""

    seen: dict[str, _Seen] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)  # ignored/orphan entries already recorded
    backoff: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (failures, not before)

    def observe(self, name: str, snap: Snapshot, now: float) -> _Seen:
        seen = self.seen.get(name)
        if seen is None:
            seen = self.seen[name] = _Seen(snap, now)
        elif seen.snapshot != snap:
            seen.snapshot, seen.since, seen.changes = snap, now, seen.changes + 1
        return seen

    def forget_missing(self, present: set[str]) -> None:
        for name in list(self.seen):
            if name not in present:
                del self.seen[name]
        for name in list(self.backoff):
            if name not in present:
                del self.backoff[name]

    def failed(self, name: str, now: float) -> None:
        count = self.backoff.get(name, (0, 0.0))[0] + 1
        self.backoff[name] = (count, now + min(BACKOFF_FIRST_SECONDS * 2 ** (count - 1), BACKOFF_MAX_SECONDS))


# -- looking ---------------------------------------------------------------------------------
def snapshot(path: Path) -> Snapshot:
    """Size, file count and newest mtime of an entry, by lstat only (links are not followed;
    a FIFO is never opened). A folder that cannot be listed gives a snapshot with ``error``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Snapshot(-1, 0, 0, "gone")
    if not stat.S_ISDIR(st.st_mode):
        return Snapshot(st.st_size, 1, st.st_mtime_ns)
    size, files, newest, errors = 0, 0, st.st_mtime_ns, []
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        est = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    newest = max(newest, est.st_mtime_ns)
                    if stat.S_ISDIR(est.st_mode):
                        stack.append(Path(e.path))
                    else:
                        size += est.st_size
                        files += 1
        except OSError as exc:
            errors.append(f"{exc.filename}: {exc.strerror}")
    return Snapshot(size, files, newest, "; ".join(errors[:3]))


def _combined(snaps: list[Snapshot]) -> Snapshot:
    return Snapshot(
        sum(s.size for s in snaps),
        sum(s.files for s in snaps),
        max(s.newest_mtime_ns for s in snaps),
        "; ".join(s.error for s in snaps if s.error),
    )


def look(ingest_dir: Path, state: WatchState, now: float, stable_seconds: float) -> Look:
    """Classify every top-level entry of the ingest folder and update ``state``. An entry is
    ready when it has a READY marker, or when its snapshot (a single file's together with its
    companions') has not changed for ``stable_seconds``."""
    try:
        names = sorted(os.listdir(ingest_dir))
    except FileNotFoundError:
        return Look()
    present = set(names)
    ready: list[tuple[int, Ready]] = []
    waiting: list[Waiting] = []
    ignored: list[Ignored] = []
    for name in names:
        path = ingest_dir / name
        shown = submissions.key_for(path)
        is_dir = path.is_dir() and not path.is_symlink()
        if name in OWN_FOLDERS and is_dir:
            continue
        if submissions.is_ignored(name):
            ignored.append(Ignored(shown, "system or partial file; left where it is"))
            continue
        if name.startswith("."):
            ignored.append(Ignored(shown, "hidden name (a copy still in progress uses one); left where it is"))
            continue
        if name == submissions.READY_MARKER:
            ignored.append(Ignored(shown, "a READY marker belongs inside a folder, or as <file>.READY"))
            continue
        base = submissions.companion_of(name)
        if base is not None and base in present:
            if os.path.isdir(ingest_dir / base) and not os.path.islink(ingest_dir / base):
                waiting.append(
                    Waiting(
                        shown,
                        f"it looks like a sidecar of the folder {base!r}; put it inside "
                        "the folder (as metadata.yaml, or beside the film)",
                    )
                )
            continue  # travels with its file, and counts towards that file's stability
        if base is not None and not path.is_dir():
            waiting.append(Waiting(shown, f"waiting for {base!r}, the file it belongs to"))
            continue
        snaps = [snapshot(path)] + ([] if is_dir else [snapshot(c) for c in submissions.companions_of(path)])
        snap = _combined(snaps)
        seen = state.observe(name, snap, now)
        not_before = state.backoff.get(name, (0, 0.0))[1]
        if now < not_before:
            waiting.append(Waiting(shown, f"failed unexpectedly; tried again in {not_before - now:.0f} s"))
            continue
        if os.path.lexists(submissions.ready_marker_for(path)):
            ready.append((snap.newest_mtime_ns, Ready(path, shown, "READY marker")))
        elif now - seen.since >= stable_seconds:
            ready.append((snap.newest_mtime_ns, Ready(path, shown, f"unchanged for {now - seen.since:.0f} s")))
        else:
            waiting.append(Waiting(shown, "changing" if seen.changes else "not yet stable"))
    state.forget_missing(present)
    # oldest first: what was dropped first is taken first
    return Look(tuple(r for _, r in sorted(ready, key=lambda x: (x[0], x[1].name))), tuple(waiting), tuple(ignored))


def settle(
    ingest_dir: Path,
    state: WatchState,
    *,
    stable_seconds: float,
    poll_seconds: float,
    timeout: float,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Look:
    """Look repeatedly until every entry present at the first look is either ready or has been
    seen changing (still being copied), or ``timeout`` passes. For one-shot passes (`--once`, a
    scheduled flow run) that have no earlier polls to compare with."""
    start = clock()
    first = look(ingest_dir, state, start, stable_seconds)
    changes = {n: s.changes for n, s in state.seen.items()}
    pending = {n for n in changes if state.backoff.get(n, (0, 0.0))[1] <= start} - {_raw(r) for r in first.ready}
    last = first
    while pending and clock() - start < timeout:
        sleep(max(0.0, min(poll_seconds, timeout - (clock() - start))))
        last = look(ingest_dir, state, clock(), stable_seconds)
        ready = {_raw(r) for r in last.ready}
        pending = {n for n in pending if n in state.seen and n not in ready and state.seen[n].changes == changes[n]}
    return last


def _raw(r: Ready) -> str:
    return r.path.name


# -- a pass and the loop ---------------------------------------------------------------------
IngestFn = Callable[[Path], IngestOutcome]


def watch_once(
    settings: Settings,
    catalog: Catalog,
    ingest_fn: IngestFn,
    *,
    state: WatchState | None = None,
    wait: bool = True,
    timeout: float | None = None,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PassReport:
    """One pass: tidy up after crashes, look at the folder (``wait``: until what is there has
    settled, at most ``timeout``, default twice stable_seconds plus a poll), record newly ignored
    entries, and ingest every ready submission in turn. A failure of one submission never stops
    the pass: ingest_fn quarantines what is broken, and anything unexpected is logged, reported
    as "error", and retried after a back-off."""
    state = state if state is not None else WatchState()
    ing = settings.ingest
    recovered: list[recovery.Recovered] = []
    try:
        recovered = recovery.recover(settings, catalog)
        for r in recovered:
            log.warning("recovered %s: %s", r.subject, r.action)
    except Exception:
        log.exception("recovery after an interrupted ingest failed; continuing")
    if wait:
        limit = timeout if timeout is not None else 2 * ing.stable_seconds + ing.poll_seconds
        seen = settle(
            settings.ingest_dir,
            state,
            stable_seconds=ing.stable_seconds,
            poll_seconds=ing.poll_seconds,
            timeout=limit,
            clock=clock,
            sleep=sleep,
        )
    else:
        seen = look(settings.ingest_dir, state, clock(), ing.stable_seconds)
    try:
        _record_once(catalog, state, seen)
    except Exception:
        log.exception("could not record ignored entries; continuing")
    handled = [_hand_over(r, ingest_fn, state, clock) for r in seen.ready]
    return PassReport(tuple(handled), seen.waiting, seen.ignored, tuple(recovered))


def _hand_over(ready: Ready, ingest_fn: IngestFn, state: WatchState, clock: Clock) -> Handled:
    log.info("ingesting %s (%s)", ready.name, ready.reason)
    try:
        handled = Handled.of(ingest_fn(ready.path), ready.name)
    except Exception as exc:  # noqa: BLE001 - one submission never stops the watcher
        # the text of an unexpected failure may quote what was submitted: only its public form leaves
        log.error("ingest of %s failed unexpectedly (%s); the watcher goes on", ready.name, redact.describe(exc))
        handled = Handled(ready.name, "error", "", redact.describe(exc))
    if handled.status == "error":
        state.failed(ready.path.name, clock())
    else:
        state.backoff.pop(ready.path.name, None)
    log.info("%s: %s %s %s", handled.submission, handled.status, handled.aip_id, handled.detail)
    return handled


def _record_once(catalog: Catalog, state: WatchState, seen: Look) -> None:
    """An ignored or stranded entry is recorded once (per name and reason, across runs), not at
    every poll."""
    agent = tools.preserve_agent()
    entries: list[tuple[Ignored | Waiting, Outcome]] = [
        *((i, Outcome.NOT_PERFORMED) for i in seen.ignored),
        *(
            (w, Outcome.WARNING)
            for w in seen.waiting
            if "waiting for" in w.reason or "sidecar of the folder" in w.reason
        ),
    ]
    for item, outcome in entries:
        detail = f"ingest folder entry {item.name!r} not ingested: {item.reason}"
        tag = f"{item.name}\0{detail}"
        if tag in state.reported:
            continue
        state.reported.add(tag)
        if any(e.detail == detail for e in catalog.submission_events(item.name)):
            continue
        catalog.add_events(
            None, [Event(EventType.VALIDATION, outcome, agent, detail, subject=item.name)], submission=item.name
        )


def watch_forever(
    settings: Settings,
    catalog: Catalog,
    ingest_fn: IngestFn,
    *,
    stop: threading.Event,
    on_handled: Callable[[Handled], None] = lambda _h: None,
    clock: Clock = time.monotonic,
) -> None:
    """Poll every poll_seconds until ``stop`` is set, ingesting what is ready. Nothing that goes
    wrong in a pass (a crashing submission, an unreachable catalog) ends the loop."""
    state = WatchState()
    while not stop.is_set():
        try:
            report = watch_once(settings, catalog, ingest_fn, state=state, wait=False, clock=clock)
            for h in report.handled:
                on_handled(h)
        except Exception:
            log.exception("watch pass failed; trying again in %s s", settings.ingest.poll_seconds)
        stop.wait(settings.ingest.poll_seconds)
