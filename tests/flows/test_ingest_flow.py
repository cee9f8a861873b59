"""The ingest flow on a real (test-harness) Prefect server: one task per library step, named
runs, Completed for a stored film and Failed (with the source in failed/) for a broken one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from tests.mediafactory import make_clip, truncated_copy
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect


def test_ingest_flow_stores_and_quarantines(prefect_harness, s3_settings: Settings, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.ingest import ingest_flow

    settings = isolated_settings(s3_settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    good = make_clip(settings.ingest_dir / "good film.mp4", duration=1.0)
    bad = truncated_copy(make_clip(tmp_path / "x.mp4", duration=2.0), settings.ingest_dir / "cut.mp4", 0.5)

    ok_state = ingest_flow(path=str(good), config=config, return_state=True)
    assert ok_state.is_completed(), ok_state.message
    data = ok_state.result()
    assert data["status"] == "stored" and data["aip_id"]
    bad_state = ingest_flow(path=str(bad), config=config, return_state=True)
    assert bad_state.is_failed()
    assert (settings.ingest_dir / "failed" / "cut.mp4" / "REPORT.txt").exists()

    catalog = Catalog(settings.catalog_url)
    assert catalog.get_aip(data["aip_id"]).replicas[0].status == "verified"
    catalog.close()

    async def runs():
        async with get_client() as client:
            flow_runs = await client.read_flow_runs()
            task_runs = await client.read_task_runs()
            return flow_runs, task_runs

    flow_runs, task_runs = asyncio.run(runs())
    names = {r.name for r in flow_runs}
    assert "ingest · good film.mp4" in names and "ingest · cut.mp4" in names
    task_names = {r.name for r in task_runs}
    for step in ("stage", "characterise", "make_access", "package", "replicate", "record", "accession"):
        assert f"{step} · good film.mp4" in task_names


def test_ingest_flow_to_an_encrypted_target_needs_no_identity(
    prefect_harness, s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Prefect's tasks (each step a task run), the key an ingest makes for an encrypted
    target is still the ingest's own: its later uploads and journal write with it, although the
    machine holds no identity of the target."""
    from pyrage import x25519

    from flows.ingest import ingest_flow

    base = isolated_settings(s3_settings, tmp_path)
    sealed = {
        **base.target("seaweed").model_dump(mode="json"),
        "custody": "third-party",
        "encryption": "age",
        "age_recipients": [str(x25519.Identity.generate().to_public())],
    }
    settings = isolated_settings(s3_settings, tmp_path, targets=[sealed, base.target("local").model_dump(mode="json")])
    monkeypatch.delenv(settings.target("seaweed").identity_env_name(), raising=False)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    film = make_clip(settings.ingest_dir / "film.mp4", duration=1.0)
    state = ingest_flow(path=str(film), config=config, return_state=True)
    assert state.is_completed(), state.message
    data = state.result()
    catalog = Catalog(settings.catalog_url)
    try:
        aip = catalog.get_aip(data["aip_id"])
        assert aip is not None and {r.target for r in aip.replicas} == {"seaweed", "local"}
        assert all(o.encrypted for r in aip.replicas if r.target == "seaweed" for o in r.objects)
        assert catalog.key_of(aip.id, "seaweed") is not None
    finally:
        catalog.close()
