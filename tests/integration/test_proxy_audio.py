"""Every audio track of the source goes into the access proxy (issue 15, item 3): AAC, in the
source's order, each with its language and nothing else of the source's stream tags (no title, no
handler name), the first one the default. Real ffmpeg on a 2-second MKV made here; a track's
identity in the proxy is told by its sine's frequency, measured from the decoded PCM (zero
crossings), so the order is checked on the sound itself, not on a tag. The pure tests at the top
check the argv: which languages are copied, per-stream resampling, the maps."""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from preserve import tools
from preserve.access import proxy, scrub
from preserve.characterise import transcode
from preserve.config import ProxySettings
from preserve.core.errors import ToolError
from preserve.fixity import framemd5
from preserve.tools import ffprobe
from preserve.tools.ffprobe import ProbeReport
from tests.mediafactory import ffmpeg, make_clip

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

SETTINGS = ProxySettings(preset="ultrafast", audio_bitrate="96k")
#: the planted per-stream titles: none may reach the proxy
TITLES = ("张三的录音", "Commentary by Li Si", "Wang Wu's camera")
HANDLERS = ("Zhang San handler", "Li Si handler", "Wang Wu handler")
#: the source's audio tracks, in order: (sine frequency Hz, sample rate, channels, language tag)
TRACKS = ((440, 48000, 1, "chi"), (1000, 44100, 2, "eng"), (3000, 96000, 6, None))
#: a measured frequency is this close to its sine's (AAC at 96 kb/s keeps a pure tone's period)
FREQUENCY_TOLERANCE = 0.03


# -- pure: the argv --------------------------------------------------------------------------------
def _stream(index: int, ctype: str, codec: str, **extra: Any) -> dict[str, Any]:
    return {"index": index, "codec_type": ctype, "codec_name": codec, "disposition": {"attached_pic": 0}, **extra}


def _probe(*streams: dict[str, Any]) -> ProbeReport:
    fmt = {"format_name": "matroska,webm", "duration": "2.0"}
    return ffprobe.parse({"format": fmt, "streams": list(streams), "chapters": []})


def _pairs(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == option]


def _options(argv: list[str], prefix: str) -> dict[str, str]:
    """Every option starting with ``prefix`` and its value, e.g. {"-ar:a:2": "48000"}."""
    return {a: argv[i + 1] for i, a in enumerate(argv) if a.startswith(prefix)}


FILM = _probe(
    _stream(0, "video", "h264", width=320, height=240),
    _stream(1, "subtitle", "subrip"),
    _stream(2, "audio", "flac", sample_rate="96000", tags={"language": "chi", "title": TITLES[0]}),
    _stream(3, "video", "mjpeg", disposition={"attached_pic": 1}),
    _stream(4, "audio", "pcm_s16le", sample_rate="44100", tags={"language": "eng", "handler_name": HANDLERS[1]}),
    _stream(5, "audio", "aac", sample_rate="48000", tags={"language": "und"}),
    _stream(6, "audio", "opus", sample_rate="192000"),
)


def test_every_audio_stream_is_mapped_by_index_in_order_and_each_encoded_on_its_own_terms() -> None:
    argv = proxy.proxy_argv(Path("/s/film.mkv"), Path("/o/proxy.mp4"), FILM, SETTINGS)
    assert _pairs(argv, "-map") == ["0:0", "0:2", "0:4", "0:5", "0:6"]  # no subtitle, no cover art
    assert " ".join(["-c:a", "aac", "-b:a", "96k", "-ac", "2"]) in " ".join(argv)
    # resampled only where the source is above MAX_AUDIO_RATE, per output audio stream
    assert _options(argv, "-ar") == {"-ar:a:0": "48000", "-ar:a:3": "48000"}
    assert _options(argv, "-metadata") == {"-metadata:s:a:0": "language=chi", "-metadata:s:a:1": "language=eng"}
    assert _options(argv, "-disposition") == {
        "-disposition:a:0": "default",
        "-disposition:a:1": "0",
        "-disposition:a:2": "0",
        "-disposition:a:3": "0",
    }
    assert " ".join(["-flags:a", "+bitexact"]) in " ".join(argv) and "-an" not in argv
    assert " ".join(["-map_metadata", "-1"]) in " ".join(argv)  # stream tags (titles, handlers) dropped
    assert not any(t in " ".join(argv) for t in TITLES + HANDLERS)


@pytest.mark.parametrize(
    "tag",
    ["en; rm -rf", "zh-Hans", "CHI", "Chi", "zh", "chin", "und", "e n", "chi\n", "ch1", "", "ｃｈｉ", "çhi", 42, None],
)
def test_a_language_tag_that_is_not_an_iso_639_2_code_is_not_copied(tag: Any) -> None:
    source = _probe(_stream(0, "video", "h264"), _stream(1, "audio", "flac", tags={"language": tag}))
    assert proxy.stream_language(source.audio_streams[0]) is None
    argv = proxy.proxy_argv(Path("/s.mkv"), Path("/o.mp4"), source, SETTINGS)
    assert not _options(argv, "-metadata")
    assert _pairs(argv, "-map") == ["0:0", "0:1"]  # the track itself is kept


@pytest.mark.parametrize("tag", ["chi", "eng", "zho", "yue", "fre"])
def test_an_iso_639_2_code_is_copied_as_it_is(tag: str) -> None:
    source = _probe(_stream(0, "video", "h264"), _stream(1, "audio", "flac", tags={"language": tag}))
    assert proxy.stream_language(source.audio_streams[0]) == tag
    assert _options(proxy.proxy_argv(Path("/s.mkv"), Path("/o.mp4"), source, SETTINGS), "-metadata") == {
        "-metadata:s:a:0": f"language={tag}"
    }


def test_one_pass_maps_the_same_audio_with_the_same_options_and_leaves_the_framemd5_alone() -> None:
    src, out = Path("/s/film.mkv"), Path("/o/proxy.mp4")
    request = transcode.AccessRequest(proxy=out, poster=Path("/o/poster.jpg"), settings=SETTINGS, span=2.0)
    argv = transcode.pass_argv(src, FILM, framemd5_to=Path("/b/f.framemd5"), access=request)
    own = framemd5.framemd5_argv(src, Path("/b/f.framemd5"), FILM)
    own_outputs = own[own.index("-i") + 2 :]  # the framemd5 exactly as its own run makes it
    start = argv.index("-filter_complex") + 2
    assert argv[start : start + len(own_outputs)] == own_outputs
    at = argv.index("[proxy]") + 1
    maps = ["-map", "0:2", "-map", "0:4", "-map", "0:5", "-map", "0:6"]
    options = proxy.proxy_output_options(out, FILM, SETTINGS)
    assert argv[at : at + len(maps) + len(options)] == maps + options


def test_no_audio_is_an_and_one_track_is_mapped_as_before() -> None:
    silent = _probe(_stream(0, "video", "h264"))
    argv = proxy.proxy_argv(Path("/s.mkv"), Path("/o.mp4"), silent, SETTINGS)
    assert _pairs(argv, "-map") == ["0:0"] and "-an" in argv and "-c:a" not in argv
    assert proxy.audio_output_options(silent, SETTINGS) == ["-an"]
    one = _probe(_stream(0, "video", "h264"), _stream(1, "audio", "flac", sample_rate="48000"))
    assert proxy.audio_output_options(one, SETTINGS) == [
        *("-c:a", "aac", "-b:a", "96k", "-ac", "2"),
        *("-disposition:a:0", "default"),
        *("-flags:a", "+bitexact"),
    ]


# -- real ffmpeg -----------------------------------------------------------------------------------
def _source(path: Path, tracks: tuple[tuple[int, int, int, str | None], ...] = TRACKS, codec: str = "flac") -> Path:
    """A 2-second MKV: a test pattern (with a title and a handler name of its own), then one sine
    per track at its frequency, rate and channel count, each with a planted title and handler name
    and its language tag when it has one, plus a global title. The first track is in ``codec``,
    the others FLAC."""
    args = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2"]
    for freq, rate, _, _ in tracks:
        args += ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate={rate}:duration=2"]
    args += ["-map", "0:v", *[a for n in range(len(tracks)) for a in ("-map", f"{n + 1}:a")]]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "flac", "-c:a:0", codec]
    args += ["-metadata", f"title={TITLES[2]}", "-metadata:s:v", f"title={TITLES[2]}"]
    args += ["-metadata:s:v", f"handler_name={HANDLERS[2]}"]
    for n, (_, _, channels, language) in enumerate(tracks):
        args += [f"-ac:a:{n}", str(channels)]
        args += [f"-metadata:s:a:{n}", f"title={TITLES[n % 2]}", f"-metadata:s:a:{n}", f"handler_name={HANDLERS[n]}"]
        if language is not None:
            args += [f"-metadata:s:a:{n}", f"language={language}"]
    ffmpeg([*args, "file:" + str(path.absolute())])
    return path


def _frequency(path: Path, audio: int) -> float:
    """The dominant frequency (Hz) of the proxy's ``audio``-th audio stream: its zero crossings,
    counted on the decoded mono PCM between 0.25 s and 1.75 s (away from the encoder's ramps)."""
    rate = 48000
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-i", tools.media_path(path), "-map", f"0:a:{audio}"]
    argv += ["-ac", "1", "-ar", str(rate), "-f", "s16le", "-"]
    pcm = memoryview(tools.run(argv, timeout=60).stdout).cast("h")
    samples = pcm[rate // 4 : rate * 7 // 4]
    crossings = sum(1 for a, b in pairwise(samples) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / rate)


def _audio_streams(path: Path) -> list[dict[str, Any]]:
    return list(ffprobe.probe(path).audio_streams)


def _assert_every_track_in_order(made: Path, tracks: tuple[tuple[int, int, int, str | None], ...] = TRACKS) -> None:
    """``made`` has one AAC stereo stream per source track, in the source's order (by frequency),
    with the source's language or none, the first alone the default, the muxer's own handler name
    and no title anywhere; and it passes the privacy check with the planted values forbidden."""
    report = ffprobe.probe(made)
    audio = list(report.audio_streams)
    assert len(audio) == len(tracks)
    assert [s["codec_name"] for s in audio] == ["aac"] * len(tracks)
    assert [s["channels"] for s in audio] == [2] * len(tracks)
    assert [int(s["sample_rate"]) for s in audio] == [min(rate, proxy.MAX_AUDIO_RATE) for _, rate, _, _ in tracks]
    for n, (freq, _, _, _) in enumerate(tracks):
        assert _frequency(made, n) == pytest.approx(freq, rel=FREQUENCY_TOLERANCE), n
    assert [(s.get("tags") or {}).get("language", "und") for s in audio] == [lang or "und" for *_, lang in tracks]
    assert [s["disposition"]["default"] for s in audio] == [1] + [0] * (len(tracks) - 1)
    assert [(s.get("tags") or {}).get("handler_name") for s in audio] == ["SoundHandler"] * len(tracks)
    tag_sets = [report.tags] + [s.get("tags") or {} for s in report.raw["streams"]]
    assert not [k for tags in tag_sets for k in tags if "title" in k.lower()], tag_sets
    planted = [value.encode() for value in TITLES + HANDLERS]
    assert not [p for p in planted if p in made.read_bytes()]
    leak = scrub.check_clean(made, forbidden_values=[*TITLES, *HANDLERS])
    assert leak.ok, leak.findings


@needs_ffmpeg
def test_make_proxy_carries_every_audio_track_in_order_with_its_language_only(tmp_path: Path) -> None:
    src = _source(tmp_path / "film.mkv")
    probe = ffprobe.probe(src)
    assert [s["tags"].get("title") for s in probe.audio_streams] == [TITLES[0], TITLES[1], TITLES[0]]  # planted
    assert [int(s["channels"]) for s in probe.audio_streams] == [1, 2, 6]
    made = proxy.make_proxy(src, tmp_path / "proxy.mp4", probe, SETTINGS)
    _assert_every_track_in_order(made)


@needs_ffmpeg
def test_the_one_pass_proxy_has_the_same_audio_tracks(tmp_path: Path) -> None:
    src = _source(tmp_path / "film.mkv")
    probe = ffprobe.probe(src)
    out = tmp_path / "access"
    out.mkdir()
    request = transcode.AccessRequest(proxy=out / "proxy.mp4", poster=out / "poster.jpg", settings=SETTINGS, span=2.0)
    one = transcode.run_pass(src, probe, framemd5_to=tmp_path / "film.framemd5", access=request)
    assert one.clean and one.copies is not None, one.report.errors
    _assert_every_track_in_order(one.copies.proxy)
    # the pass's framemd5 is the one its own run makes, audio streams and all
    own = framemd5.write(src, tmp_path / "own.framemd5", probe)
    assert (tmp_path / "film.framemd5").read_bytes() == own.path.read_bytes()
    assert len([k for k, v in own.manifest.streams.items() if v == "audio"]) == len(TRACKS)


@needs_ffmpeg
def test_a_source_without_audio_gives_a_silent_proxy_and_one_track_is_kept_as_before(tmp_path: Path) -> None:
    silent = make_clip(tmp_path / "silent.mkv", duration=2.0, audio=False)
    made = proxy.make_proxy(silent, tmp_path / "silent.mp4", ffprobe.probe(silent), SETTINGS)
    assert not _audio_streams(made) and ffprobe.probe(made).has_video
    assert scrub.check_clean(made).ok

    one_track = ((440, 48000, 1, "chi"),)
    src = _source(tmp_path / "one.mkv", one_track)
    made = proxy.make_proxy(src, tmp_path / "one.mp4", ffprobe.probe(src), SETTINGS)
    _assert_every_track_in_order(made, one_track)


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["flac", "pcm_s16le"], ids=["only track", "second of two"])
def test_an_audio_track_ffmpeg_cannot_decode_fails_the_proxy_as_a_single_one_always_did(
    tmp_path: Path, codec: str
) -> None:
    """Every track is mapped, one without a decoder too: ffmpeg refuses the run, as it did when
    that track was the only one (and the decode check, which decodes every audio stream, fails
    such a file first). The unknown codec is made for real: the Matroska codec ID of the one FLAC
    track renamed (the only track, or the second after a PCM one)."""
    tracks = ((440, 48000, 1, "chi"),) if codec == "flac" else ((440, 48000, 1, "chi"), (1000, 48000, 1, "eng"))
    data = _source(tmp_path / "ok.mkv", tracks, codec=codec).read_bytes()
    assert data.count(b"A_FLAC") == 1
    unknown = tmp_path / "unknown.mkv"
    unknown.write_bytes(data.replace(b"A_FLAC", b"A_QQQQ"))
    probe = ffprobe.probe(unknown)
    assert [s.get("codec_name") is None for s in probe.audio_streams] == [False] * (len(tracks) - 1) + [True]
    with pytest.raises(ToolError):
        proxy.make_proxy(unknown, tmp_path / "unknown.mp4", probe, SETTINGS)
    assert not (tmp_path / "unknown.mp4").exists()
