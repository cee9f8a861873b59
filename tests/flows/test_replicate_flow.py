"""The replicate flow on the shared Prefect test harness: a target added to the config later is
back-filled by one task per target (tagged `replicate` and the target's name), with a
`replicate-summary` table artifact; a second run finds every replica present."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.pipeline import ingest_submission
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect


def test_replicate_flow_backfills_a_new_target(prefect_harness, s3_settings: Settings, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.replicate import replicate_flow

    run = uuid.uuid4().hex[:8]
    one = [{"name": "seaweed", "kind": "s3", "embedded": True, "bucket": "preserve-aips", "prefix": f"t-{run}"}]
    settings = isolated_settings(s3_settings, tmp_path, targets=one, replication={"min_verified_replicas": 1})
    catalog = Catalog(settings.catalog_url)
    src = settings.ingest_dir / "letter.pdf"
    src.write_bytes(b"%PDF-1.4\n% " + uuid.uuid4().bytes + b"\n%%EOF\n")
    aip_id = ingest_submission(settings, catalog, src).aip_id
    catalog.close()

    later = isolated_settings(
        s3_settings,
        tmp_path,
        replication={"min_verified_replicas": 1},
        targets=[*one, {"name": "offsite", "kind": "filesystem", "path": str(tmp_path / "offsite")}],
    )
    config = str(write_config(later, tmp_path / "preserve.toml"))
    state = replicate_flow(config=config, return_state=True)
    assert state.is_completed(), state.message
    rows = state.result()
    assert {(r["aip"], r["target"], r["status"]) for r in rows} == {
        (aip_id, "seaweed", "present"),
        (aip_id, "offsite", "copied"),
    }
    catalog = Catalog(later.catalog_url)
    assert {r.target: r.status for r in catalog.get_aip(aip_id).replicas} == {
        "seaweed": "verified",
        "offsite": "verified",
    }
    catalog.close()
    again = replicate_flow(config=config, target="offsite", return_state=True)
    assert again.is_completed() and [r["status"] for r in again.result()] == ["present"]

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(), await client.read_task_runs()

    artifacts, tasks = asyncio.run(read())
    assert any(a.key == "replicate-summary" for a in artifacts)
    backfills = [t for t in tasks if t.name.startswith("backfill · ")]
    assert {t.name for t in backfills} >= {"backfill · seaweed", "backfill · offsite"}
    assert all("replicate" in t.tags for t in backfills)
