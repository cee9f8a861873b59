"""Step 3, validate: every original checked by each tool on its own — the full decode check,
MediaConch's implementation checks, a virus check — and a framemd5 manifest of every video and
audio stream. Each original is decoded once (`preserve.characterise.transcode`): one ffmpeg run
gives its decode verdict and its framemd5, and, for the main video of a film that is not dark, its
access copies too (proxy, poster, contact sheet), which step `make_access` then privacy-checks.
Side effects: runs ffmpeg, ffprobe, MediaConch and clamscan on the originals; writes
data/metadata/framemd5/ in the staging bag, and the access copies under the work directory
(access/)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from preserve import tools
from preserve.access import proxy as proxies
from preserve.characterise import decode, transcode
from preserve.core.errors import PreserveError, SubmissionError, ToolError, ToolNotFound
from preserve.core.model import EventType, Outcome, PayloadFile, Role
from preserve.fixity import framemd5
from preserve.fixity.digest import digest_file
from preserve.packaging import bag
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.describe import Described, MediaFacts, media_failure, objects_relative
from preserve.pipeline.steps.receive import Staged
from preserve.tools import clamav, ffprobe, mediaconch


@dataclass(frozen=True)
class PassCopies:
    """The access copies of the main video made in the same decode as its decode check and its
    framemd5 (not yet privacy-checked), for `make_access`."""

    film: str  # the payload path of the film they are of
    copies: transcode.AccessCopies
    #: the span of the video stream's own timestamps (s), measured before the pass; None: unknown
    stream_span: float | None
    seconds: float  # how long the pass took


@dataclass(frozen=True)
class Validated:
    """The facts with each media file's decode verdict, the framemd5 manifests written, and the
    access copies the main video's one pass made (None: `make_access` makes them on its own)."""

    facts: Mapping[str, MediaFacts]
    metadata_files: tuple[PayloadFile, ...]
    access: PassCopies | None = None


def framemd5_path(path: str) -> str:
    """Where the framemd5 manifest of the original at payload ``path`` lives in the bag."""
    return bag.payload_path(bag.METADATA_DIR, "framemd5", *(objects_relative(path) + ".framemd5").split("/"))


def validate(ctx: IngestContext, staged: Staged, described: Described) -> Validated:
    """Validate every original with each tool on its own, so one tool's failure is recorded and
    does not stop the others: the full decode check (errors counted), MediaConch's implementation
    checks for Matroska/FFV1, a virus check (its real outcome, "not performed" included), and a
    framemd5 sidecar of every video and audio stream (data/metadata/framemd5/). Only then does a
    file that does not decode stop the ingest (MediaError, unless `accept_invalid`); a virus
    found stops it too.

    The decode check, the framemd5 and the main video's access copies come from one ffmpeg run
    per original. A run that fails or reports decoder errors decides nothing by itself: the
    decode check is then run on its own for the verdict (an access copy's encoder failing is never
    taken for a damaged film, nor the reverse), its access copies are discarded (`make_access`
    makes them on their own), and a framemd5 it could not finish is made on its own."""
    settings, timeout = ctx.settings, ctx.settings.ingest.tool_timeout_seconds
    facts = dict(described.facts)
    written: list[PayloadFile] = []
    undecodable: list[tuple[str, str]] = []
    film = described.main_video(staged.files)
    made: PassCopies | None = None
    for f in described.media(staged.files):
        staged_path, probe = staged.path_of(f.path), described.probes[f.path]
        # a decode or framemd5 run on its own (the fallbacks) gets the budget of the one run: a
        # multiple of the film's length, so a 15-hour film is not stopped by the flat limit
        budget = transcode.pass_timeout(timeout, probe.duration)
        wants_framemd5 = settings.validation.framemd5 and bool(probe.video_streams or probe.audio_streams)
        access, stream_span = None, None
        if film is not None and f.path == film.path and staged.metadata.access.level != "dark":
            access, stream_span = _access_request(ctx, staged_path, probe)
        one = _one_pass(ctx, f, staged_path, probe, wants_framemd5, access)
        if settings.ingest.decode_check:
            _decode_verdict(ctx, f, staged_path, one, facts, undecodable, budget)
        if settings.validation.mediaconch and mediaconch.applies_to(probe):
            try:
                conch = mediaconch.check_implementation(staged_path, timeout=timeout)
                ctx.log.record(
                    EventType.VALIDATION,
                    Outcome.PASS if conch.ok else Outcome.FAIL,
                    mediaconch.agent(),
                    conch.describe(),
                    subject=f.path,
                    checks_run=conch.checks_run,
                )
            except PreserveError as exc:
                ctx.log.record(
                    EventType.VALIDATION,
                    Outcome.NOT_PERFORMED,
                    mediaconch.agent(),
                    f"MediaConch implementation checks could not run: {exc}",
                    subject=f.path,
                )
        if settings.validation.framemd5:
            if one is not None and one.framemd5 is not None:
                manifest: PayloadFile | None = _record_framemd5(
                    ctx, f, one.framemd5, _same_decode(ctx, one, "the framemd5")
                )
            else:
                manifest = _write_framemd5(ctx, f, staged_path, probe, budget)
            if manifest is not None:
                written.append(manifest)
        if one is not None and one.copies is not None:
            if one.clean:
                made = PassCopies(f.path, one.copies, stream_span, one.seconds)
            else:
                one.copies.discard()
    _virus_check(ctx, staged)
    for subject, message in undecodable:
        media_failure(ctx, subject, message)
    return Validated(facts=facts, metadata_files=tuple(written), access=made)


def _access_request(
    ctx: IngestContext, src: Path, probe: ffprobe.ProbeReport
) -> tuple[transcode.AccessRequest | None, float | None]:
    """The access copies the main video's pass is to make, placed by the duration known before it
    (`transcode.seek_duration`), and the stream's own span; no request when the film has no
    measurable video (then `make_access` makes them, placed by the decoded duration)."""
    if probe.video_index is None:
        return None, None
    try:
        stream = proxies.measured_duration(src, probe, timeout=ctx.settings.ingest.tool_timeout_seconds)
    except ToolNotFound:
        raise
    except ToolError:
        stream = None
    span = transcode.seek_duration(stream, probe.duration)
    if span is None:
        return None, stream
    out = ctx.work_dir / "access"
    out.mkdir(parents=True, exist_ok=True)
    sheet = ctx.settings.access
    request = transcode.AccessRequest(
        proxy=out / "proxy.mp4",
        poster=out / "poster.jpg",
        settings=ctx.settings.proxy,
        span=span,
        contact_sheet=out / "contact-sheet.jpg" if sheet.contact_sheet else None,
        sheet_frames=sheet.contact_sheet_frames,
        sheet_columns=sheet.contact_sheet_columns,
        sheet_tile_width=sheet.contact_sheet_tile_width,
    )
    return request, stream


def _one_pass(
    ctx: IngestContext,
    f: PayloadFile,
    src: Path,
    probe: ffprobe.ProbeReport,
    wants_framemd5: bool,
    access: transcode.AccessRequest | None,
) -> transcode.PassResult | None:
    """The one ffmpeg run over an original (see `transcode.run_pass`); None when there is nothing
    to make, or when it could not run (each output is then made on its own, as before)."""
    verdict = ctx.settings.ingest.decode_check
    if not (verdict or wants_framemd5 or access is not None):
        return None
    dest = None
    if wants_framemd5:
        dest = ctx.bag_dir / framemd5_path(f.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
    duration = access.span if access is not None else probe.duration
    try:
        return transcode.run_pass(
            src,
            probe,
            framemd5_to=dest,
            access=access,
            verdict=verdict,
            # it also encodes the proxy: at least a multiple of the film's length (a 15-hour film)
            timeout=transcode.pass_timeout(ctx.settings.ingest.tool_timeout_seconds, probe.duration, duration),
            progress=ctx.media_progress,
            duration=duration,
        )
    except (PreserveError, ValueError):
        return None


def _same_decode(ctx: IngestContext, one: transcode.PassResult, this: str) -> str:
    """What else a pass's one decode made besides ``this`` (for its event), e.g. "the framemd5 and
    the access copies"; '' when nothing else."""
    made = (
        ("the decode check", ctx.settings.ingest.decode_check),
        ("the framemd5", one.asked_framemd5),
        ("the access copies", one.asked_access),
    )
    return " and ".join(name for name, asked in made if asked and name != this)


def _decode_verdict(
    ctx: IngestContext,
    f: PayloadFile,
    src: Path,
    one: transcode.PassResult | None,
    facts: dict[str, MediaFacts],
    undecodable: list[tuple[str, str]],
    timeout: float,
) -> None:
    """The decode check's verdict, as an event and in ``facts``: the pass's own when it was clean
    (or when it did nothing but decode), otherwise that of the decode check run on its own."""
    decoded_only = one is not None and not (one.asked_framemd5 or one.asked_access)
    if one is not None and (one.clean or decoded_only):
        same = _same_decode(ctx, one, "the decode check")
        report, how = one.report, (f" (decoded once, with {same})" if same else "")
    else:
        how = " (checked on its own: the one-pass transcode did not finish cleanly)" if one is not None else ""
        try:
            report = decode.decode_check(
                src,
                timeout=timeout,
                progress=ctx.media_progress,
                duration=facts[f.path].duration,
            )
        except PreserveError as exc:
            ctx.log.record(
                EventType.VALIDATION,
                Outcome.FAIL,
                tools.agent("ffmpeg"),
                f"decode check could not run: {exc}",
                subject=f.path,
            )
            undecodable.append((f.path, f"{f.path}: decode check could not run: {exc}"))
            return
    facts[f.path] = facts[f.path].decoded(report.ok, report.error_count, report.duration)
    detail = (
        "full decode: no errors"
        if report.ok
        else (f"full decode: {report.error_count} decode error(s): " + "; ".join(report.errors[:5]))
    )
    decoded = {} if report.duration is None else {"decoded_duration": round(report.duration, 3)}
    ctx.log.record(
        EventType.VALIDATION,
        Outcome.PASS if report.ok else Outcome.FAIL,
        tools.agent("ffmpeg"),
        detail + (f"; {report.duration:.3f} s decoded" if report.duration is not None else "") + how,
        subject=f.path,
        error_count=report.error_count,
        **decoded,
    )
    if report.timestamp_warnings:  # the demuxer's/muxer's complaints, not the decoder's: stored
        ctx.log.record(
            EventType.VALIDATION,
            Outcome.WARNING,
            tools.agent("ffmpeg"),
            f"full decode: {report.timestamp_warnings} timestamp complaint(s) from the demuxer/muxer "
            "(not decoder errors): " + "; ".join(report.timestamp_lines[:5]),
            subject=f.path,
            timestamp_warnings=report.timestamp_warnings,
        )
    if not report.ok:
        undecodable.append((f.path, f"{objects_relative(f.path)} does not decode cleanly: {detail}"))


def _write_framemd5(
    ctx: IngestContext, f: PayloadFile, staged: Path, probe: ffprobe.ProbeReport, timeout: float
) -> PayloadFile | None:
    """The framemd5 sidecar made by a run of its own (no pass made it)."""
    if not (probe.video_streams or probe.audio_streams):
        return None
    rel = framemd5_path(f.path)
    dest = ctx.bag_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = framemd5.write(staged, dest, probe, timeout=timeout)
    except PreserveError as exc:
        dest.unlink(missing_ok=True)
        ctx.log.record(
            EventType.MESSAGE_DIGEST_CALCULATION,
            Outcome.FAIL,
            tools.agent("ffmpeg"),
            f"framemd5 could not be made: {exc}",
            subject=f.path,
        )
        return None
    return _record_framemd5(ctx, f, result, "")


def _record_framemd5(ctx: IngestContext, f: PayloadFile, result: framemd5.FrameMd5Result, same: str) -> PayloadFile:
    """The framemd5 event (with what else the same decode made, ``same``) and the sidecar's entry."""
    rel = framemd5_path(f.path)
    dest = ctx.bag_dir / rel
    ctx.log.record(
        EventType.MESSAGE_DIGEST_CALCULATION,
        Outcome.PASS,
        tools.agent("ffmpeg"),
        f"framemd5 of every video and audio stream ({framemd5.stream_summary(result.manifest)}; audio in "
        f"blocks of {framemd5.AUDIO_BLOCK_SAMPLES} samples at full precision) in {rel}"
        + (f" (decoded once, with {same})" if same else ""),
        subject=f.path,
        sidecar=rel,
    )
    return PayloadFile(path=rel, digests=digest_file(dest), role=Role.SIDECAR)


def _virus_check(ctx: IngestContext, staged: Staged) -> None:
    """ClamAV over every original (and sidecar) in one run; each file gets its real outcome."""
    cfg = ctx.settings.validation
    files = staged.files
    if not cfg.virus_check:
        for f in files:
            ctx.log.record(
                EventType.VIRUS_CHECK,
                Outcome.NOT_PERFORMED,
                tools.preserve_agent(),
                "virus check switched off (validation.virus_check = false)",
                subject=f.path,
            )
        return
    database = ctx.settings.resolve(cfg.clamav_database) if cfg.clamav_database else None
    try:
        results = clamav.scan(
            [staged.path_of(f.path) for f in files],
            database=database,
            max_bytes=cfg.virus_scan_max_mb * 1024 * 1024,
            timeout=ctx.settings.ingest.tool_timeout_seconds,
        )
    except PreserveError as exc:
        for f in files:
            ctx.log.record(
                EventType.VIRUS_CHECK, Outcome.NOT_PERFORMED, clamav.agent(), f"clamscan failed: {exc}", subject=f.path
            )
        return
    found = []
    for f, r in zip(files, results, strict=True):
        ctx.log.record(EventType.VIRUS_CHECK, r.outcome, clamav.agent(), r.detail, subject=f.path)
        if r.outcome is Outcome.FAIL:
            found.append(f"{f.path}: {r.detail}")
    if found:
        raise SubmissionError(
            "virus check: " + "; ".join(found),
            advice="ClamAV matched a signature. Do not open the file; ask the operator to "
            "examine it in isolation before anything else is done with it.",
        )
