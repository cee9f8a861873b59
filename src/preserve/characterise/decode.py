"""Full decode check: decodes every video and audio stream with ffmpeg (via tools.run) into the null
muxer, counts the decoder's errors apart from the demuxer's and muxer's timestamp complaints (its
stderr sorted line by line as it comes, in bounded memory), and reports how long the decoded film
really is (ffmpeg's progress reports, read as they come), whatever its header claims; writes nothing."""

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
#: Other warnings are not findings (they were never shown at ``-v error``); see StderrClassifier.
LOG_LEVEL = "+level+warning"
_N = r"-?\d+"  # an int64 timestamp as ffmpeg prints it with %ld
_TS = r"\S+"  # a timestamp as av_ts2str prints it: a number or NOPTS
#: timestamp complaints of ffmpeg 5.1's demuxers, muxers, filters and ffmpeg itself (their format
#: strings, as found in its binaries), matched on the whole message after the context prefix and
#: level tag, so that a file name quoted in a line can never make it one. None of them means a
#: picture or a sound was lost: the decoder decoded what it was given. Any other error on stderr
#: -- corrupt frames, concealment, CRC mismatches, missing references, invalid NAL units, and any
#: error line not listed here -- is a decoder error (see StderrClassifier).
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
        rf"failed to avoid negative pts {_TS} in stream \d+\.",
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
#: any of TIMESTAMP_MESSAGES, in one expression (one match per line, not one per message)
_TIMESTAMP_ANY = re.compile("|".join(f"(?:{p.pattern})" for p in TIMESTAMP_MESSAGES))
#: warnings that are a decoder's finding all the same: ffmpeg's own word that a decoder returned a
#: frame it marked damaged (fftools/ffmpeg.c, at warning level unless ``-xerror``): "file:/x.mp4:
#: corrupt decoded frame in stream 0". Its sibling "corrupt input packet" (the demuxer's flag on a
#: packet, e.g. an MPEG-TS continuity counter jumping where segments were joined) stays skipped.
DECODER_WARNINGS: tuple[re.Pattern[str], ...] = (re.compile(r".*: corrupt decoded frame in stream \d+\s*$"),)
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
    return _TIMESTAMP_ANY.match(_message(line)[1]) is not None


_DECODER, _TIMESTAMP, _IGNORED = "decoder", "timestamp", "ignored"


def _kind(level: str, message: str) -> str:
    if any(p.match(message) for p in DECODER_WARNINGS):
        return _DECODER
    if _TIMESTAMP_ANY.match(message):
        return _TIMESTAMP
    if level and level not in _ERROR_LEVELS:
        return _IGNORED
    return _DECODER


class StderrClassifier:
    """ffmpeg's stderr sorted as it comes, line by line (``feed`` fits ``tools.run(on_stderr_line=...)``),
    into decoder errors and timestamp complaints; `findings` says what was found so far. Memory
    stays bounded however much ffmpeg prints: exact counts, and at most MAX_STORED_ERRORS lines
    kept of each kind. Not thread-safe: one run's stderr, fed from one thread.

    The rules (pure): a timestamp complaint is one of TIMESTAMP_MESSAGES at any level; one of
    DECODER_WARNINGS is a decoder error at any level; any other message tagged as a warning (or
    below: ``-v LOG_LEVEL``) is not a finding and is skipped, as ``-v error`` never showed it; any
    other message -- tagged error, fatal or panic, or untagged (``-v error``) -- is a decoder
    error, unknown ones included. "Last message repeated N times" counts N more of the kind of the
    message it repeats (a decoder error when it repeats nothing). Once a level-tagged line has been
    read, an untagged line without a context prefix is the next line of that message (ffmpeg puts
    the tags before a message's first line only: "Packets poorly interleaved ...\nTry
    -max_interleave_delta 0 ..."): it has the kind of the message it continues and is neither
    counted nor kept on its own. An untagged line with no tagged line before it stays a decoder
    error (conservative)."""

    def __init__(self) -> None:
        self._counts = {_DECODER: 0, _TIMESTAMP: 0, _IGNORED: 0}
        self._kept: dict[str, list[str]] = {_DECODER: [], _TIMESTAMP: [], _IGNORED: []}
        #: the kind of the last message (what a repeat counts to)
        self._last = _DECODER
        #: the last line read was (part of) a level-tagged message: an untagged line continues it
        self._in_tagged = False
        #: non-empty lines read, continuations and repeats included
        self.lines = 0

    def feed(self, data: bytes) -> None:
        """One line of ffmpeg's stderr (with or without its newline; several lines at once work too)."""
        self.feed_text(data.decode("utf-8", errors="replace"))

    def feed_text(self, text: str) -> None:
        """Lines of ffmpeg's stderr as text."""
        for raw in text.splitlines():
            self._line(raw.strip())

    def _line(self, line: str) -> None:
        if not line:
            return
        self.lines += 1
        m = _REPEATED.match(line)
        if m:
            self._counts[self._last] += int(m.group(1))
            self._in_tagged = False  # ffmpeg prints the next message's first line, tagged, after it
            return
        context = _CONTEXT.match(line)
        level, message = _message(line)
        if not level and context is None and self._in_tagged:
            return  # the next line of the message before it: already counted, with its kind
        self._in_tagged = bool(level)
        self._last = kind = _kind(level, message)
        self._counts[kind] += 1
        if kind != _IGNORED and len(self._kept[kind]) < MAX_STORED_ERRORS:
            self._kept[kind].append(line)

    def findings(self) -> StderrFindings:
        """What was found so far (exact counts; the lines kept)."""
        return StderrFindings(
            decoder_errors=self._counts[_DECODER],
            decoder_lines=list(self._kept[_DECODER]),
            timestamp_warnings=self._counts[_TIMESTAMP],
            timestamp_lines=list(self._kept[_TIMESTAMP]),
        )


def classify_stderr(stderr: str) -> StderrFindings:
    """ffmpeg's stderr sorted into decoder errors and timestamp complaints (pure), by the rules of
    `StderrClassifier`."""
    classifier = StderrClassifier()
    classifier.feed_text(stderr)
    return classifier.findings()


def parse_progress(stdout: str) -> tuple[float | None, int | None]:
    """(decoded duration in s, video frames) from ffmpeg's ``-progress`` output (pure): the values
    of its last report. ``out_time_us`` is the end time of the output, ``frame`` the video frames."""
    reader = ProgressReader(None, None)
    reader.feed(stdout.encode("utf-8"))
    reader.finish()
    return reader.position, reader.frames


def report_from(
    argv: list[str],
    returncode: int,
    stderr: str,
    position: float | None,
    frames: int | None,
    findings: StderrFindings | None = None,
) -> DecodeReport:
    """The verdict of one ffmpeg decode run from its exit status, its stderr and its last progress
    report (``position`` s decoded, video ``frames``). ``findings``: its stderr already sorted as it
    came (`StderrClassifier`); ``stderr`` is then only the tail quoted in an error. Raises ToolError
    when ffmpeg was killed by a signal: then the file's state is unknown, not bad. ``ok`` counts the
    decoder's errors and the exit status only; timestamp complaints are reported apart."""
    if returncode < 0:
        raise ToolError(
            f"ffmpeg was killed by signal {-returncode} during a decode check",
            argv=argv,
            returncode=returncode,
            stderr=stderr[-4000:],
        )
    found = findings if findings is not None else classify_stderr(stderr)
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
    ``duration`` (the film's expected length, s, if known); its stderr is sorted as it comes
    (`StderrClassifier`), so memory stays bounded whatever the film makes ffmpeg print."""
    argv = decode_argv(path)
    reader, classifier = ProgressReader(duration, progress), StderrClassifier()
    result = tools.run(argv, timeout=timeout, check=False, on_stdout_line=reader.feed, on_stderr_line=classifier.feed)
    reader.finish()
    return report_from(
        argv, result.returncode, result.stderr, reader.position, reader.frames, findings=classifier.findings()
    )
