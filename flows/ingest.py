"""The `ingest` flow: one Prefect task per library step (preserve.ingest.STEPS), so the dashboard
shows where a submission is and how long each step took. Retries on the I/O steps; no caching
anywhere (a checksum must never come from a cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from preserve import ingest, settings as settings_mod
from preserve.catalog import Catalog

#: steps that touch storage or the network, and are safe to run again
RETRIED_STEPS = {"replicate": 2, "record": 2}
RETRY_DELAY_SECONDS = 5


def _make_task(step: ingest.Step) -> Any:
    return task(
        step,
        name=step.__name__,
        retries=RETRIED_STEPS.get(step.__name__, 0),
        retry_delay_seconds=RETRY_DELAY_SECONDS,
        cache_policy=NO_CACHE,
        persist_result=False,
        task_run_name=lambda: f"{step.__name__}",
    )


STEP_TASKS = {step: _make_task(step) for step in ingest.STEPS}


def run_as_task(step: ingest.Step, job: ingest.IngestJob) -> ingest.IngestJob:
    return STEP_TASKS[step].with_options(task_run_name=f"{step.__name__} · {job.name}")(job)


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"ingest · {Path(flow_run.parameters.get('path', '?')).name}"


@flow(name="ingest", flow_run_name=_run_name, log_prints=False, persist_result=False)
def ingest_flow(path: str, config: str | None = None, accept_invalid: bool = False) -> State:
    """Ingest one submission. The run ends Failed (visible on the dashboard) when the submission
    was quarantined; the source is then in failed/ with its report."""
    settings = settings_mod.load(config)
    catalog = Catalog(settings.catalog_url)
    try:
        outcome = ingest.ingest_submission(settings, catalog, Path(path), runner=run_as_task,
                                           accept_invalid=accept_invalid)
    finally:
        catalog.close()
    data = {"submission": outcome.submission, "status": outcome.status, "aip_id": outcome.aip_id,
            "detail": outcome.detail,
            "quarantine_dir": str(outcome.quarantine_dir) if outcome.quarantine_dir else None}
    if outcome.status == "quarantined":
        return Failed(message=f"{outcome.submission} quarantined: {outcome.detail}", data=data)
    return Completed(message=f"{outcome.submission}: {outcome.status} {outcome.aip_id}", data=data)
