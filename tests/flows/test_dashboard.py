"""What the dashboard shows after ingest runs, read back through the Prefect client: keyed
`ingest-report` markdown artifacts (files, codecs, resolution, SHA-256, replicas, poster link,
warnings), progress artifacts, and runs tagged `ingest` plus the target names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from preserve.config import Settings
from tests.mediafactory import make_clip, truncated_copy
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect


def test_ingest_runs_leave_reports_progress_and_tags(prefect_harness, s3_settings: Settings, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    from flows.ingest import ingest_flow
    from preserve.fixity.digest import digest_file

    settings = isolated_settings(s3_settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    good = make_clip(
        settings.ingest_dir / "report film.mov", vcodec="prores_aw", size="320x240", acodec="pcm_s16le", duration=1.0
    )
    good_sha = digest_file(good, ("sha256",)).values["sha256"]
    bad = truncated_copy(make_clip(tmp_path / "x.mp4", duration=2.0), settings.ingest_dir / "report cut.mp4", 0.5)

    ok = ingest_flow(path=str(good), config=config, return_state=True)
    failed = ingest_flow(path=str(bad), config=config, return_state=True)
    assert ok.is_completed() and failed.is_failed()
    aip_id = ok.result()["aip_id"]

    async def read() -> tuple:
        async with get_client() as client:
            reports = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-report"]))
            )
            runs = {}
            for state in (ok, failed):
                runs[state] = (
                    await client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
                    )
                )[0]
            progress = [
                a
                for a in await client.read_artifacts()
                if a.type == "progress" and a.flow_run_id == ok.state_details.flow_run_id
            ]
            tasks = await client.read_task_runs()
            return reports, runs, progress, tasks

    reports, runs, progress, tasks = asyncio.run(read())
    mine = {str(r.flow_run_id): r for r in reports}
    good_report = mine[str(ok.state_details.flow_run_id)]
    bad_report = mine[str(failed.state_details.flow_run_id)]
    assert good_report.type == "markdown" and good_report.key == "ingest-report"
    text = good_report.data
    for expected in (
        "report film",
        "**stored**",
        aip_id,
        good_sha,
        "prores",
        "320×240",
        "pcm_s16le",
        "0:01.00",
        "seaweed",
        "local",
        "[poster](",
        "## Warnings",
    ):
        assert expected in text, expected
    assert "**quarantined**" in bad_report.data and "MediaError" in bad_report.data
    assert "failed/report cut.mp4" in bad_report.data

    assert progress and progress[-1].data == pytest.approx(100.0)  # bytes staged and uploaded: all of them
    for state in (ok, failed):
        assert {"ingest", "seaweed", "local"} <= set(runs[state].tags)
    replicate = [t for t in tasks if t.name == "replicate · report film.mov"]
    assert replicate and {"ingest", "seaweed", "local"} <= set(replicate[0].tags)


def test_runs_left_running_by_dead_workers_are_reconciled(prefect_harness, tmp_path: Path) -> None:
    """The catalog is the source of truth: a Running ingest run whose submission has no live claim
    is set to Crashed; one whose claim is live is left alone."""
    from prefect.client.orchestration import get_client
    from prefect.states import Pending, Running

    from flows.ingest import ingest_flow
    from flows.reconcile import reconcile_ingest_runs
    from preserve.catalog import Catalog
    from preserve.intake import claims

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.claim_submission("live.mov", claims.worker_id(), 3600)  # this process: alive, lease valid
    catalog.claim_submission("dead.mov", "otherhost:1:x", -60)  # a worker elsewhere whose lease ran out
    with get_client(sync_client=True) as client:
        ids = {}
        for name in ("ghost.mov", "live.mov", "dead.mov"):
            run = client.create_flow_run(ingest_flow, parameters={"path": f"/ingest/{name}"}, state=Pending())
            client.set_flow_run_state(run.id, Running(), force=True)
            ids[name] = run.id
        import datetime as dt

        done = reconcile_ingest_runs(catalog, grace=dt.timedelta(0))
        states = {name: client.read_flow_run(i).state for name, i in ids.items()}
    catalog.close()
    assert states["ghost.mov"].type.value == "CRASHED" and "no open claim" in states["ghost.mov"].message
    assert states["dead.mov"].type.value == "CRASHED" and "expired" in states["dead.mov"].message
    assert states["live.mov"].type.value == "RUNNING"
    assert {d["id"] for d in done} == {str(ids["ghost.mov"]), str(ids["dead.mov"])}
