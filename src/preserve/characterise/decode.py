"""Full decode check: decodes every video and audio stream with ffmpeg (via tools.run) into the null
muxer, counts the errors, and reports how long the decoded film really is (ffmpeg's progress
report), whatever its header claims; writes nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.core.errors import ToolError

#: how many error lines a report keeps (the count stays exact)
MAX_STORED_ERRORS = 50
_REPEATED = re.compile(r"^\s*Last message repeated (\d+) times?\s*$")
#: seconds between two progress reports on stdout (the last one, at the end, is what counts); long,
#: so that a six-hour decode does not fill memory with them
PROGRESS_PERIOD = 60


@dataclass(frozen=True)
class DecodeReport:
    """A finding, not a failure: ``ok`` is False when ffmpeg logged any error or exited non-zero."""

    ok: bool
    error_count: int
    errors: list[str] = field(default_factory=list)  # at most MAX_STORED_ERRORS lines
    argv: list[str] = field(default_factory=list)
    returncode: int = 0
    #: how long the decoded streams last (s): the end of the last decoded frame or sample, from
    #: ffmpeg's final progress report; None when nothing was decoded
    duration: float | None = None
    #: video frames decoded (of the first video stream); None when there was no video
    video_frames: int | None = None


def decode_argv(path: Path) -> list[str]:
    """ffmpeg decoding all video and audio into the null muxer. No ``-xerror``: it would stop at
    the first error, and we want to know how many there are. ``-progress pipe:1`` writes
    key=value progress reports to stdout (the final one says how much was decoded); at ``-v error``
    nothing but errors reaches stderr."""
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-progress",
        "pipe:1",
        "-stats_period",
        str(PROGRESS_PERIOD),
        "-i",
        tools.media_path(path),
        "-map",
        "0:v?",
        "-map",
        "0:a?",
        "-f",
        "null",
        "-",
    ]


def count_errors(stderr: str) -> tuple[int, list[str]]:
    """Error lines on stderr (pure). ffmpeg folds identical consecutive lines into
    "Last message repeated N times", which counts as N more errors."""
    count = 0
    kept: list[str] = []
    for line in stderr.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _REPEATED.match(line)
        if m:
            count += int(m.group(1))
            continue
        count += 1
        if len(kept) < MAX_STORED_ERRORS:
            kept.append(line)
    return count, kept


def parse_progress(stdout: str) -> tuple[float | None, int | None]:
    """(decoded duration in s, video frames) from ffmpeg's ``-progress`` output (pure): the values
    of its last report. ``out_time_us`` is the end time of the output, ``frame`` the video frames."""
    last: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            last[key] = value.strip()
    duration: float | None = None
    micro = last.get("out_time_us", "")
    if micro.lstrip("-").isdigit() and int(micro) > 0:
        duration = int(micro) / 1_000_000
    frame = last.get("frame", "")
    frames = int(frame) if frame.isdigit() and int(frame) > 0 else None
    return duration, frames


def decode_check(path: Path, *, timeout: float | None = 6 * 3600) -> DecodeReport:
    """Decode the whole file. Returns a report; raises ToolError only when ffmpeg cannot run,
    times out, or is killed by a signal (then the file's state is unknown, not bad)."""
    argv = decode_argv(path)
    result = tools.run(argv, timeout=timeout, check=False)
    if result.returncode < 0:
        raise ToolError(
            f"ffmpeg was killed by signal {-result.returncode} during a decode check",
            argv=argv,
            returncode=result.returncode,
            stderr=result.stderr[-4000:],
        )
    count, errors = count_errors(result.stderr)
    if result.returncode != 0 and count == 0:
        count, errors = 1, [f"ffmpeg exited with status {result.returncode}"]
    duration, frames = parse_progress(result.stdout.decode("utf-8", errors="replace"))
    return DecodeReport(
        ok=result.returncode == 0 and count == 0,
        error_count=count,
        errors=errors,
        argv=argv,
        returncode=result.returncode,
        duration=duration,
        video_frames=frames,
    )
