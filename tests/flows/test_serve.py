"""`preserve serve` for real, once: a Prefect server on a free loopback port (SQLite under the
test's var dir), the deployments registered with their schedules; then `preserve demo` ingests its
samples through the flows against that server, headless Chromium photographs the dashboard's runs
page and the ingest-report artifacts (test-artifacts/, not a pixel assertion), and SIGINT stops
everything cleanly (deployments paused first, then the server stopped)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from flows.serve import DEPLOYMENTS
from preserve.config import Settings
from tests.conftest import free_port_base
from tests.support import isolated_settings, write_config

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=30000",
    "--window-size=1400,900",
]

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def screenshot(url: str, dest: Path, tmp: Path) -> bool:
    """Headless Chromium's picture of a page; False when Chromium is not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return False
    profile = tempfile.mkdtemp(dir=tmp)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={dest}", url],
        capture_output=True,
        timeout=180,
    )
    return True


def test_serve_dashboard_and_clean_stop(s3_settings: Settings, tmp_path: Path) -> None:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    port = free_port_base(1)
    settings = isolated_settings(s3_settings, tmp_path / "served")
    demo_settings = isolated_settings(s3_settings, tmp_path / "demo")  # its own ingest folder: no race
    demo_config = str(write_config(demo_settings, tmp_path / "demo.toml"))
    config = str(
        write_config(
            settings,
            tmp_path / "preserve.toml",
            serve={"port": port, "watch_interval_seconds": 3600, "housekeeping_minutes": 60},
            audit={"cron": "0 2 * * *"},
        )
    )
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "preserve.cli", "--config", config, "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not _healthy(api):
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the Prefect server did not come up"
            time.sleep(1)

        expected = {name for module, _, name in DEPLOYMENTS if importlib.util.find_spec(module) is not None}

        async def read() -> dict:
            async with PrefectClient(api) as client:
                for _ in range(120):  # serve registers the deployments just after the server is up
                    deps = await client.read_deployments()
                    if len(deps) >= len(expected):
                        break
                    await asyncio.sleep(1)
                return {d.name: d for d in deps}

        deps = asyncio.run(read())
        assert {"fixity-audit", "embargo-release"} <= expected  # ingest-watch: once flows/watch.py is there
        assert set(deps) == expected
        if "ingest-watch" in deps:
            assert deps["ingest-watch"].schedules[0].schedule.interval.total_seconds() == 3600
            assert deps["ingest-watch"].parameters == {"config": config} and "ingest" in deps["ingest-watch"].tags
        assert deps["fixity-audit"].schedules[0].schedule.cron == "0 2 * * *"
        assert deps["embargo-release"].schedules[0].schedule.cron == settings.serve.embargo_cron
        assert deps["fixity-audit"].parameters == {"config": config} and "audit" in deps["fixity-audit"].tags
        # withdraw: on demand only, run from the dashboard with an AIP id and a reason
        assert deps["withdraw"].schedules == [] and deps["withdraw"].parameters == {"config": config}
        assert {"aip_id", "reason"} <= set(deps["withdraw"].parameter_openapi_schema["required"])

        # the demo's samples go through the ingest flow, reported to this server
        demo = subprocess.run(
            [sys.executable, "-m", "preserve.cli", "--config", demo_config, "demo"],
            env={**env, "PREFECT_API_URL": api},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]

        async def reports() -> list:
            async with PrefectClient(api) as client:
                return await client.read_artifacts(
                    artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-report"]))
                )

        made = asyncio.run(reports())
        assert len(made) >= 3 and all(a.type == "markdown" for a in made)
        ui = f"http://127.0.0.1:{port}"
        if screenshot(f"{ui}/runs", ARTIFACTS / "dashboard-runs.png", tmp_path):
            screenshot(f"{ui}/artifacts/artifact/{made[0].id}", ARTIFACTS / "dashboard-ingest-report.png", tmp_path)
            assert (ARTIFACTS / "dashboard-runs.png").stat().st_size > 20_000  # a rendered page, not a blank one

        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert text.index("All deployments have been paused") < text.index("shutting down")  # serve stopped first
    assert not _healthy(api)  # and then the server
