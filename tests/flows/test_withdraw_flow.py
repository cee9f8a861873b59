"""The withdraw deployment and the dashboard, on the shared Prefect harness: two films ingested
through the ingest flow (runs named after their files, ingest reports with title and poster
link); one withdrawn by running the `withdraw` deployment from the Prefect client with its
parameters (served as `preserve serve` serves it, in a process of its own), the other with
`preserve withdraw` on the command line. Afterwards neither film's ingest run, task runs or
artifacts are on the dashboard, no run name carries a file name, the withdraw run left its
`withdraw-report` artifact listing what was removed, and its `reason` parameter is gone from
Prefect (kept in the catalog)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import Agent, EventType
from tests.mediafactory import make_clip
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect
ROOT = Path(__file__).resolve().parents[2]

SERVE = r"""
import sys
from prefect import serve
from flows.serve import deployments
from preserve import config
settings = config.load(sys.argv[1])
serve(*deployments(settings, sys.argv[1], {"withdraw"}))
"""


def test_the_withdraw_deployment_and_the_command_clean_the_dashboard(
    prefect_harness, s3_settings: Settings, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    from flows.ingest import ingest_flow
    from flows.withdraw import REASON_KEPT

    settings = isolated_settings(s3_settings, tmp_path, proxy={"preset": "ultrafast"}, access={"contact_sheet": False})
    config = str(write_config(settings, tmp_path / "preserve.toml", access={"contact_sheet": False}))
    films: dict[str, Any] = {}
    for name in ("Zhang's film.mp4", "Li's film.mp4"):
        film = make_clip(settings.ingest_dir / name, duration=0.5)
        film.with_name(film.name + ".yaml").write_text("title: The Secret Title\naccess: open\n", encoding="utf-8")
        state = ingest_flow(path=str(film), config=config, return_state=True)
        assert state.is_completed(), state.message
        films[name] = (state.result()["aip_id"], state.state_details.flow_run_id)
    (by_ui, ui_run), (by_cli, cli_run) = films.values()

    def reports() -> list[Any]:
        with get_client(sync_client=True) as client:
            return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-report"])))

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    def logs_of(*runs: Any) -> list[Any]:
        with get_client(sync_client=True) as client:
            return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=list(runs))))

    deadline = time.monotonic() + 60
    while not any("Beginning flow run" in entry.message for entry in logs_of(ui_run)):  # shipped in batches
        assert time.monotonic() < deadline, "the ingest run's log never reached the API"
        time.sleep(0.5)
    before = [r for r in reports() if r.flow_run_id in (ui_run, cli_run)]
    assert len(before) == 2 and all("The Secret Title" in r.data and "[poster](" in r.data for r in before)

    # 1. the deployment, served in its own process, run from the client with parameters
    api = PREFECT_API_URL.value()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, config],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": api},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            with get_client(sync_client=True) as client:
                if any(d.name == "withdraw" for d in client.read_deployments()):
                    break
            assert server.poll() is None, server.stdout.read().decode(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the withdraw deployment was not registered"
            time.sleep(1)
        run = run_deployment(
            "withdraw/withdraw",
            parameters={"aip_id": by_ui, "reason": "the filmmaker asked, at once", "operator": "archivist-d"},
            timeout=300,
        )
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert run.state is not None and run.state.is_completed(), run.state
    assert run.name == f"withdraw · {by_ui[:8]}"

    # 2. the command line, against the same Prefect API (no --direct: it cleans the dashboard too)
    started = time.monotonic()
    cli = subprocess.run(
        [sys.executable, "-m", "preserve.cli", "--config", config, "withdraw", by_cli, "--reason", "asked too"],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": api, "PRESERVE_OPERATOR": "archivist-e"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.monotonic() - started
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert re.search(r"1 ingest run\(s\) and [1-9]\d* artifact\(s\) removed from the Prefect dashboard", cli.stdout), (
        cli.stdout
    )
    print(f"\npreserve withdraw with the dashboard clean-up: {seconds:.1f} s")

    async def read() -> tuple[Any, ...]:
        async with get_client() as client:
            artifacts = await client.read_artifacts()
            gone = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[ui_run, cli_run]))
            )
            runs = await client.read_flow_runs()
            tasks = await client.read_task_runs()
            mine = await client.read_flow_run(run.id)
            return artifacts, gone, runs, tasks, mine

    artifacts, gone, runs, tasks, mine = asyncio.run(read())
    assert gone == []  # both ingest runs deleted, their task runs with them
    for thing in [*(r.name for r in runs), *(t.name for t in tasks)]:
        assert "Zhang's film" not in thing and "Li's film" not in thing, thing
    assert not [a for a in artifacts if a.flow_run_id in (ui_run, cli_run)]  # reports and progress bars
    assert not [a for a in artifacts if "The Secret Title" in str(a.data) + str(a.description)]
    (withdrawn,) = [a for a in artifacts if a.key == "withdraw-report" and a.flow_run_id == run.id]
    for key in ("poster.jpg", "proxy.mp4"):
        assert f"`{by_ui}/{key}`" in withdrawn.data
    assert "**dark**" in withdrawn.data and "1 ingest run(s)" in withdrawn.data
    assert "The Secret Title" not in withdrawn.data
    assert mine.parameters["reason"] == REASON_KEPT and mine.parameters["aip_id"] == by_ui

    # their log lines ("Beginning flow run 'ingest · NAME'") are deleted by the server in the background
    deadline = time.monotonic() + 120
    while (logs := logs_of(ui_run, cli_run)) and time.monotonic() < deadline:
        time.sleep(1)
    assert logs == [], [entry.message for entry in logs][:5]

    # the same film dropped again: a duplicate that publishes nothing and gets no report; its run
    # (named after the file again) is removed by the next housekeeping round
    import shutil

    from flows.withdraw import housekeeping

    for companion in ("Li's film.mp4", "Li's film.mp4.yaml"):
        shutil.copy(settings.done_dir / companion, settings.ingest_dir / companion)
    again = ingest_flow(path=str(settings.ingest_dir / "Li's film.mp4"), config=config, return_state=True)
    assert (again.result()["status"], again.result()["aip_id"]) == ("duplicate", by_cli)
    assert not [r for r in reports() if r.flow_run_id == again.state_details.flow_run_id]
    with Catalog(settings.catalog_url) as catalog:
        assert [c.aip_id for c in catalog.dashboard_cleanup_due()] == [by_cli]
        lines = housekeeping(settings, catalog)
        assert any(line.startswith(f"dashboard of {by_cli}: 1 ingest run(s)") for line in lines), lines
    with get_client(sync_client=True) as client:
        rerun = FlowRunFilter(id=FlowRunFilterId(any_=[again.state_details.flow_run_id]))
        assert client.read_flow_runs(flow_run_filter=rerun) == []

    with Catalog(settings.catalog_url) as catalog:
        for aip_id, operator, reason in (
            (by_ui, "archivist-d", "the filmmaker asked, at once"),
            (by_cli, "archivist-e", "asked too"),
        ):
            aip = catalog.get_aip(aip_id)
            assert aip.access_level == "dark" and aip.access == ()
            decision = [e for e in aip.events if e.type is EventType.ACCESS_DECISION][-1]
            assert decision.agent == Agent(operator, kind="person") and decision.extra["reason"] == reason
            assert any(e.subject == "prefect dashboard" for e in aip.events)
        assert catalog.dashboard_cleanup_due() == []


def test_a_failed_withdraw_run_keeps_no_reason_in_its_parameters(
    prefect_harness, s3_settings: Settings, tmp_path: Path
) -> None:
    """An unknown AIP fails the run; its free-text reason (it can name the filmmaker) must still be
    replaced in the run's parameters, as on success."""
    from prefect.client.orchestration import get_client

    from flows.withdraw import REASON_KEPT, withdraw_flow

    settings = isolated_settings(s3_settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    state = withdraw_flow(aip_id="no-such-aip", reason="Zhang San asked, from Wukan", config=config, return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.parameters["reason"] == REASON_KEPT and "Zhang San" not in str(run.parameters)
