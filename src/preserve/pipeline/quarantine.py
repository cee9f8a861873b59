"""The end of an ingest that cannot go on: the untouched source into failed/ with a report a
person can read, the catalog told, the operators alerted. Side effects: renames the source,
writes REPORT.txt and report.json, catalog writes, alerts (webhook, e-mail).

Only the local report quotes the failure in full (a sidecar's values, a link's target); the
quarantine event, the catalog's reason, the result's detail and the alert say what
`preserve.core.redact` lets out."""

from __future__ import annotations

import shutil
from pathlib import Path

from preserve import tools
from preserve.core import redact
from preserve.core.errors import PreserveError
from preserve.core.model import EventType, Outcome
from preserve.intake import disposition
from preserve.intake import submission as submissions
from preserve.operations import alerts
from preserve.pipeline.context import IngestContext


def quarantine(
    ctx: IngestContext, submission: submissions.Submission | None, exc: BaseException, step: str
) -> tuple[Path, str]:
    """Quarantine the submission after ``exc`` in ``step``. Returns the quarantine folder and the
    shareable one-line reason (the full one stays in the local report)."""
    # a non-UTF-8 name must not make it unrecordable
    reason = submissions.printable(f"{step}: {redact.public_text(exc)}")
    ctx.log.record(EventType.QUARANTINE, Outcome.FAIL, tools.preserve_agent(), reason)
    companions = submission.companions if submission else submissions.companions_of(ctx.source)
    files = [f.rel for f in submission.files] if submission else []
    events = list(ctx.log.events)
    folder = disposition.quarantine(ctx.source, exc, step=step, events=events, companions=companions, files=files)
    ctx.catalog.mark_quarantined(ctx.name, reason, events, aip_id=ctx.aip_id)
    shutil.rmtree(ctx.work_dir, ignore_errors=True)
    _alert(ctx, exc, step, folder)
    return folder, submissions.printable(redact.describe(exc))


def rescan(source: Path) -> submissions.Submission | None:
    """The submission's files and companions for the report of an ingest that failed before its
    files were staged (the scan reads directory entries only); None when it cannot be scanned."""
    try:
        return submissions.scan(source)
    except PreserveError:
        return None


def _alert(ctx: IngestContext, exc: BaseException, step: str, folder: Path | None) -> None:
    """Tell the operators, after the quarantine is on disk and in the catalog; alerts.send never
    raises, so a broken webhook or mail server cannot mask the failure it reports."""
    try:
        state = ctx.catalog.submission(ctx.name)
        advice = exc.advice if isinstance(exc, PreserveError) else PreserveError.advice
        alerts.send(
            ctx.settings,
            ctx.catalog,
            alerts.ingest_failed(
                ctx.name,
                step=step,
                error_code=redact.code_of(exc),
                message=submissions.printable(redact.public_text(exc)),
                advice=advice,
                quarantine_dir=str(folder or ""),
                attempt=state.attempts if state else 0,
            ),
        )
    except Exception as failure:  # noqa: BLE001 - logged; the quarantine itself is already complete
        alerts.log.error("could not send the alert for %s: %s", ctx.name, redact.describe(failure))
