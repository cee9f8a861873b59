"""The one-pass transcode's argv (pure): one input, each output as its own builder makes it, the
poster's and the contact sheet's frames chosen by ``select`` at the seek points; no process here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from preserve.access import contactsheet, proxy
from preserve.characterise import decode, transcode
from preserve.config import ProxySettings
from preserve.fixity import framemd5
from preserve.tools import ffmpeg
from preserve.tools.ffprobe import ProbeReport, parse

EVIL = Path("/abs/-evil.mov")
SETTINGS = ProxySettings(preset="slow", crf=21, max_height=720)


def _stream(index: int, ctype: str, codec: str, **extra: Any) -> dict[str, Any]:
    return {"index": index, "codec_type": ctype, "codec_name": codec, "disposition": {"attached_pic": 0}, **extra}


def _probe(*streams: dict[str, Any], duration: str | None = "10.0") -> ProbeReport:
    fmt: dict[str, Any] = {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"}
    if duration is not None:
        fmt["duration"] = duration
    return parse({"format": fmt, "streams": list(streams), "chapters": []})


FILM = _probe(
    _stream(0, "video", "mjpeg", width=600, height=600, disposition={"attached_pic": 1}),
    _stream(1, "video", "prores", width=1920, height=1080, field_order="progressive", pix_fmt="yuv422p10le"),
    _stream(2, "audio", "pcm_s24le", sample_rate="96000", sample_fmt="s32"),
    _stream(3, "audio", "pcm_s16le", sample_rate="48000", sample_fmt="s16"),
    _stream(4, "data", "bin_data"),
)


def _request(span: float | None = 10.0, sheet: bool = True, frames: int = 4) -> transcode.AccessRequest:
    return transcode.AccessRequest(
        proxy=Path("/o/proxy.mp4"),
        poster=Path("/o/poster.jpg"),
        settings=SETTINGS,
        span=span,
        contact_sheet=Path("/o/sheet.jpg") if sheet else None,
        sheet_frames=frames,
        sheet_columns=2,
        sheet_tile_width=65,
    )


def _outputs(argv: list[str]) -> list[list[str]]:
    """The argv after the input and the filter graph, cut after each output's file (its last arg)."""
    rest = argv[argv.index("-i") + 2 :]
    if rest[:1] == ["-filter_complex"]:
        rest = rest[2:]
    out: list[list[str]] = []
    current: list[str] = []
    for arg in rest:
        current.append(arg)
        if arg.startswith("file:") or arg == "-":
            out.append(current)
            current = []
    assert not current, current
    return out


def test_one_input_decoded_once_and_every_output_as_its_own_builder_makes_it() -> None:
    argv = transcode.pass_argv(EVIL, FILM, framemd5_to=Path("/b/f.framemd5"), access=_request())
    assert argv.count("-i") == 1 and argv[argv.index("-i") + 1] == "file:" + os.fspath(EVIL)
    assert not any(a == os.fspath(EVIL) or a.startswith("-evil") for a in argv)
    assert argv[argv.index("-progress") + 1] == "pipe:1" and argv.index("-progress") < argv.index("-i")
    assert argv[argv.index("-stats_period") + 1] == str(transcode.PROGRESS_PERIOD)
    assert "-y" in argv[: argv.index("-i")]  # the outputs' temporary files exist already
    assert argv[argv.index("-v") + 1] == decode.LOG_LEVEL  # stderr read as the decode check's is
    md5, null, proxy_out, poster, sheet = _outputs(argv)
    # the framemd5 is exactly the one its own run makes: every video and audio stream, the PCM of
    # each decoded sample format, fixed blocks of audio, bit-exact
    own = framemd5.framemd5_argv(EVIL, Path("/b/f.framemd5"), FILM)
    assert md5 == own[own.index("-i") + 2 :]
    assert ["-c:a:0", "pcm_s32le"] == md5[md5.index("-c:a:0") : md5.index("-c:a:0") + 2]
    # and the decode check's own null output (the muxer that reports timestamps going back, and
    # cover art, which a framemd5 does not hash), after the framemd5 so progress counts real frames
    own_check = decode.decode_argv(EVIL)
    assert null == own_check[own_check.index("-i") + 2 :] == ["-map", "0:v?", "-map", "0:a?", "-f", "null", "-"]
    # the proxy: the filtered video, every audio stream in order, and proxy_argv's own output options
    assert proxy_out[:6] == ["-map", "[proxy]", "-map", "0:2", "-map", "0:3"]
    assert proxy_out[6:] == proxy.proxy_output_options(Path("/o/proxy.mp4"), FILM, SETTINGS)
    own_proxy = proxy.proxy_argv(EVIL, Path("/o/proxy.mp4"), FILM, SETTINGS)
    assert own_proxy[own_proxy.index("-vf") + 2 :] == proxy_out[6:]
    for pair in (["-c:v", "libx264", "-a53cc", "0", "-bsf:v", "filter_units=remove_types=6"], ["-ar:a:0", "48000"]):
        assert " ".join(pair) in " ".join(proxy_out)
    assert "-ar:a:1" not in proxy_out  # the 48 kHz stream keeps its rate
    # the poster and the sheet: frames passed through as chosen (never duplicated to fill a rate)
    assert poster[:4] == ["-map", "[poster]", "-fps_mode", "passthrough"]
    assert poster[4:] == proxy.poster_output_options(Path("/o/poster.jpg"))
    assert sheet[:6] == ["-map", "[sheet]", "-fps_mode", "passthrough", "-frames:v", "1"]
    assert sheet[6:] == contactsheet.sheet_output_options(Path("/o/sheet.jpg"))
    for options in (proxy_out, poster, sheet):
        assert " ".join(ffmpeg.NO_METADATA) in " ".join(options)


def test_the_graph_splits_one_decoded_video_and_keeps_each_copy_s_chain() -> None:
    graph = transcode.access_graph(FILM, _request())
    chains = graph.split(";")
    assert chains[0] == "[0:1]split=3[to_proxy][to_poster][to_sheet]"  # the real video, not the cover art
    assert chains[1] == "[to_proxy]" + ",".join(proxy.picture_filters(720)) + "[proxy]"
    own_vf = proxy.proxy_argv(EVIL, Path("/o.mp4"), FILM, SETTINGS)
    assert chains[1].removeprefix("[to_proxy]").removesuffix("[proxy]") == own_vf[own_vf.index("-vf") + 1]
    # the poster: the first frame, then the first at or after 10% in (so a seek past the end still
    # leaves the first one), then the poster's own chain
    select = "select='eq(n,0)+gte(t,1.000)*eq(selected_n,1)*not(gte(prev_selected_t,1.000))',"
    assert chains[2].startswith("[to_poster]" + select)
    chain = chains[2].removeprefix("[to_poster]" + select).removesuffix("[poster]")
    own_poster = proxy.poster_argv(EVIL, Path("/p.jpg"), FILM, SETTINGS)
    assert chain.endswith(own_poster[own_poster.index("-vf") + 1])
    # the sheet: one frame per seek point of contactsheet.frame_times, tiled 2 x 2, the same tiles
    assert contactsheet.frame_times(10.0, 4) == [1.25, 3.75, 6.25, 8.75]
    sheet = chains[3].removeprefix("[to_sheet]").removesuffix("[sheet]")
    assert sheet.startswith(
        "select='gte(t,1.250)*eq(selected_n,0)+gte(t,3.750)*eq(selected_n,1)"
        "+gte(t,6.250)*eq(selected_n,2)+gte(t,8.750)*eq(selected_n,3)',"
    )
    assert sheet.endswith(contactsheet.tile_filters(65) + "," + contactsheet.grid_filters(4, 2))
    assert "scale=w=64:" in sheet and "tile=2x2:padding=4:margin=4" in sheet
    assert graph.count(ffmpeg.NO_SIDE_DATA) == 1 + 1 + 2  # proxy, poster, each tile and the sheet


def test_interlaced_video_is_deinterlaced_once_before_the_split() -> None:
    probe = _probe(_stream(0, "video", "h264", width=720, height=576, field_order="tt"))
    graph = transcode.access_graph(probe, _request(sheet=False))
    assert graph.count("bwdif=") == 1 and graph.startswith("[0:0]bwdif=mode=send_frame:parity=auto:deint=all,split=2")
    argv = transcode.pass_argv(EVIL, probe, access=_request(sheet=False), verdict=False)
    assert "[sheet]" not in " ".join(argv) and "-an" in argv  # no audio: none in the proxy
    assert [a for a in argv if a.startswith("file:")] == [
        "file:" + os.fspath(EVIL),
        "file:/o/proxy.mp4",
        "file:/o/poster.jpg",
    ]


def test_short_or_timeless_video_takes_the_first_frames() -> None:
    short = transcode.access_graph(FILM, _request(span=0.5))
    assert "[to_poster]select='eq(n,0)'," in short  # under a second: the first frame
    timeless = transcode.access_graph(FILM, _request(span=None, frames=6))
    assert "[to_sheet]select='eq(n,0)'," in timeless and "tile=1x1" in timeless


def test_the_verdict_is_the_decode_check_s_null_output() -> None:
    argv = transcode.pass_argv(EVIL, FILM)
    own = decode.decode_argv(EVIL)
    assert (
        argv[argv.index("-i") + 2 :]
        == own[own.index("-i") + 2 :]
        == ["-map", "0:v?", "-map", "0:a?", "-f", "null", "-"]
    )
    assert "-filter_complex" not in argv
    # the framemd5 alone (no verdict asked): just its output
    audio = _probe(_stream(0, "audio", "flac", sample_fmt="s32"))
    argv = transcode.pass_argv(EVIL, audio, framemd5_to=Path("/b/a.framemd5"), verdict=False)
    assert _outputs(argv) == [framemd5.framemd5_argv(EVIL, Path("/b/a.framemd5"), audio)[7:]]
    # asked for nothing: refused
    with pytest.raises(ValueError):
        transcode.pass_argv(EVIL, FILM, verdict=False)


def test_no_access_copies_of_a_file_without_video() -> None:
    audio = _probe(_stream(0, "audio", "flac"), _stream(1, "video", "png", disposition={"attached_pic": 1}))
    with pytest.raises(ValueError):
        transcode.pass_argv(EVIL, audio, access=_request())


def test_seek_points_come_from_the_stream_never_from_the_header_alone() -> None:
    assert transcode.seek_duration(2.0, 4294967296.0) == 2.0  # a header that lies about its length
    assert transcode.seek_duration(60.0, 30.0) == 30.0  # a header that says less is believed
    assert transcode.seek_duration(2.0, None) == 2.0
    assert transcode.seek_duration(None, 100.0) is None  # the header alone: not a seek point
    assert transcode.seek_duration(0.0, 100.0) is None


def test_the_decoded_duration_from_the_manifest() -> None:
    text = (
        "#format: frame checksums\n#version: 2\n#hash: MD5\n#tb 0: 1/25\n#media_type 0: video\n"
        "#tb 1: 1/48000\n#media_type 1: audio\n#stream#, dts, pts, duration, size, hash\n"
        "0, 0, 0, 1, 100, aa\n1, 0, 0, 4800, 19200, bb\n0, 49, 49, 1, 100, cc\n1, 91200, 91200, 4800, 19200, dd\n"
    )
    assert transcode.manifest_end(text) == pytest.approx(2.0)
    assert transcode.manifest_end("#tb 0: 1/25\n") is None


def test_pass_result_is_clean_only_when_complete_without_decoder_errors() -> None:
    ok = decode.DecodeReport(ok=True, error_count=0)
    bad = decode.DecodeReport(ok=False, error_count=2, errors=["[h264 @ 0x1] error"])
    copies = transcode.AccessCopies(Path("/p.mp4"), Path("/p.jpg"), None, 10.0)
    md5 = framemd5.FrameMd5Result(Path("/f"), framemd5.parse(""), [])
    assert transcode.PassResult(ok, md5, copies, 1.0, True, True).clean
    assert not transcode.PassResult(ok, None, None, 1.0, True, True).complete  # nothing kept
    assert transcode.PassResult(bad, md5, copies, 1.0, True, True).complete
    assert not transcode.PassResult(bad, md5, copies, 1.0, True, True).clean
    assert transcode.PassResult(ok, None, None, 1.0).clean  # a decode and nothing else


def test_a_long_film_s_pass_gets_a_multiple_of_its_duration_never_less_than_the_flat_timeout() -> None:
    flat = 6 * 3600.0
    fifteen_hours = 15 * 3600.0
    assert transcode.PASS_TIMEOUT_FACTOR == 4.0
    assert transcode.pass_timeout(flat, fifteen_hours) == 4 * fifteen_hours  # 60 h, where 6 h would stop it
    assert transcode.pass_timeout(flat, 5400.0) == flat  # 90 min: the flat timeout (4 x 90 min = 6 h)
    assert transcode.pass_timeout(flat, 7200.0) == 8 * 3600.0  # 2 h: 8 h
    assert transcode.pass_timeout(flat, 3600.0, fifteen_hours, None) == 4 * fifteen_hours  # the longest known
    assert transcode.pass_timeout(flat, None, 0.0) == transcode.pass_timeout(flat) == flat  # unknown: flat
