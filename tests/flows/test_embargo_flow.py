"""The embargo-release flow on the shared Prefect harness: an embargoed film's held access copies
are published once the date (passed in, not slept for) has come, and not before."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from preserve.access import policy
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.pipeline import ingest_submission
from preserve.storage import open_store
from tests.mediafactory import make_clip
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect


def test_embargo_release_flow_publishes_on_the_date(prefect_harness, s3_settings: Settings, tmp_path: Path) -> None:
    from flows.embargo import embargo_release_flow

    settings = isolated_settings(s3_settings, tmp_path, proxy={"preset": "ultrafast"}, access={"contact_sheet": False})
    config = str(write_config(settings, tmp_path / "preserve.toml", access={"contact_sheet": False}))
    until = dt.date.today() + dt.timedelta(days=30)
    folder = settings.ingest_dir / "held"
    folder.mkdir()
    make_clip(folder / "film.mp4", duration=1.0)
    (folder / "metadata.yaml").write_text(f"access:\n  level: embargoed\n  until: {until}\n", encoding="utf-8")
    catalog = Catalog(settings.catalog_url)
    outcome = ingest_submission(settings, catalog, folder)
    assert outcome.status == "stored", outcome.detail
    public = open_store(settings, policy.access_location(settings, "open"))

    early = embargo_release_flow(config=config, today=(until - dt.timedelta(days=1)).isoformat())
    assert [r["status"] for r in early] == ["not due"] and list(public.list(f"{outcome.aip_id}/")) == []
    done = embargo_release_flow(config=config, today=until.isoformat())
    assert [r["status"] for r in done] == ["released"]
    assert sorted(i.key.rsplit("/", 1)[1] for i in public.list(f"{outcome.aip_id}/")) == [
        "index.html",  # the manifest and the page, written for the public location when published
        "manifest.json",
        "poster.jpg",
        "proxy.mp4",
    ]
    assert catalog.get_aip(outcome.aip_id).access_level == "open"
    catalog.close()
