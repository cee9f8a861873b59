"""One decode of each original (issue 13): an ingest decodes the film once for its decode
verdict, its framemd5 and its access copies, and each of those is what its own run makes. Real
ffmpeg, the session's SeaweedFS, a SQLite catalog. ffmpeg runs are counted by a spy around
`preserve.tools.run` that records each argv and calls the real one (it observes; nothing is
faked). The encoder failure is caused for real: a libx264 preset that does not exist."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from preserve import tools
from preserve.access import contactsheet, proxy, scrub
from preserve.catalog import Catalog
from preserve.characterise import transcode
from preserve.config import ProxySettings, Settings
from preserve.core.model import EventType, Outcome
from preserve.fixity import framemd5
from preserve.operations import restore
from preserve.pipeline import ingest_submission
from preserve.tools import ffprobe
from tests.mediafactory import corrupt_range, make_clip
from tests.support import isolated_settings

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

TITLE = "A Film Nobody May Name"
FRAMES, TILE = 4, 64


@pytest.fixture()
def runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every argv preserve runs from now on (the real tool still runs)."""
    seen: list[list[str]] = []
    real = tools.run

    def spy(argv: list[str], **kwargs: Any) -> tools.ToolResult:
        seen.append(list(argv))
        return real(argv, **kwargs)

    monkeypatch.setattr(tools, "run", spy)
    return seen


def _settings(s3_settings: Settings, tmp_path: Path, **proxy_settings: Any) -> Settings:
    return isolated_settings(
        s3_settings,
        tmp_path,
        proxy={"preset": "ultrafast", **proxy_settings},
        access={"contact_sheet_frames": FRAMES, "contact_sheet_tile_width": TILE},
    )


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Catalog]]:
    settings = _settings(s3_settings, tmp_path)
    with Catalog(settings.catalog_url) as catalog:
        yield settings, catalog


def _submit(settings: Settings, name: str, clip: Path, level: str = "open", *extra: Path) -> Path:
    folder = settings.ingest_dir / name
    folder.mkdir()
    for path in (clip, *extra):
        shutil.copy(path, folder / path.name)
    (folder / "metadata.yaml").write_text(f"title: {TITLE}\naccess: {level}\n", encoding="utf-8")
    return folder


def _decodes_of(runs: list[list[str]], name: str) -> list[list[str]]:
    """The ffmpeg runs that read the original called ``name``."""
    return [
        argv
        for argv in runs
        if argv[0] == "ffmpeg"
        and any(a == "-i" and b.startswith("file:") and Path(b).name == name for a, b in pairwise(argv))
    ]


def _stored_sidecar(settings: Settings, catalog: Catalog, aip_id: str, tmp: Path, name: str) -> Path:
    bag = restore.restore(settings, catalog, aip_id, tmp).path
    return bag / "data" / "metadata" / "framemd5" / f"{name}.framemd5"


def test_an_ingest_decodes_the_film_once_and_each_output_is_what_its_own_run_makes(
    env: tuple[Settings, Catalog], tmp_path: Path, runs: list[list[str]]
) -> None:
    settings, catalog = env
    clip = make_clip(tmp_path / "film.mov", vcodec="prores_aw", duration=2.0, metadata={"title": TITLE})
    o = ingest_submission(settings, catalog, _submit(settings, "film", clip))
    assert o.status == "stored", o.detail
    once = _decodes_of(runs, "film.mov")
    assert len(once) == 1, [" ".join(a) for a in once]  # decode check, framemd5 and access copies in one run
    assert "-filter_complex" in once[0] and "framemd5" in once[0] and once[0].count("-i") == 1

    aip = catalog.get_aip(o.aip_id)
    events = aip.events
    verdict = [e for e in events if e.type is EventType.VALIDATION and "decoded_duration" in e.extra]
    assert [e.outcome for e in verdict] == [Outcome.PASS]
    assert "decoded once, with the framemd5 and the access copies" in verdict[0].detail
    assert verdict[0].extra["decoded_duration"] == pytest.approx(2.0, abs=0.01)  # not the proxy's AAC padding
    assert not any("timestamp_warnings" in e.extra for e in events)  # the copies' muxers add no complaint
    md5_events = [e for e in events if e.type is EventType.MESSAGE_DIGEST_CALCULATION and "sidecar" in e.extra]
    assert len(md5_events) == 1 and "decoded once, with the decode check and the access copies" in md5_events[0].detail
    created = [e for e in events if e.type is EventType.CREATION and e.outcome is Outcome.PASS]
    made = [e for e in created if e.agent.name == "ffmpeg"]  # the others: the manifest and page's
    assert len(made) == 1 and made[0].extra.get("same_decode") is True
    assert [e.agent.name for e in created if e not in made] == ["iiif-prezi3"]
    assert [e.outcome for e in events if e.type is EventType.METADATA_MODIFICATION] == [Outcome.PASS]
    assert {c.kind for c in aip.access} == {"proxy", "poster", "contact sheet", "manifest", "page"}

    # the framemd5 is byte for byte the one its own run makes
    original = settings.ingest_dir / "done" / "film" / "film.mov"
    probe = ffprobe.probe(original)
    separate = framemd5.write(original, tmp_path / "separate.framemd5", probe)
    stored = _stored_sidecar(settings, catalog, o.aip_id, tmp_path / "restored", "film.mov")
    assert stored.read_bytes() == (tmp_path / "separate.framemd5").read_bytes()
    assert framemd5.compare(framemd5.parse(stored.read_text()), separate.manifest).identical

    # poster and sheet: the same pictures their own runs take at the same points, and clean
    copies = {p.name: p for p in restore.fetch_access(settings, catalog, o.aip_id, tmp_path / "access")}
    assert sorted(copies) == ["contact-sheet.jpg", "index.html", "manifest.json", "poster.jpg", "proxy.mp4"]
    span = transcode.seek_duration(proxy.measured_duration(original, probe), probe.duration)
    assert span == pytest.approx(2.0, abs=0.05)
    own = ProxySettings(preset="ultrafast")
    poster = proxy.make_poster(original, tmp_path / "poster.jpg", probe, own, duration=span)
    sheet = contactsheet.make_contact_sheet(
        original, tmp_path / "sheet.jpg", probe, duration=span, frames=FRAMES, tile_width=TILE
    )
    assert copies["poster.jpg"].read_bytes() == poster.read_bytes()
    assert copies["contact-sheet.jpg"].read_bytes() == sheet.read_bytes()
    assert ffprobe.probe(copies["contact-sheet.jpg"]).width == 4 * TILE + 3 * 4 + 2 * 4  # four tiles in a row
    forbidden = scrub.forbidden_values([TITLE], probe.raw)
    for copy in copies.values():
        if copy.suffix in (".mp4", ".jpg"):  # the manifest and the page show the title: checked by their own rules
            assert scrub.check_clean(copy, forbidden_values=forbidden).ok, copy.name


def test_a_dark_film_and_its_other_media_are_each_decoded_once_without_access_copies(
    env: tuple[Settings, Catalog], tmp_path: Path, runs: list[list[str]]
) -> None:
    settings, catalog = env
    clip = make_clip(tmp_path / "night.mkv", vcodec="ffv1", size="160x120", duration=1.0)
    music = make_clip(tmp_path / "score.mkv", vcodec="ffv1", size="64x48", duration=0.5)  # another media file
    o = ingest_submission(settings, catalog, _submit(settings, "night", clip, "dark", music))
    assert o.status == "stored", o.detail
    for name in ("night.mkv", "score.mkv"):
        once = _decodes_of(runs, name)
        assert len(once) == 1, (name, [" ".join(a) for a in once])  # decode check and framemd5 together
        assert "framemd5" in once[0] and "-filter_complex" not in once[0]  # dark: no access output at all
    aip = catalog.get_aip(o.aip_id)
    assert aip.access == ()
    assert len([e for e in aip.events if e.type is EventType.MESSAGE_DIGEST_CALCULATION and "sidecar" in e.extra]) == 2


def test_a_seek_point_past_the_end_still_leaves_a_poster(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "blink.mov", vcodec="prores_aw", duration=1.0)
    probe = ffprobe.probe(clip)
    out = tmp_path / "out"
    out.mkdir()
    request = transcode.AccessRequest(
        out / "proxy.mp4",
        out / "poster.jpg",
        ProxySettings(preset="ultrafast"),
        span=30.0,  # the duration known before the run overstates it: every seek point is past the end
        contact_sheet=out / "sheet.jpg",
        sheet_frames=FRAMES,
        sheet_tile_width=TILE,
    )
    result = transcode.run_pass(clip, probe, framemd5_to=out / "blink.framemd5", access=request, timeout=120)
    assert result.clean and result.copies is not None and result.framemd5 is not None
    first = proxy.make_poster(clip, tmp_path / "first.jpg", probe, request.settings, duration=0.0)
    assert result.copies.poster is not None and result.copies.poster.read_bytes() == first.read_bytes()
    # the sheet found no frame: not kept (make_access makes it by the decoded duration), never empty
    assert result.copies.contact_sheet is None and not (out / "sheet.jpg").exists()
    assert sorted(p.name for p in out.iterdir()) == ["blink.framemd5", "poster.jpg", "proxy.mp4"]  # no temporaries
    assert result.report.duration == pytest.approx(1.0, abs=0.01)


def test_a_short_clip_ingested_gets_its_poster(
    env: tuple[Settings, Catalog], tmp_path: Path, runs: list[list[str]]
) -> None:
    settings, catalog = env
    clip = make_clip(tmp_path / "short.mp4", duration=0.4)  # shorter than any seek point: the first frame
    o = ingest_submission(settings, catalog, _submit(settings, "short", clip))
    assert o.status == "stored", o.detail
    assert len(_decodes_of(runs, "short.mp4")) == 1
    assert {c.kind for c in catalog.get_aip(o.aip_id).access} == {
        "proxy",
        "poster",
        "contact sheet",
        "manifest",
        "page",
    }


def test_a_corrupt_film_is_still_quarantined(
    env: tuple[Settings, Catalog], tmp_path: Path, runs: list[list[str]]
) -> None:
    settings, catalog = env
    good = make_clip(tmp_path / "good.mkv", vcodec="ffv1", duration=2.0)
    damaged = corrupt_range(good, tmp_path / "damaged.mkv", at=0.6, length=3000)
    o = ingest_submission(settings, catalog, _submit(settings, "damaged", damaged))
    assert o.status == "quarantined", o.detail
    assert "MediaError" in (settings.ingest_dir / "failed" / "damaged" / "REPORT.txt").read_text()
    decodes = _decodes_of(runs, "damaged.mkv")
    # the pass found decoder errors; the verdict is the decode check's own, run once more alone
    assert len(decodes) == 2 and "-filter_complex" in decodes[0] and "null" in decodes[1]
    assert not list(settings.staging_dir.iterdir())  # its access copies went with the work directory


def test_when_the_proxy_encoder_fails_the_film_is_stored_with_a_warning(
    s3_settings: Settings, tmp_path: Path, runs: list[list[str]]
) -> None:
    settings = _settings(s3_settings, tmp_path, preset="no-such-preset")  # libx264 refuses it
    with Catalog(settings.catalog_url) as catalog:
        clip = make_clip(tmp_path / "film.mov", vcodec="prores_aw", duration=1.0)
        o = ingest_submission(settings, catalog, _submit(settings, "film", clip))
        assert o.status == "stored", o.detail
        # the pass failed at once; then the decode check, the framemd5 and the proxy each alone
        decodes = _decodes_of(runs, "film.mov")
        assert "-filter_complex" in decodes[0] and len(decodes) == 4
        assert ["null", "framemd5", "mp4"] == [argv[argv.index("-f") + 1] for argv in decodes[1:]]
        aip = catalog.get_aip(o.aip_id)
        events = aip.events
        verdict = [e for e in events if e.type is EventType.VALIDATION and "decoded_duration" in e.extra]
        assert [e.outcome for e in verdict] == [Outcome.PASS]  # an encoder's failure is not a damaged film
        assert "checked on its own" in verdict[0].detail
        warned = [e for e in events if e.type is EventType.CREATION and e.outcome is Outcome.WARNING]
        assert len(warned) == 1 and "the proxy could not be made" in warned[0].detail
        assert aip.access == ()
        # the framemd5 was made on its own, and is the same as ever
        original = settings.ingest_dir / "done" / "film" / "film.mov"
        framemd5.write(original, tmp_path / "separate.framemd5", ffprobe.probe(original))
        stored = _stored_sidecar(settings, catalog, o.aip_id, tmp_path / "restored", "film.mov")
        assert stored.read_bytes() == (tmp_path / "separate.framemd5").read_bytes()
