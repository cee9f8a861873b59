"""The `ingest-watch` flow: one pass over the ingest folder (preserve.intake.watch.watch_once), running
the `ingest` flow as a subflow for every submission that is ready, so each shows on the dashboard
as its own run. Meant to be served on an interval; a run waits until what is in the folder has
settled (about `ingest.stable_seconds`), so the interval should be longer than that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.ingest import ingest_flow
from preserve import config as settings_mod
from preserve.catalog import Catalog
from preserve.core.fs import private_umask
from preserve.intake import watch
from preserve.pipeline import IngestResult


def _ingest_subflow(path: Path, config: str | None) -> IngestResult:
    state = ingest_flow(path=str(path), config=config, return_state=True)
    data = state.result(raise_on_failure=False)
    if not isinstance(data, dict):  # the subflow itself crashed (not a quarantine)
        return IngestResult.crashed(path.name, data if isinstance(data, BaseException) else str(data))
    return IngestResult.from_dict(data)


@flow(name="ingest-watch", log_prints=False, persist_result=False)
def ingest_watch_flow(config: str | None = None, wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """One watch pass. ``config``: the preserve.toml to load (default: $PRESERVE_CONFIG or the
    project's). ``wait``/``timeout``: wait for entries to settle (see watch.watch_once).
    Returns {"handled": [...], "waiting": [...], "ignored": [...]}; a quarantined submission is a
    Failed ingest subflow, not a failure of this flow."""
    private_umask()  # what this run and its tools create is for the archive's user only
    settings = settings_mod.load(config)
    config_path = str(settings.source) if settings.source else config
    with Catalog(settings.catalog_url) as catalog:
        report = watch.watch_once(
            settings, catalog, lambda p: _ingest_subflow(p, config_path), wait=wait, timeout=timeout
        )
    return {
        "handled": [h.__dict__ for h in report.handled],
        "waiting": [w.__dict__ for w in report.waiting],
        "ignored": [i.__dict__ for i in report.ignored],
    }
