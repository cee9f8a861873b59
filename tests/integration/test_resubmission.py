"""The same film sent again must not undo a take-down: a withdrawn film resubmitted with a changed
sidecar (a new AIP, since its content differs) is stored dark and published nowhere, with an event
and an alert naming the AIP it matches; a deaccessioned film sent again is stored again (its old
AIP holds no bytes any more, so it is not a "duplicate" of it), dark, for a person to decide.
Real SeaweedFS with versioned buckets, SQLite, the library pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from preserve.access import policy
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import AccessLevel, Agent, EventType
from preserve.operations import deaccession, withdraw
from preserve.pipeline import ingest_submission
from preserve.pipeline.steps.publish import WITHHELD_AS_RELATED
from preserve.storage import open_store
from tests.mediafactory import make_clip
from tests.support import isolated_settings

ALICE, BOB = Agent("alice", kind="person"), Agent("bob", kind="person")


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> Any:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        proxy={"preset": "ultrafast"},
        access={"contact_sheet_frames": 4, "contact_sheet_tile_width": 64},
    )
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def _submit(settings: Settings, name: str, film: Path, sidecar: str) -> Path:
    folder = settings.ingest_dir / name
    folder.mkdir(parents=True)
    shutil.copy(film, folder / "film.mp4")
    (folder / "metadata.yaml").write_text(sidecar, encoding="utf-8")
    return folder


def _published_anywhere(settings: Settings, aip_id: str) -> list[str]:
    keys: list[str] = []
    for level in ("open", "restricted", "embargoed"):
        location = policy.access_location(settings, level)
        assert location is not None
        with open_store(settings, location) as store:
            keys += [o.key for o in store.list(f"{aip_id}/")]
    return keys


def test_a_withdrawn_film_sent_again_with_a_new_sidecar_stays_dark(env: Any, tmp_path: Path) -> None:
    settings, catalog = env
    film = make_clip(tmp_path / "film.mp4", duration=1.0)
    first = ingest_submission(settings, catalog, _submit(settings, "film", film, "title: First title\naccess: open\n"))
    assert first.status == "stored" and _published_anywhere(settings, first.aip_id)
    assert withdraw.withdraw(settings, catalog, first.aip_id, reason="asked", operator=ALICE).ok

    again = ingest_submission(
        settings, catalog, _submit(settings, "film corrected", film, "title: Corrected title\naccess: open\n")
    )
    assert again.status == "stored" and again.aip_id != first.aip_id  # new content (the sidecar): a new AIP
    aip = catalog.get_aip(again.aip_id)
    assert aip is not None and aip.access_level == AccessLevel.DARK and list(aip.access) == []
    assert _published_anywhere(settings, again.aip_id) == []
    decision = [e for e in aip.events if e.type is EventType.ACCESS_DECISION][-1]
    assert first.aip_id in decision.detail and decision.extra["related"] == [first.aip_id]
    alert = next(a for a in catalog.alerts() if a.kind == WITHHELD_AS_RELATED)
    assert alert.detail["related"] == [first.aip_id] and "Corrected title" not in alert.summary


@pytest.mark.parametrize("first_level", ["open", "dark"])
def test_a_film_that_was_never_taken_down_is_published_when_sent_again_changed(
    env: Any, tmp_path: Path, first_level: str
) -> None:
    """The check is about the archive's take-downs only: a film whose first AIP is open, or dark
    because its submission said so, may be sent again with another access decision."""
    settings, catalog = env
    film = make_clip(tmp_path / "film.mp4", duration=1.0)
    first = ingest_submission(settings, catalog, _submit(settings, "a", film, f"title: One\naccess: {first_level}\n"))
    again = ingest_submission(settings, catalog, _submit(settings, "b", film, "title: Two\naccess: open\n"))
    assert first.status == again.status == "stored"
    aip = catalog.get_aip(again.aip_id)
    assert aip is not None and aip.access_level == AccessLevel.OPEN
    assert [a.kind for a in aip.access] == ["proxy", "poster", "contact sheet", "manifest", "page"]


def test_a_deaccessioned_film_sent_again_is_stored_again_dark(env: Any, tmp_path: Path) -> None:
    settings, catalog = env
    film = make_clip(tmp_path / "film.mp4", duration=1.0)
    first = ingest_submission(settings, catalog, _submit(settings, "film", film, "title: Gone\naccess: open\n"))
    request = deaccession.request(catalog, first.aip_id, reason="rights withdrawn", operator=ALICE)
    assert deaccession.approve(settings, catalog, request.id, operator=BOB).ok

    again = ingest_submission(settings, catalog, _submit(settings, "film", film, "title: Gone\naccess: open\n"))
    assert again.status == "stored", again.detail  # not a "duplicate" of an AIP that holds nothing
    assert again.aip_id != first.aip_id
    aip = catalog.get_aip(again.aip_id)
    assert aip is not None and aip.access_level == AccessLevel.DARK and _published_anywhere(settings, aip.id) == []
    assert any(a.kind == WITHHELD_AS_RELATED and a.detail["related"] == [first.aip_id] for a in catalog.alerts())
