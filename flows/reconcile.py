"""Reconcile Prefect with the catalog, which is the source of truth: an `ingest` flow run still
"Running" on the dashboard although the catalog says its submission is finished, quarantined, or
held by a claim whose worker died or whose lease ran out was left behind by a dead worker. Such a
run is set to Crashed with the reason, so the dashboard stops showing phantom work. (The
submission itself is safe: the catalog lease lets another worker take it over.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from preserve.catalog import Catalog, SubmissionState
from preserve.core.model import utcnow
from preserve.intake import claims
from preserve.intake import submission as submissions

#: runs younger than this are left alone: they may not have claimed their submission yet
DEFAULT_GRACE = dt.timedelta(minutes=10)


def verdict(state: SubmissionState | None, now: dt.datetime) -> str | None:
    """Why a Running ingest run of this submission cannot be alive, or None if it may be."""
    if state is None:
        return "the catalog has no open claim for this submission (it was finished)"
    if state.status != "ingesting":
        return f"the catalog says the submission is {state.status}"
    if state.lease_until is not None and state.lease_until < now:
        return f"the claim of worker {state.claimed_by} expired at {state.lease_until:%Y-%m-%d %H:%M} UTC"
    if claims.holder_is_dead(state.claimed_by):
        return f"worker {state.claimed_by} is no longer running"
    return None


def reconcile_ingest_runs(
    catalog: Catalog, *, grace: dt.timedelta = DEFAULT_GRACE, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Set abandoned Running `ingest` runs to Crashed; returns what was done (run name, reason)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    now = now or utcnow()
    done: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["ingest"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
            ),
        )
        for run in runs:
            started = run.start_time or run.expected_start_time
            if started is not None and now - started < grace:
                continue
            path = (run.parameters or {}).get("path")
            if not path:
                continue
            reason = verdict(catalog.submission(submissions.key_for(Path(path))), now)
            if reason is None:
                continue
            client.set_flow_run_state(run.id, Crashed(message=f"reconciled with the catalog: {reason}"), force=True)
            done.append({"run": run.name, "id": str(run.id), "reason": reason})
    return done
