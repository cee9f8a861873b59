"""Issue 18: nothing identifying survives into an access file, and no header's word decides a
derivative. Real ffmpeg, ffprobe, ExifTool and MediaInfo on media made in tests/leakfactory.py:
EIA-608 captions in H.264 SEI, an ICC profile with free text in PNG frames, headers claiming 136
years. Asserted three ways (ffprobe, ExifTool, the bytes), plus the post-check on copies made
with the removal bypassed, plus real ingests (the session's SeaweedFS, SQLite)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from preserve.access import contactsheet, policy, scrub
from preserve.access import proxy as proxies
from preserve.catalog import Catalog
from preserve.characterise import decode
from preserve.config import ProxySettings, Settings
from preserve.core.model import Digests, EventType, Outcome, PayloadFile, Role
from preserve.intake import release
from preserve.operations import restore
from preserve.pipeline import ingest_submission
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps import derive
from preserve.pipeline.steps.describe import MediaFacts
from preserve.pipeline.steps.validate import Validated
from preserve.storage import open_store
from preserve.tools import exiftool, ffmpeg, ffprobe, mediainfo
from tests import leakfactory as lf
from tests.mediafactory import corrupt_range, make_clip
from tests.mediafactory import ffmpeg as run_ffmpeg
from tests.support import isolated_settings

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("ffmpeg", "ffprobe", "exiftool")), reason="ffmpeg/ffprobe/exiftool not installed"
)

CAPTION = "ZHANG WEI FILMED THIS IN WUHAN"
ICC_DESC = "Calibrated by Li Ming at Kunming"
ICC_CPRT = "Copyright Li Ming Studio 2024"
ICC_MODEL = "Wuhan Secret Monitor"
ICC_NAME = "LiMingProfileName"
PLANTED = [CAPTION, "ZHANG WEI", "WUHAN", ICC_DESC, ICC_CPRT, ICC_MODEL, ICC_NAME, "Li Ming", "Kunming"]
SETTINGS = ProxySettings(preset="ultrafast")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("leaks")
    icc = lf.icc_profile(ICC_DESC, ICC_CPRT, device_model=ICC_MODEL)
    long_mkv = make_clip(d / "long.mkv", duration=2.0)
    lf.set_matroska_duration(long_mkv, lf.FALSE_DURATION)
    long_mp4 = make_clip(d / "long.mp4", duration=2.0)
    lf.set_mp4_durations(long_mp4, lf.FALSE_DURATION)
    return {
        "captions": lf.make_captioned_h264(d / "captions.mp4", CAPTION),
        "icc": lf.make_icc_video(d / "icc.mov", icc, profile_name=ICC_NAME),
        "long.mkv": long_mkv,
        "long.mp4": long_mp4,
    }


def _what_tools_say(path: Path) -> str:
    """Everything ffprobe (container, streams, first frames), ExifTool and MediaInfo report."""
    probe = ffprobe.probe(path)
    frames = [ffprobe.probe_frames(path, int(s["index"]), count=50) for s in probe.raw.get("streams", [])]
    return json.dumps(
        [probe.raw, [f.frames for f in frames], exiftool.describe(path).raw, mediainfo.extract(path).data],
        ensure_ascii=False,
    )


def assert_nothing_planted(path: Path, *needles: bytes) -> None:
    """No planted text in the bytes (UTF-8, UTF-16) or in what any tool reports; no ``needles``."""
    raw = path.read_bytes()
    said = _what_tools_say(path)
    for text in PLANTED:
        assert text not in said, (path.name, text)
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert text.encode(encoding) not in raw, (path.name, text, encoding)
    for needle in needles:
        assert needle not in raw, (path.name, needle)


def _copies(src: Path, out: Path, duration: float | None = None) -> list[Path]:
    probe = ffprobe.probe(src)
    out.mkdir(parents=True, exist_ok=True)
    return [
        proxies.make_proxy(src, out / "proxy.mp4", probe, SETTINGS, timeout=120),
        proxies.make_poster(src, out / "poster.jpg", probe, SETTINGS, duration=duration, timeout=60),
        contactsheet.make_contact_sheet(
            src, out / "sheet.jpg", probe, duration=duration, frames=4, tile_width=64, timeout=120
        ),
    ]


# -- the sources really carry what was planted --------------------------------------------------------
def test_the_sources_carry_the_planted_text(sources: dict[str, Path]) -> None:
    cap = sources["captions"]
    frames = ffprobe.probe_frames(cap, 0, count=10)
    assert frames.closed_captions and "ATSC A53 Part 4 Closed Captions" in frames.side_data_types()
    assert CAPTION in lf.caption_text(cap)
    raw = cap.read_bytes()
    assert lf.caption_bytes(CAPTION) in raw and CAPTION.encode() not in raw  # parity-coded: invisible to a scan

    icc = ffprobe.probe_frames(sources["icc"], 0, count=3)
    assert "ICC profile" in icc.side_data_types()
    profile = sources["icc"].with_name("profile.icc")
    profile.write_bytes(lf.icc_profile(ICC_DESC, ICC_CPRT, device_model=ICC_MODEL))
    tags = exiftool.describe(profile).tags  # the profile is well formed: ExifTool reads its free text
    assert (tags["ICC_Profile:ProfileDescription"], tags["ICC_Profile:ProfileCopyright"]) == (ICC_DESC, ICC_CPRT)
    assert tags["ICC_Profile:DeviceModelDesc"] == ICC_MODEL

    mkv, mp4 = ffprobe.probe(sources["long.mkv"]), ffprobe.probe(sources["long.mp4"])
    assert mkv.duration == pytest.approx(lf.FALSE_DURATION) and mp4.duration is not None and mp4.duration > 10**6


# -- removed when made ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["captions", "icc"])
def test_access_copies_carry_no_captions_icc_profile_or_encoder_settings(
    sources: dict[str, Path], tmp_path: Path, name: str
) -> None:
    made = _copies(sources[name], tmp_path)
    for copy in made:
        assert_nothing_planted(copy, lf.caption_bytes(CAPTION), b"ICC_PROFILE", b"x264 - core", b"GA94")
        tags = exiftool.describe(copy).content_tags()
        assert not [k for k in tags if k.startswith(("ICC", "ItemList", "UserData"))], tags
        leak = scrub.check_clean(copy, forbidden_values=PLANTED)
        assert leak.ok, (copy.name, leak.findings)
    proxy = made[0]
    assert CAPTION not in lf.caption_text(proxy) and "-->" not in lf.caption_text(proxy)
    assert not ffprobe.probe_frames(proxy, 0, count=50).closed_captions
    assert ffmpeg.sei_units(proxy, 0) == b""  # no SEI at all: no captions, no x264 settings text
    video = next(t for t in mediainfo.extract(proxy).tracks if t.get("@type") == "Video")
    assert not [k for k in video if k.startswith("Encoded_")]


def test_each_removal_alone_drops_the_captions(sources: dict[str, Path], tmp_path: Path) -> None:
    """Belt and braces: the side-data filter, libx264's -a53cc 0 and the SEI filter each suffice."""
    src = "file:" + str(sources["captions"])
    for label, args in (
        ("sidedata", ["-vf", ffmpeg.NO_SIDE_DATA]),
        ("a53cc", ["-a53cc", "0"]),
        ("filter_units", ["-bsf:v", "filter_units=remove_types=6"]),
    ):
        out = tmp_path / f"{label}.mp4"
        run_ffmpeg(["-i", src, "-an", "-c:v", "libx264", "-preset", "ultrafast", *args, "file:" + str(out)])
        assert b"GA94" not in ffmpeg.sei_units(out, 0), label
        assert CAPTION not in lf.caption_text(out), label


# -- detected if they survive ---------------------------------------------------------------------------
def test_post_check_detects_each_planted_element_when_removal_is_bypassed(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    src_cap, src_icc = "file:" + str(sources["captions"]), "file:" + str(sources["icc"])
    bare = [*ffmpeg.NO_METADATA, "-movflags", "+faststart"]
    # libx264 as it comes: it passes the captions on, and writes its own settings SEI
    leaky = tmp_path / "leaky.mp4"
    run_ffmpeg(["-i", src_cap, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", *bare, "file:" + str(leaky)])
    # captions removed, but x264's SEI (build, settings, thread count) left in
    settings_only = tmp_path / "settings.mp4"
    run_ffmpeg(
        [
            "-i",
            src_cap,
            "-c:v",
            "libx264",
            "-a53cc",
            "0",
            "-preset",
            "ultrafast",
            "-an",
            *bare,
            "file:" + str(settings_only),
        ]
    )
    # a poster that kept the source's ICC profile
    icc_jpeg = tmp_path / "icc.jpg"
    run_ffmpeg(
        ["-i", src_icc, "-frames:v", "1", "-c:v", "mjpeg", *ffmpeg.NO_METADATA, "-update", "1", "file:" + str(icc_jpeg)]
    )
    assert b"ICC_PROFILE" in icc_jpeg.read_bytes() and ICC_DESC.encode() in icc_jpeg.read_bytes()

    found = "\n".join(scrub.check_clean(leaky).findings)  # no forbidden value given: the allow-list alone
    assert "carries closed captions" in found
    assert "frame side data 'ATSC A53 Part 4 Closed Captions'" in found
    assert "caption data (ATSC A/53 GA94)" in found and "encoder settings text (x264)" in found
    assert "MediaInfo: Text track" in found and "MediaInfo: Video field Encoded_Library_Settings" in found

    found = "\n".join(scrub.check_clean(settings_only).findings)
    assert "encoder settings text (x264)" in found and "caption" not in found
    assert "User Data Unregistered SEI" in found and "marker b'x264 - core'" in found

    found = "\n".join(scrub.check_clean(icc_jpeg).findings)
    assert "frame side data 'ICC profile'" in found
    assert (
        "ExifTool: ICC_Profile tag ProfileDescription" in found
        and "ExifTool: ICC_Profile tag ProfileCopyright" in found
    )
    assert "MediaInfo: Image extra field ColorSpace_ICC" in found
    assert "structure: JPEG APP2 segment (ICC profile)" in found and "marker b'ICC_PROFILE\\x00'" in found
    with_values = scrub.check_clean(icc_jpeg, forbidden_values=[ICC_DESC]).findings
    assert "ExifTool: reports forbidden value #1" in with_values
    assert any(f.startswith("bytes: forbidden value #1 (utf-8)") for f in with_values)
    for report in (found, "\n".join(with_values)):
        assert "Li Ming" not in report and "Kunming" not in report  # findings never repeat the secret


def test_an_unlisted_tag_fails_the_copy_even_when_its_value_is_unknown(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", duration=0.5, audio=False)
    tagged = tmp_path / "tagged.mp4"
    run_ffmpeg(
        [
            "-i",
            "file:" + str(clip),
            "-c",
            "copy",
            "-map_metadata",
            "-1",
            "-metadata",
            "keywords=nobody knows",
            "file:" + str(tagged),
        ]
    )
    found = scrub.check_clean(tagged).findings
    assert any("ExifTool: ItemList tag" in f for f in found) and "nobody knows" not in " ".join(found)


# -- derivatives never depend on a header's word ------------------------------------------------------
@pytest.mark.parametrize("name", ["long.mkv", "long.mp4"])
def test_a_false_header_duration_does_not_decide_the_seek_points(
    sources: dict[str, Path], tmp_path: Path, name: str
) -> None:
    src = sources[name]
    probe = ffprobe.probe(src)
    assert probe.duration is not None and probe.duration > 10**6  # the header's word
    report = decode.decode_check(src, timeout=120)
    assert report.ok and report.duration == pytest.approx(2.0, abs=0.05) and report.video_frames == 50
    measured = proxies.measured_duration(src, probe)
    assert measured == pytest.approx(2.0, abs=0.05)
    argv = contactsheet.contact_sheet_argv(src, tmp_path / "s.jpg", probe, duration=measured, frames=4)
    seeks = [float(argv[i + 1]) for i, a in enumerate(argv) if a == "-ss"]
    assert seeks and max(seeks) < 2.0
    # made without being told the duration: they measure the stream, and succeed
    poster, sheet = _copies(src, tmp_path)[1:]
    assert ffprobe.probe(poster).kind == "image"
    assert ffprobe.probe(sheet).width == 4 * 64 + 3 * 4 + 2 * 4  # all four tiles found a frame


def test_seek_span_takes_what_was_decoded_and_warns_about_the_header(
    s3_settings: Settings, tmp_path: Path, sources: dict[str, Path]
) -> None:
    settings = isolated_settings(s3_settings, tmp_path)
    src = sources["long.mkv"]
    probe = ffprobe.probe(src)
    film = PayloadFile(
        path="data/objects/long.mkv", digests=Digests(size=src.stat().st_size, values={}), role=Role.VIDEO
    )
    facts = MediaFacts(path=film.path, kind="video", duration=probe.duration)
    with Catalog(settings.catalog_url) as catalog:
        ctx = IngestContext(settings, catalog, src, "aip-test", "worker")
        # the decode found 1.2 s (say it stopped early): the shorter real measure wins
        validated = Validated(facts={film.path: facts.decoded(True, 0, 1.2)}, metadata_files=())
        assert derive.seek_span(ctx, film, src, probe, validated) == pytest.approx(1.2)
        # without the decode check: the stream's own timestamps
        assert derive.seek_span(ctx, film, src, probe, None) == pytest.approx(2.0, abs=0.05)
        warnings = [e for e in ctx.log if e.outcome is Outcome.WARNING]
        assert len(warnings) == 2 and "claims a duration of 4294967296.000 s" in warnings[0].detail
        assert "the full decode" in warnings[0].detail and "the stream's timestamps" in warnings[1].detail


# -- through real ingests ----------------------------------------------------------------------------------
@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> tuple[Settings, Catalog]:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        proxy={"preset": "ultrafast"},
        access={"contact_sheet_frames": 4, "contact_sheet_tile_width": 64},
    )
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def _submit(settings: Settings, name: str, src: Path, title: str = "A film") -> Path:
    folder = settings.ingest_dir / name
    folder.mkdir()
    shutil.copy(src, folder / src.name)
    (folder / "metadata.yaml").write_text(f"title: {title}\naccess: open\n", encoding="utf-8")
    return folder


def test_ingests_publish_copies_without_captions_or_icc_text(
    env: tuple[Settings, Catalog], sources: dict[str, Path], tmp_path: Path
) -> None:
    settings, catalog = env
    for name in ("captions", "icc"):
        o = ingest_submission(settings, catalog, _submit(settings, name, sources[name], title=f"Film {name}"))
        assert o.status == "stored", o.detail
        copies = restore.fetch_access(settings, catalog, o.aip_id, tmp_path / "access" / name)
        assert sorted(p.name for p in copies) == [
            "contact-sheet.jpg",
            "index.html",
            "manifest.json",
            "poster.jpg",
            "proxy.mp4",
        ]
        for copy in copies:
            assert_nothing_planted(copy, lf.caption_bytes(CAPTION), b"ICC_PROFILE", b"x264 - core")
        events = catalog.get_aip(o.aip_id).events
        check = [e for e in events if e.type is EventType.METADATA_MODIFICATION]
        assert [e.outcome for e in check] == [Outcome.PASS] and "ExifTool" in check[0].detail


def test_a_film_whose_header_lies_is_stored_with_a_warning_and_real_seek_points(
    env: tuple[Settings, Catalog], sources: dict[str, Path]
) -> None:
    settings, catalog = env
    o = ingest_submission(settings, catalog, _submit(settings, "long", sources["long.mkv"]))
    assert o.status == "stored", o.detail
    aip = catalog.get_aip(o.aip_id)
    assert {c.kind for c in aip.access} == {"proxy", "poster", "contact sheet", "manifest", "page"}
    warnings = [e for e in aip.events if e.outcome is Outcome.WARNING and "claims a duration" in e.detail]
    assert len(warnings) == 1 and warnings[0].extra["measured_duration"] == pytest.approx(2.0, abs=0.05)
    decoded = [e for e in aip.events if e.type is EventType.VALIDATION and "decoded_duration" in e.extra]
    assert decoded and decoded[0].extra["decoded_duration"] == pytest.approx(2.0, abs=0.05)


def test_retry_accept_invalid_stores_a_damaged_film_whose_header_lies(
    env: tuple[Settings, Catalog], sources: dict[str, Path], tmp_path: Path
) -> None:
    settings, catalog = env
    damaged = corrupt_range(sources["long.mkv"], tmp_path / "damaged.mkv", at=0.6, length=3000)
    assert not decode.decode_check(damaged, timeout=120).ok
    first = ingest_submission(settings, catalog, _submit(settings, "damaged", damaged))
    assert first.status == "quarantined" and "MediaError" in first.detail
    released = release.release(settings, catalog, "damaged", accept_invalid=True)
    again = ingest_submission(settings, catalog, released.source, accept_invalid=True)
    assert again.status == "stored", again.detail
    assert {c.kind for c in catalog.get_aip(again.aip_id).access} == {
        "proxy",
        "poster",
        "contact sheet",
        "manifest",
        "page",
    }


def test_a_privacy_failure_preserves_the_film_without_any_access_copy(
    env: tuple[Settings, Catalog], sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The removal is switched off here (a fault of our own making: a scrubbing regression cannot be
    caused for real otherwise); the post-check must catch the captions, publish nothing, keep the
    film and tell the operators."""
    settings, catalog = env
    monkeypatch.setattr(ffmpeg, "NO_SIDE_DATA", "null")
    monkeypatch.setattr(ffmpeg, "H264_NO_SEI", [])
    o = ingest_submission(settings, catalog, _submit(settings, "leaky", sources["captions"]))
    assert o.status == "stored", o.detail  # the film is preserved
    aip = catalog.get_aip(o.aip_id)
    assert list(aip.access) == []
    location = policy.access_location(settings, "open")
    assert location is not None
    with open_store(settings, location) as store:
        assert list(store.list(f"{o.aip_id}/")) == []  # nothing published
    failed = [e for e in aip.events if e.type is EventType.METADATA_MODIFICATION and e.outcome is Outcome.FAIL]
    assert len(failed) == 1 and "caption data (ATSC A/53 GA94)" in failed[0].detail
    assert CAPTION not in failed[0].detail
    alert = next(a for a in catalog.alerts() if a.kind == derive.ACCESS_WITHHELD)
    assert alert.subject == "leaky" and "preserved" in alert.summary and CAPTION not in json.dumps(alert.detail)


# -- real captions: broadcast transport streams from the corpus -------------------------------------------
@pytest.mark.corpus
@pytest.mark.parametrize("name", ["mux.js__multi-channel-608-captions.ts", "mux.js__sintel-captions.ts"])
def test_real_broadcast_captions_do_not_reach_the_proxy(tmp_path: Path, name: str) -> None:
    import os

    root = os.environ.get("PRESERVE_CORPUS", "")
    src = Path(root) / "video" / name
    if not root or not src.is_file():
        pytest.skip("no corpus: set PRESERVE_CORPUS to a folder made by ../shared/corpus/get_corpus.sh")
    text = lf.caption_text(src)
    assert "-->" in text  # the source really carries EIA-608 captions
    made = _copies(src, tmp_path)
    lines = [line for line in text.splitlines() if line and "-->" not in line and not line.isdigit()]
    for copy in made:
        leak = scrub.check_clean(copy)
        assert leak.ok, (copy.name, leak.findings)
    assert lf.caption_text(made[0]) == "" and ffmpeg.sei_units(made[0], 0) == b""
    assert lines and not any(line.encode() in made[0].read_bytes() for line in lines)
