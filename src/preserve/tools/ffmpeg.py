"""Building blocks every ffmpeg run of preserve shares: the flags that keep source metadata out of
an output, the choice of the video stream, and the staging of an output file. Side effects: only
`output` writes (a temporary file beside the destination, renamed over it on success)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from preserve.core.errors import ToolError
from preserve.core.fs import atomic_target
from preserve.tools.ffprobe import ProbeReport

#: Metadata allow-list: nothing is copied from the source (global, stream or chapter metadata),
#: and bit-exact mode stops ffmpeg writing its version, the creation time and the JPEG comment.
NO_METADATA = ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact"]


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
