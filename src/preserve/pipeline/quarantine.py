"""The end of an ingest that cannot go on: the untouched source into failed/ with a report a
person can read, the catalog told, the operators alerted. Side effects: renames the source,
writes REPORT.txt and report.json, catalog writes, alerts (webhook, e-mail)."""

from __future__ import annotations

import shutil
from pathlib import Path

from preserve import tools
from preserve.core.errors import PreserveError, SidecarError
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
    reason = submissions.printable(f"{step}: {exc}")  # a non-UTF-8 name must not make it unrecordable
    ctx.log.record(EventType.QUARANTINE, Outcome.FAIL, tools.preserve_agent(), reason)
    companions = submission.companions if submission else submissions.companions_of(ctx.source)
    files = [f.rel for f in submission.files] if submission else []
    events = list(ctx.log.events)
    folder = disposition.quarantine(ctx.source, exc, step=step, events=events, companions=companions, files=files)
    ctx.catalog.mark_quarantined(ctx.name, reason, events, aip_id=ctx.aip_id)
    shutil.rmtree(ctx.work_dir, ignore_errors=True)
    _alert(ctx, exc, step, folder)
    return folder, submissions.printable(f"{type(exc).__name__}: {shareable_message(exc)}")


def shareable_message(exc: BaseException) -> str:
    """The failure as it may be shown beyond the quarantine folder (alerts, dashboard, logs). A
    sidecar error quotes the offending values (a path with a user's name, a free-text place):
    those stay in the local REPORT.txt only."""
    if isinstance(exc, SidecarError):
        return f"the metadata sidecar is invalid; {disposition.REPORT_TXT} in the quarantine folder gives the lines"
    return str(exc)


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
                error_code=type(exc).__name__,
                message=shareable_message(exc),
                advice=advice,
                quarantine_dir=str(folder or ""),
                attempt=state.attempts if state else 0,
            ),
        )
    except Exception:  # noqa: BLE001 - logged; the quarantine itself is already complete
        alerts.log.exception("could not send the alert for %s", ctx.name)
