"""Nothing phones home: in an environment that asks for Prefect's telemetry (or simply does not
switch it off), the flows and the CLI switch it off themselves before Prefect is imported, so
that Prefect, as it sees its own settings inside a flow run, has its analytics off (no server
heartbeat, no SDK events). Each case runs in a fresh interpreter: Prefect reads its settings
once, when it is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import write_config

pytestmark = pytest.mark.prefect
ROOT = Path(__file__).resolve().parents[2]

#: a flow defined after `import flows` (what every flow module does first), run against the API
IN_A_FLOW_RUN = r"""
import os
import flows
from prefect import flow
from prefect.settings import get_current_settings

@flow
def probe():
    return [get_current_settings().server.analytics_enabled, os.environ.get("DO_NOT_TRACK")]

print(probe())
"""

#: `preserve list` (which never loads Prefect), then Prefect loaded in the same process
AFTER_THE_CLI = r"""
import sys
from preserve.cli.main import main
code = main(["--config", sys.argv[1], "list"])
assert "prefect" not in sys.modules, "list loaded Prefect"
from prefect.settings import get_current_settings
print(code, get_current_settings().server.analytics_enabled)
"""


def _hostile_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DO_NOT_TRACK"}
    return {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "true", **extra}


def test_a_flow_run_sees_prefect_telemetry_off_whatever_the_environment_says(prefect_harness) -> None:
    from prefect.settings import PREFECT_API_URL

    done = subprocess.run(
        [sys.executable, "-c", IN_A_FLOW_RUN],
        cwd=ROOT,
        env=_hostile_env(PREFECT_API_URL=PREFECT_API_URL.value()),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[False, '1']"


def test_the_cli_switches_telemetry_off_before_prefect_loads(s3_settings, tmp_path: Path) -> None:
    from tests.support import isolated_settings

    config = write_config(isolated_settings(s3_settings, tmp_path), tmp_path / "preserve.toml")
    done = subprocess.run(
        [sys.executable, "-c", AFTER_THE_CLI, str(config)],
        cwd=ROOT,
        env=_hostile_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "0 False"
