"""Step 5, derive: the access copies of the film — an H.264/AAC proxy, a poster and a contact
sheet — made with no source metadata and post-checked against the privacy allow-lists. Side
effects: runs ffmpeg, ffprobe, ExifTool; writes under the ingest's work directory (access/);
on a privacy failure, records and sends an alert (catalog, webhook, e-mail). Nothing is published
here.

An access copy is never a reason to lose the film: a copy that cannot be made is a `warning`
event and the film is preserved with fewer copies (none without a proxy), and a copy that fails
the privacy check is a `fail` event and an alert, and the film is preserved with no access copy
at all (none is published). Only a missing tool stops the ingest (the environment is broken, and
`preserve retry` redoes it once it is fixed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from preserve import tools
from preserve.access import contactsheet, package, scrub
from preserve.access import proxy as proxies
from preserve.access.presentation import KIND_TRACK, Presentation, TextTrack, TrackFinding, TrackOutcome
from preserve.core.errors import PrivacyError, ToolError, ToolNotFound
from preserve.core.model import EventType, Outcome, PayloadFile, Role
from preserve.operations import alerts
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.describe import Described
from preserve.pipeline.steps.receive import Staged
from preserve.pipeline.steps.validate import PassCopies, Validated
from preserve.tools import exiftool, ffprobe, mediainfo

#: a header duration further than this from what the stream holds (s, or this fraction of it) is
#: reported as a warning
DURATION_TOLERANCE_SECONDS = 1.0
DURATION_TOLERANCE_FRACTION = 0.05
ACCESS_WITHHELD = alerts.ACCESS_WITHHELD
#: findings per copy written into the event (the count is exact)
MAX_FINDINGS_SHOWN = 30


@dataclass(frozen=True)
class Derivatives:
    """The access copies made (None where none was), and how long the proxy and poster took.
    ``withheld`` says why no copy is offered when the privacy check failed ('' otherwise)."""

    proxy: Path | None = None
    poster: Path | None = None
    contact_sheet: Path | None = None
    #: how long making them took (s): the one pass over the film (its decode check and framemd5
    #: included) when they came from it, else the proxy's and the poster's own runs
    seconds: float | None = None
    withheld: str = ""
    #: the WebVTT access tracks made from the submission's subtitles, checked
    tracks: tuple[TextTrack, ...] = ()
    #: what the manifest and the page are written from, where the copies are stored (step
    #: `publish`); None without a proxy
    presentation: Presentation | None = None
    #: values the manifest and the page must not carry (people not credited publicly, the
    #: contributor's pseudonym, the source's identifying tags); never written anywhere
    forbidden: tuple[str, ...] = ()

    def made(self) -> list[tuple[str, Path]]:
        """(kind, path) of every access copy that exists, in publication order."""
        kinds = (("proxy", self.proxy), ("poster", self.poster), ("contact sheet", self.contact_sheet))
        copies = [(kind, path) for kind, path in kinds if path is not None]
        return copies + [(KIND_TRACK, t.path) for t in self.tracks] if copies else []


def make_access(ctx: IngestContext, staged: Staged, described: Described, validated: Validated) -> Derivatives:
    """An H.264/AAC proxy, a poster and a contact sheet of the main video, with no source
    metadata, post-checked for anything identifying. They are normally made in the same decode as
    the film's decode check and framemd5 (step `validate`, ``validated.access``); when that pass
    made none (it failed, it found decoder errors, or the duration was unknown before it) they are
    made here, each by its own run. The poster and the contact sheet are placed by how long the
    video really lasts (the decode check's finding in ``validated``, and the stream's own
    timestamps), never by the header alone: copies of the pass placed by a duration the decode
    then contradicted are made again. Non-video submissions and dark films get no access copy,
    and an event says so. Where the copies go (published, restricted, held under embargo) is
    decided when they are stored (step `publish`)."""
    film = described.main_video(staged.files)
    level = staged.metadata.access.level
    if film is None:
        ctx.log.record(
            EventType.CREATION,
            Outcome.NOT_PERFORMED,
            tools.preserve_agent(),
            "no access copy: the submission holds no video",
        )
        return Derivatives()
    if level == "dark":
        ctx.log.record(
            EventType.ACCESS_DECISION,
            Outcome.PASS,
            tools.preserve_agent(),
            "access level dark: no access copy at all (no proxy, poster or contact sheet)",
            level="dark",
        )
        return Derivatives()
    src = staged.path_of(film.path)
    probe = described.probes[film.path]
    out = ctx.work_dir / "access"
    out.mkdir(exist_ok=True)
    made = validated.access if validated.access is not None and validated.access.film == film.path else None
    # None (nothing measurable) becomes 0: the first frames, not another measurement in each maker
    stream = made.stream_span if made is not None else None
    duration = seek_span(ctx, film, src, probe, validated, stream_span=stream) or 0.0
    if made is not None:
        derivatives = _from_the_pass(ctx, film, src, probe, made, out, duration)
    else:
        derivatives = _each_on_its_own(ctx, film, src, probe, out, duration)
    if derivatives.proxy is None:
        return derivatives
    sheet = ctx.settings.access
    made_list = ["access proxy H.264/AAC MP4, at most " + f"{ctx.settings.proxy.max_height} lines"]
    made_list += ["poster JPEG"] if derivatives.poster else []
    made_list += [f"contact sheet of {sheet.contact_sheet_frames} frames"] if derivatives.contact_sheet else []
    how = "; made in the same decode as the film's decode check and framemd5" if made is not None else ""
    ctx.log.record(
        EventType.CREATION,
        Outcome.PASS,
        tools.agent("ffmpeg"),
        ", ".join(made_list) + "; no frame side data (captions, ICC profiles), no SEI in the H.264 stream" + how,
        subject=film.path,
        **({"same_decode": True} if made is not None else {}),
    )
    checked = _post_check(ctx, staged, film, probe, derivatives)
    if checked.proxy is None:
        return checked
    return _presentation(ctx, staged, film, src, probe, checked, checked.proxy, out)


def _presentation(
    ctx: IngestContext,
    staged: Staged,
    film: PayloadFile,
    src: Path,
    probe: ffprobe.ProbeReport,
    derivatives: Derivatives,
    proxy: Path,
    out: Path,
) -> Derivatives:
    """The text tracks (every subtitle file of the submission, every subtitle stream of the film;
    one event each, with the encoding found and how) and the presentation the manifest and the
    page are written from when the copies are stored. A track the privacy check withheld is a
    `fail` event and an alert; the other copies go on."""
    meta = staged.metadata
    sources = []
    for f in staged.files:
        if f.role is Role.SUBTITLE:
            note = meta.subtitle_note(f.path)
            sources.append(
                package.SubtitleSource(
                    f.path, staged.path_of(f.path), note.language if note else "", note.encoding if note else ""
                )
            )
    identifying = scrub.identifying_tags(probe.raw)
    findings = package.make_tracks(
        sources,
        out,
        settings=ctx.settings.access,
        film=src,
        film_source=film.path,
        probe=probe,
        forbidden=package.forbidden_values(
            [*identifying, meta.contributor_id], shown=(meta.title, meta.original_title)
        ),
        timeout=ctx.settings.ingest.tool_timeout_seconds,
    )
    for finding in findings:
        _record_track(ctx, finding)
    tracks = package.tracks_of(findings)
    shown = {meta.title, meta.original_title, *(meta.directors if meta.credits_public else ())} - {""}
    # the documents are also held to an allow-list of what they may say (iiif/page.check_clean)
    hidden = [*identifying, meta.contributor_id, *(() if meta.credits_public else meta.directors)]
    forbidden = tuple(package.forbidden_values(hidden, shown=tuple(shown)))
    try:
        presentation = package.presentation(
            ctx.aip_id,
            proxy,
            title=meta.title,
            original_title=meta.original_title,
            original_language=meta.language,
            year=meta.year,
            credits=meta.directors if meta.credits_public else (),
            poster=derivatives.poster,
            contact_sheet=derivatives.contact_sheet is not None,
            tracks=tracks,
        )
    except ToolNotFound:
        raise
    except ToolError as exc:
        ctx.log.record(
            EventType.CREATION,
            Outcome.WARNING,
            tools.agent("ffprobe"),
            f"the access proxy could not be read back ({_first_line(exc)}): no IIIF manifest or page is made",
            subject=film.path,
        )
        presentation = None
    return replace(derivatives, tracks=tracks, presentation=presentation, forbidden=forbidden)


def _record_track(ctx: IngestContext, finding: TrackFinding) -> None:
    """One event per subtitle source: the track made (its encoding and how it was found), or why
    none was; a track withheld by the privacy check is also an alert."""
    text, extra = package.event_detail(finding)
    outcome = package.event_outcome(finding)
    kind = EventType.METADATA_MODIFICATION if finding.outcome is TrackOutcome.WITHHELD else EventType.CREATION
    ctx.log.record(kind, outcome, tools.python_agent("pysubs2"), text, subject=finding.source, **extra)
    if finding.outcome is TrackOutcome.WITHHELD:
        alerts.send(
            ctx.settings,
            ctx.catalog,
            alerts.Alert(
                ACCESS_WITHHELD,
                f"{ACCESS_WITHHELD}:{ctx.name}:{ctx.attempt}:track",
                ctx.name,
                f"{ctx.name}: a subtitle track was withheld; the privacy check failed. The film and its "
                "subtitles are preserved; the track was not published.",
                {"submission": ctx.name, "aip_id": ctx.aip_id, "advice": finding.detail},
            ),
        )


def _from_the_pass(
    ctx: IngestContext,
    film: PayloadFile,
    src: Path,
    probe: ffprobe.ProbeReport,
    made: PassCopies,
    out: Path,
    duration: float,
) -> Derivatives:
    """The copies the one pass made. Its poster and contact sheet were placed by the duration
    known before the decode; when the decode found the video much shorter or longer than that,
    or one of them got no frame, they are made again by their own runs, placed by what was
    decoded (the proxy stays)."""
    copies = made.copies
    wants_sheet = ctx.settings.access.contact_sheet
    poster, contact_sheet = copies.poster, copies.contact_sheet if wants_sheet else None
    if not _close(copies.span or 0.0, duration):
        for stale in (copies.poster, copies.contact_sheet):
            if stale is not None:
                stale.unlink(missing_ok=True)
        poster = contact_sheet = None
    if poster is None:
        poster = _make_poster(ctx, film, src, probe, out / "poster.jpg", duration)
    if contact_sheet is None and wants_sheet:
        contact_sheet = _make_contact_sheet(ctx, film, src, probe, out / "contact-sheet.jpg", duration)
    return Derivatives(proxy=copies.proxy, poster=poster, contact_sheet=contact_sheet, seconds=made.seconds)


def _close(a: float, b: float) -> bool:
    """Two durations (s) agree within the tolerance a header is allowed."""
    return abs(a - b) <= max(DURATION_TOLERANCE_SECONDS, DURATION_TOLERANCE_FRACTION * max(a, b))


def _each_on_its_own(
    ctx: IngestContext, film: PayloadFile, src: Path, probe: ffprobe.ProbeReport, out: Path, duration: float
) -> Derivatives:
    """The copies made by one run each (when the pass made none): the proxy, then the poster and
    the contact sheet by input seeks. A copy that cannot be made is a warning; no proxy, no copy."""
    timeout = ctx.settings.ingest.tool_timeout_seconds
    started = time.monotonic()
    proxy = _attempt(
        ctx,
        film,
        "proxy",
        lambda: proxies.make_proxy(src, out / "proxy.mp4", probe, ctx.settings.proxy, timeout=timeout),
    )
    if proxy is None:
        return Derivatives()
    poster = _make_poster(ctx, film, src, probe, out / "poster.jpg", duration)
    seconds = time.monotonic() - started
    contact_sheet = None
    if ctx.settings.access.contact_sheet:
        contact_sheet = _make_contact_sheet(ctx, film, src, probe, out / "contact-sheet.jpg", duration)
    return Derivatives(proxy=proxy, poster=poster, contact_sheet=contact_sheet, seconds=seconds)


def _make_poster(
    ctx: IngestContext, film: PayloadFile, src: Path, probe: ffprobe.ProbeReport, dst: Path, duration: float
) -> Path | None:
    timeout = ctx.settings.ingest.tool_timeout_seconds
    return _attempt(
        ctx,
        film,
        "poster",
        lambda: proxies.make_poster(src, dst, probe, ctx.settings.proxy, duration=duration, timeout=timeout),
    )


def _make_contact_sheet(
    ctx: IngestContext, film: PayloadFile, src: Path, probe: ffprobe.ProbeReport, dst: Path, duration: float
) -> Path | None:
    sheet, timeout = ctx.settings.access, ctx.settings.ingest.tool_timeout_seconds
    return _attempt(
        ctx,
        film,
        "contact sheet",
        lambda: contactsheet.make_contact_sheet(
            src,
            dst,
            probe,
            duration=duration,
            frames=sheet.contact_sheet_frames,
            columns=sheet.contact_sheet_columns,
            tile_width=sheet.contact_sheet_tile_width,
            timeout=timeout,
        ),
    )


def seek_span(
    ctx: IngestContext,
    film: PayloadFile,
    src: Path,
    probe: ffprobe.ProbeReport,
    validated: Validated | None,
    *,
    stream_span: float | None = None,
) -> float | None:
    """How long the film's video really lasts (s), for the poster's and the contact sheet's seek
    points: the duration the full decode check decoded, and the span of the video stream's own
    packet timestamps (a bounded read at both of its ends; ``stream_span`` when already measured),
    the shorter of the two; never the container header's word. A header that disagrees is a
    warning event; None (first frames only, with a warning) when nothing could be measured."""
    facts = validated.facts.get(film.path) if validated is not None else None
    decoded = facts.decoded_duration if facts is not None else None
    stream = stream_span
    if stream is None:
        try:
            stream = proxies.measured_duration(src, probe, timeout=ctx.settings.ingest.tool_timeout_seconds)
        except ToolNotFound:
            raise
        except ToolError:
            stream = None
    measured = [d for d in (decoded, stream) if d is not None and d > 0]
    span = min(measured) if measured else None
    header = probe.duration
    basis = " and ".join(
        name for name, d in (("the full decode", decoded), ("the stream's timestamps", stream)) if d is not None
    )
    if span is None:
        ctx.log.record(
            EventType.CREATION,
            Outcome.WARNING,
            tools.agent("ffprobe"),
            "the video's real duration could not be measured (no decoded duration, no timestamped packets): "
            "poster and contact sheet are taken from the first frames",
            subject=film.path,
        )
    elif header is not None and abs(header - span) > max(
        DURATION_TOLERANCE_SECONDS, DURATION_TOLERANCE_FRACTION * span
    ):
        ctx.log.record(
            EventType.CREATION,
            Outcome.WARNING,
            tools.agent("ffprobe"),
            f"the container header claims a duration of {header:.3f} s, but {basis} found {span:.3f} s of video: "
            "poster and contact sheet are placed by what the stream holds",
            subject=film.path,
            header_duration=header,
            measured_duration=round(span, 3),
        )
    return span


def _attempt(ctx: IngestContext, film: PayloadFile, kind: str, make: Callable[[], Path]) -> Path | None:
    """Make one access copy; a failure (other than a missing tool) is a warning event and no copy."""
    try:
        return make()
    except ToolNotFound:
        raise
    except ToolError as exc:
        what = {
            "proxy": "no access copy is made (without a proxy, no poster or contact sheet is offered)",
            "poster": "the access copies go without a poster",
            "contact sheet": "the access copies go without a contact sheet",
        }[kind]
        ctx.log.record(
            EventType.CREATION,
            Outcome.WARNING,
            tools.agent("ffmpeg"),
            f"the {kind} could not be made ({_first_line(exc)}); the film is preserved all the same and {what}",
            subject=film.path,
        )
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _post_check(
    ctx: IngestContext, staged: Staged, film: PayloadFile, probe: ffprobe.ProbeReport, derivatives: Derivatives
) -> Derivatives:
    """Every copy through the privacy check (`scrub.check_clean`). Any finding, or a check that
    could not run to its end, withholds every copy: a `fail` event, the copies deleted, an alert;
    the film itself goes on to be preserved."""
    meta = staged.metadata
    forbidden = scrub.forbidden_values((meta.title, meta.original_title, *meta.directors), probe.raw)
    agents = (
        f"ffprobe {tools.version_of('ffprobe')}, ExifTool {exiftool.version()}, MediaInfo {mediainfo.agent().version}"
    )
    failures: list[str] = []
    for _kind, made in derivatives.made():
        try:
            leak = scrub.check_clean(made, forbidden_values=forbidden)
        except ToolNotFound:
            raise
        except ToolError as exc:
            failures.append(f"{made.name}: the check could not run ({_first_line(exc)})")
            continue
        if not leak.ok:
            more = len(leak.findings) - MAX_FINDINGS_SHOWN
            shown = leak.findings[:MAX_FINDINGS_SHOWN] + ([f"and {more} more"] if more > 0 else [])
            failures.append(f"{made.name}: " + "; ".join(shown))
    if failures:
        return _withhold(ctx, film, derivatives, failures)
    ctx.log.record(
        EventType.METADATA_MODIFICATION,
        Outcome.PASS,
        tools.agent("ffmpeg"),
        "source metadata removed from "
        + ", ".join(kind for kind, _ in derivatives.made())
        + " (no tags, chapters, captions, ICC profiles, SEI or encoder settings); every metadata element "
        f"ffprobe, ExifTool and MediaInfo report is on the allow-list, and a byte scan found none of "
        f"{len(forbidden)} identifying value(s) ({agents})",
        subject=film.path,
    )
    return derivatives


def _withhold(ctx: IngestContext, film: PayloadFile, derivatives: Derivatives, failures: list[str]) -> Derivatives:
    """No access copy at all: record why (field names, never values), delete the copies, alert."""
    error = PrivacyError(
        "identifying metadata survived into the access copies, or they could not be checked: " + " | ".join(failures)
    )
    ctx.log.record(
        EventType.METADATA_MODIFICATION,
        Outcome.FAIL,
        tools.agent("ffmpeg"),
        f"{error}; NO access copy is stored or published; the film itself is preserved",
        subject=film.path,
    )
    for _kind, made in derivatives.made():
        made.unlink(missing_ok=True)
    alerts.send(
        ctx.settings,
        ctx.catalog,
        alerts.Alert(
            ACCESS_WITHHELD,
            f"{ACCESS_WITHHELD}:{ctx.name}:{ctx.attempt}",
            ctx.name,
            f"{ctx.name}: access copies withheld; the privacy check failed ({len(failures)} copy/copies). "
            "The film is preserved; nothing was published.",
            {
                "submission": ctx.name,
                "aip_id": ctx.aip_id,
                "copies_failed": len(failures),
                "advice": error.advice,
            },
        ),
    )
    return Derivatives(seconds=derivatives.seconds, withheld=str(error))
