"""The `replicate` flow: back-fill targets that lack a verified replica of an AIP (a target added
later), one task per target (tagged `replicate` and the target's name), each calling
preserve.operations.journal.backfill (the back-fill, then the journal of every AIP copied), then one table artifact `replicate-summary`. No caching: a copy
is only as good as the verification done in this run."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from preserve import config as settings_mod
from preserve.catalog import Catalog
from preserve.core.fs import private_umask
from preserve.operations import journal


@task(name="backfill-target", cache_policy=NO_CACHE, persist_result=False, retries=1, retry_delay_seconds=30)
def backfill_target(config: str | None, target: str, aip: str | None) -> list[dict[str, Any]]:
    settings = settings_mod.load(config)
    catalog = Catalog(settings.catalog_url)
    try:
        return [
            {
                "aip": r.aip_id,
                "target": r.target,
                "status": r.status,
                "source": r.source,
                "objects": r.objects,
                "bytes": r.bytes,
                "detail": r.detail,
            }
            for r in journal.backfill(settings, catalog, aip_id=aip, target=target)
        ]
    finally:
        catalog.close()


@flow(name="replicate", persist_result=False)
def replicate_flow(aip: str | None = None, target: str | None = None, config: str | None = None) -> State:
    """Give every AIP (or one) a verified replica on every target (or one). Ends Failed when a
    copy failed, so the dashboard shows what needs a person."""
    private_umask()  # what this run and its tools create is for the archive's user only
    settings = settings_mod.load(config)
    names = [t.name for t in settings.targets if target in (None, t.name)]
    rows = [
        row
        for name in names
        for row in backfill_target.with_options(task_run_name=f"backfill · {name}", tags=["replicate", name])(
            str(settings.source), name, aip
        )
    ]
    create_table_artifact(
        key="replicate-summary",
        table=rows or [{"status": "no AIPs"}],
        description="Back-fill of replicas: copied, already present, or failed",
    )
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        return Failed(message=f"{len(failed)} back-fill(s) failed", data=rows)
    return Completed(message=f"{sum(r['status'] == 'copied' for r in rows)} replica(s) back-filled", data=rows)
