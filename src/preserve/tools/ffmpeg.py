"""Building blocks every ffmpeg run of preserve shares: the flags that keep source metadata out of
an output (container tags, frame side data, H.264 SEI), the choice of the video stream, the
staging of an output file, and reading the SEI units of a finished H.264 stream back. Side
effects: `output` writes (a temporary file beside the destination, renamed over it on success);
`sei_units` runs ffmpeg via tools.run and writes nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from preserve import tools
from preserve.core.errors import ToolError
from preserve.core.fs import atomic_target
from preserve.tools.ffprobe import ProbeReport

#: Metadata allow-list: nothing is copied from the source (global, stream or chapter metadata),
#: and bit-exact mode stops ffmpeg writing its version, the creation time and the JPEG comment.
NO_METADATA = ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact"]

#: The last filter of every video chain: deletes ALL side data of every frame (no ``type``), so
#: nothing a decoder attached to a source frame reaches an encoder: EIA-608/708 captions (A53_CC,
#: from H.264, HEVC and MPEG-2 user data), ICC profiles (PNG iCCP, JPEG APP2) with their free-text
#: description and copyright, unregistered user-data SEI, timecodes, HDR side data.
NO_SIDE_DATA = "sidedata=mode=delete"

#: For every H.264 output: libx264 must not write the captions it finds (its default is to), and
#: the SEI NAL units (type 6) are removed from the finished bitstream: caption SEI that got through
#: some other way, and x264's own user-data SEI with its settings text, build and thread count.
H264_NO_SEI = ["-a53cc", "0", "-bsf:v", "filter_units=remove_types=6"]


def video_index(probe: ProbeReport) -> int:
    """The absolute index of the source's real video stream (cover art does not count)."""
    index = probe.video_index
    if index is None:
        raise ValueError(
            "the source has no video stream (cover art does not count); "
            "check probe.has_video before asking for a proxy or poster"
        )
    return index


@contextlib.contextmanager
def output(dst: Path) -> Iterator[Path]:
    """A temporary file next to ``dst`` that becomes ``dst`` only if the block succeeds and
    ffmpeg wrote something, so a killed or failed transcode never leaves a plausible-looking
    output behind."""
    dst = Path(dst)
    with atomic_target(dst) as tmp:
        yield tmp
        if tmp.stat().st_size == 0:
            raise ToolError(f"ffmpeg produced an empty file for {dst.name}")


def sei_argv(path: Path, index: int) -> list[str]:
    """ffmpeg copying stream ``index`` (H.264, no decode) through a bitstream filter that passes
    only SEI NAL units (type 6) to stdout as raw data: empty output means the stream has none."""
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-i",
        tools.media_path(path),
        "-map",
        f"0:{index}",
        "-c",
        "copy",
        "-bsf:v",
        "filter_units=pass_types=6",
        "-f",
        "data",
        "pipe:1",
    ]


def sei_units(path: Path, index: int, *, timeout: float | None = 3600) -> bytes:
    """The SEI NAL units of an H.264 stream, as the bytes of its packets (length-prefixed in MP4),
    read through the whole stream without decoding it. Raises ToolError if ffmpeg fails."""
    return tools.run(sei_argv(path, index), timeout=timeout).stdout
