"""Media modules against real ffmpeg/ffprobe/MediaInfo on tiny generated clips (no mocks)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from preserve.access.proxy import make_poster, make_proxy, proxy_argv
from preserve.access.scrub import check_clean
from preserve.characterise.decode import decode_check
from preserve.config import ProxySettings
from preserve.core.errors import ToolError
from preserve.tools import ffprobe, mediainfo
from tests.mediafactory import corrupt_range, flip_byte, make_clip, make_still, truncated_copy

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg/ffprobe not installed"
)

LOCATION = "+39.9042+116.4074/"
FORBIDDEN = ["Secret", "+39.9042", "Canon"]
SETTINGS = ProxySettings(preset="ultrafast")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "mp4": make_clip(
            d / "secret.mp4",
            metadata={"title": "Secret", "location": LOCATION},
            chapters=[(0.0, 0.5, "Opening"), (0.5, 1.0, "End")],
        ),
        "mov": make_clip(
            d / "-evil.mov",
            vcodec="prores_aw",
            movflags="+use_metadata_tags",
            metadata={
                "com.apple.quicktime.location.ISO6709": LOCATION,
                "com.apple.quicktime.make": "Canon",
                "com.apple.quicktime.model": "EOS",
            },
        ),
        "mkv": make_clip(d / "master.mkv", vcodec="ffv1", duration=2.0),
        "silent": make_clip(d / "silent.mp4", audio=False),
        "odd": make_clip(d / "odd.mp4", size="1279x717", duration=0.4, audio=False),
        "tall": make_clip(d / "tall.mp4", size="320x480", duration=0.4),
        "interlaced": make_clip(d / "interlaced.mp4", interlaced=True, duration=0.6, audio=False),
    }


def _box_order(path: Path) -> list[bytes]:
    out, pos, size = [], 0, path.stat().st_size
    with open(path, "rb") as fh:
        while pos + 8 <= size:
            fh.seek(pos)
            n, kind = struct.unpack(">I4s", fh.read(8))
            out.append(kind)
            pos += n if n > 1 else size
    return out


# -- ffprobe ------------------------------------------------------------------------------------
def test_probe_reports_streams_and_format(clips: dict[str, Path]) -> None:
    mp4 = ffprobe.probe(clips["mp4"])
    assert mp4.readable and mp4.kind == "video" and mp4.is_media
    assert "mp4" in mp4.format_name
    assert (mp4.width, mp4.height, mp4.video_codec, mp4.audio_codec) == (320, 240, "h264", "aac")
    assert mp4.duration == pytest.approx(1.0, abs=0.1)
    assert len(mp4.chapters) == 2 and mp4.tags["title"] == "Secret"
    assert len(mp4.video_streams) == 1 and len(mp4.audio_streams) == 1
    assert mp4.data_streams  # the MP4 chapter text track

    mov = ffprobe.probe(clips["mov"])  # named "-evil.mov": must not be taken for an option
    assert (mov.video_codec, mov.audio_codec, mov.pix_fmt) == ("prores", "pcm_s16le", "yuv422p10le")
    assert mov.tags["com.apple.quicktime.make"] == "Canon"

    mkv = ffprobe.probe(clips["mkv"])
    assert "matroska" in mkv.format_name and (mkv.video_codec, mkv.audio_codec) == ("ffv1", "flac")

    silent = ffprobe.probe(clips["silent"])
    assert silent.has_video and not silent.has_audio and silent.audio_codec is None
    assert ffprobe.probe(clips["interlaced"]).interlaced
    assert not mp4.interlaced


def test_probe_kinds_of_non_video(tmp_path: Path) -> None:
    jpg = ffprobe.probe(make_still(tmp_path / "still.jpg"))
    png = ffprobe.probe(make_still(tmp_path / "still.png"))
    for still in (jpg, png):
        assert still.readable and still.kind == "image"
        assert not still.has_video and not still.is_media and still.width == 64

    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n", encoding="utf-8")
    assert ffprobe.probe(srt).kind == "subtitle"

    nfo = tmp_path / "readme.nfo"  # the tty demuxer reads this as an "ansi" video stream
    nfo.write_text("hello\nworld\n", encoding="utf-8")
    assert ffprobe.probe(nfo).kind == "none" and not ffprobe.probe(nfo).is_media

    song = tmp_path / "song.m4a"  # audio with cover art: the picture is not video
    cover = make_still(tmp_path / "cover.jpg")
    from tests.mediafactory import ffmpeg

    ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-i",
            str(cover),
            "-map",
            "0",
            "-map",
            "1",
            "-c:a",
            "aac",
            "-c:v",
            "mjpeg",
            "-disposition:v",
            "attached_pic",
            str(song),
        ]
    )
    rep = ffprobe.probe(song)
    assert rep.kind == "audio" and not rep.has_video and rep.attached_pictures and rep.is_media


def test_unreadable_files_are_findings_not_errors(tmp_path: Path, clips: dict[str, Path]) -> None:
    pdf = tmp_path / "notes.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cut = truncated_copy(clips["mp4"], tmp_path / "cut.mp4")  # moov is at the end: gone
    for path in (pdf, empty, cut):
        rep = ffprobe.probe(path)
        assert not rep.readable and rep.error and rep.kind == "none" and not rep.is_media


# -- decode check -------------------------------------------------------------------------------
def test_decode_check_passes_good_files(clips: dict[str, Path]) -> None:
    for key in ("mp4", "mov", "mkv"):
        rep = decode_check(clips[key], timeout=120)
        assert rep.ok and rep.error_count == 0 and rep.errors == [], (key, rep.errors)


def test_decode_check_catches_damage(tmp_path: Path, clips: dict[str, Path]) -> None:
    cut = decode_check(truncated_copy(clips["mp4"], tmp_path / "cut.mp4"), timeout=120)
    assert not cut.ok and cut.returncode != 0 and cut.error_count >= 1

    flipped = tmp_path / "flipped.mkv"
    shutil.copyfile(clips["mkv"], flipped)
    flip_byte(flipped)
    crc = decode_check(flipped, timeout=120)
    assert not crc.ok and any("CRC" in line for line in crc.errors), crc.errors

    scrambled = decode_check(corrupt_range(clips["silent"], tmp_path / "scrambled.mp4"), timeout=120)
    assert not scrambled.ok and scrambled.error_count >= 1 and len(scrambled.errors) <= 50


def test_decode_check_of_a_truncated_faststart_file(tmp_path: Path, clips: dict[str, Path]) -> None:
    """moov first, media data cut short: ffprobe is happy, only a full decode notices."""
    proxy = make_proxy(clips["silent"], tmp_path / "fs.mp4", ffprobe.probe(clips["silent"]), SETTINGS)
    cut = truncated_copy(proxy, tmp_path / "fs-cut.mp4")
    assert ffprobe.probe(cut).readable
    assert not decode_check(cut, timeout=120).ok


# -- proxy, poster, privacy ---------------------------------------------------------------------
@pytest.mark.parametrize("key", ["mp4", "mov", "mkv"])
def test_proxy_is_h264_aac_decodable_and_clean(tmp_path: Path, clips: dict[str, Path], key: str) -> None:
    src = clips[key]
    dst = make_proxy(src, tmp_path / "proxy.mp4", ffprobe.probe(src), SETTINGS, timeout=120)
    rep = ffprobe.probe(dst)
    assert (rep.video_codec, rep.audio_codec, rep.pix_fmt) == ("h264", "aac", "yuv420p")
    assert len(rep.raw["streams"]) == 2 and not rep.chapters
    assert rep.width % 2 == 0 and rep.height % 2 == 0
    assert _box_order(dst).index(b"moov") < _box_order(dst).index(b"mdat")  # faststart
    assert decode_check(dst, timeout=120).ok
    leak = check_clean(dst, forbidden_values=FORBIDDEN)
    assert leak.ok, leak.findings
    assert [p.name for p in tmp_path.iterdir()] == ["proxy.mp4"]  # no temporary left behind


def test_sources_fail_the_privacy_check(clips: dict[str, Path]) -> None:
    """The check can fail: every way of looking sees the planted metadata."""
    mp4 = check_clean(clips["mp4"], forbidden_values=FORBIDDEN)
    assert not mp4.ok
    text = "\n".join(mp4.findings)
    assert "ffprobe: format tag 'title'" in text and "chapter" in text
    assert "MediaInfo: General field Title" in text
    assert "loci" in text and "bytes: forbidden value #1" in text
    mov = check_clean(clips["mov"], forbidden_values=FORBIDDEN)
    text = "\n".join(mov.findings)
    assert "com.apple.quicktime.make" in text and "ISO6709" in text and "forbidden value #3" in text
    assert "Canon" not in text and "+39.9042" not in text  # findings never repeat the secret


def test_proxy_without_audio_odd_size_and_downscale(tmp_path: Path, clips: dict[str, Path]) -> None:
    silent = make_proxy(clips["silent"], tmp_path / "silent.mp4", ffprobe.probe(clips["silent"]), SETTINGS)
    rep = ffprobe.probe(silent)
    assert rep.has_video and not rep.has_audio and len(rep.raw["streams"]) == 1

    odd = make_proxy(clips["odd"], tmp_path / "odd.mp4", ffprobe.probe(clips["odd"]), SETTINGS)
    rep = ffprobe.probe(odd)
    assert rep.height == 716 and rep.width % 2 == 0 and abs(rep.width - 1279 * 716 / 717) < 2.5
    assert decode_check(odd, timeout=120).ok

    small = ProxySettings(preset="ultrafast", max_height=240)
    tall = make_proxy(clips["tall"], tmp_path / "tall.mp4", ffprobe.probe(clips["tall"]), small)
    rep = ffprobe.probe(tall)
    assert (rep.width, rep.height) == (160, 240) and rep.has_audio
    # never upscale: a 240-line source stays 240 lines under a 1080 limit
    assert ffprobe.probe(silent).height == 240


def test_interlaced_source_is_deinterlaced(tmp_path: Path, clips: dict[str, Path]) -> None:
    probe = ffprobe.probe(clips["interlaced"])
    assert any("bwdif" in a for a in proxy_argv(clips["interlaced"], tmp_path / "x.mp4", probe, SETTINGS))
    rep = ffprobe.probe(make_proxy(clips["interlaced"], tmp_path / "i.mp4", probe, SETTINGS))
    assert rep.field_order in (None, "progressive")


def test_poster_is_a_clean_jpeg(tmp_path: Path, clips: dict[str, Path]) -> None:
    src = clips["mov"]
    poster = make_poster(src, tmp_path / "poster.jpg", ffprobe.probe(src), SETTINGS, timeout=60)
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    rep = ffprobe.probe(poster)
    assert rep.kind == "image" and rep.raw["streams"][0]["codec_name"] == "mjpeg"
    assert (rep.width, rep.height) == (320, 240)
    leak = check_clean(poster, forbidden_values=FORBIDDEN)
    assert leak.ok, leak.findings
    # very short clip (duration under a second): first frame
    short = make_poster(clips["odd"], tmp_path / "short.jpg", ffprobe.probe(clips["odd"]), SETTINGS)
    assert ffprobe.probe(short).height == 716


def test_failed_transcode_leaves_nothing(tmp_path: Path, clips: dict[str, Path]) -> None:
    probe = ffprobe.probe(clips["mp4"])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\0" * 4096)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ToolError):
        make_proxy(garbage, out / "proxy.mp4", probe, SETTINGS, timeout=60)
    with pytest.raises(ToolError):
        make_poster(garbage, out / "poster.jpg", probe, SETTINGS, timeout=60)
    assert list(out.iterdir()) == []


def test_mediainfo_keeps_raw_output(clips: dict[str, Path]) -> None:
    rep = mediainfo.extract(clips["mp4"])
    assert rep.general["Title"] == "Secret" and rep.general["Format"] == "MPEG-4"
    assert rep.xml.lstrip().startswith("<?xml") and "<Title>Secret</Title>" in rep.xml
    agent = mediainfo.agent()
    assert agent.name == "MediaInfo" and agent.version[:2].isdigit()
    with pytest.raises(ToolError):
        mediainfo.extract(clips["mp4"].with_name("does-not-exist.mp4"))


def test_poster_falls_back_to_first_frame_when_duration_lies(tmp_path: Path, clips: dict[str, Path]) -> None:
    import dataclasses

    probe = dataclasses.replace(ffprobe.probe(clips["silent"]), duration=100.0)  # seek past the end
    poster = make_poster(clips["silent"], tmp_path / "p.jpg", probe, SETTINGS, timeout=60)
    assert ffprobe.probe(poster).kind == "image" and poster.stat().st_size > 0
