"""Access proxy (H.264/AAC MP4) and poster (JPEG) from a source film, carrying nothing of the
source but its pictures and sound (every audio track, in the source's order, each with nothing but
its language): no container or stream metadata, no frame side data (captions, ICC profiles), no
SEI in the H.264 stream. Side effects: runs ffmpeg (and, for a poster whose seek point is not
given, ffprobe) via tools.run and writes only the destination file (through a temporary name in
its directory, `preserve.tools.ffmpeg.output`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from preserve import tools
from preserve.config import ProxySettings
from preserve.tools import ffmpeg, ffprobe
from preserve.tools.ffprobe import ProbeReport

#: below this duration (s) a poster is the first frame; seeking into a blink is pointless
POSTER_MIN_DURATION = 1.0
#: highest audio sample rate passed through; ffmpeg's AAC encoder stops at 96 kHz
MAX_AUDIO_RATE = 48000
#: the one value of a source's stream tags an audio track of the proxy keeps: its ``language``, and
#: only when it is an ISO 639-2 code as ffmpeg writes it (three lowercase ASCII letters, which the
#: MP4 ``mdhd`` box packs in 15 bits); any other value of the tag (a BCP 47 tag, a sentence, a
#: name) is not copied. "und" (undetermined) says nothing and is not written either.
ISO_639_2 = re.compile(r"[a-z]{3}")
UNDETERMINED_LANGUAGE = "und"


def deinterlace_filters(probe: ProbeReport) -> list[str]:
    """The deinterlacer every access copy's chain starts with when the source declares fields
    (one frame out per frame in, so frame counts and timestamps stay); none otherwise."""
    return ["bwdif=mode=send_frame:parity=auto:deint=all"] if probe.interlaced else []


def picture_filters(max_height: int, *then: str) -> list[str]:
    """Scale to at most ``max_height`` lines, never up, with both dimensions even (x264 4:2:0
    requires it) and square pixels, keeping the display aspect ratio (``dar`` includes the source's
    sample aspect ratio); then the filters in ``then``; last, every frame's side data is deleted
    (captions, ICC profile: `ffmpeg.NO_SIDE_DATA`). The proxy's and the poster's chain after the
    deinterlacer."""
    if max_height < 2:
        raise ValueError(f"max_height must be at least 2, got {max_height}")
    return [
        f"scale=w='max(2,trunc(oh*dar/2)*2)':h='max(2,trunc(min(ih,{max_height})/2)*2)'",
        "setsar=1",
        *then,
        ffmpeg.NO_SIDE_DATA,
    ]


def _video_filter(probe: ProbeReport, max_height: int, *then: str) -> str:
    """Deinterlace when the source declares fields, then `picture_filters`."""
    return ",".join(deinterlace_filters(probe) + picture_filters(max_height, *then))


#: the poster's pixel format (full-range 4:2:0, what the JPEG encoder takes), before the side data goes
POSTER_FORMAT = "format=yuvj420p"


def proxy_argv(src: Path, dst: Path, probe: ProbeReport, settings: ProxySettings) -> list[str]:
    """ffmpeg arguments for the access proxy (pure). Maps only the first real video stream and
    every audio stream (`audio_maps`) by absolute index, so cover art, subtitles, data tracks
    (timed GPS), attachments and chapters are never carried over."""
    argv = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-y",
        "-i",
        tools.media_path(src),
        "-map",
        f"0:{ffmpeg.video_index(probe)}",
    ]
    argv += audio_maps(probe)
    argv += ["-vf", _video_filter(probe, settings.max_height)]
    return argv + proxy_output_options(dst, probe, settings)


def audio_maps(probe: ProbeReport) -> list[str]:
    """``-map 0:N`` for every audio stream of the source, by absolute index, in the source's order
    (ffprobe's), so the proxy's Nth audio track is the source's Nth (pure). Every stream is mapped,
    one ffmpeg cannot decode too: such a source fails the proxy as a single undecodable track
    always did (and fails the decode check, which decodes every audio stream)."""
    return [arg for stream in probe.audio_streams for arg in ("-map", f"0:{int(stream['index'])}")]


def stream_language(stream: Mapping[str, Any]) -> str | None:
    """The ISO 639-2 code of a source stream's ``language`` tag, when it is one (`ISO_639_2`) and
    not "und"; None otherwise: "en; rm -rf", "zh-Hans", "CHI" and anything not a string are not
    languages the proxy may carry (pure)."""
    tags = stream.get("tags")
    value = tags.get("language") if isinstance(tags, Mapping) else None
    if isinstance(value, str) and ISO_639_2.fullmatch(value) and value != UNDETERMINED_LANGUAGE:
        return value
    return None


def _sample_rate(stream: Mapping[str, Any]) -> int | None:
    rate = stream.get("sample_rate")
    return int(rate) if rate is not None and str(rate).isdigit() else None


def audio_output_options(probe: ProbeReport, settings: ProxySettings) -> list[str]:
    """The proxy's audio options for the streams `audio_maps` maps (pure): each one AAC stereo at
    ``settings.audio_bitrate``, resampled to `MAX_AUDIO_RATE` only when its own rate is above it,
    bit-exact; its language (`stream_language`) its only metadata (``-map_metadata -1`` of
    `ffmpeg.NO_METADATA` stops every stream tag of the source, titles and handler names among
    them, so the muxer writes its own "SoundHandler"); the first track the default one, the others
    not. ``-an`` when the source has no audio."""
    streams = probe.audio_streams
    if not streams:
        return ["-an"]
    argv = ["-c:a", "aac", "-b:a", settings.audio_bitrate, "-ac", "2"]
    for n, stream in enumerate(streams):
        rate = _sample_rate(stream)
        if rate is not None and rate > MAX_AUDIO_RATE:
            argv += [f"-ar:a:{n}", str(MAX_AUDIO_RATE)]
        language = stream_language(stream)
        if language is not None:
            argv += [f"-metadata:s:a:{n}", f"language={language}"]
        argv += [f"-disposition:a:{n}", "default" if n == 0 else "0"]
    return argv + ["-flags:a", "+bitexact"]


def proxy_output_options(dst: Path, probe: ProbeReport, settings: ProxySettings) -> list[str]:
    """The proxy's output options after its ``-map``s and its video filter (pure): H.264 with no
    SEI, every audio track AAC stereo (`audio_output_options`) or no audio, no subtitles, data or
    source metadata, a faststart MP4 at ``dst``. Shared by `proxy_argv` and the one-pass transcode."""
    argv = [
        "-c:v",
        "libx264",
        *ffmpeg.H264_NO_SEI,
        "-preset",
        settings.preset,
        "-crf",
        str(settings.crf),
        "-pix_fmt",
        "yuv420p",
    ]
    argv += audio_output_options(probe, settings)
    argv += [
        "-sn",
        "-dn",
        *ffmpeg.NO_METADATA,
        "-max_muxing_queue_size",
        "4096",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        tools.media_path(dst),
    ]
    return argv


def poster_time(duration: float | None, settings: ProxySettings) -> float:
    """Where the poster frame is taken, in seconds, given how long the video really lasts (as the
    decode check or the stream's own timestamps found it, never the header's word); 0 (first
    frame) for short or timeless clips."""
    if duration is None or duration < POSTER_MIN_DURATION:
        return 0.0
    fraction = min(max(settings.poster_at_fraction, 0.0), 1.0)
    return round(duration * fraction, 3)


def poster_argv(src: Path, dst: Path, probe: ProbeReport, settings: ProxySettings, *, at: float = 0.0) -> list[str]:
    """ffmpeg arguments for a one-frame JPEG poster taken ``at`` seconds in (pure). ``-ss`` before
    ``-i`` seeks the input (fast, and frame-accurate since ffmpeg decodes from the preceding
    keyframe)."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"]
    if at > 0:
        argv += ["-ss", f"{at:.3f}"]
    argv += [
        "-i",
        tools.media_path(src),
        "-map",
        f"0:{ffmpeg.video_index(probe)}",
        "-frames:v",
        "1",
        "-vf",
        _video_filter(probe, settings.max_height, POSTER_FORMAT),
        *poster_output_options(dst),
    ]
    return argv


def poster_output_options(dst: Path) -> list[str]:
    """The poster's output options after its frame selection and filters (pure): a JPEG with
    nothing of the source's metadata, at ``dst`` (each frame it gets replaces the last one)."""
    return [
        "-c:v",
        "mjpeg",
        "-q:v",
        "3",
        "-an",
        "-sn",
        "-dn",
        *ffmpeg.NO_METADATA,
        "-f",
        "image2",
        "-update",
        "1",
        tools.media_path(dst),
    ]


def make_proxy(
    src: Path, dst: Path, probe: ProbeReport, settings: ProxySettings, *, timeout: float | None = 6 * 3600
) -> Path:
    """Transcode the access proxy to ``dst`` (replaced atomically). Raises ToolError."""
    with ffmpeg.output(dst) as tmp:
        tools.run(proxy_argv(src, tmp, probe, settings), timeout=timeout)
    return Path(dst)


def measured_duration(src: Path, probe: ProbeReport, *, timeout: float | None = 600) -> float | None:
    """How long the source's video really lasts, from its packets' timestamps (a bounded read at
    both ends of the stream, `ffprobe.stream_span`), not from what the container header claims."""
    return ffprobe.stream_span(src, ffmpeg.video_index(probe), timeout=600 if timeout is None else min(timeout, 600))


def make_poster(
    src: Path,
    dst: Path,
    probe: ProbeReport,
    settings: ProxySettings,
    *,
    duration: float | None = None,
    timeout: float | None = 600,
) -> Path:
    """Grab the poster frame to ``dst`` (replaced atomically), ``settings.poster_at_fraction`` into
    ``duration`` (the video's real length; measured from the stream when not given). If the seek
    still lands past the last frame, falls back to the first frame. Raises ToolError."""
    if duration is None:
        duration = measured_duration(src, probe, timeout=timeout)
    with ffmpeg.output(dst) as tmp:
        at = poster_time(duration, settings)
        tools.run(poster_argv(src, tmp, probe, settings, at=at), timeout=timeout)
        if at > 0 and tmp.stat().st_size == 0:
            tools.run(poster_argv(src, tmp, probe, settings, at=0.0), timeout=timeout)
    return Path(dst)
