"""One redaction at the boundary, through Prefect (issue 18): a sidecar whose values name a person
and a place, and a link to a named path, ingested by the real `ingest` flow in this process and by
`preserve ingest` (the flow, in its own process) against the same test server. Nothing planted is
in Prefect's API (flow and task runs and every state they went through, logs, artifacts, events),
in its database file, on the command line's stdout and stderr, in `preserve status`, in the
catalog, the webhook or the e-mail; the local REPORT.txt still has it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from tests.integration.test_alerts import Receivers
from tests.planted import assert_reports_keep_them, files_under, leaks, plant
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect


@pytest.fixture()
def receivers() -> Iterator[Receivers]:
    r = Receivers()
    yield r
    r.close()


async def _read_everything(names: set[str]) -> dict[str, Any]:
    """Every flow run of these submissions, with its task runs, all their states, logs, artifacts
    and the events about them, as the Prefect API gives them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        runs = [r for r in await client.read_flow_runs() if r.name.removeprefix("ingest · ") in names]
        ids = [r.id for r in runs]
        by_id = FlowRunFilter(id=FlowRunFilterId(any_=ids))
        tasks = await client.read_task_runs(flow_run_filter=by_id)
        out: dict[str, Any] = {
            "flow runs": [r.model_dump(mode="json") for r in runs],
            "flow run states": [[s.model_dump(mode="json") for s in await client.read_flow_run_states(i)] for i in ids],
            "task runs": [t.model_dump(mode="json") for t in tasks],
            "task run states": [
                [s.model_dump(mode="json") for s in await client.read_task_run_states(t.id)] for t in tasks
            ],
            "logs": [
                lg.model_dump(mode="json")
                for lg in await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
            ],
            "artifacts": [a.model_dump(mode="json") for a in await client.read_artifacts(flow_run_filter=by_id)],
        }
        events: list[dict[str, Any]] = []
        for run_id in [*ids, *(t.id for t in tasks)]:
            body = {"filter": {"any_resource": {"id": [f"prefect.flow-run.{run_id}", f"prefect.task-run.{run_id}"]}}}
            page = (await client.request("POST", "/events/filter", json=body)).json()
            events += page.get("events", [])
        out["events"] = events
        out["_ids"] = ids
        return out


def _everything(names: set[str], flow_runs: int) -> dict[str, Any]:
    """Read until the events of every flow run's end are there (the server persists events a few
    seconds after they happen)."""
    deadline = time.monotonic() + 120
    while True:
        seen = asyncio.run(_read_everything(names))
        ended = {
            e["resource"]["prefect.resource.id"] for e in seen["events"] if e["event"] == "prefect.flow-run.Failed"
        }
        if len(seen["_ids"]) == flow_runs and len(ended) == flow_runs:
            return seen
        assert time.monotonic() < deadline, (len(seen["_ids"]), sorted(ended))
        time.sleep(2)


def test_prefect_and_the_cli_carry_nothing_submitted(
    prefect_harness, s3_settings: Settings, tmp_path: Path, receivers: Receivers, capfd
) -> None:
    import prefect.settings
    from prefect.logging.handlers import APILogWorker

    from flows.ingest import ingest_flow

    settings = isolated_settings(s3_settings, tmp_path, alerts=receivers.settings())
    config = write_config(settings, tmp_path / "preserve.toml")
    in_flow, by_cli = plant(settings.ingest_dir, "flow"), plant(settings.ingest_dir, "cli")
    found: list[str] = []

    # the flow, in this process
    for kind, sub in in_flow.items():
        state = ingest_flow(path=str(sub), config=str(config), return_state=True)
        assert state.is_failed(), (kind, state)
        code = "SidecarError" if kind == "sidecar" else "UnsafeSubmission"
        assert "quarantined" in state.message and code in state.message
        returned = json.dumps(state.result(raise_on_failure=False), default=str)
        found += leaks(f"flow state of {kind}", [state.message, returned])
    APILogWorker.drain_all(timeout=10)
    found += leaks("this process's stderr and stdout", "".join(capfd.readouterr()))

    # `preserve ingest`, the flow in its own process, reporting to the same server
    env = {**os.environ, "COLUMNS": "500", "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value()}
    env.pop("PRESERVE_CONFIG", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "preserve.cli", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )

    ingest = cli("ingest", *(str(p) for p in by_cli.values()))
    assert ingest.returncode == 1, ingest.stdout + ingest.stderr
    assert ingest.stdout.count("quarantined") == 2 and "Task run" in ingest.stderr  # Prefect's log lines are there
    assert "a symbolic link pointing outside the submission" in ingest.stdout
    found += leaks("preserve ingest stdout", ingest.stdout) + leaks("preserve ingest stderr", ingest.stderr)
    for args in (["status"], ["status", "--json"]):
        status = cli(*args)
        assert status.returncode == 1 and "linked cli" in status.stdout
        found += leaks(" ".join(args), status.stdout + status.stderr)

    # Prefect's API, and its database file
    names = {p.name for p in (*in_flow.values(), *by_cli.values())}
    seen = _everything(names, flow_runs=4)
    assert len(seen["task runs"]) >= 4 and seen["logs"] and seen["artifacts"] and seen["events"]
    assert any(s["type"] == "FAILED" for states in seen["task run states"] for s in states)  # scan and stage failed
    assert any("SidecarError" in (s["message"] or "") for states in seen["task run states"] for s in states)
    for what, value in seen.items():
        found += leaks(f"Prefect API {what}", value)
    db = prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[1]
    for f in files_under(*Path(db).parent.glob(Path(db).name + "*")):
        found += leaks(f"Prefect database {f.name}", f.read_bytes())

    # the catalog, alerts, and anything else the archive keeps
    with Catalog(settings.catalog_url) as catalog:
        for name in names:
            state = catalog.submission(name)
            assert state is not None and state.status == "quarantined"
            found += leaks(f"catalog reason of {name}", state.reason)
            found += leaks(f"catalog events of {name}", [vars(e) for e in catalog.submission_events(name)])
        found += leaks("catalog alerts", [vars(a) for a in catalog.alerts()])
    for f in files_under(settings.var_dir):
        found += leaks(str(f.relative_to(settings.var_dir)), f.read_bytes())
    assert len(receivers.posts) == 4 and len(receivers.mails) == 4
    found += leaks("webhook", [p["json"] for p in receivers.posts])
    found += leaks("e-mail", [m.as_string() for m in receivers.mails])

    assert found == []
    assert_reports_keep_them(
        settings.failed_dir, [(kind, sub.name) for subs in (in_flow, by_cli) for kind, sub in subs.items()]
    )
