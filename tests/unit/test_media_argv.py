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
    assert maps == ["0:1", "0:2"]  # the real video (not the cover art) and the (only) audio
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
        ["-ar:a:0", "48000"],
        ["-disposition:a:0", "default"],
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
    argv = poster_argv(EVIL, Path("/o/p.jpg"), VIDEO, settings, at=poster_time(VIDEO.duration, settings))
    assert argv.index("-ss") < argv.index("-i") and argv[argv.index("-ss") + 1] == "2.500"
    assert "-map_metadata" in argv and "+bitexact" in argv and argv[argv.index("-frames:v") + 1] == "1"
    short = _probe(_stream(0, "video", "h264", width=320, height=240), duration="0.4")
    assert poster_time(short.duration, settings) == 0.0
    assert "-ss" not in poster_argv(EVIL, Path("/p.jpg"), short, settings, at=poster_time(short.duration, settings))


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


# -- issue 18: nothing of the source but pictures and sound; durations from the stream ----------------
def test_every_video_chain_ends_by_deleting_frame_side_data_and_h264_loses_its_sei() -> None:
    from preserve.access.contactsheet import contact_sheet_argv
    from preserve.tools import ffmpeg

    settings = ProxySettings()
    proxy = proxy_argv(EVIL, Path("/o/p.mp4"), VIDEO, settings)
    assert proxy[proxy.index("-vf") + 1].endswith(",sidedata=mode=delete")  # no type: every kind of side data
    assert " ".join(["-c:v", "libx264", "-a53cc", "0", "-bsf:v", "filter_units=remove_types=6"]) in " ".join(proxy)
    poster = poster_argv(EVIL, Path("/o/p.jpg"), VIDEO, settings)
    assert poster[poster.index("-vf") + 1].endswith("format=yuvj420p,sidedata=mode=delete") and "-ss" not in poster
    sheet = contact_sheet_argv(EVIL, Path("/o/s.jpg"), VIDEO, duration=10.0, frames=4)
    graph = sheet[sheet.index("-filter_complex") + 1]
    assert graph.count(ffmpeg.NO_SIDE_DATA) == 4 + 1  # each tile and the sheet
    assert [sheet[i + 1] for i, a in enumerate(sheet) if a == "-ss"] == ["1.250", "3.750", "6.250", "8.750"]
    first_only = contact_sheet_argv(EVIL, Path("/o/s.jpg"), VIDEO, duration=None, frames=4)
    assert "-ss" not in first_only and first_only.count("-i") == 1
    _only_as_file_url(sheet, EVIL)
    _only_as_file_url(ffmpeg.sei_argv(EVIL, 1), EVIL)
    sei = ffmpeg.sei_argv(EVIL, 1)
    assert " ".join(["-map", "0:1", "-c", "copy", "-bsf:v", "filter_units=pass_types=6", "-f", "data"]) in " ".join(sei)


def test_decode_argv_reports_progress_and_the_decoded_duration_is_parsed() -> None:
    from preserve.characterise.decode import parse_progress

    argv = decode_argv(EVIL)
    assert argv[argv.index("-progress") + 1] == "pipe:1" and argv.index("-progress") < argv.index("-i")
    report = (
        "frame=10\nout_time_us=400000\nprogress=continue\n"
        "frame=50\nfps=0.00\nout_time_us=2005333\nout_time_ms=2005333\nout_time=00:00:02.005333\nprogress=end\n"
    )
    assert parse_progress(report) == (2.005333, 50)
    assert parse_progress("frame=0\nout_time_us=N/A\nprogress=end\n") == (None, None)
    assert parse_progress("") == (None, None)


def test_stream_span_reads_both_ends_of_the_stream_and_parses_timestamps() -> None:
    from preserve.tools.ffprobe import PAST_THE_END, parse_span, stream_span_argv

    argv = stream_span_argv(EVIL, 3)
    assert argv[argv.index("-select_streams") + 1] == "3"
    assert argv[argv.index("-read_intervals") + 1] == f"%+#1,{PAST_THE_END}%"
    _only_as_file_url(argv, EVIL)
    # an MPEG-TS starting at 1.4 s, its last packets after the seek past the end
    assert parse_span("1.400000,0.040000\n\n31.320000,0.040000\n31.360000,0.040000\n") == pytest.approx(30.0)
    assert parse_span("0.080000,0.040000,\n0.000000,0.040000\n1.960000\n") == pytest.approx(1.96)  # B-frames
    assert parse_span("") is None and parse_span("N/A,N/A\n") is None


def test_exiftool_argv_ends_options_before_the_name_and_parses_its_json() -> None:
    from preserve.tools import exiftool

    argv = exiftool.exiftool_argv(EVIL)
    assert argv[0] == "exiftool" and argv[-2:] == ["--", os.fspath(EVIL)]
    for flag in ("-j", "-ee", "-G1", "-a", "-u"):
        assert flag in argv
    ok = exiftool.parse(
        b'[{"SourceFile": "/x.jpg", "ExifTool:ExifToolVersion": 12.57, "System:FileName": "x.jpg",'
        b' "File:FileType": "JPEG", "ICC_Profile:ProfileDescription": "someone"}]'
    )
    assert ok.readable and ok.content_tags() == {"File:FileType": "JPEG", "ICC_Profile:ProfileDescription": "someone"}
    bad = exiftool.parse(b'[{"SourceFile": "/x", "ExifTool:Error": "File format error"}]')
    assert not bad.readable and bad.error == "File format error"
    assert not exiftool.parse(b"not json").readable and not exiftool.parse(b"").readable


def test_allow_list_names_and_values() -> None:
    from preserve.access import scrub

    assert scrub._mediainfo_base("Source_Duration_LastFrame_String3") == "Duration"
    assert scrub._mediainfo_base("Sampled_Width") == "Width" and scrub._mediainfo_base("FileSize_String4") == "FileSize"
    for allowed in ("Duration", "Format_Settings_CABAC", "Video_Format_List", "colour_primaries", "BitRate_Mode"):
        assert scrub.MEDIAINFO_FIELDS.fullmatch(allowed), allowed
    for refused in (
        "Title",
        "Encoded_Library",
        "Encoded_Library_Settings",
        "Recorded_Location",
        "Copyright",
        "TextCount",
    ):
        assert not scrub.MEDIAINFO_FIELDS.fullmatch(scrub._mediainfo_base(refused)), refused
    track = scrub.EXIFTOOL_ALLOWED["Track"]
    assert track["CompressorName"]("Lavc libx264") and not track["CompressorName"]("x264 core 164 threads=3")
    assert track["TrackCreateDate"]("0000:00:00 00:00:00") and not track["TrackCreateDate"]("2024:05:04 12:00:00")
    assert "ProfileDescription" not in scrub.EXIFTOOL_ALLOWED.get("ICC_Profile", {})
    assert scrub.ALLOWED_TAGS["encoder"]("Lavc libx264") and not scrub.ALLOWED_TAGS["encoder"]("Zhang's camera")
    assert scrub._key("a name\n with ünïcode and a very long tail " + "x" * 60).endswith("...")


def test_byte_scan_is_one_automaton_of_many_patterns_and_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preserve.access import scrub

    monkeypatch.setattr(scrub, "CHUNK", 1000)
    values = [f"person number {i:05d}" for i in range(5000)]
    data = bytearray(b"x" * 20_000)
    data[999 - 5 : 999 - 5 + 19] = values[4321].encode()  # straddles the first chunk boundary
    data[15_000 : 15_000 + 38] = values[17].encode("utf-16-le")
    path = tmp_path / "blob"
    path.write_bytes(bytes(data))
    found = scrub.scan_bytes(path, scrub._patterns(values))
    assert found == [
        "bytes: forbidden value #4322 (utf-8) at offset 994",
        "bytes: forbidden value #18 (utf-16-le) at offset 15000",
    ]
    # a value longer than MAX_PATTERN_BYTES is found by its first bytes
    long_value = "L" + "ong name " * 100
    path.write_bytes(b"xx" + long_value.encode()[: scrub.MAX_PATTERN_BYTES] + b"yy")
    assert scrub.scan_bytes(path, scrub._patterns([long_value])) == ["bytes: forbidden value #1 (utf-8) at offset 2"]
    # a scan past its time limit says the rest is unchecked (a finding: the copy fails)
    path.write_bytes(b"\0" * 5000)
    late = scrub.scan_bytes(path, {b"needle": "x"}, seconds=-1)
    assert late == ["bytes: scan stopped after -1 s at offset 1000; the rest is unchecked"]
    # the value search over what the tools report uses the same automaton
    search = scrub._ValueSearch(["Li Ming", "Kunming"])
    assert search.findings("ExifTool", ["Calibrated by Li Ming", "x", "at Kunming"]) == [
        "ExifTool: reports forbidden value #1",
        "ExifTool: reports forbidden value #2",
    ]


def test_forbidden_values_are_unique_and_long_enough() -> None:
    from preserve.access import scrub

    raw = {"format": {"tags": {"title": "Secret", "location": "+39.9042+116.4074/", "encoder": "Lavf"}}, "streams": []}
    assert scrub.forbidden_values(["Secret", "ab", "", "Director One"], raw) == [
        "Secret",
        "Director One",
        "+39.9042+116.4074/",
    ]
