"""`preserve.access.subtitles.convert_stream` against real ffmpeg: the text subtitle streams of a
2-second Matroska clip (SubRip in UTF-8 and in raw GB18030 bytes, ASS with credits, WebVTT) and of
an MP4 (mov_text) become WebVTT tracks with the original cue text and timings and nothing of the
headers; a DVD bitmap stream is recorded, not converted; the film is never changed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from preserve.access import subtitles
from preserve.access.presentation import TrackFinding, TrackOutcome
from preserve.core.errors import ToolError
from preserve.tools import ffprobe
from tests.mediafactory import make_clip
from tests.subtitlefactory import (
    ASS_CUES,
    ENGLISH,
    PLANTED,
    SHORT_SIMPLIFIED,
    SIMPLIFIED,
    VTT_CUES,
    VTT_STREAM_TEXT,
    Cue,
    ass_text,
    clip,
    cues_of,
    mux,
    write_dvd_subtitles,
    write_srt,
)

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg/ffprobe not installed"
)

#: what each stream of the Matroska film holds: (codec, language tag, the cues, the encoding read)
STREAMS = [
    ("subrip", "en", cues_of(ENGLISH), "utf-8"),
    ("subrip", "zh", cues_of(SIMPLIFIED), "gb18030"),
    ("ass", "zh", ASS_CUES, "utf-8"),
    ("webvtt", "en", VTT_CUES, "utf-8"),
]


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("films")
    en = write_srt(d / "en.srt", cues_of(ENGLISH), "utf-8")
    gb = write_srt(d / "zh.srt", cues_of(SIMPLIFIED), "gb18030")  # copied as it is: GB18030 bytes in the MKV
    ass = d / "zh.ass"
    ass.write_text(ass_text(), encoding="utf-8")
    vtt = d / "en.vtt"
    vtt.write_text(VTT_STREAM_TEXT, encoding="utf-8")
    dvd = write_dvd_subtitles(d / "dvd.mpg")
    mkv = mux(
        d / "film.mkv",
        clip(d / "clip.mkv"),
        [(en, "eng", "copy"), (gb, "chi", "copy"), (ass, "chi", "copy"), (vtt, "eng", "copy"), (dvd, "chi", "copy")],
    )
    mp4 = mux(d / "film.mp4", make_clip(d / "clip.mp4", duration=2.0, size="160x120"), [(en, "eng", "mov_text")])
    return {"mkv": mkv, "mp4": mp4}


def streams_of(path: Path) -> list[dict[str, Any]]:
    report = ffprobe.probe(path)
    assert report.readable
    return list(report.subtitle_streams)


def convert(film: Path, stream: dict[str, Any], out: Path, **kw: Any) -> TrackFinding:
    language = subtitles.language_of_stream(stream) or "und"
    return subtitles.convert_stream(
        film,
        stream,
        out / f"subtitles-{stream['index']}.{language}.vtt",
        source=f"objects/film#{stream['index']}",
        language=language,
        language_from="stream tag",
        **kw,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_track(finding: TrackFinding, want: list[Cue]) -> bytes:
    assert finding.outcome is TrackOutcome.CONVERTED, finding.detail
    assert finding.track is not None
    data = finding.track.path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf") and data.decode("utf-8").split("\n", 1)[0] == "WEBVTT"
    assert subtitles.read_cues(finding.track.path) == [c.seconds for c in want]
    assert subtitles.check_track(finding.track.path) == []
    return data


def test_text_streams_become_tracks(films: dict[str, Path], tmp_path: Path) -> None:
    film = films["mkv"]
    before = digest(film)
    streams = streams_of(film)
    assert [s["codec_name"] for s in streams] == ["subrip", "subrip", "ass", "webvtt", "dvd_subtitle"]
    for stream, (codec, language, cues, encoding) in zip(streams, STREAMS, strict=False):
        finding = convert(film, stream, tmp_path)
        data = assert_track(finding, cues)
        assert finding.track is not None and finding.track.language == language
        assert finding.encoding == encoding
        assert finding.how.startswith(f"container stream {codec}, copied out by ffmpeg; ")
        for value in PLANTED:
            assert value.encode() not in data, (codec, value)
    gb = convert(film, streams[1], tmp_path)
    assert "charset-normalizer: best match gb18030" in gb.how  # the MKV held the submitter's GB18030 bytes
    ass = convert(film, streams[2], tmp_path)
    assert {"ASS Script Info: Original Script", "ASS Comment events (1)", "ASS event Name fields (2)"} <= set(
        ass.dropped
    )
    assert digest(film) == before
    assert all(p.suffix == ".vtt" and not p.name.startswith(".") for p in tmp_path.iterdir())  # no scratch left


def test_a_name_in_a_stream_header_that_is_spoken_withholds(tmp_path: Path) -> None:
    ass = tmp_path / "zh.ass"
    ass.write_text(ass_text(extra_dialogue="谢谢你，李建国。"), encoding="utf-8")
    film = mux(tmp_path / "film.mkv", clip(tmp_path / "clip.mkv"), [(ass, "chi", "copy")])
    out = tmp_path / "out"
    out.mkdir()
    finding = convert(film, streams_of(film)[0], out)
    assert finding.outcome is TrackOutcome.WITHHELD and "ASS Script Info Original Script" in finding.detail
    assert "李建国" not in finding.detail + finding.how and list(out.iterdir()) == []


def test_an_undecidable_stream_says_the_sidecar_cannot_help(tmp_path: Path) -> None:
    short = write_srt(tmp_path / "zh.srt", cues_of(SHORT_SIMPLIFIED), "gb18030")
    film = mux(tmp_path / "film.mkv", clip(tmp_path / "clip.mkv"), [(short, "chi", "copy")])
    out = tmp_path / "out"
    out.mkdir()
    finding = convert(film, streams_of(film)[0], out)
    assert finding.outcome is TrackOutcome.UNDECIDABLE and finding.candidates == ("gb18030", "big5")
    assert "cannot be named in the sidecar" in finding.detail and list(out.iterdir()) == []


def test_a_bitmap_stream_is_recorded_not_converted(films: dict[str, Path], tmp_path: Path) -> None:
    dvd = streams_of(films["mkv"])[4]
    finding = convert(films["mkv"], dvd, tmp_path)
    assert finding.outcome is TrackOutcome.BITMAP and finding.track is None
    assert "dvd_subtitle" in finding.detail and "OCR" in finding.detail and "not converted" in finding.detail
    assert list(tmp_path.iterdir()) == []


def test_mov_text_is_transcoded_by_ffmpeg(films: dict[str, Path], tmp_path: Path) -> None:
    (stream,) = streams_of(films["mp4"])
    assert stream["codec_name"] == "mov_text"
    finding = convert(films["mp4"], stream, tmp_path)
    assert_track(finding, cues_of(ENGLISH))
    assert finding.how.startswith("container stream mov_text, decoded by ffmpeg and written out as UTF-8 SubRip; ")


def test_another_codec_is_unreadable_without_running_ffmpeg(tmp_path: Path) -> None:
    finding = convert(tmp_path / "absent.mkv", {"index": 3, "codec_name": "eia_608"}, tmp_path)
    assert finding.outcome is TrackOutcome.UNREADABLE and "eia_608" in finding.detail
    odd = convert(tmp_path / "absent.mkv", {"index": 3, "codec_name": "Zhang San's codec"}, tmp_path)
    assert odd.outcome is TrackOutcome.UNREADABLE and "Zhang" not in odd.detail + odd.how
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_failing_raises_and_leaves_nothing(films: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ToolError):
        convert(films["mkv"], {"index": 42, "codec_name": "subrip"}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_extraction_argv() -> None:
    argv = subtitles.extraction_argv(Path("/a/-film.mkv"), 3, "ass", Path("/o/x.ass"))
    assert argv[:2] == ["ffmpeg", "-nostdin"]
    assert argv[argv.index("-i") + 1] == "file:/a/-film.mkv" and argv[-1] == "file:/o/x.ass"
    assert argv[argv.index("-map") + 1] == "0:3"
    assert argv[argv.index("-c:s") + 1 :][:3] == ["copy", "-f", "ass"]
    mov = subtitles.extraction_argv(Path("/a/f.mp4"), 2, "mov_text", Path("/o/x.srt"))
    assert mov[mov.index("-c:s") + 1 :][:3] == ["srt", "-f", "srt"]
