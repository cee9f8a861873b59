"""One redaction at the boundary, without Prefect (issue 18): a sidecar whose values name a person
and a place, and a link to a named path, ingested by `preserve ingest --direct` in its own process.
Nothing planted reaches the CLI's stdout or stderr, `preserve status` (plain and --json), the
catalog (its submissions, events and alerts, and not a byte of its database or of anything else
under var/), the webhook or the e-mail; the local REPORT.txt still has it. The same through
Prefect is tests/flows/test_redaction_flow.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from tests.integration.test_alerts import Receivers
from tests.planted import assert_reports_keep_them, files_under, leaks, plant
from tests.support import isolated_settings, write_config


@pytest.fixture()
def receivers() -> Iterator[Receivers]:
    r = Receivers()
    yield r
    r.close()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`preserve --config CONFIG ARGS...` in its own process; wide, so no table wraps a value."""
    env = {**os.environ, "COLUMNS": "500"}
    env.pop("PRESERVE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "preserve.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_nothing_submitted_leaves_the_local_report(s3_settings: Settings, tmp_path: Path, receivers: Receivers) -> None:
    settings = isolated_settings(s3_settings, tmp_path, alerts=receivers.settings())
    config = write_config(settings, tmp_path / "preserve.toml")
    subs = plant(settings.ingest_dir, "direct")

    ingest = cli(config, "ingest", "--direct", str(subs["sidecar"]), str(subs["link"]))
    assert ingest.returncode == 1, ingest.stderr
    assert ingest.stdout.count("quarantined") == 2 and "SidecarError" in ingest.stdout
    assert "UnsafeSubmission" in ingest.stdout and "a symbolic link pointing outside the submission" in ingest.stdout
    found = leaks("ingest stdout", ingest.stdout) + leaks("ingest stderr", ingest.stderr)

    plain, as_json = cli(config, "status"), cli(config, "status", "--json")
    assert plain.returncode == as_json.returncode == 1  # two quarantined submissions need attention
    assert "night train direct" in plain.stdout and '"linked direct"' in as_json.stdout
    found += leaks("status", plain.stdout + plain.stderr) + leaks("status --json", as_json.stdout + as_json.stderr)

    with Catalog(settings.catalog_url) as catalog:
        for kind, sub in subs.items():
            state = catalog.submission(sub.name)
            assert state is not None and state.status == "quarantined"
            found += leaks(f"catalog reason of {kind}", state.reason)
            found += leaks(f"catalog events of {kind}", [vars(e) for e in catalog.submission_events(sub.name)])
        alerts = catalog.alerts()
        assert len(alerts) == 2 and all(a.delivered for a in alerts)
        found += leaks("catalog alerts", [vars(a) for a in alerts])
    for f in files_under(settings.var_dir):  # the catalog's database and anything else the archive keeps
        found += leaks(str(f.relative_to(settings.var_dir)), f.read_bytes())

    assert len(receivers.posts) == 2 and len(receivers.mails) == 2
    found += leaks("webhook", [p["json"] for p in receivers.posts])
    found += leaks("e-mail", [m.as_string() for m in receivers.mails])
    assert found == []
    assert_reports_keep_them(settings.failed_dir, [(k, s.name) for k, s in subs.items()])
