"""ffmpeg's ``-progress`` reports read as they come: key=value lines in blocks, each ended by a
``progress=continue`` (or ``progress=end``) line. Pure parsing; side effects: whatever the listener
does (it is called once per report, and its exceptions are swallowed: progress is decoration and
must never fail the work). The listener runs on the thread that reads ffmpeg's stdout: while it
runs, ffmpeg's next report waits, and once the pipe is full ffmpeg itself waits, so a listener
that talks to a server hands the report to a thread of its own (flows' MediaProgressArtifact)."""

from __future__ import annotations

from preserve.core.progress import MediaProgress


def _integer(value: str | None) -> int | None:
    """A value such as ``out_time_us=-23000`` or ``frame=50`` as an int; None for "N/A", garbage
    or nothing."""
    if value is None:
        return None
    value = value.strip()
    digits = value[1:] if value[:1] in "+-" else value
    return int(value) if digits.isdigit() else None


def _speed(value: str | None) -> float | None:
    """``speed=1.23x`` (ffmpeg pads it: ``speed= 211x``) as 1.23; None for "N/A" or garbage."""
    if value is None:
        return None
    value = value.strip().removesuffix("x").strip()
    try:
        speed = float(value)
    except ValueError:
        return None
    return speed if 0 <= speed < float("inf") else None  # NaN fails both comparisons


class ProgressReader:
    """Reads one ffmpeg run's ``-progress`` output, fed line by line (``feed`` fits
    ``tools.run(on_stdout_line=...)``). After each report: ``position`` (s: the end of the output
    so far, from ``out_time_us``; None when nothing was decoded, i.e. N/A, zero or negative),
    ``frames`` (video frames; None when none) and ``speed`` (x real time; None when unknown); and
    the listener is called with (position or 0, duration or 0, speed). A block cut off before its
    ``progress=`` line is not a report. Memory stays constant however long the run."""

    def __init__(self, duration: float | None, listener: MediaProgress | None) -> None:
        self.duration = duration
        self.listener = listener
        self.position: float | None = None
        self.frames: int | None = None
        self.speed: float | None = None
        #: reports read (``progress=`` lines)
        self.reports = 0
        #: True once ffmpeg said ``progress=end``
        self.ended = False
        self._block: dict[str, str] = {}
        self._partial = b""

    def feed(self, data: bytes) -> None:
        """One line of ffmpeg's stdout (with or without its newline). Several lines at once, or a
        line in pieces, work too: a piece without a newline waits for the rest (or ``finish``)."""
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            self._line(line)
        if len(self._partial) > 4096:  # no real line is this long: not -progress output
            self._partial = b""

    def finish(self) -> None:
        """The output ended: read a last line that had no newline."""
        partial, self._partial = self._partial, b""
        if partial:
            self._line(partial)

    def _line(self, raw: bytes) -> None:
        key, sep, value = raw.decode("utf-8", errors="replace").strip().partition("=")
        if not sep or not key:
            return
        key, value = key.strip(), value.strip()
        if key != "progress":
            self._block[key] = value
            return
        self._report(self._block, ended=value == "end")
        self._block = {}

    def _report(self, block: dict[str, str], ended: bool) -> None:
        micro = _integer(block.get("out_time_us"))
        if micro is None:  # ffmpeg 5.1 also writes out_time_ms, in microseconds too
            micro = _integer(block.get("out_time_ms"))
        self.position = micro / 1_000_000 if micro is not None and micro > 0 else None
        frame = _integer(block.get("frame"))
        self.frames = frame if frame is not None and frame > 0 else None
        self.speed = _speed(block.get("speed"))
        self.reports += 1
        self.ended = self.ended or ended
        if self.listener is None:
            return
        try:
            self.listener(self.position or 0.0, self.duration or 0.0, self.speed)
        except Exception:  # noqa: BLE001 - see the module docstring
            pass
