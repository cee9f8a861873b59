"""Several workers sharing one catalog and the same storage never process a submission twice: two
processes race over the same 20 submissions (in opposite orders), and every one becomes exactly
one AIP. Run with the SQLite catalog (one machine) through the library, and with PostgreSQL
(several machines share it) through the watcher when it is there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from tests.mediafactory import make_clip
from tests.support import isolated_settings, write_config

N = 20
#: the race is about claims, not media: skip the expensive per-file checks
FAST = {
    "ingest": {"decode_check": False},
    "validation": {"mediaconch": False, "framemd5": False, "virus_check": False},
    "normalization": {"policy": "never"},
    "access": {"contact_sheet": False},
}

LIBRARY_WORKER = """
import json, sys
from pathlib import Path
from preserve.pipeline import ingest_submission
from preserve import config as settings
from preserve.catalog import Catalog
s = settings.load(sys.argv[1]); c = Catalog(s.catalog_url)
for p in json.loads(sys.argv[2]):
    o = ingest_submission(s, c, Path(p))
    print(json.dumps({"submission": o.submission, "status": o.status, "aip_id": o.aip_id}), flush=True)
c.close()
"""

WATCHER_WORKER = """
import json, sys
from preserve.pipeline import ingest_submission
from preserve import config as settings
from preserve.intake import watch
from preserve.catalog import Catalog
s = settings.load(sys.argv[1]); c = Catalog(s.catalog_url)
report = watch.watch_once(s, c, lambda p: ingest_submission(s, c, p))
for h in report.handled:
    print(json.dumps({"submission": h.submission, "status": h.status, "aip_id": h.aip_id}), flush=True)
c.close()
"""


def _drop_submissions(settings: Settings, tmp_path: Path) -> list[Path]:
    clip = make_clip(tmp_path / "clip.mp4", size="160x120", duration=0.5, audio=False)
    paths = []
    for i in range(N):  # same bytes, different names: 20 different submissions
        paths.append(Path(shutil.copy(clip, settings.ingest_dir / f"film {i:02d}.mp4")))
    return paths


def _race(settings: Settings, config: str, script: str, orders: list[list[Path]]) -> list[dict]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, config, json.dumps([str(p) for p in order])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for order in orders
    ]
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        lines += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return lines


def _check(settings: Settings, lines: list[dict]) -> None:
    stored = [line for line in lines if line["status"] == "stored"]
    assert Counter(line["submission"] for line in stored) == Counter({f"film {i:02d}.mp4": 1 for i in range(N)})
    assert all(line["status"] in ("stored", "skipped") for line in lines)
    catalog = Catalog(settings.catalog_url)
    aips = catalog.list_aips()
    catalog.close()
    assert len(aips) == N
    assert sorted(a.submission_name for a in aips) == [f"film {i:02d}.mp4" for i in range(N)]
    assert {a.id for a in aips} == {line["aip_id"] for line in stored}
    assert sorted(p.name for p in settings.done_dir.iterdir()) == [f"film {i:02d}.mp4" for i in range(N)]
    assert not settings.failed_dir.exists() or not any(settings.failed_dir.iterdir())
    replica = settings.target_path(settings.target("local"))
    assert len([p for p in replica.iterdir() if p.is_dir()]) == N  # no AIP uploaded twice under two ids


@pytest.mark.slow
def test_two_workers_over_20_submissions_make_20_aips(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(s3_settings, tmp_path, **FAST)
    paths = _drop_submissions(settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    _check(settings, _race(settings, config, LIBRARY_WORKER, [paths, paths[::-1]]))


@pytest.mark.slow
@pytest.mark.postgres
def test_two_watchers_on_postgresql_over_20_submissions_make_20_aips(
    s3_settings: Settings, tmp_path: Path, postgres_server
) -> None:
    pytest.importorskip("preserve.intake.watch", reason="the watcher (issue 4) is not in the tree yet")
    settings = isolated_settings(s3_settings, tmp_path, **FAST, archive={"catalog_url": postgres_server.new_database()})
    _drop_submissions(settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    _check(settings, _race(settings, config, WATCHER_WORKER, [[], []]))
