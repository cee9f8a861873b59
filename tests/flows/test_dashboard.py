"""What the dashboard shows after ingest runs, read back through the Prefect client: keyed
`ingest-report` markdown artifacts (files, codecs, resolution, SHA-256, replicas, poster link,
warnings), progress artifacts, and runs tagged `ingest` plus the target names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from preserve.settings import Settings
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
    good = make_clip(settings.ingest_dir / "report film.mov", vcodec="prores_aw", size="320x240",
                     acodec="pcm_s16le", duration=1.0)
    good_sha = digest_file(good, ("sha256",)).values["sha256"]
    bad = truncated_copy(make_clip(tmp_path / "x.mp4", duration=2.0), settings.ingest_dir / "report cut.mp4", 0.5)

    ok = ingest_flow(path=str(good), config=config, return_state=True)
    failed = ingest_flow(path=str(bad), config=config, return_state=True)
    assert ok.is_completed() and failed.is_failed()
    aip_id = ok.result()["aip_id"]

    async def read() -> tuple:
        async with get_client() as client:
            reports = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-report"])))
            runs = {}
            for state in (ok, failed):
                runs[state] = (await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))))[0]
            progress = [a for a in await client.read_artifacts() if a.type == "progress"
                        and a.flow_run_id == ok.state_details.flow_run_id]
            tasks = await client.read_task_runs()
            return reports, runs, progress, tasks

    reports, runs, progress, tasks = asyncio.run(read())
    mine = {str(r.flow_run_id): r for r in reports}
    good_report = mine[str(ok.state_details.flow_run_id)]
    bad_report = mine[str(failed.state_details.flow_run_id)]
    assert good_report.type == "markdown" and good_report.key == "ingest-report"
    text = good_report.data
    for expected in ("report film", "**stored**", aip_id, good_sha, "prores", "320×240", "pcm_s16le",
                     "0:01.00", "seaweed", "local", "[poster](", "## Warnings"):
        assert expected in text, expected
    assert "**quarantined**" in bad_report.data and "MediaError" in bad_report.data
    assert "failed/report cut.mp4" in bad_report.data

    assert progress and progress[-1].data == pytest.approx(100.0)  # bytes staged and uploaded: all of them
    for state in (ok, failed):
        assert {"ingest", "seaweed", "local"} <= set(runs[state].tags)
    replicate = [t for t in tasks if t.name == "replicate · report film.mov"]
    assert replicate and {"ingest", "seaweed", "local"} <= set(replicate[0].tags)
