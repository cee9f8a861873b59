"""`preserve status --json` against the catalog after real ingests (one stored film, one stored
folder, one quarantined cut file), one damaged object and one object long unverified; run as a
separate process, which must not import Prefect."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import utcnow
from preserve.pipeline import ingest_submission
from tests.mediafactory import make_clip, truncated_copy
from tests.support import isolated_settings, write_config


def test_status_json_matches_the_catalog(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(s3_settings, tmp_path)
    catalog = Catalog(settings.catalog_url)
    film = make_clip(settings.ingest_dir / "film.mp4", duration=1.0)
    folder = settings.ingest_dir / "folder film"
    folder.mkdir()
    make_clip(folder / "main.mkv", vcodec="ffv1", size="160x120", acodec="flac", duration=1.0)
    (folder / "main.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nhi\n", encoding="utf-8")
    cut = truncated_copy(make_clip(tmp_path / "x.mp4", duration=2.0), settings.ingest_dir / "cut.mp4", 0.5)
    outcomes = [ingest_submission(settings, catalog, p) for p in (film, folder, cut)]
    assert [o.status for o in outcomes] == ["stored", "stored", "quarantined"]
    hurt = outcomes[1].aip_id
    obj = catalog.objects(aip_id=hurt, target="local")[0]
    catalog.record_object_check(hurt, "local", obj.key, status="damaged", verified_at=None)
    old = catalog.objects(aip_id=outcomes[0].aip_id, target="seaweed")[0]
    catalog.record_object_check(
        old.aip_id, "seaweed", old.key, status="verified", verified_at=utcnow() - dt.timedelta(days=45)
    )
    config = str(write_config(settings, tmp_path / "preserve.toml", audit={"audit_interval_days": 30}))

    code = (
        "import sys, json\nfrom preserve import cli\n"
        f"rc = cli.main(['--config', {config!r}, 'status', '--json'])\n"
        "assert not any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules), 'prefect imported'\n"
        "sys.exit(rc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr  # 1: something needs attention
    st = json.loads(res.stdout)

    aips = catalog.list_aips()
    assert st["aips"] == len(aips) == 2
    assert st["files"] == sum(len(a.files) for a in aips)
    assert st["bytes"] == sum(a.size for a in aips)
    assert sum(f["files"] for f in st["formats"]) == st["files"]
    assert sum(f["bytes"] for f in st["formats"]) == st["bytes"]
    expected: dict[str, list[int]] = {}
    for f in (f for a in aips for f in a.files):
        counts = expected.setdefault(f.format_name or "(not identified)", [0, 0])
        counts[0] += 1
        counts[1] += f.size
    assert {f["format"]: [f["files"], f["bytes"]] for f in st["formats"]} == expected
    assert len(expected) >= 3  # at least the MP4, the Matroska and the subtitle file are told apart
    targets = {t["target"]: t for t in st["targets"]}
    assert set(targets) == {"seaweed", "local"}
    assert targets["seaweed"]["replicas"] == 2 and targets["seaweed"]["verified"] == 2
    assert targets["local"]["verified"] == 1 and targets["local"]["damaged"] == 1
    all_objects = catalog.objects()
    assert targets["local"]["bytes"] == sum(o.size for o in all_objects if o.target == "local")
    assert st["objects"] == len(all_objects)
    assert dt.datetime.fromisoformat(st["oldest_verification"]) == min(o.verified_at for o in all_objects)
    # overdue after 30 days: only the object verified 45 days ago (the damaged one keeps its recent time)
    assert st["audit_interval_days"] == 30
    assert st["objects_overdue"] == 1 and st["bytes_overdue"] == old.size
    [q] = st["quarantined"]
    [sub] = catalog.submissions("quarantined")
    assert q["name"] == sub.name == "cut.mp4" and q["reason"] == sub.reason and "characterise" in q["reason"]
    [risk] = st["at_risk"]
    assert risk["aip_id"] == hurt and risk["verified_replicas"] == 1
    assert any("local damaged" in r for r in risk["reasons"])
    assert st["needs_attention"] is True
    catalog.close()
