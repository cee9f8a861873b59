"""Step 3, validate: every original checked by each tool on its own — the full decode check,
MediaConch's implementation checks, a virus check — and a framemd5 manifest of every video and
audio stream. Side effects: runs ffmpeg, MediaConch and clamscan on the staged copies; writes
data/metadata/framemd5/ in the staging bag."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from preserve import tools
from preserve.characterise import decode
from preserve.core.errors import PreserveError, SubmissionError
from preserve.core.model import EventType, Outcome, PayloadFile, Role
from preserve.fixity import framemd5
from preserve.fixity.digest import digest_file
from preserve.packaging import bag
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.describe import Described, MediaFacts, media_failure, objects_relative
from preserve.pipeline.steps.receive import Staged
from preserve.tools import clamav, ffprobe, mediaconch


@dataclass(frozen=True)
class Validated:
    """The facts with each media file's decode verdict, and the framemd5 manifests written."""

    facts: Mapping[str, MediaFacts]
    metadata_files: tuple[PayloadFile, ...]


def framemd5_path(path: str) -> str:
    """Where the framemd5 manifest of the original at payload ``path`` lives in the bag."""
    return bag.payload_path(bag.METADATA_DIR, "framemd5", *(objects_relative(path) + ".framemd5").split("/"))


def validate(ctx: IngestContext, staged: Staged, described: Described) -> Validated:
    """Validate every original with each tool on its own, so one tool's failure is recorded and
    does not stop the others: the full decode check (errors counted), MediaConch's implementation
    checks for Matroska/FFV1, a virus check (its real outcome, "not performed" included), and a
    framemd5 sidecar of every video and audio stream (data/metadata/framemd5/). Only then does a
    file that does not decode stop the ingest (MediaError, unless `accept_invalid`); a virus
    found stops it too."""
    settings, timeout = ctx.settings, ctx.settings.ingest.tool_timeout_seconds
    facts = dict(described.facts)
    written: list[PayloadFile] = []
    undecodable: list[tuple[str, str]] = []
    for f in described.media(staged.files):
        staged_path, probe = staged.path_of(f.path), described.probes[f.path]
        if settings.ingest.decode_check:
            try:
                report = decode.decode_check(staged_path, timeout=timeout)
            except PreserveError as exc:
                ctx.log.record(
                    EventType.VALIDATION,
                    Outcome.FAIL,
                    tools.agent("ffmpeg"),
                    f"decode check could not run: {exc}",
                    subject=f.path,
                )
                undecodable.append((f.path, f"{f.path}: decode check could not run: {exc}"))
            else:
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
                    detail + (f"; {report.duration:.3f} s decoded" if report.duration is not None else ""),
                    subject=f.path,
                    error_count=report.error_count,
                    **decoded,
                )
                if not report.ok:
                    undecodable.append((f.path, f"{objects_relative(f.path)} does not decode cleanly: {detail}"))
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
            manifest = _write_framemd5(ctx, f, staged_path, probe, timeout)
            if manifest is not None:
                written.append(manifest)
    _virus_check(ctx, staged)
    for subject, message in undecodable:
        media_failure(ctx, subject, message)
    return Validated(facts=facts, metadata_files=tuple(written))


def _write_framemd5(
    ctx: IngestContext, f: PayloadFile, staged: Path, probe: ffprobe.ProbeReport, timeout: float
) -> PayloadFile | None:
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
    ctx.log.record(
        EventType.MESSAGE_DIGEST_CALCULATION,
        Outcome.PASS,
        tools.agent("ffmpeg"),
        f"framemd5 of every video and audio stream ({framemd5.stream_summary(result.manifest)}; audio in "
        f"blocks of {framemd5.AUDIO_BLOCK_SAMPLES} samples at full precision) in {rel}",
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
