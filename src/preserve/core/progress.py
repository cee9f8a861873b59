"""Progress of long operations (ingest, restore, audit) as plain callbacks: ``progress(done,
total)`` in bytes. The library only calls them; the CLI draws a rich progress bar on a terminal
and the flows publish a Prefect progress artifact. Side effects: whatever the callback does."""

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
