"""The fixity-audit flow on the shared Prefect test harness: one task per replica tagged `audit`
and the replica name, a `fixity-summary` table artifact, Completed when clean, Failed (with the
repair reported) when damage was found."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.pipeline import ingest_submission
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect


def test_audit_flow_reports_and_repairs(prefect_harness, s3_settings: Settings, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.audit import fixity_audit_flow

    settings = isolated_settings(s3_settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    catalog = Catalog(settings.catalog_url)
    src = settings.ingest_dir / "letter.pdf"
    src.write_bytes(os.urandom(20_000))
    aip_id = ingest_submission(settings, catalog, src).aip_id

    clean = fixity_audit_flow(aip=aip_id, full=True, config=config, return_state=True)
    assert clean.is_completed(), clean.message
    assert clean.result()["exit_code"] == 0

    obj = next(o for o in catalog.objects(aip_id, "local") if o.key.endswith("letter.pdf"))
    path = settings.target_path(settings.target("local")) / obj.key
    path.chmod(0o644)
    path.write_bytes(b"x" * obj.size)
    damaged = fixity_audit_flow(aip=aip_id, full=True, config=config, return_state=True)
    assert damaged.is_failed()
    data = damaged.result(raise_on_failure=False)
    assert data["exit_code"] == 1 and "repaired from seaweed" in data["report"]
    assert catalog.get_aip(aip_id).status == "stored"
    catalog.close()

    async def read():
        async with get_client() as client:
            artifacts = await client.read_artifacts()
            tasks = await client.read_task_runs()
            return artifacts, tasks

    artifacts, tasks = asyncio.run(read())
    summary = [a for a in artifacts if a.key == "fixity-summary"]
    assert summary and "failures" in str(summary[0].data)
    audit_tasks = [t for t in tasks if t.name.startswith("audit · ")]
    assert {t.name for t in audit_tasks} >= {"audit · seaweed", "audit · local"}
    assert all("audit" in t.tags for t in audit_tasks)
    assert any("seaweed" in t.tags for t in audit_tasks)
