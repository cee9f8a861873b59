"""Progress of long operations (ingest, restore, audit) as plain callbacks: ``progress(done,
total)`` in bytes, and ``media_progress(position, duration, speed)`` for a transcode. The library
only calls them; the CLI draws rich progress bars on a terminal and the flows publish Prefect
progress artifacts. Side effects: whatever the callback does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: ``progress(done_bytes, total_bytes)``; total may grow as an operation learns more
Progress = Callable[[int, int], None]

#: ``media_progress(position_s, duration_s, speed)`` during a transcode or decode: how far into
#: the film ffmpeg has got (s), how long the film is (s; 0 when unknown), and ffmpeg's speed
#: (x real time; None until it reports one)
MediaProgress = Callable[[float, float, float | None], None]


class Meter:
    """Adds up bytes across the phases of one operation and reports them, at most every
    ``interval`` seconds (plus the last call), so a callback that talks to a server (a Prefect
    artifact update) is never called thousands of times. A callback error is swallowed: progress
    is decoration and must never fail the work. Thread-safe: parallel uploads advance one meter."""

    def __init__(self, progress: Progress | None = None, interval: float = 0.0) -> None:
        self.progress = progress
        self.interval = interval
        self.done = 0
        self.total = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def expect(self, total: int) -> None:
        """The total as now known (never below what is done)."""
        with self._lock:
            self.total = max(total, self.done)
            self._emit(force=True)

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            self.total = max(self.total, self.done)
            self._emit(force=self.done >= self.total)

    def _emit(self, force: bool) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        try:
            self.progress(self.done, self.total)
        except Exception:  # noqa: BLE001 - see the class docstring
            pass


class MediaMeter:
    """Passes ``media_progress(position, duration, speed)`` reports on to ``listener`` at most every
    ``interval`` seconds (the first report, and one that reaches the film's duration, always), so a
    listener that talks to a server is not called at every ffmpeg report. `flush` passes on the
    last report if the throttle held it back (call it when the work ends). A listener error is
    swallowed, as `Meter`'s is. Thread-safe: reports may come from several transcodes at once, and
    the listener is never called from two threads at the same time."""

    def __init__(self, listener: MediaProgress | None = None, interval: float = 0.0) -> None:
        self.listener = listener
        self.interval = interval
        self.last: tuple[float, float, float | None] | None = None
        self._sent: tuple[float, float, float | None] | None = None
        self._at: float | None = None
        self._lock = threading.Lock()

    def __call__(self, position: float, duration: float, speed: float | None) -> None:
        with self._lock:
            self.last = (position, duration, speed)
            now = time.monotonic()
            done = duration > 0 and position >= duration
            if self._at is not None and not done and now - self._at < self.interval:
                return
            self._at = now
            self._send()

    def flush(self) -> None:
        """Pass on the last report, unless it was already passed on."""
        with self._lock:
            if self.last is not None and self.last != self._sent:
                self._at = time.monotonic()
                self._send()

    def _send(self) -> None:
        self._sent = self.last
        if self.listener is None or self.last is None:
            return
        try:
            self.listener(*self.last)
        except Exception:  # noqa: BLE001 - see the class docstring
            pass


def percent_of(position: float, duration: float) -> float | None:
    """How far into the film, in percent (0-100); None when its duration is unknown (0)."""
    if duration <= 0:
        return None
    return max(0.0, min(100.0, 100.0 * position / duration))


def remaining_seconds(position: float, duration: float, speed: float | None) -> float | None:
    """Wall-clock seconds until the end of the film at ffmpeg's reported speed (x real time);
    None when the duration or the speed is unknown (or the speed is 0: ffmpeg is stuck)."""
    if duration <= 0 or not speed or speed <= 0:
        return None
    return max(0.0, duration - position) / speed
