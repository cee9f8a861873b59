"""Changing an AIP's access level after ingest (`preserve set-access`): every transition among
open, restricted, embargoed (an embargo set, extended or shortened) and dark. The decision is
written first (a pending access change); then the access copies are put at the location of the new
level (copied from where they are, verified against their recorded SHA-256, or made again from the
preserved original when none is left, as after a withdrawal), every version of them is removed from
every other access location and verified gone, and only then does the catalog record the new level
and the copies' new place, with an `access decision` event naming the operator and the reason. A
change to dark is a withdrawal (`preserve.operations.withdraw`). A change killed half-way stays
pending and is finished by the next run or by housekeeping (`finish_pending`). The decision's
events are then written beside the AIP on its replicas (`operations.journal`).
Side effects: object store reads, writes and deletes; downloads of an original and ffmpeg runs
under var/access-work/<AIP id>/ (removed afterwards); catalog writes; an alert (webhook, e-mail)
when the copies cannot be placed."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preserve import tools
from preserve.access import contactsheet, package, policy, scrub
from preserve.access import proxy as proxies
from preserve.access.presentation import KIND_TRACK
from preserve.catalog import AccessChangeRecord, AccessCopy, AipView, Catalog, FileView
from preserve.catalog.access_changes import DONE
from preserve.config import Settings, TargetSettings
from preserve.core import redact
from preserve.core.errors import ConfigError, PreserveError, PrivacyError, StorageError
from preserve.core.fs import private_dir
from preserve.core.model import AccessLevel, Agent, AipStatus, Event, EventType, Outcome, utcnow
from preserve.fixity.digest import digest_file
from preserve.operations import alerts, journal, presenting
from preserve.operations import withdraw as withdrawals
from preserve.operations.embargo import embargo_until
from preserve.storage import ObjectStore, open_store, store_agent
from preserve.tools import ffprobe

log = logging.getLogger(__name__)

#: the alert of an access change whose copies could not be placed
ACCESS_CHANGE_FAILED = alerts.ACCESS_CHANGE_FAILED
#: in a change's detail: why housekeeping leaves it for a person (a copy made again was not clean)
NEEDS_PERSON = "needs_person"

#: the access copies, by kind, under the names the ingest gives them (pipeline step `derive`)
COPY_NAMES = {"proxy": "proxy.mp4", "poster": "poster.jpg", "contact sheet": "contact-sheet.jpg"}


@dataclass(frozen=True)
class AccessChangeReport:
    """What a change of access level did: where the copies are now, how they got there, what was
    removed from the other locations, and what could not be done (``ok`` False: the change stays
    pending and is retried). A change to dark carries its WithdrawalReport."""

    aip_id: str
    change_id: int
    from_level: AccessLevel
    to_level: AccessLevel
    until: dt.date | None = None
    previous_until: dt.date | None = None
    copies: tuple[AccessCopy, ...] = ()
    #: how each copy reached its location: "already there", "copied from <location>", "made again"
    how: dict[str, str] = field(default_factory=dict)
    removed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    remaining: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    resumed: bool = False
    withdrawal: withdrawals.WithdrawalReport | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        if self.withdrawal is not None:
            return self.withdrawal.ok
        return not any(self.remaining.values())

    def remaining_lines(self) -> list[str]:
        if self.withdrawal is not None:
            return self.withdrawal.remaining_lines()
        return [f"{where}: {what}" for where, items in self.remaining.items() for what in items]


def parse_level(text: str) -> AccessLevel:
    try:
        return AccessLevel(text.strip().lower())
    except ValueError:
        raise ConfigError(f"unknown access level {text!r}; one of {', '.join(a.value for a in AccessLevel)}") from None


def set_access(
    settings: Settings,
    catalog: Catalog,
    aip_id: str,
    level: AccessLevel | str,
    *,
    until: dt.date | None = None,
    reason: str,
    operator: Agent,
    today: dt.date | None = None,
    remake: bool = False,
) -> AccessChangeReport:
    """Change the AIP's access level to ``level`` (``until``: the embargo date, required for
    embargoed and after ``today``). Raises ConfigError for an unknown AIP, a deaccessioned one (but
    for dark), a bad level or date, no access target, or an empty reason, and CatalogError when another change is still pending (a
    withdrawal always goes ahead); copies that cannot be moved or removed are reported, not raised."""
    level = parse_level(level) if isinstance(level, str) else AccessLevel(level)
    today = today or utcnow().date()
    if not reason.strip():
        raise ConfigError("a change of access needs a reason (--reason TEXT): it is recorded with the decision")
    if level is AccessLevel.EMBARGOED:
        if until is None:
            raise ConfigError("an embargo needs its end date: --until YYYY-MM-DD")
        if until <= today:
            raise ConfigError(
                f"the embargo date {until} is not after today ({today})",
                advice="Give a date in the future, or make the film open now with `preserve set-access AIP_ID open`.",
            )
    elif until is not None:
        raise ConfigError(f"--until is only for an embargo, not for {level.value}")
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise ConfigError(f"no AIP {aip_id!r} in the catalog", advice="Check the id with `preserve list`.")
    if aip.status is AipStatus.DEACCESSIONED and level is not AccessLevel.DARK:
        raise ConfigError(
            f"AIP {aip.id} is deaccessioned: only its tombstone stays, it has no access level to change",
            advice="A deaccessioned film cannot be made available again; `preserve status` shows it.",
        )
    if level is AccessLevel.DARK and remake:
        raise ConfigError("a dark film has no access copies to make again", advice="Give the level they are for.")
    if level is AccessLevel.DARK:
        w = withdrawals.withdraw(settings, catalog, aip.id, reason=reason, operator=operator)
        return AccessChangeReport(
            aip.id, w.change_id, w.previous_level, AccessLevel.DARK, resumed=w.resumed, withdrawal=w, seconds=w.seconds
        )
    if policy.access_location(settings, level) is None:
        raise ConfigError("no access target is configured ([access_target]): access copies have nowhere to go")
    current_until = embargo_until(list(aip.events)) if aip.access_level is AccessLevel.EMBARGOED else None
    pending = catalog.access_changes(aip.id, pending_only=True)
    same = aip.access_level is level and (level is not AccessLevel.EMBARGOED or current_until == until)
    if not pending and same and not remake:
        return AccessChangeReport(
            aip.id,
            0,
            level,
            level,
            until,
            current_until,
            copies=aip.access,
            note=f"already {level.value}" + (f" until {until}" if until else "") + ": nothing to change",
        )
    change, resumed = catalog.begin_access_change(
        aip.id, from_level=aip.access_level, to_level=level, until=until, reason=reason.strip(), operator=operator
    )
    report = carry_out(settings, catalog, aip, change, resumed=resumed, previous_until=current_until, remake=remake)
    journal.flush(settings, catalog, [aip.id])  # what was recorded (done, or an attempt), beside the AIP
    return report


def carry_out(
    settings: Settings,
    catalog: Catalog,
    aip: AipView,
    change: AccessChangeRecord,
    *,
    resumed: bool = False,
    previous_until: dt.date | None = None,
    remake: bool = False,
) -> AccessChangeReport:
    """Carry out a pending change to a level whose copies are stored (open, restricted, embargoed);
    ``remake``: every copy made again from the preserved originals (a change resumed by
    housekeeping after a killed run moves the copies as they are)."""
    started = time.monotonic()
    dest = policy.access_location(settings, change.to_level)
    if dest is None:
        raise ConfigError("no access target is configured ([access_target]): access copies have nowhere to go")
    now = catalog.access_change(change.id)
    if now is not None and now.state == DONE:  # another finisher did it since this one read it: nothing to move
        current = catalog.get_aip(aip.id) or aip
        return AccessChangeReport(
            aip.id,
            change.id,
            change.from_level,
            change.to_level,
            change.until,
            previous_until,
            copies=current.access,
            note="already carried out by another run",
            resumed=True,
            seconds=time.monotonic() - started,
        )
    events: list[Event] = []
    remaining: dict[str, tuple[str, ...]] = {}
    scratch = settings.var_dir / "access-work" / aip.id
    try:
        placed, how, problems, made, needs_person = _place_copies(
            settings, aip, change.to_level, dest, scratch, events, remake=remake
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if problems:
        remaining[dest.name] = tuple(problems)
    sweeps = withdrawals.sweep_access(settings, aip, keep=dest.name) if not problems else []
    for s in sweeps:
        if s.remaining:
            remaining[s.location] = s.remaining
    report = AccessChangeReport(
        aip.id,
        change.id,
        change.from_level,
        change.to_level,
        change.until,
        previous_until,
        copies=tuple(placed),
        how=how,
        removed={s.location: s.removed for s in sweeps},
        remaining=remaining,
        note=_note(aip, change, previous_until, made),
        resumed=resumed or change.attempts > 0,
        seconds=time.monotonic() - started,
    )
    detail: dict[str, Any] = {
        "copies": {_copy_name(c.kind, c.key): c.uri for c in placed},
        "how": how,
        "removed": {k: list(v) for k, v in report.removed.items()},
        "remaining": {k: list(v) for k, v in remaining.items()},
    }
    if needs_person:
        detail[NEEDS_PERSON] = needs_person
    if not report.ok:
        lines = report.remaining_lines()
        failed = [
            Event(
                EventType.ACCESS_DECISION,
                Outcome.FAIL,
                tools.preserve_agent(),
                f"change of access {change.from_level} -> {change.to_level} asked by {change.operator} NOT complete "
                f"(the level stays {aip.access_level}; retried): " + "; ".join(lines[:20]),
                extra={"change_id": change.id},
            )
        ]
        catalog.access_change_attempted(change.id, error="; ".join(lines)[:4000], detail=detail, events=events + failed)
        if problems:
            alerts.send(settings, catalog, _failed_alert(change, problems, needs_person))
        return report
    events += _deletion_events(settings, change, sweeps)
    events.insert(0, _decision_event(change, report, dest))
    try:
        catalog.complete_access_change(change.id, copies=placed, events=events, detail=detail)
    except PreserveError:
        now = catalog.access_change(change.id)
        if now is not None and now.state == DONE:
            return report  # another finisher recorded this very change meanwhile: done
        if catalog.publication_withheld(aip.id):
            # a withdrawal replaced this change while it ran: what this run placed must not stay, and
            # when that cannot be verified the withdrawal is pending again (and an alert says so)
            sweeps = withdrawals.sweep_access(settings, catalog.get_aip(aip.id) or aip)
            if not all(s.ok for s in sweeps):
                withdrawals.reopen(settings, catalog, aip.id, sweeps)
        raise
    return report


def finish_pending(settings: Settings, catalog: Catalog) -> list[tuple[AccessChangeRecord, str]]:
    """Carry out every pending access change (housekeeping, after a killed run or an access
    location that was down). Returns each change with a one-line outcome; never raises for one
    change's failure."""
    out: list[tuple[AccessChangeRecord, str]] = []
    pending = sorted(catalog.access_changes(pending_only=True), key=lambda c: (not c.is_withdrawal, c.id))
    for change in pending:  # withdrawals first: a film being withdrawn is urgent
        aip = catalog.get_aip(change.aip_id)
        if aip is None:
            out.append((change, "the AIP is no longer in the catalog"))
            continue
        if not change.is_withdrawal and change.detail.get(NEEDS_PERSON):
            out.append((change, f"waits for a person: {change.detail[NEEDS_PERSON]}"))
            continue
        if not change.is_withdrawal and aip.status is AipStatus.DEACCESSIONED:
            out.append((change, "not carried out: the AIP is deaccessioned"))
            continue
        try:
            if change.is_withdrawal:
                w = withdrawals.carry_out(settings, catalog, aip, change, resumed=True)
                ok, lines = w.ok, w.remaining_lines()
            else:
                r = carry_out(settings, catalog, aip, change, resumed=True)
                ok, lines = r.ok, r.remaining_lines()
        except Exception as exc:  # noqa: BLE001 - one change's failure must not end the round
            log.warning("access change %s of %s failed: %s", change.id, change.aip_id, redact.describe(exc))
            out.append((change, f"failed: {redact.describe(exc)}"))
            continue
        out.append((change, "done" if ok else "not complete: " + "; ".join(lines[:5])))
    if pending:
        journal.flush(settings, catalog, [c.aip_id for c in pending])
    return out


# -- the copies ----------------------------------------------------------------------------------
def _place_copies(
    settings: Settings,
    aip: AipView,
    level: AccessLevel,
    dest: TargetSettings,
    scratch: Path,
    events: list[Event],
    *,
    remake: bool = False,
) -> tuple[list[AccessCopy], dict[str, str], list[str], bool, str]:
    """Every access copy verified at ``dest`` (the location of ``level``): left there when it is
    already there (its SHA-256 re-checked), else copied from the location that holds it (verified
    on download and on upload), else, when any is missing everywhere, all made again from the
    preserved original; then the IIIF manifest and the page written for that place (none for an
    embargoed level: `presenting.write_again`). Returns the
    copies at dest, how each got there, problems (nothing placed is recorded then; said as
    `redact.describe` says them), whether they were made again, and why a person must look first
    ("" unless the copies made again were not clean: retrying would only make them again)."""
    known = {t.name: t for t in policy.access_locations(settings)}
    placed: list[AccessCopy] = []
    how: dict[str, str] = {}
    problems: list[str] = []
    private_dir(scratch)  # the original film is restored here: for the archive's user only
    try:
        with open_store(settings, dest) as store:
            media = [] if remake else presenting.media_copies(aip.access)
            missing = not media
            for copy in media:
                local = scratch / Path(copy.key).name
                got = _fetch(settings, known, store, copy, local)
                if got is None:
                    missing = True
                    break
                if got == "here":
                    how[_copy_name(copy.kind, copy.key)] = "already there (SHA-256 checked)"
                else:
                    store.put_file(copy.key, local, sha256=copy.sha256, size=copy.size)
                    how[_copy_name(copy.kind, copy.key)] = (
                        f"copied from {got} (SHA-256 checked on download and on upload)"
                    )
                placed.append(AccessCopy(copy.kind, dest.name, copy.key, store.uri(copy.key), copy.size, copy.sha256))
            if missing:
                placed, how = [], {}
                made = _make_again(settings, aip, scratch, events)
                for stale in sorted({v.key for v in store.list_versions(f"{aip.id}/")}):
                    store.delete(stale)  # every version of an earlier attempt's copies
                for kind, path in made:
                    d = digest_file(path, ("sha256",))
                    key = f"{aip.id}/{path.name}"
                    store.put_file(key, path, sha256=d.values["sha256"], size=d.size)
                    placed.append(AccessCopy(kind, dest.name, key, store.uri(key), d.size, d.values["sha256"]))
                    how[_copy_name(kind, key)] = (
                        "made again from the preserved original (post-checked, SHA-256 checked on upload)"
                    )
                proxy = next((path for kind, path in made if kind == "proxy"), None)
                placed += _documents(settings, aip, level, store, placed, scratch, events, how, proxy)
                return placed, how, problems, True, ""
            placed += _documents(settings, aip, level, store, placed, scratch, events, how)
    except PrivacyError as exc:
        problems.append(redact.describe(exc))
        return [], {}, problems, False, redact.describe(exc)
    except PreserveError as exc:  # a location down, no replica verifies, ffmpeg failed: retried
        problems.append(redact.describe(exc))
    return placed, how, problems, False, ""


def _copy_name(kind: str, key: str) -> str:
    """How a copy is named in a change's record: its kind, and for the kinds an AIP may have
    several of (text tracks) its access file name too."""
    return f"{kind} {key.rsplit('/', 1)[-1]}" if kind == KIND_TRACK else kind


def _documents(
    settings: Settings,
    aip: AipView,
    level: AccessLevel,
    store: ObjectStore,
    placed: list[AccessCopy],
    scratch: Path,
    events: list[Event],
    how: dict[str, str],
    made: Path | None = None,
) -> list[AccessCopy]:
    """The manifest and the page written for the copies' new place (`presenting.write_again`;
    ``made``: the proxy just made again, which they then describe)."""
    documents = presenting.write_again(
        settings, aip, level, store, placed, scratch, download=_download, events=events, made=made
    )
    for d in documents:
        how[d.kind] = "written again for this location (validated, checked, SHA-256 checked on upload)"
    return documents


def _fetch(
    settings: Settings, known: dict[str, TargetSettings], dest: ObjectStore, copy: AccessCopy, local: Path
) -> str | None:
    """Where the copy comes from: "here" when ``dest`` already holds its bytes; else the location
    it was downloaded from into ``local`` (matching its recorded SHA-256); None when no location
    has it (then all are made again). The location the catalog records it at must answer
    (StorageError otherwise: the change waits for it rather than restore a whole film to remake
    what is there)."""
    if _holds(dest, copy, local):
        return "here"
    for name, location in sorted(known.items(), key=lambda kv: kv[0] != copy.target):
        if name == dest.name:
            continue
        try:
            with open_store(settings, location) as store:
                if store.head(copy.key) is None:
                    continue
                if store.get_file(copy.key, local) == copy.sha256:
                    return name
        except StorageError as exc:
            if name == copy.target:
                raise
            log.warning("access copy %s not read from %s: %s", copy.key, name, redact.describe(exc))
    local.unlink(missing_ok=True)
    return None


def _holds(store: ObjectStore, copy: AccessCopy, local: Path) -> bool:
    """Whether the store's object under the copy's key has the copy's size and SHA-256 (from the
    server's checksum when it vouches for the whole object, else by reading it back)."""
    info = store.head(copy.key)
    if info is None or info.size != copy.size:
        return False
    if info.sha256 is not None:
        return info.sha256 == copy.sha256
    try:
        return store.get_file(copy.key, local) == copy.sha256
    finally:
        local.unlink(missing_ok=True)


def _originals(aip: AipView) -> list[FileView]:
    """The AIP's films, largest first: original video files (never the preservation masters made
    beside them, ``<file>.ffv1.mkv``), then other files that may hold video."""
    paths = {f.path for f in aip.files}

    def is_master(path: str) -> bool:
        stem = path.removesuffix(".ffv1.mkv")
        return stem != path and (stem in paths or stem.rsplit(".", 1)[0] in paths)

    objects = [f for f in aip.files if f.path.startswith("data/objects/") and not is_master(f.path)]
    videos = sorted((f for f in objects if f.role == "video"), key=lambda f: -f.size)
    others = sorted((f for f in objects if f.role == "other"), key=lambda f: -f.size)
    return videos + others


#: one payload file of the AIP from the first replica that verifies (`presenting.download_payload`)
_download = presenting.download_payload


def _described(settings: Settings, aip: AipView, scratch: Path) -> tuple[str, ...]:
    """The descriptive values no access copy may carry: the catalog's title and, from the preserved
    sidecar when there is one, the original title and the directors."""
    meta = presenting.preserved_sidecar(settings, aip, scratch, _download)
    values = [aip.title, *((meta.title, meta.original_title, *meta.directors) if meta is not None else ())]
    return tuple(v for v in values if v)


def _make_again(settings: Settings, aip: AipView, scratch: Path, events: list[Event]) -> list[tuple[str, Path]]:
    """Restore the original film from a replica into ``scratch`` and make its proxy, poster and
    contact sheet again exactly as the ingest does (no source metadata), post-checked for anything
    identifying. [] when the AIP holds no video. Raises PrivacyError when a copy is not clean."""
    timeout = settings.ingest.tool_timeout_seconds
    for f in _originals(aip):
        src = scratch / ("original" + Path(f.path).suffix)
        replica = _download(settings, aip, f, src)
        probe = ffprobe.probe(src, timeout=min(timeout, 600))
        if probe.kind != "video":
            src.unlink(missing_ok=True)
            continue
        out = private_dir(scratch / "made")
        made: list[tuple[str, Path]] = [
            ("proxy", proxies.make_proxy(src, out / COPY_NAMES["proxy"], probe, settings.proxy, timeout=timeout)),
            ("poster", proxies.make_poster(src, out / COPY_NAMES["poster"], probe, settings.proxy, timeout=timeout)),
        ]
        sheet = settings.access
        if sheet.contact_sheet:
            made.append(
                (
                    "contact sheet",
                    contactsheet.make_contact_sheet(
                        src,
                        out / COPY_NAMES["contact sheet"],
                        probe,
                        frames=sheet.contact_sheet_frames,
                        columns=sheet.contact_sheet_columns,
                        tile_width=sheet.contact_sheet_tile_width,
                        timeout=timeout,
                    ),
                )
            )
        ffmpeg_agent = tools.agent("ffmpeg")
        events.append(
            Event(
                EventType.CREATION,
                Outcome.PASS,
                ffmpeg_agent,
                f"access copies made again from the original (restored from {replica}, SHA-256 verified): "
                + ", ".join(kind for kind, _ in made),
                subject=f.path,
            )
        )
        forbidden = scrub.forbidden_values(_described(settings, aip, scratch), probe.raw)
        for _kind, path in made:
            leak = scrub.check_clean(path, forbidden_values=forbidden)
            if not leak.ok:
                raise PrivacyError(
                    f"the access copy {path.name} made again still carries identifying metadata: "
                    + "; ".join(leak.findings[:5]),
                    public=f"the access copy {path.name} made again still carries identifying metadata "
                    f"({len(leak.findings)} finding(s); nothing was published)",
                )
        events.append(
            Event(
                EventType.METADATA_MODIFICATION,
                Outcome.PASS,
                ffmpeg_agent,
                "source metadata removed from the access copies made again; verified with ffprobe, MediaInfo and a "
                "byte scan",
                subject=f.path,
            )
        )
        made += _tracks_again(settings, aip, scratch, out, src, f.path, probe, events)
        src.unlink(missing_ok=True)
        return made
    events.append(
        Event(
            EventType.CREATION,
            Outcome.NOT_PERFORMED,
            tools.preserve_agent(),
            "no access copy can be made: the AIP holds no video",
        )
    )
    return []


def _tracks_again(
    settings: Settings,
    aip: AipView,
    scratch: Path,
    out: Path,
    film: Path,
    film_path: str,
    probe: ffprobe.ProbeReport,
    events: list[Event],
) -> list[tuple[str, Path]]:
    """The text tracks made again as the ingest makes them (`package.make_tracks`): from every
    subtitle file the AIP preserves (downloaded, verified) and every subtitle stream of the film,
    with the languages and encodings its preserved sidecar notes; one event each."""
    meta = presenting.preserved_sidecar(settings, aip, scratch, _download)
    sources = []
    folder = private_dir(scratch / "subtitles")
    for number, f in enumerate(x for x in aip.files if x.role == "subtitle"):
        local = folder / f"{number}{Path(f.path).suffix}"
        _download(settings, aip, f, local)
        note = meta.subtitle_note(f.path) if meta is not None else None
        sources.append(
            package.SubtitleSource(f.path, local, note.language if note else "", note.encoding if note else "")
        )
    findings = package.make_tracks(
        sources,
        out,
        settings=settings.access,
        film=film,
        film_source=film_path,
        probe=probe,
        forbidden=package.forbidden_values(
            [*scrub.identifying_tags(probe.raw), meta.contributor_id if meta is not None else ""],
            shown=(meta.title, meta.original_title, aip.title) if meta is not None else (aip.title,),
        ),
        timeout=settings.ingest.tool_timeout_seconds,
    )
    for finding in findings:
        text, extra = package.event_detail(finding)
        outcome = package.event_outcome(finding)
        events.append(
            Event(EventType.CREATION, outcome, tools.python_agent("pysubs2"), text, subject=finding.source, extra=extra)
        )
    return [(KIND_TRACK, t.path) for t in package.tracks_of(findings)]


# -- the record ----------------------------------------------------------------------------------
def _failed_alert(change: AccessChangeRecord, problems: list[str], needs_person: str) -> alerts.Alert:
    """An access change whose copies could not be placed (keyed on what went wrong: said once)."""
    key = hashlib.sha256("|".join(problems).encode()).hexdigest()[:12]
    advice = (
        "Nothing was published and the level is unchanged. A copy made again was not clean: housekeeping "
        "does not retry it. Fix the scrubbing, then run `preserve set-access` again."
        if needs_person
        else "The level is unchanged; `preserve serve` retries the change at every housekeeping round."
    )
    return alerts.Alert(
        ACCESS_CHANGE_FAILED,
        f"{ACCESS_CHANGE_FAILED}:{change.aip_id}:{change.id}:{key}",
        change.aip_id,
        f"AIP {change.aip_id}: change of access {change.from_level} -> {change.to_level} NOT done: "
        + "; ".join(problems[:3]),
        {"aip_id": change.aip_id, "change_id": change.id, "problems": problems[:20], "advice": advice},
    )


def _note(aip: AipView, change: AccessChangeRecord, previous_until: dt.date | None, made: bool) -> str:
    if change.to_level is AccessLevel.EMBARGOED and change.from_level is AccessLevel.EMBARGOED:
        if previous_until is None or change.until is None:
            return f"embargo date set to {change.until}"
        return f"embargo {'extended' if change.until > previous_until else 'shortened'} from {previous_until} to {change.until}"
    if change.to_level is AccessLevel.EMBARGOED:
        return f"embargoed until {change.until}"
    return "access copies made again from the preserved original" if made else ""


def _decision_event(change: AccessChangeRecord, report: AccessChangeReport, dest: TargetSettings) -> Event:
    where = f"{dest.name} ({report.copies[0].uri.rsplit('/', 1)[0]}/)" if report.copies else dest.name
    what = {
        AccessLevel.OPEN: f"access copies published to {where}",
        AccessLevel.RESTRICTED: f"access copies kept at the restricted location {where}, not published",
        AccessLevel.EMBARGOED: f"access copies held at {where} and NOT published until {change.until}; "
        "`preserve embargo-release` publishes them on or after that date",
    }[change.to_level]
    if not report.copies:
        what = f"no access copy exists (the AIP holds no video); {what.split(' ', 2)[-1]}"
    removed = sum(len(v) for v in report.removed.values())
    extra: dict[str, Any] = {
        "level": change.to_level.value,
        "from_level": change.from_level.value,
        "to_level": change.to_level.value,
        "location": dest.name,
        "reason": change.reason,
        "operator": change.operator,
        "change_id": change.id,
    }
    if change.until is not None:
        extra["embargo_until"] = change.until.isoformat()
    if report.previous_until is not None:
        extra["previous_embargo_until"] = report.previous_until.isoformat()
    return Event(
        EventType.ACCESS_DECISION,
        Outcome.PASS,
        Agent(change.operator, kind="person"),
        f"access changed by {change.operator}: {change.from_level} -> {change.to_level}"
        + (f" ({report.note})" if report.note else "")
        + f"; reason: {change.reason}; {what}"
        + (f"; every version removed from the other access locations ({removed} key(s)), verified" if removed else ""),
        extra=extra,
    )


def _deletion_events(
    settings: Settings, change: AccessChangeRecord, sweeps: list[withdrawals.LocationSweep]
) -> list[Event]:
    kinds = {t.name: t.kind for t in policy.access_locations(settings)}
    return [
        Event(
            EventType.DELETION,
            Outcome.PASS,
            store_agent(kinds.get(s.location, "s3")),
            f"change of access to {change.to_level}: every version of {len(s.removed)} access object(s) deleted "
            f"from {s.location} ({s.versions} version(s) and delete marker(s)); none listed afterwards",
            subject=s.location,
            extra={"keys": list(s.removed), "versions": s.versions, "change_id": change.id},
        )
        for s in sweeps
        if s.removed
    ]
