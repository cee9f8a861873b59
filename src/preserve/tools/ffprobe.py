"""ffprobe reports (format, streams, chapters) and what they say a file is; runs ffprobe via tools.run, writes nothing."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from preserve import tools
from preserve.core.errors import ToolError

Kind = Literal["video", "audio", "image", "subtitle", "none"]

#: demuxers that read text as "video" (ANSI art and friends): a README.nfo is not a film
TEXT_ART_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
#: demuxers for single pictures and picture formats; ``*_pipe`` are the image demuxers
IMAGE_FORMATS = frozenset({"image2", "image2pipe", "gif", "apng", "ico", "alias_pix", "brender_pix"})
#: codecs that are still-picture formats when they hold a single frame
IMAGE_CODECS = frozenset(
    {
        "mjpeg",
        "png",
        "apng",
        "bmp",
        "gif",
        "tiff",
        "webp",
        "jpeg2000",
        "jpegls",
        "ppm",
        "pgm",
        "pbm",
        "pam",
        "sgi",
        "targa",
        "dpx",
        "exr",
        "hdr",
        "pcx",
        "qoi",
        "xbm",
        "xpm",
        "xwd",
        "psd",
        "sunrast",
    }
)
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})


def probe_argv(path: Path) -> list[str]:
    """The ffprobe command line; the file goes behind ``file:`` so no name becomes an option."""
    return [
        "ffprobe",
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "-show_chapters",
        "-show_error",
        tools.media_path(path),
    ]


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _attached(stream: dict[str, Any]) -> bool:
    return bool((stream.get("disposition") or {}).get("attached_pic"))


def _is_still(stream: dict[str, Any], format_names: set[str]) -> bool:
    """A picture rather than moving images: an image demuxer, or an image codec with one frame."""
    if format_names & IMAGE_FORMATS or any(n.endswith("_pipe") for n in format_names):
        return True
    if stream.get("codec_name") in IMAGE_CODECS:
        frames = stream.get("nb_frames")
        return frames in (None, "", "0", "1", "N/A") and not _float(stream.get("duration"))
    return False


@dataclass(frozen=True)
class ProbeReport:
    """ffprobe's raw JSON plus the few facts the pipeline decides on. ``readable=False`` means
    ffprobe could not open the file at all; ``error`` then says why."""

    raw: dict[str, Any]
    readable: bool = True
    error: str = ""
    format_name: str = ""
    duration: float | None = None
    #: moving-picture streams only: no cover art, no still pictures, no text art
    video_streams: tuple[dict[str, Any], ...] = ()
    audio_streams: tuple[dict[str, Any], ...] = ()
    subtitle_streams: tuple[dict[str, Any], ...] = ()
    image_streams: tuple[dict[str, Any], ...] = ()
    attached_pictures: tuple[dict[str, Any], ...] = ()
    data_streams: tuple[dict[str, Any], ...] = ()  # codec_type data and attachment
    chapters: tuple[dict[str, Any], ...] = ()

    @property
    def has_video(self) -> bool:
        return bool(self.video_streams)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_streams)

    @property
    def has_subtitles(self) -> bool:
        return bool(self.subtitle_streams)

    @property
    def _picture(self) -> dict[str, Any]:
        if self.video_streams:
            return self.video_streams[0]
        return self.image_streams[0] if self.image_streams else {}

    @property
    def width(self) -> int | None:
        """Of the first video stream (of the first still picture if there is no video)."""
        w = self._picture.get("width")
        return int(w) if w else None

    @property
    def height(self) -> int | None:
        h = self._picture.get("height")
        return int(h) if h else None

    @property
    def video_codec(self) -> str | None:
        return self.video_streams[0].get("codec_name") if self.video_streams else None

    @property
    def audio_codec(self) -> str | None:
        return self.audio_streams[0].get("codec_name") if self.audio_streams else None

    @property
    def video_index(self) -> int | None:
        """Absolute stream index of the first real video stream (for ``-map 0:N``)."""
        return int(self.video_streams[0]["index"]) if self.video_streams else None

    @property
    def audio_index(self) -> int | None:
        return int(self.audio_streams[0]["index"]) if self.audio_streams else None

    @property
    def pix_fmt(self) -> str | None:
        return self.video_streams[0].get("pix_fmt") if self.video_streams else None

    @property
    def field_order(self) -> str | None:
        return self.video_streams[0].get("field_order") if self.video_streams else None

    @property
    def interlaced(self) -> bool:
        """True when the container/codec declares field order (tt, bb, tb, bt)."""
        return self.field_order in INTERLACED_FIELD_ORDERS

    @property
    def audio_sample_rate(self) -> int | None:
        rate = self.audio_streams[0].get("sample_rate") if self.audio_streams else None
        return int(rate) if rate and str(rate).isdigit() else None

    @property
    def tags(self) -> dict[str, str]:
        """Format-level (global) tags."""
        return dict((self.raw.get("format") or {}).get("tags") or {})

    @property
    def kind(self) -> Kind:
        """What the file is to a viewer: video wins over audio, audio over pictures and text."""
        if not self.readable or self.format_name in TEXT_AS_VIDEO_FORMATS:
            return "none"
        if self.has_video:
            return "video"
        if self.has_audio:
            return "audio"
        if self.image_streams:
            return "image"
        if self.subtitle_streams:
            return "subtitle"
        return "none"

    @property
    def is_media(self) -> bool:
        """Playable time-based media: video or audio with a positive duration."""
        return self.readable and (self.has_video or self.has_audio) and self.duration is not None and self.duration > 0


#: ffprobe renders some text files (.nfo, .asc) as an "ansi" video through the tty demuxer
TEXT_AS_VIDEO_FORMATS = frozenset({"tty"})


def parse(raw: dict[str, Any]) -> ProbeReport:
    """Interpret ffprobe's JSON (pure). A JSON holding ``error`` or no format is unreadable."""
    err = raw.get("error")
    fmt = raw.get("format")
    if err or not isinstance(fmt, dict):
        text = (err or {}).get("string", "") if isinstance(err, dict) else str(err or "")
        return ProbeReport(raw=raw, readable=False, error=text or "ffprobe found no container format")
    format_name = str(fmt.get("format_name") or "")
    names = set(format_name.split(","))
    streams = [s for s in raw.get("streams") or [] if isinstance(s, dict)]
    video, audio, subs, images, pics, data = [], [], [], [], [], []
    for s in streams:
        ctype = s.get("codec_type")
        if ctype == "video":
            if _attached(s):
                pics.append(s)
            elif names & TEXT_ART_FORMATS or s.get("codec_name") in TEXT_ART_CODECS:
                continue  # text rendered as pictures: neither video nor image
            elif _is_still(s, names):
                images.append(s)
            else:
                video.append(s)
        elif ctype == "audio":
            audio.append(s)
        elif ctype == "subtitle":
            subs.append(s)
        elif ctype in ("data", "attachment"):
            data.append(s)
    duration = _float(fmt.get("duration"))
    if duration is None:
        stream_durations = [d for d in (_float(s.get("duration")) for s in video + audio) if d]
        duration = max(stream_durations) if stream_durations else None
    return ProbeReport(
        raw=raw,
        readable=True,
        error="",
        format_name=format_name,
        duration=duration,
        video_streams=tuple(video),
        audio_streams=tuple(audio),
        subtitle_streams=tuple(subs),
        image_streams=tuple(images),
        attached_pictures=tuple(pics),
        data_streams=tuple(data),
        chapters=tuple(c for c in raw.get("chapters") or [] if isinstance(c, dict)),
    )


def probe(path: Path, *, timeout: float = 600) -> ProbeReport:
    """Run ffprobe. A file ffprobe cannot open is a finding (``readable=False``), not an error:
    the caller decides whether that matters (a PDF is fine, a .mp4 is not). Raises ToolError
    only when ffprobe itself cannot run, times out, or is killed."""
    argv = probe_argv(path)
    result = tools.run(argv, timeout=timeout, check=False)
    text = result.stdout.decode("utf-8", errors="replace")
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    if result.returncode < 0:
        raise ToolError(
            f"ffprobe was killed by signal {-result.returncode}",
            argv=argv,
            returncode=result.returncode,
            stderr=result.stderr,
        )
    if result.returncode != 0 or not raw:
        if not raw.get("error"):
            tail = " ".join(result.stderr.strip().splitlines()[-3:])
            raw = {
                **raw,
                "error": {
                    "code": result.returncode,
                    "string": tail or f"ffprobe exited with status {result.returncode}",
                },
            }
    return parse(raw)


# -- what the stream itself says, not the header ------------------------------------------------------

#: a time beyond any film (s): seeking there lands on the last keyframe of the stream
PAST_THE_END = 1_000_000_000


def stream_span_argv(path: Path, index: int) -> list[str]:
    """ffprobe listing the timestamps of stream ``index``'s first packet and of every packet from
    its last keyframe to the end (the seek past the end lands there): a bounded read of the real
    stream, no decode, whatever the container's header claims the duration is."""
    return [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        str(index),
        "-read_intervals",
        f"%+#1,{PAST_THE_END}%",
        "-show_entries",
        "packet=pts_time,duration_time",
        "-of",
        "csv=p=0",
        tools.media_path(path),
    ]


def parse_span(csv: str) -> float | None:
    """The stream's span (s) from ``stream_span_argv`` output (pure): the end of its last packet
    (pts + duration) less the pts of its first one; None if no packet had a timestamp."""
    starts: list[float] = []
    ends: list[float] = []
    for line in csv.splitlines():
        cells = line.split(",")
        pts = _float(cells[0]) if cells else None
        if pts is None:
            continue
        duration = _float(cells[1]) if len(cells) > 1 else None
        starts.append(pts)
        ends.append(pts + (duration or 0.0))
    if not starts:
        return None
    span = max(ends) - min(starts)
    return span if span > 0 else None


def stream_span(path: Path, index: int, *, timeout: float = 600) -> float | None:
    """How long stream ``index`` really lasts, from its packets' timestamps (see
    `stream_span_argv`); None when ffprobe finds no timestamped packet. Raises ToolError only when
    ffprobe cannot run or is killed."""
    argv = stream_span_argv(path, index)
    result = tools.run(argv, timeout=timeout, check=False)
    if result.returncode < 0:
        raise ToolError(f"ffprobe was killed by signal {-result.returncode}", argv=argv, returncode=result.returncode)
    return parse_span(result.stdout.decode("utf-8", errors="replace"))


def frames_argv(path: Path, index: int, count: int) -> list[str]:
    """ffprobe decoding the first ``count`` frames of stream ``index`` and reporting each frame
    (with its side data: captions, ICC profiles, user-data SEI) and the stream as seen after
    decoding them (``closed_captions`` is only known once frames were decoded)."""
    return [
        "ffprobe",
        "-v",
        "error",
        "-print_format",
        "json",
        "-select_streams",
        str(index),
        "-read_intervals",
        f"%+#{max(1, count)}",
        "-show_frames",
        "-show_streams",
        tools.media_path(path),
    ]


@dataclass(frozen=True)
class FrameReport:
    """What decoding the first frames of one stream showed: the frames (ffprobe's dicts) and the
    stream as ffprobe described it after decoding them."""

    frames: tuple[dict[str, Any], ...]
    stream: dict[str, Any]
    error: str = ""

    @property
    def closed_captions(self) -> bool:
        return bool(self.stream.get("closed_captions"))

    def side_data_types(self) -> list[str]:
        """The type of every side data item on every frame, in order."""
        return [
            str(sd.get("side_data_type", "?"))
            for frame in self.frames
            for sd in frame.get("side_data_list") or []
            if isinstance(sd, dict)
        ]


def probe_frames(path: Path, index: int, *, count: int = 100, timeout: float = 600) -> FrameReport:
    """Decode the first ``count`` frames of stream ``index`` (see `frames_argv`). Raises ToolError
    only when ffprobe cannot run or is killed; a file it cannot decode has ``error``."""
    argv = frames_argv(path, index, count)
    result = tools.run(argv, timeout=timeout, check=False)
    if result.returncode < 0:
        raise ToolError(f"ffprobe was killed by signal {-result.returncode}", argv=argv, returncode=result.returncode)
    try:
        raw = json.loads(result.stdout.decode("utf-8", errors="replace") or "{}")
    except json.JSONDecodeError:
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    frames = tuple(f for f in raw.get("frames") or [] if isinstance(f, dict))
    streams = [s for s in raw.get("streams") or [] if isinstance(s, dict)]
    error = "" if result.returncode == 0 else (" ".join(result.stderr.strip().splitlines()[-3:]) or "ffprobe failed")
    return FrameReport(frames=frames, stream=streams[0] if streams else {}, error=error)
