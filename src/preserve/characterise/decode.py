"""Full decode check: decodes every video and audio stream with ffmpeg (via tools.run) into the null
muxer, counts the decoder's errors apart from the demuxer's and muxer's timestamp complaints, and
reports how long the decoded film really is (ffmpeg's progress reports, read as they come),
whatever its header claims; writes nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.core.errors import ToolError
from preserve.core.progress import MediaProgress
from preserve.tools.ffprogress import ProgressReader

#: how many error lines a report keeps (the count stays exact)
MAX_STORED_ERRORS = 50
_REPEATED = re.compile(r"^\s*Last message repeated (\d+) times?\s*$")
#: the context prefix ffmpeg puts before a library's message: "[mpegts @ 0x55d9305985c0] "
_CONTEXT = re.compile(r"^(?:\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*)+")
#: the level tag ``-v +level+...`` puts before a message: "[warning] ", "[error] "
_LEVEL = re.compile(r"^\[(panic|fatal|error|warning|info|verbose|debug|trace)\]\s*")
_ERROR_LEVELS = {"panic", "fatal", "error"}
#: ffmpeg's ``-v`` for a decode: every message tagged with its level (so warnings can be told
#: from errors), repeated lines still folded into "Last message repeated N times", and warnings
#: shown -- for the timestamp complaints ffmpeg itself makes at warning level ("Non-monotonous
#: DTS ... changing to", "DTS ... out of order") when it fixes timestamps for a real muxer.
#: Other warnings are not findings (they were never shown at ``-v error``); see classify_stderr.
LOG_LEVEL = "+level+warning"
_N = r"-?\d+"  # an int64 timestamp as ffmpeg prints it with %ld
_TS = r"\S+"  # a timestamp as av_ts2str prints it: a number or NOPTS
#: timestamp complaints of ffmpeg 5.1's demuxers, muxers, filters and ffmpeg itself (their format
#: strings, as found in its binaries), matched on the whole message after the context prefix and
#: level tag, so that a file name quoted in a line can never make it one. None of them means a
#: picture or a sound was lost: the decoder decoded what it was given. Any other error on stderr
#: -- corrupt frames, concealment, CRC mismatches, missing references, invalid NAL units, and any
#: error line not listed here -- is a decoder error (see classify_stderr).
TIMESTAMP_MESSAGES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p + r"\s*$")
    for p in (
        # libavformat (mux.c, demux.c, mpegts.c, mov.c, ...)
        rf"Application provided invalid, non monotonically increasing dts to muxer in stream \d+: {_TS} >= {_TS}",
        rf"Non-increasing DTS in stream \d+: packet \d+ with DTS {_N}, packet \d+ with DTS {_N}",
        rf"DTS discontinuity in stream \d+: packet \d+ with DTS {_N}, packet \d+ with DTS {_N}",
        rf"DTS {_N} < {_N} out of order",
        rf"Invalid timestamps stream=\d+, pts={_TS}, dts={_TS}, size=\d+",
        rf"invalid dts/pts combination {_N}",
        rf"invalid timestamps {_N} {_N}",
        rf"pts \({_TS}\) < dts \({_TS}\) in stream \d+",
        r"pts has no value",
        r"Timestamps are unset in a packet for stream \d+\..*",
        r"Can't write packet with unknown timestamp",
        rf"Packet with invalid duration {_N} in stream \d+",
        rf"Packet duration: {_N} / dts: {_N} is out of range",
        rf"Packets poorly interleaved, failed to avoid negative timestamp {_TS} in stream \d+\.",
        r"Negative cts, previous timestamps might be wrong\.",
        r"Packets are not in the proper order with respect to DTS",
        r"Forcing DTS/PTS to be unset for a non-trustworthy PES packet for PID \d+ as PCR hasn't been received yet\.",
        r"dts < pcr, TS is invalid",
        # fftools/ffmpeg.c, ffmpeg_mux.c
        rf"Non-monotonous DTS in output stream \d+:\d+; previous: {_N}, current: {_N}; changing to {_N}\. "
        r"This may result in incorrect timestamps in the output file\.",
        rf"Invalid DTS: {_N} PTS: {_N} in output stream \d+:\d+, replacing by guess",
        r"Past duration [-\d.]+ too large",
        rf"DTS {_N}, next:{_N} st:\d+ invalid dropping",
        rf"PTS {_N}, next:{_N} invalid dropping st:\d+",
        rf"timestamp discontinuity for stream #\d+:\d+ \(id=\d+, type=\w+\): {_N}, new offset= ?{_N}",
        rf"Inter stream timestamp discontinuity {_N}, new offset= ?{_N}",
        r"cur_dts is invalid st:\d+ .*\(this is harmless if it occurs once at the start per stream\)",
        r"Overriding packet duration by frame rate, this should not happen",
        # libavfilter, libavcodec (frame timestamps, not the pictures)
        r"Discarding initial frame\(s\) with no timestamp\.",
        r"Ignoring frame without PTS\.",
        r"Ignoring frame with same PTS\.",
        r"duplicate input PTS detected",
        r"PTS discontinuity\.",
        r"EOF timestamp not reliable",
        rf"Warning: AVFrame\.pts=\? trying to guess \({_N}\)",
        r"Invalid pkt_timebase, passing timestamps as-is\.",
        rf"Invalid pts \({_N}\) <= last \({_N}\)",
    )
)
#: seconds between two progress reports on stdout (the last one, at the end, is the decoded
#: duration). They are read as they come and never kept, so a short period costs nothing.
PROGRESS_PERIOD = 1


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
    #: demuxer/muxer timestamp complaints (not decoder errors; they do not make ``ok`` False)
    timestamp_warnings: int = 0
    timestamp_lines: list[str] = field(default_factory=list)  # at most MAX_STORED_ERRORS lines


@dataclass(frozen=True)
class StderrFindings:
    """ffmpeg's stderr sorted (exact counts; at most MAX_STORED_ERRORS lines kept of each kind)."""

    decoder_errors: int = 0
    decoder_lines: list[str] = field(default_factory=list)
    timestamp_warnings: int = 0
    timestamp_lines: list[str] = field(default_factory=list)


def decode_argv(path: Path) -> list[str]:
    """ffmpeg decoding all video and audio into the null muxer. No ``-xerror``: it would stop at
    the first error, and we want to know how many there are. ``-progress pipe:1`` writes
    key=value progress reports to stdout (the final one says how much was decoded); at
    ``-v LOG_LEVEL`` stderr holds errors and warnings, each tagged with its level."""
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        LOG_LEVEL,
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


def _message(line: str) -> tuple[str, str]:
    """(level, message) of one stderr line: the context prefix and level tag taken off; the level
    is "" when the line has no tag (ffmpeg run without ``+level``)."""
    message = _CONTEXT.sub("", line.strip(), count=1)
    m = _LEVEL.match(message)
    return (m.group(1), message[m.end() :]) if m else ("", message)


def is_timestamp_complaint(line: str) -> bool:
    """Whether one stderr line is a demuxer's/muxer's timestamp complaint (pure)."""
    return any(p.match(_message(line)[1]) for p in TIMESTAMP_MESSAGES)


_DECODER, _TIMESTAMP, _IGNORED = "decoder", "timestamp", "ignored"


def _kind(line: str) -> str:
    level, message = _message(line)
    if any(p.match(message) for p in TIMESTAMP_MESSAGES):
        return _TIMESTAMP
    if level and level not in _ERROR_LEVELS:
        return _IGNORED
    return _DECODER


def classify_stderr(stderr: str) -> StderrFindings:
    """ffmpeg's stderr sorted into decoder errors and timestamp complaints (pure). A timestamp
    complaint is one of TIMESTAMP_MESSAGES at any level; any other line tagged as a warning (or
    below: ``-v LOG_LEVEL``) is not a finding and is skipped, as ``-v error`` never showed it; any
    other line -- tagged error, fatal or panic, or untagged (``-v error``) -- is a decoder error,
    unknown ones included. "Last message repeated N times" counts N more of the kind of the line
    it repeats (a decoder error when it repeats nothing)."""
    counts = {_DECODER: 0, _TIMESTAMP: 0, _IGNORED: 0}
    kept: dict[str, list[str]] = {_DECODER: [], _TIMESTAMP: [], _IGNORED: []}
    last_kind = _DECODER
    for line in stderr.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _REPEATED.match(line)
        if m:
            counts[last_kind] += int(m.group(1))
            continue
        last_kind = _kind(line)
        counts[last_kind] += 1
        if last_kind != _IGNORED and len(kept[last_kind]) < MAX_STORED_ERRORS:
            kept[last_kind].append(line)
    return StderrFindings(
        decoder_errors=counts[_DECODER],
        decoder_lines=kept[_DECODER],
        timestamp_warnings=counts[_TIMESTAMP],
        timestamp_lines=kept[_TIMESTAMP],
    )


def parse_progress(stdout: str) -> tuple[float | None, int | None]:
    """(decoded duration in s, video frames) from ffmpeg's ``-progress`` output (pure): the values
    of its last report. ``out_time_us`` is the end time of the output, ``frame`` the video frames."""
    reader = ProgressReader(None, None)
    reader.feed(stdout.encode("utf-8"))
    reader.finish()
    return reader.position, reader.frames


def report_from(
    argv: list[str], returncode: int, stderr: str, position: float | None, frames: int | None
) -> DecodeReport:
    """The verdict of one ffmpeg decode run from its exit status, its stderr and its last progress
    report (``position`` s decoded, video ``frames``). Raises ToolError when ffmpeg was killed by a
    signal: then the file's state is unknown, not bad. ``ok`` counts the decoder's errors and the
    exit status only; timestamp complaints are reported apart."""
    if returncode < 0:
        raise ToolError(
            f"ffmpeg was killed by signal {-returncode} during a decode check",
            argv=argv,
            returncode=returncode,
            stderr=stderr[-4000:],
        )
    found = classify_stderr(stderr)
    count, errors = found.decoder_errors, found.decoder_lines
    if returncode != 0 and count == 0:
        count, errors = 1, [f"ffmpeg exited with status {returncode}"]
    return DecodeReport(
        ok=returncode == 0 and count == 0,
        error_count=count,
        errors=errors,
        argv=list(argv),
        returncode=returncode,
        duration=position,
        video_frames=frames,
        timestamp_warnings=found.timestamp_warnings,
        timestamp_lines=found.timestamp_lines,
    )


def decode_check(
    path: Path,
    *,
    timeout: float | None = 6 * 3600,
    progress: MediaProgress | None = None,
    duration: float | None = None,
) -> DecodeReport:
    """Decode the whole file. Returns a report; raises ToolError only when ffmpeg cannot run,
    times out, or is killed by a signal (then the file's state is unknown, not bad). ffmpeg's
    progress reports are read as they come (never accumulated) and passed to ``progress`` with
    ``duration`` (the film's expected length, s, if known)."""
    argv = decode_argv(path)
    reader = ProgressReader(duration, progress)
    result = tools.run(argv, timeout=timeout, check=False, on_stdout_line=reader.feed)
    reader.finish()
    return report_from(argv, result.returncode, result.stderr, reader.position, reader.frames)
