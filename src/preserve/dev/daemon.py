"""The lifecycle of a long-running server this machine runs beside preserve (the embedded
SeaweedFS, the Prefect server of `preserve serve`): start it detached in its own session with
its output appended to a log (and its pid in a file), wait until it answers a health check, stop
it with SIGTERM and then SIGKILL. Side effects: starts and signals processes; writes the pid
file and the log, and rotates the log.

Servers are started with subprocess.Popen directly. This is the single allowed exception to
``preserve.tools.run.run``: a daemon must outlive the call that started it (the embedded server
outlives the CLI); it is not a tool run, which waits for its program."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from preserve.core.fs import atomic_write

log = logging.getLogger(__name__)

#: Popen objects of servers started by this process, so they are reaped rather than left zombies
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Started:
    """A server this process started."""

    pid: int
    log: Path
    log_start: int  # the log's size before the start: this run's output begins here
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    @property
    def returncode(self) -> int | None:
        """Its exit status once it has exited (and been reaped), else None."""
        return self.process.poll()


def start(
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_file: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    rotate_bytes: int | None = None,
) -> Started:
    """Start ``argv`` in a new session (a Ctrl-C on the terminal does not reach it), stdin from
    /dev/null, stdout and stderr appended to ``log_path`` (first renamed to ``<log>.1`` when it
    has grown past ``rotate_bytes``), its pid written to ``pid_file``. Does not wait for it to be
    ready (see `wait_healthy`). Raises OSError when it cannot be started; a server started but
    whose pid file cannot be written is stopped again before the error is raised."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if rotate_bytes is not None:
        with contextlib.suppress(OSError):
            if log_path.stat().st_size > rotate_bytes:
                os.replace(log_path, log_path.with_name(log_path.name + ".1"))
    with open(log_path, "ab") as logf:
        log_start = logf.tell()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    if pid_file is not None:
        try:
            atomic_write(pid_file, f"{proc.pid}\n", mode=0o644)
        except OSError:
            stop(proc.pid, name=Path(argv[0]).name, timeout=5.0)
            raise
    return Started(proc.pid, log_path, log_start, proc)


def read_pid(pid_file: Path) -> int | None:
    """The pid in a pid file; None when there is none or it does not hold a number."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie; a child of ours that has exited is reaped."""
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def answers(url: str, timeout: float = 1.0) -> bool:
    """GET ``url`` answers 200, bypassing any proxy configured in the environment (the server
    is on this machine)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return False


def wait_healthy(pid: int, healthy: Callable[[], bool], timeout: float, *, interval: float = 0.1) -> bool:
    """Poll ``healthy`` until it says yes (True), the process is gone, or ``timeout`` seconds
    have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return False
        if healthy():
            return True
        time.sleep(interval)
    return False


def stop(
    pid: int,
    *,
    name: str,
    timeout: float,
    kill_timeout: float = 5.0,
    group: bool = False,
    pid_file: Path | None = None,
) -> None:
    """SIGTERM (to its whole process group when ``group``), then SIGKILL if it is still there
    after ``timeout`` seconds; the pid file is removed. A no-op for a process already gone."""
    send = os.killpg if group else os.kill
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, kill_timeout)):
        if not alive(pid):
            break
        try:
            send(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if not alive(pid):
            break
        log.warning("%s pid %d ignored %s", name, pid, sig.name)
    _children.pop(pid, None)
    if pid_file is not None:
        pid_file.unlink(missing_ok=True)
    log.info("stopped %s pid %d", name, pid)
