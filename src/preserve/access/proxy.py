"""Access proxy (H.264/AAC MP4) and poster (JPEG) from a source film, carrying nothing of the
source but its pictures and sound: no container metadata, no frame side data (captions, ICC
profiles), no SEI in the H.264 stream. Side effects: runs ffmpeg (and, for a poster whose seek
point is not given, ffprobe) via tools.run and writes only the destination file (through a
temporary name in its directory, `preserve.tools.ffmpeg.output`)."""

from __future__ import annotations

from pathlib import Path

from preserve import tools
from preserve.config import ProxySettings
from preserve.tools import ffmpeg, ffprobe
from preserve.tools.ffprobe import ProbeReport

#: below this duration (s) a poster is the first frame; seeking into a blink is pointless
POSTER_MIN_DURATION = 1.0
#: highest audio sample rate passed through; ffmpeg's AAC encoder stops at 96 kHz
MAX_AUDIO_RATE = 48000


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
    the first audio stream by absolute index, so cover art, subtitles, data tracks (timed GPS),
    attachments and chapters are never carried over."""
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
    if probe.audio_index is not None:
        argv += ["-map", f"0:{probe.audio_index}"]
    argv += ["-vf", _video_filter(probe, settings.max_height)]
    return argv + proxy_output_options(dst, probe, settings)


def proxy_output_options(dst: Path, probe: ProbeReport, settings: ProxySettings) -> list[str]:
    """The proxy's output options after its ``-map``s and its video filter (pure): H.264 with no
    SEI, AAC stereo (at most `MAX_AUDIO_RATE`) or no audio, no subtitles, data or source metadata,
    a faststart MP4 at ``dst``. Shared by `proxy_argv` and the one-pass transcode."""
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
    if probe.audio_index is not None:
        argv += ["-c:a", "aac", "-b:a", settings.audio_bitrate, "-ac", "2"]
        rate = probe.audio_sample_rate
        if rate is not None and rate > MAX_AUDIO_RATE:
            argv += ["-ar", str(MAX_AUDIO_RATE)]
        argv += ["-flags:a", "+bitexact"]
    else:
        argv += ["-an"]
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
