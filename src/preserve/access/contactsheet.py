"""Contact sheet for cataloguers: one JPEG grid of N frames spread evenly over the film, built with
the same metadata-free discipline as the proxy and poster (nothing copied from the source, no
frame side data such as ICC profiles, bit-exact mode). Runs ffmpeg (and, when the duration is not
given, ffprobe) via tools.run; writes only the destination file (via a temporary name).

Each frame is reached by its own input seek (``-ss`` before ``-i``), so a two-hour film costs N
short decodes, not a full one. The seek points come from how long the video really lasts (the
decode check's finding, or the stream's own timestamps), never from the container header alone:
a header claiming 136 years would send every seek past the end."""

from __future__ import annotations

import math
from pathlib import Path

from preserve import tools
from preserve.access.proxy import deinterlace_filters, measured_duration
from preserve.tools import ffmpeg
from preserve.tools.ffprobe import ProbeReport


def frame_times(duration: float | None, frames: int) -> list[float]:
    """Seek points (s): the middle of N equal parts of the film; the first frame if it has no
    known duration."""
    if not duration or duration <= 0:
        return [0.0]
    return [round(duration * (i + 0.5) / frames, 3) for i in range(frames)]


def contact_sheet_argv(
    src: Path,
    dst: Path,
    probe: ProbeReport,
    *,
    duration: float | None,
    frames: int = 12,
    columns: int = 4,
    tile_width: int = 320,
) -> list[str]:
    """ffmpeg arguments (pure) for N frames over ``duration`` seconds (the real length; None: the
    first frame only). Deinterlaces when the source declares fields, squares the pixels, scales
    every tile to ``tile_width`` (even height), deletes every frame's side data, and tiles them in
    ``columns``."""
    index = ffmpeg.video_index(probe)
    times = frame_times(duration, frames)
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"]
    for t in times:
        if t > 0:
            argv += ["-ss", f"{t:.3f}"]
        argv += ["-i", tools.media_path(src)]
    prep = "".join(f + "," for f in deinterlace_filters(probe))
    chains = [
        f"[{i}:{index}]trim=end_frame=1,setpts=PTS-STARTPTS,{prep}{tile_filters(tile_width)}[f{i}]"
        for i in range(len(times))
    ]
    joined = "".join(f"[f{i}]" for i in range(len(times)))
    graph = ";".join(chains) + f";{joined}concat=n={len(times)}:v=1:a=0,{grid_filters(len(times), columns)}[sheet]"
    argv += ["-filter_complex", graph, "-map", "[sheet]", "-frames:v", "1", *sheet_output_options(dst)]
    return argv


def tile_filters(tile_width: int) -> str:
    """One tile's chain after its frame is chosen (and deinterlaced): square pixels, scaled to
    ``tile_width`` (even) with an even height, full-range 4:2:0, every frame's side data deleted."""
    width = max(2, tile_width // 2 * 2)
    return f"scale=w={width}:h='max(2,trunc(ow/dar/2)*2)',setsar=1,format=yuvj420p,{ffmpeg.NO_SIDE_DATA}"


def grid_filters(tiles: int, columns: int) -> str:
    """The tiles, in order, laid out in ``columns`` (fewer when there are fewer tiles), then the
    side data deleted again."""
    rows = math.ceil(tiles / max(1, columns))
    cols = min(columns, tiles)
    return f"tile={cols}x{rows}:padding=4:margin=4,{ffmpeg.NO_SIDE_DATA}"


def sheet_output_options(dst: Path) -> list[str]:
    """The contact sheet's output options (pure): a JPEG with nothing of the source's metadata."""
    return [
        "-c:v",
        "mjpeg",
        "-q:v",
        "4",
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


def make_contact_sheet(
    src: Path,
    dst: Path,
    probe: ProbeReport,
    *,
    duration: float | None = None,
    frames: int = 12,
    columns: int = 4,
    tile_width: int = 320,
    timeout: float | None = 1800,
) -> Path:
    """Write the contact sheet to ``dst`` (replaced atomically), its frames spread over
    ``duration`` (the video's real length; measured from the stream when not given). Raises
    ToolError."""
    if duration is None:
        duration = measured_duration(src, probe, timeout=timeout)
    with ffmpeg.output(dst) as tmp:
        tools.run(
            contact_sheet_argv(
                src, tmp, probe, duration=duration, frames=frames, columns=columns, tile_width=tile_width
            ),
            timeout=timeout,
        )
    return Path(dst)
