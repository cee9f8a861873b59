"""`preserve serve` for real, once: a Prefect server on a free loopback port (SQLite under the
test's var dir), the deployments registered with their schedules, and a clean stop on SIGINT
(deployments paused first, then the server stopped)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from preserve import settings as settings_mod
from tests.conftest import free_port_base
from tests.support import write_config

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_serve_registers_the_deployments_and_stops_cleanly(tmp_path: Path) -> None:
    from prefect.client.orchestration import PrefectClient

    port = free_port_base(1)
    settings = settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides={
        "archive": {"var_dir": str(tmp_path / "var")}, "replication": {"min_verified_replicas": 1},
        "targets": [{"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica")}],
        "access_target": None})
    config = str(write_config(settings, tmp_path / "preserve.toml",
                              serve={"port": port, "watch_interval_seconds": 3600, "housekeeping_minutes": 60},
                              audit={"cron": "0 2 * * *"}))
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.Popen([sys.executable, "-m", "preserve.cli", "--config", config, "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not _healthy(api):
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the Prefect server did not come up"
            time.sleep(1)

        async def read() -> dict:
            async with PrefectClient(api) as client:
                for _ in range(120):  # serve registers the deployments just after the server is up
                    deps = await client.read_deployments()
                    if len(deps) >= 3:
                        break
                    await asyncio.sleep(1)
                return {d.name: d for d in deps}

        deps = asyncio.run(read())
        assert set(deps) == {"ingest-watch", "fixity-audit", "embargo-release"}
        assert deps["ingest-watch"].schedules[0].schedule.interval.total_seconds() == 3600
        assert deps["fixity-audit"].schedules[0].schedule.cron == "0 2 * * *"
        assert deps["embargo-release"].schedules[0].schedule.cron == settings.serve.embargo_cron
        assert deps["ingest-watch"].parameters == {"config": config}
        assert "ingest" in deps["ingest-watch"].tags and "audit" in deps["fixity-audit"].tags

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
