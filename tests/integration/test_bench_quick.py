"""The benchmark (issue 8) cannot rot: `python -m bench --quick` runs end to end on real
components (its own SeaweedFS, ffmpeg, bagit.py, Prefect) and produces every row of the table.
Nothing is asserted about timings: they depend on the machine, and the quick sizes are too small
to mean much."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROWS = ("B1", "B2", "B3", "B4", "B5", "peer", "B6a", "B6b", "B7", "B8")


@pytest.mark.slow
def test_quick_bench_measures_every_row(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRESERVE", "PREFECT_API_URL"))}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--data", str(tmp_path / "data"), "--results", str(results)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    data = json.loads(results.read_text(encoding="utf-8"))
    rows = {r["id"]: r for r in data["rows"]}
    assert set(rows) == set(ROWS)
    for rid in ROWS:
        row = rows[rid]
        assert row["what"] != "FAILED", row
        assert row["ours"] and row["goal"] and row["met"] in (True, False), row
        assert f"\n{rid} " in "\n" + proc.stdout, f"row {rid} missing from the printed table"
    # what was measured is what the rows say: the quick sizes, every peer phase, Prefect apart
    assert data["sizes"]["random_bytes"] == 100_000_000
    assert set(rows["peer"]["runs"]) >= {"peer_bagit_s", "peer_ffmpeg_s", "peer_upload_s"}
    assert rows["B8"]["runs"]["startup_seconds"] > 0
    assert not (tmp_path / "data" / "work-quick").exists(), "the work directory (and its server) was not cleaned up"
