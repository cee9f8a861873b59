"""The `embargo-release` flow: publish the access copies of embargoed AIPs whose date has come.
One task around the library (preserve.operations.embargo.release_due), retried on I/O; served daily as a
deployment (flows/serve.py, issue 7). No caching: the date and the catalog decide every run."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from preserve import config as settings_mod
from preserve.catalog import Catalog
from preserve.core.fs import private_umask
from preserve.core.model import utcnow
from preserve.operations import embargo


@task(name="release embargoes", retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE, persist_result=False)
def release_task(config: str | None, today: dt.date) -> list[dict[str, Any]]:
    settings = settings_mod.load(config)
    catalog = Catalog(settings.catalog_url)
    try:
        results = embargo.release_due(settings, catalog, today=today)
    finally:
        catalog.close()
    return [
        {"aip_id": r.aip_id, "status": r.status, "until": r.until.isoformat() if r.until else None, "detail": r.detail}
        for r in results
    ]


@flow(name="embargo-release", log_prints=False, persist_result=False)
def embargo_release_flow(config: str | None = None, today: str | None = None) -> list[dict[str, Any]]:
    """Release due embargoes. ``today`` (YYYY-MM-DD) replaces the clock, for a catch-up run or a
    test; by default it is today's date in UTC."""
    private_umask()  # what this run and its tools create is for the archive's user only
    day = dt.date.fromisoformat(today) if today else utcnow().date()
    return release_task(config, day)
