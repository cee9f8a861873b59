"""One submission through the pipeline, and what happens when it cannot go on:

    stage → characterise → validate → normalise → make_access → package → replicate → publish
      ╰─ (the originals' uploads to targets without Object Lock, in the background) ─╯  → record → accession

Each step takes the context and the typed results it needs, and returns its own (see
`preserve.pipeline.steps`); this module is the only place that knows their order. A step runner
(`preserve.pipeline.runner`) runs each one: directly, or as a Prefect task in the flow. Right after
the duplicate check the originals start uploading in the background (`replicate.start_early`);
`replicate` waits for them. A bag built in place reads its originals in the ingest folder until
the end: after every step, and right before the catalog is written, their fingerprints are compared
with those of their first read, and a change is SourceChanged. Any failure ends in quarantine with
the source intact, after the background uploads are stopped and whatever this attempt stored is
removed; content already stored is recorded as a duplicate. Once the AIP is recorded and
accessioned, its events and version 1's inventory are written beside it on every replica
(`operations.journal`; a failure there is logged and left to housekeeping, never an ingest
failure). Side effects: a claim on the submission in the catalog, and those of the steps."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from preserve import tools
from preserve.catalog import Catalog, SubmissionState
from preserve.config import Settings
from preserve.core.errors import ClaimLost, PreserveError
from preserve.core.model import Event, EventType, Outcome
from preserve.core.progress import MediaProgress, Meter, Progress
from preserve.intake import claims, disposition
from preserve.intake import submission as submissions
from preserve.operations import journal
from preserve.pipeline import quarantine as quarantines
from preserve.pipeline.context import IngestContext
from preserve.pipeline.result import AccessSummary, FileSummary, IngestResult, IngestStatus, ReplicaSummary
from preserve.pipeline.runner import StepRunner, run_directly
from preserve.pipeline.steps.derive import Derivatives, make_access
from preserve.pipeline.steps.describe import Described, MediaFacts, characterise
from preserve.pipeline.steps.normalise import normalise
from preserve.pipeline.steps.package import Packaged, package
from preserve.pipeline.steps.publish import Published, publish
from preserve.pipeline.steps.receive import Staged, raise_if_changed, stage
from preserve.pipeline.steps.record import accession, record
from preserve.pipeline.steps.replicate import (
    EarlyUploads,
    Replicated,
    remove_unrecorded,
    replicate,
    source_changes,
    start_early,
)
from preserve.pipeline.steps.validate import Validated, validate
from preserve.storage.crypt import remembering_keys

P = ParamSpec("P")
R = TypeVar("R")


class _Progress:
    """What one ingest has produced so far: the report of a quarantined ingest shows it too."""

    staged: Staged | None = None
    described: Described | None = None
    validated: Validated | None = None
    derivatives: Derivatives | None = None
    packaged: Packaged | None = None
    replicated: Replicated | None = None
    published: Published | None = None
    #: the originals' uploads started before validation; None until (or unless) they start
    early: EarlyUploads | None = None
    #: something may have been stored under the AIP's prefix by this attempt
    uploading: bool = False


@remembering_keys()  # the keys it makes for encrypted targets serve its later uploads and journal
def ingest_submission(
    settings: Settings,
    catalog: Catalog,
    source: Path,
    *,
    runner: StepRunner = run_directly,
    worker: str | None = None,
    accept_invalid: bool = False,
    progress: Progress | None = None,
    media_progress: MediaProgress | None = None,
) -> IngestResult:
    """Ingest one submission end to end. ``progress(done, total)`` hears about bytes staged and
    uploaded; ``media_progress(position, duration, speed)`` about the transcode of the film. Never raises for a bad submission or a storage outage:
    the source goes to failed/ with a report and the result says so. Raises only for faults of
    the archive itself that make quarantining impossible (e.g. the catalog is down)."""
    source = Path(source)
    worker = worker or claims.worker_id()
    key = submissions.key_for(source)
    if not os.path.lexists(source):
        return IngestResult(key, IngestStatus.SKIPPED, "", "no longer in the ingest folder")
    claim = catalog.claim_submission(key, worker, settings.ingest.lease_seconds, holder_is_dead=claims.holder_is_dead)
    if claim is not None and not os.path.lexists(source):
        # another worker finished it between our look and our claim: undo the claim we just made
        _release_vanished(catalog, source, key, claim.aip_id)
        return IngestResult(key, IngestStatus.SKIPPED, "", "no longer in the ingest folder (taken by another worker)")
    if claim is None:
        return _not_claimed(settings, catalog, source, key, worker, catalog.submission(key))
    ctx = IngestContext(
        settings,
        catalog,
        source,
        claim.aip_id,
        worker,
        attempt=claim.attempts,
        accept_invalid=accept_invalid,
        meter=Meter(progress, interval=0.5),
        media_progress=media_progress,
    )
    done = _Progress()
    current = ["start"]  # the step running now, for the quarantine report
    heartbeat = claims.LeaseHeartbeat(catalog, key, worker, settings.ingest.lease_seconds)

    def hold() -> None:
        """Renew the lease; ClaimLost when another worker has taken the submission over."""
        if heartbeat.lost.is_set() or not catalog.renew_lease(key, worker, settings.ingest.lease_seconds):
            heartbeat.lost.set()
            raise ClaimLost(f"another worker took over {key} while {worker} was ingesting it (at {current[0]})")

    def still_mine() -> bool:
        """Whether this worker still holds the submission; False also when the catalog cannot say
        (then nothing that may be another worker's is touched)."""
        try:
            hold()
        except PreserveError:
            return False
        return True

    def taken_over() -> bool:
        """Whether another worker is known to hold the submission now (not: the catalog is down)."""
        try:
            hold()
        except ClaimLost:
            return True
        except PreserveError:
            return False
        return False

    def run(step: Callable[Concatenate[IngestContext, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        current[0] = step.__name__
        result = runner(step, ctx, *args, **kwargs)
        if step is accession:  # the submission is finished, and its claim with it
            return result
        hold()
        if done.staged is not None and done.replicated is None:  # a film changing under us stops it at once
            raise_if_changed(done.staged, f"found after {step.__name__}")
            source_changes(ctx, done.staged, done.early)
        return result

    try:
        with heartbeat:
            try:
                staged = done.staged = run(stage)
                raise_if_changed(staged, "found after stage")  # before a byte of it is uploaded
                existing = catalog.find_by_content(staged.content_key)
                if existing:
                    return _duplicate(ctx, staged, existing)
                hold()  # nothing is uploaded under an AIP id another worker may now be using
                done.early = start_early(ctx, staged)
                done.uploading = done.early is not None
                described = done.described = run(characterise, staged)
                validated = done.validated = run(validate, staged, described)
                masters = run(normalise, staged, described)
                derivatives = done.derivatives = run(make_access, staged, described, validated)
                packaged = done.packaged = run(package, staged, described, validated, masters)
                done.uploading = True
                replicated = done.replicated = run(replicate, staged, packaged, done.early)
                published = done.published = run(publish, staged, derivatives)
                current[0] = "record"
                raise_if_changed(staged, "found right before the catalog was to be written")
                hold()
                run(record, staged, described, masters, packaged, replicated, published)
            except Exception:
                # inside the lease: stopping the uploads may wait for those running. What is stored
                # under the AIP id is removed only while this worker still holds the submission:
                # a worker that took it over uses the same AIP id, and its uploads must stay.
                if done.uploading and still_mine():
                    remove_unrecorded(ctx, done.early)
                elif done.early is not None:
                    done.early.uploads.stop()
                raise
            except BaseException:  # interrupted: begin no more uploads; the next attempt sweeps the rest
                if done.early is not None:
                    done.early.uploads.stop(wait=False)
                raise
            run(accession, staged.submission)
    except Exception as exc:  # noqa: BLE001 - every failure ends in quarantine, never in a lost source
        if isinstance(exc, ClaimLost) or taken_over():  # the source is another worker's now: hands off
            return _result(ctx, done, IngestStatus.SKIPPED, "another worker took this submission over; it finishes it")
        submission = done.staged.submission if done.staged else quarantines.rescan(ctx.source)
        folder, detail = quarantines.quarantine(ctx, submission, exc, current[0])
        return _result(ctx, done, IngestStatus.QUARANTINED, detail, quarantine_dir=folder)
    journal.flush_quietly(settings, catalog, [ctx.aip_id])  # the ingest's events, beside the AIP on each replica
    return _result(ctx, done, IngestStatus.STORED, f"{len(replicated.replicas)} replica(s) verified")


def _not_claimed(
    settings: Settings, catalog: Catalog, source: Path, key: str, worker: str, state: SubmissionState | None
) -> IngestResult:
    """Someone else holds the submission, or a worker killed after the catalog commit (stored, or
    recorded as a duplicate) left the source behind: finish its move to done/, but only once that
    worker is known dead (it may be moving it right now)."""
    orphaned = state is not None and os.path.lexists(source) and claims.holder_is_dead(state.claimed_by)
    if state is not None and orphaned and state.status == "stored":
        ctx = IngestContext(settings, catalog, source, state.aip_id, worker)
        accession(ctx, submissions.scan(source))
        journal.flush_quietly(settings, catalog, [state.aip_id])
        return IngestResult(key, IngestStatus.STORED, state.aip_id, "completed an interrupted accession")
    if state is not None and orphaned and state.status == "duplicate":
        disposition.move_to_done(source, submissions.companions_of(source))
        catalog.finish_submission(key)
        return IngestResult(key, IngestStatus.DUPLICATE, state.aip_id, "completed an interrupted duplicate disposal")
    return IngestResult(
        key,
        IngestStatus.SKIPPED,
        state.aip_id if state else "",
        "another worker holds this submission" if state else "",
    )


def _release_vanished(catalog: Catalog, source: Path, key: str, aip_id: str) -> None:
    """A claimed source that is gone went to done/ (its row was finished) or, if its worker died
    while quarantining it, to failed/: record that, never an ingest of nothing."""
    if os.path.lexists(source.parent / "failed" / source.name):
        catalog.mark_quarantined(key, "the worker stopped while quarantining it; see failed/", [], aip_id=aip_id)
    else:
        catalog.finish_submission(key)


def _duplicate(ctx: IngestContext, staged: Staged, existing: str) -> IngestResult:
    event = Event(
        EventType.DUPLICATE,
        Outcome.PASS,
        tools.preserve_agent(),
        f"same files and checksums as AIP {existing}; not stored twice",
        subject=staged.submission.name,
    )
    ctx.catalog.mark_duplicate(ctx.name, existing, [*ctx.log.events, event])
    disposition.move_to_done(ctx.source, staged.submission.companions)
    ctx.catalog.finish_submission(ctx.name)
    shutil.rmtree(ctx.work_dir, ignore_errors=True)
    done = _Progress()
    done.staged = staged
    return _result(ctx, done, IngestStatus.DUPLICATE, f"duplicate of {existing}", aip_id=existing)


def _result(
    ctx: IngestContext,
    done: _Progress,
    status: IngestStatus,
    detail: str,
    *,
    aip_id: str | None = None,
    quarantine_dir: Path | None = None,
) -> IngestResult:
    """The result from whatever the ingest got as far as producing."""
    staged, facts = done.staged, _facts(done)
    files: tuple[FileSummary, ...] = ()
    title = ""
    if staged is not None:
        title = staged.metadata.title or staged.metadata.original_title or ""
        files = tuple(_file_summary(f.path, f.size, f.digests.sha256, facts.get(f.path)) for f in staged.files)
    timings = {}
    if done.derivatives is not None and done.derivatives.seconds is not None:
        timings["proxy"] = done.derivatives.seconds
    if done.replicated is not None:
        timings["replicate"] = done.replicated.seconds
    return IngestResult(
        submission=ctx.name,
        status=status,
        aip_id=ctx.aip_id if aip_id is None else aip_id,
        detail=detail,
        quarantine_dir=quarantine_dir,
        title=title,
        files=files,
        payload_oxum=done.packaged.payload_oxum if done.packaged else "",
        replicas=tuple(
            ReplicaSummary(r.target, r.status, len(r.objects), r.uri, r.verified_at)
            for r in (done.replicated.replicas if done.replicated else ())
        ),
        access=tuple(
            AccessSummary(a.kind, a.uri, a.size, a.sha256) for a in (done.published.copies if done.published else ())
        ),
        events=ctx.log.events,
        timings=timings,
    )


def _facts(done: _Progress) -> dict[str, MediaFacts]:
    if done.validated is not None:
        return dict(done.validated.facts)
    return dict(done.described.facts) if done.described is not None else {}


def _file_summary(path: str, size: int, sha256: str, facts: MediaFacts | None) -> FileSummary:
    if facts is None:
        return FileSummary(path, size, sha256)
    return FileSummary(
        path, size, sha256, facts.duration, facts.video_codec, facts.width, facts.height, facts.audio_codec
    )
