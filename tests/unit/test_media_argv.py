"""Pure argv builders and ffprobe JSON interpretation: no process is started here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from preserve.access.proxy import poster_argv, poster_time, proxy_argv
from preserve.characterise.decode import count_errors, decode_argv
from preserve.config import ProxySettings
from preserve.tools.ffprobe import ProbeReport, parse, probe_argv

EVIL = Path("/abs/-evil.mov")


def _stream(index: int, ctype: str, codec: str, **extra: Any) -> dict[str, Any]:
    return {"index": index, "codec_type": ctype, "codec_name": codec, "disposition": {"attached_pic": 0}, **extra}


def _probe(
    *streams: dict[str, Any], fmt: str = "mov,mp4,m4a,3gp,3g2,mj2", duration: str | None = "10.0"
) -> ProbeReport:
    f: dict[str, Any] = {"format_name": fmt}
    if duration is not None:
        f["duration"] = duration
    return parse({"format": f, "streams": list(streams), "chapters": []})


VIDEO = _probe(
    _stream(0, "video", "mjpeg", width=600, height=600, disposition={"attached_pic": 1}),
    _stream(1, "video", "prores", width=1920, height=1080, field_order="progressive", pix_fmt="yuv422p10le"),
    _stream(2, "audio", "pcm_s24le", sample_rate="96000"),
    _stream(3, "data", "bin_data"),
    _stream(4, "subtitle", "mov_text"),
)


def _only_as_file_url(argv: list[str], path: Path) -> None:
    assert "file:" + os.fspath(path) in argv
    assert not any(a == os.fspath(path) or a.startswith("-evil") for a in argv)


def test_evil_name_is_never_an_option() -> None:
    settings = ProxySettings()
    for argv in (
        probe_argv(EVIL),
        decode_argv(EVIL),
        proxy_argv(EVIL, Path("/o/-x.mp4"), VIDEO, settings),
        poster_argv(EVIL, Path("/o/-x.jpg"), VIDEO, settings),
    ):
        _only_as_file_url(argv, EVIL)
        assert argv[0] in ("ffmpeg", "ffprobe")


def test_relative_names_become_absolute() -> None:
    argv = probe_argv(Path("-rel.mp4"))
    assert argv[-1] == "file:" + os.fspath(Path("-rel.mp4").absolute())


def test_proxy_argv_allow_list_and_no_metadata() -> None:
    argv = proxy_argv(EVIL, Path("/o/p.mp4"), VIDEO, ProxySettings(crf=21, preset="slow", audio_bitrate="96k"))
    joined = " ".join(argv)
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map"]
    assert maps == ["0:1", "0:2"]  # the real video (not the cover art) and the first audio
    for pair in (
        ["-map_metadata", "-1"],
        ["-map_chapters", "-1"],
        ["-fflags", "+bitexact"],
        ["-flags:v", "+bitexact"],
        ["-flags:a", "+bitexact"],
        ["-movflags", "+faststart"],
        ["-c:v", "libx264"],
        ["-crf", "21"],
        ["-preset", "slow"],
        ["-c:a", "aac"],
        ["-b:a", "96k"],
        ["-pix_fmt", "yuv420p"],
        ["-f", "mp4"],
        ["-ar", "48000"],
    ):
        assert " ".join(pair) in joined, pair
    assert "-sn" in argv and "-dn" in argv
    vf = argv[argv.index("-vf") + 1]
    assert "min(ih,1080)" in vf and "setsar=1" in vf and "bwdif" not in vf
    assert argv[-1] == "file:/o/p.mp4"


def test_proxy_argv_without_audio_and_interlaced() -> None:
    probe = _probe(_stream(0, "video", "h264", width=720, height=576, field_order="tt"))
    argv = proxy_argv(Path("/s.mov"), Path("/o.mp4"), probe, ProxySettings(max_height=480))
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map"]
    assert maps == ["0:0"] and "-an" in argv and "-c:a" not in argv
    vf = argv[argv.index("-vf") + 1]
    assert vf.startswith("bwdif=") and "min(ih,480)" in vf


def test_no_video_means_no_proxy() -> None:
    audio_only = _probe(
        _stream(0, "audio", "flac"), _stream(1, "video", "png", disposition={"attached_pic": 1}), fmt="flac"
    )
    with pytest.raises(ValueError):
        proxy_argv(Path("/a.flac"), Path("/o.mp4"), audio_only, ProxySettings())


def test_poster_argv_seeks_before_input() -> None:
    settings = ProxySettings(poster_at_fraction=0.25)
    argv = poster_argv(EVIL, Path("/o/p.jpg"), VIDEO, settings)
    assert argv.index("-ss") < argv.index("-i") and argv[argv.index("-ss") + 1] == "2.500"
    assert "-map_metadata" in argv and "+bitexact" in argv and argv[argv.index("-frames:v") + 1] == "1"
    short = _probe(_stream(0, "video", "h264", width=320, height=240), duration="0.4")
    assert poster_time(short, settings) == 0.0 and "-ss" not in poster_argv(EVIL, Path("/p.jpg"), short, settings)


def test_parse_kinds() -> None:
    assert VIDEO.kind == "video" and VIDEO.has_video and VIDEO.has_audio and VIDEO.is_media
    assert (VIDEO.width, VIDEO.height, VIDEO.video_codec, VIDEO.video_index) == (1920, 1080, "prores", 1)
    assert len(VIDEO.attached_pictures) == 1 and len(VIDEO.data_streams) == 1 and VIDEO.has_subtitles

    jpeg = _probe(_stream(0, "video", "mjpeg", width=64, height=48), fmt="jpeg_pipe", duration=None)
    assert jpeg.kind == "image" and not jpeg.has_video and not jpeg.is_media and jpeg.width == 64
    png_in_mov = _probe(_stream(0, "video", "png", nb_frames="250", duration="10.0"))
    assert png_in_mov.kind == "video"  # PNG-coded moving pictures are video
    tty = _probe(_stream(0, "video", "ansi"), fmt="tty", duration="0.04")
    assert tty.kind == "none" and not tty.is_media
    srt = _probe(_stream(0, "subtitle", "subrip"), fmt="srt", duration=None)
    assert srt.kind == "subtitle" and not srt.is_media
    no_duration = _probe(_stream(0, "audio", "mp3"), fmt="mp3", duration=None)
    assert no_duration.kind == "audio" and not no_duration.is_media


def test_parse_unreadable() -> None:
    rep = parse({"error": {"code": -1094995529, "string": "Invalid data found when processing input"}})
    assert not rep.readable and "Invalid data" in rep.error and rep.kind == "none" and not rep.is_media
    assert not parse({}).readable


def test_count_errors_expands_repeats_and_caps_lines() -> None:
    stderr = "[h264 @ 0x1] error A\nLast message repeated 4 times\n\n" + "".join(
        f"[aac @ 0x2] error {i}\n" for i in range(80)
    )
    count, lines = count_errors(stderr)
    assert count == 1 + 4 + 80 and len(lines) == 50 and lines[0] == "[h264 @ 0x1] error A"


def test_byte_scan_overlaps_chunks_and_ignores_chance_hits_in_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preserve.access import scrub

    monkeypatch.setattr(scrub, "CHUNK", 7)  # every pattern below straddles a chunk boundary
    path = tmp_path / "blob"
    path.write_bytes(b"xxxxxlocixxxxx" + b"+39.9042+116" + b"yyyyloci")
    pats = {b"loci": "marker", b"+39.9042": "value"}
    assert scrub.scan_bytes(path, pats) == ["bytes: marker at offset 5", "bytes: value at offset 14"]
    # the same bytes inside compressed payload: a 4-byte hit is chance, an 8-byte one is not
    assert scrub.scan_bytes(path, pats, [(0, 14)]) == ["bytes: value at offset 14", "bytes: marker at offset 30"]
    assert scrub.scan_bytes(path, pats, [(0, 100)]) == ["bytes: value at offset 14"]
