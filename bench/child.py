"""One measured ingest in a process of its own, so its memory and I/O can be read for the whole
process tree: `python -m bench.child SPEC.json`. The spec names the settings overrides, the
submission and where to write the result (JSON). Mode "ingest" runs `ingest_submission` once with
a step runner that times each step and reads /proc/self/io around it, and reads each tool's
/proc/<pid>/io as it exits (`ToolReads`) and each of its own threads' reads (`ThreadReads`); mode
"prefect" starts Prefect once, then runs the listed ingests alternately through the flow and the
library call. Side effects: those of the ingests; writes the result file."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from bench.environment import lent
from bench.measure import proc_io
from preserve import config as settings_mod
from preserve.catalog import Catalog
from preserve.pipeline import IngestContext, IngestResult, ingest_submission

P = ParamSpec("P")
R = TypeVar("R")


class StepMeter:
    """A StepRunner (see preserve.pipeline.runner) that records each step's wall time (and when it
    started and ended, by the monotonic clock, to place the tools sampled from outside) and the
    bytes read by this process and the tools it ran (and waited for) during the step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.current = "claim"  # the step running now ("between" steps, "claim" before the first)

    def __call__(
        self, step: Callable[Concatenate[IngestContext, P], R], ctx: IngestContext, /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        io0, t0 = proc_io(), time.monotonic()
        self.current = step.__name__
        try:
            return step(ctx, *args, **kwargs)
        finally:
            self.current = "between"
            io1 = proc_io()
            self.steps.append(
                {
                    "step": step.__name__,
                    "started": t0,
                    "ended": time.monotonic(),
                    "seconds": time.monotonic() - t0,
                    "rchar": io1["rchar"] - io0["rchar"],
                    "read_bytes": io1["read_bytes"] - io0["read_bytes"],
                    "wchar": io1["wchar"] - io0["wchar"],
                }
            )


class ToolReads:
    """What each tool the ingest ran had read, taken from /proc/<pid>/io at the moment it exited and
    before it is reaped (the kernel then adds its counters to ours, and they can no longer be told
    apart). Installed around the measured ingest by wrapping the two places where the standard
    library's subprocess reaps a child (Popen._try_wait, Popen._internal_poll; Python 3.11): each
    first waits for the exit without reaping (waitid WNOWAIT), reads the zombie's counters, then
    reaps as before. Measuring only: the tool, its result and its timing are unchanged."""

    def __init__(self) -> None:
        self.tools: list[dict[str, Any]] = []
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        self.installed = hasattr(subprocess.Popen, "_try_wait") and hasattr(subprocess.Popen, "_internal_poll")

    def _note(self, proc: subprocess.Popen[Any], block: bool) -> None:
        if proc.returncode is not None or proc.pid in self._seen:
            return
        flags = os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG)
        try:
            exited = os.waitid(os.P_PID, proc.pid, flags)
        except ChildProcessError:  # reaped elsewhere
            return
        if exited is None:  # still running
            return
        try:
            io = proc_io(proc.pid)
        except OSError:
            return
        argv: list[Any] = list(proc.args) if isinstance(proc.args, list | tuple) else [proc.args]
        first = argv[0] if argv and isinstance(argv[0], str | bytes | os.PathLike) else "?"
        with self._lock:
            if proc.pid in self._seen:
                return
            self._seen.add(proc.pid)
            self.tools.append(
                {
                    "name": os.path.basename(os.fsdecode(first)),
                    "reaped_at": time.monotonic(),
                    "rchar": io["rchar"],
                    "read_bytes": io["read_bytes"],
                    "wchar": io["wchar"],
                }
            )

    def __enter__(self) -> ToolReads:
        if not self.installed:
            return self
        meter = self
        try_wait = subprocess.Popen._try_wait  # type: ignore[attr-defined]
        internal_poll = subprocess.Popen._internal_poll  # type: ignore[attr-defined]
        self._saved = (try_wait, internal_poll)

        def _try_wait(proc: subprocess.Popen[Any], wait_flags: int) -> Any:
            meter._note(proc, block=not wait_flags & os.WNOHANG)
            return try_wait(proc, wait_flags)

        def _internal_poll(proc: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
            meter._note(proc, block=False)
            return internal_poll(proc, *args, **kwargs)

        subprocess.Popen._try_wait = _try_wait  # type: ignore[attr-defined]
        subprocess.Popen._internal_poll = _internal_poll  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            subprocess.Popen._try_wait, subprocess.Popen._internal_poll = self._saved  # type: ignore[attr-defined]


def thread_group(name: str) -> str:
    """A thread's kind from its name: "upload-<AIP id>" and "upload_0" are "upload", "digest_1"
    is "digest", "ThreadPoolExecutor-0_0" is "ThreadPoolExecutor"."""
    m = re.match(r"[A-Za-z]+", name)
    return m.group(0) if m else name or "?"


class ThreadReads:
    """What each thread of this process reads, step by step: /proc/self/task/<tid>/io (a thread's
    own counters, without the tools it reaped) sampled every ``interval`` seconds on a thread of
    its own, each increase put under (the thread's kind, the step running then). A thread that
    ends loses its last interval's reads (they are in the process's total, not here); the
    sampler's own reads are counted apart, under "sampler"."""

    def __init__(self, where: Callable[[], str], interval: float = 0.02) -> None:
        self.where, self.interval = where, interval
        self.reads: dict[str, dict[str, int]] = {}  # thread kind -> step -> rchar
        self.sampler = 0
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-thread-reads", daemon=True)

    @staticmethod
    def _rchar(tid: int) -> int | None:
        try:
            return proc_io(f"self/task/{tid}")["rchar"]
        except (OSError, KeyError, ValueError):  # the thread ended meanwhile
            return None

    def _sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        step = self.where()
        me = self._thread.native_id
        for entry in os.listdir("/proc/self/task"):
            tid = int(entry)
            now = self._rchar(tid)
            if now is None:
                continue
            delta, self._last[tid] = now - self._last.get(tid, 0), now
            if tid == me:
                self.sampler += delta
            elif delta:
                kind = "main" if tid == os.getpid() else thread_group(names.get(tid, "native"))
                by_step = self.reads.setdefault(kind, {})
                by_step[step] = by_step.get(step, 0) + delta

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()
        self._sample()

    def __enter__(self) -> ThreadReads:
        for entry in os.listdir("/proc/self/task"):  # what the threads alive now read before is not ours
            self._last[int(entry)] = self._rchar(int(entry)) or 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def as_dict(self) -> dict[str, Any]:
        return {"by_kind": self.reads, "sampler": self.sampler, "interval": self.interval}


def _outcome_dict(outcome: IngestResult) -> dict[str, Any]:
    return {
        "status": outcome.status.value,
        "aip_id": outcome.aip_id,
        "detail": outcome.detail,
        "payload_bytes": sum(f.size for f in outcome.files),
        "payload_files": len(outcome.files),
        "events": len(outcome.events),
    }


def run_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    settings = settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides=spec["overrides"])
    catalog = Catalog(settings.catalog_url)
    meter = StepMeter()
    try:
        with lent(Path(spec["source"]), settings.ingest_dir) as path, ToolReads() as tool_reads:
            io0, t0 = proc_io(), time.monotonic()
            with ThreadReads(lambda: meter.current) as thread_reads:
                outcome = ingest_submission(settings, catalog, path, runner=meter)
            wall = time.monotonic() - t0
            io1 = proc_io()
    finally:
        catalog.close()
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        **_outcome_dict(outcome),
        "seconds": wall,
        "started": t0,
        "staging": getattr(settings.ingest, "staging", "copy"),  # before issue 13 there was only copying
        "steps": meter.steps,
        "tools": tool_reads.tools,
        "tools_measured": tool_reads.installed,
        "threads": thread_reads.as_dict(),
        "rchar": io1["rchar"] - io0["rchar"],
        "read_bytes": io1["read_bytes"] - io0["read_bytes"],
        "wchar": io1["wchar"] - io0["wchar"],
        # ru_maxrss is in KiB on Linux; for children it is the largest single child (and its own
        # descendants), not a sum
        "maxrss_self_bytes": me.ru_maxrss * 1024,
        "maxrss_children_bytes": children.ru_maxrss * 1024,
    }


def run_prefect(spec: dict[str, Any]) -> dict[str, Any]:
    """Prefect's start-up (the ephemeral API server, on the first flow run of a process) is timed
    on its own with an empty flow, then excluded: it happens once per worker, not per ingest."""
    t0 = time.monotonic()
    from prefect import flow

    from flows.ingest import ingest_flow

    imported = time.monotonic() - t0

    @flow(name="bench-warm-up", persist_result=False)
    def warm_up() -> int:
        return 1

    t0 = time.monotonic()
    warm_up()
    startup = time.monotonic() - t0
    runs: list[dict[str, Any]] = []
    for r in spec["runs"]:
        settings = settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides=r["overrides"])
        with lent(Path(r["source"]), settings.ingest_dir) as path:
            if r["mode"] == "flow":
                t0 = time.monotonic()
                state = ingest_flow(str(path), config=r["config"], return_state=True)
                seconds = time.monotonic() - t0
                data = state.result(raise_on_failure=False) if state.is_completed() else None
                status = (data or {}).get("status", "") if isinstance(data, dict) else ""
                runs.append(
                    {
                        "mode": "flow",
                        "seconds": seconds,
                        "status": status or state.type.value,
                        "detail": state.message or "",
                    }
                )
            else:
                catalog = Catalog(settings.catalog_url)
                try:
                    t0 = time.monotonic()
                    outcome = ingest_submission(settings, catalog, path)
                    seconds = time.monotonic() - t0
                finally:
                    catalog.close()
                runs.append({"mode": "library", "seconds": seconds, **_outcome_dict(outcome)})
    return {"import_seconds": imported, "startup_seconds": startup, "runs": runs}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result = run_prefect(spec) if spec.get("mode") == "prefect" else run_ingest(spec)
    Path(spec["result"]).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
