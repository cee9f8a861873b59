"""The `ingest-watch` flow on the shared Prefect harness: one pass over the ingest folder runs the
`ingest` flow as a subflow per ready submission; a quarantine fails that subflow, not the pass."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect


def test_ingest_watch_flow_runs_one_ingest_subflow_per_ready_submission(
    prefect_harness, s3_settings: Settings, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from flows.watch import ingest_watch_flow

    settings = isolated_settings(s3_settings, tmp_path, ingest={"stable_seconds": 0.3, "poll_seconds": 0.1})
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    (settings.ingest_dir / "notes.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (settings.ingest_dir / "empty.mov").write_bytes(b"")
    (settings.ingest_dir / ".DS_Store").write_bytes(b"junk")

    state = ingest_watch_flow(config=config, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert {h["submission"]: h["status"] for h in result["handled"]} == {
        "notes.pdf": "stored",
        "empty.mov": "quarantined",
    }
    assert [i["name"] for i in result["ignored"]] == [".DS_Store"]
    assert (settings.ingest_dir / "failed" / "empty.mov" / "REPORT.txt").exists()
    catalog = Catalog(settings.catalog_url)
    assert [a.submission_name for a in catalog.list_aips()] == ["notes.pdf"]
    catalog.close()

    async def runs():
        async with get_client() as client:
            return await client.read_flow_runs()

    flow_runs = asyncio.run(runs())
    parent = next(r for r in flow_runs if r.id == state.state_details.flow_run_id)
    children = {
        r.name: r
        for r in flow_runs
        if r.parent_task_run_id is not None
        and r.name.startswith("ingest · ")
        and r.start_time
        and r.start_time >= parent.start_time
    }
    assert {"ingest · notes.pdf", "ingest · empty.mov"} <= set(children)
    assert children["ingest · empty.mov"].state.is_failed()
