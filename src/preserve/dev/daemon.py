"""The lifecycle of a server this machine runs beside preserve (the embedded SeaweedFS, the
Prefect server of `preserve serve`, the temporary Prefect API of a CLI run): start it detached in
its own session with its output appended to a log (and its pid in a file), or tied to this
process so that the kernel kills it when this process dies, however it dies; wait until it answers
a health check; stop it with SIGTERM and then SIGKILL. Servers are started with umask 077, so what
they create is private to the archive's user. Side effects: starts and signals processes; writes
the pid file (0600) and the log, and rotates the log.

Servers are started with subprocess.Popen directly. This is the single allowed exception to
``preserve.tools.run.run``: a daemon must outlive the call that started it (the embedded server
outlives the CLI); it is not a tool run, which waits for its program."""

from __future__ import annotations

import contextlib
import functools
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from preserve.core.errors import ToolError
from preserve.core.fs import PRIVATE_FILE, PRIVATE_UMASK, atomic_write, private_dir

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
    umask: int = PRIVATE_UMASK,
) -> Started:
    """Start ``argv`` in a new session (a Ctrl-C on the terminal does not reach it), stdin from
    /dev/null, stdout and stderr appended to ``log_path`` (first renamed to ``<log>.1`` when it
    has grown past ``rotate_bytes``), its pid written to ``pid_file``. Does not wait for it to be
    ready (see `wait_healthy`). Raises OSError when it cannot be started; a server started but
    whose pid file cannot be written is stopped again before the error is raised."""
    private_dir(log_path.parent)
    if rotate_bytes is not None:
        with contextlib.suppress(OSError):
            if log_path.stat().st_size > rotate_bytes:
                os.replace(log_path, log_path.with_name(log_path.name + ".1"))
    with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE), "ab") as logf:
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
            umask=umask,
        )
    _children[proc.pid] = proc
    if pid_file is not None:
        try:
            atomic_write(pid_file, f"{proc.pid}\n")
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


# -- a server tied to this process ------------------------------------------------------------------
#: how a tied child watches its parent, before it runs the server module in the same interpreter:
#: a thread blocks on the read end of a pipe whose only write end this process holds; the kernel
#: closes it when this process ends, however it ends, and the thread then SIGKILLs the server. When
#: started from the main thread the child also asks for PR_SET_PDEATHSIG (SIGKILL), the kernel's own
#: parent-death signal (not from another thread: that signal follows the thread, not the process).
_TIE = """\
import ctypes, os, runpy, signal, sys, threading
fd, pdeathsig, parent = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
if pdeathsig:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
def watch():
    while os.read(fd, 1):
        pass
    os.kill(os.getpid(), signal.SIGKILL)
threading.Thread(target=watch, name="parent-watch", daemon=True).start()
if os.getppid() != parent:
    sys.exit("its parent is gone")
sys.argv = sys.argv[4:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""

#: the write ends of the pipes tied children watch, by child pid
_ties: dict[int, int] = {}


def start_tied(
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    umask: int = PRIVATE_UMASK,
) -> subprocess.Popen[bytes]:
    """Run ``python -m module args...`` as a child that cannot outlive this process: when this
    process ends by any route (SIGKILL included, no cleanup code of ours running) the child is
    killed (see _TIE). stderr is this process's; stdout goes to ``stdout``."""
    import threading

    read_end, write_end = os.pipe()  # both non-inheritable: no other child gets the write end
    try:
        main = threading.current_thread() is threading.main_thread()
        boot = [sys.executable, "-c", _TIE, str(read_end), "1" if main else "0", str(os.getpid()), module, *args]
        proc = subprocess.Popen(
            boot,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            env=None if env is None else dict(env),
            close_fds=True,
            pass_fds=(read_end,),
            umask=umask,
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    _children[proc.pid] = proc
    _ties[proc.pid] = write_end
    return proc


def stop_child(proc: subprocess.Popen[bytes], *, name: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds, and reap: for a server from `start_tied`."""
    stop(proc.pid, name=name, timeout=timeout)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)
    write_end = _ties.pop(proc.pid, None)
    if write_end is not None:
        os.close(write_end)


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's choice; nothing stays open)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


#: how long the temporary Prefect API may take to answer (it was ready in 8-25 s on two busy cores)
PREFECT_API_START_TIMEOUT = 120.0


def prefect_api_args(port: int) -> list[str]:
    """The arguments of ``python -m uvicorn`` that Prefect itself uses for its temporary
    ("ephemeral") API server (prefect 3.8.8, `prefect.server.api.server.SubprocessASGIServer`):
    the server app on loopback, quiet."""
    return [
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


@contextlib.contextmanager
def temporary_prefect_api(env: Mapping[str, str], *, timeout: float = PREFECT_API_START_TIMEOUT) -> Iterator[str]:
    """A Prefect API server for the flows this process runs, in place of the temporary server
    Prefect would start by itself when no PREFECT_API_URL is set. Prefect's own is stopped only by
    an atexit hook, so a SIGTERM or SIGKILL of the CLI leaves it running; this one is tied to
    this process (`start_tied`) and also stopped when the block ends. ``env``: the environment to
    run it in (the CLI's). Yields its API URL (``http://127.0.0.1:PORT/api``), which the caller
    sets as PREFECT_API_URL before Prefect is imported. Raises ToolError when it does not start."""
    server_env = {
        **env,
        # what Prefect sets for its own temporary server: no UI, ephemeral mode
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    server_env.pop("PREFECT_API_URL", None)
    proc: subprocess.Popen[bytes] | None = None
    url = ""
    try:
        for _attempt in range(3):  # a port taken between choosing and binding: try another
            port = free_loopback_port()
            url = f"http://127.0.0.1:{port}/api"
            candidate = start_tied("uvicorn", prefect_api_args(port), env=server_env)
            if wait_healthy(candidate.pid, functools.partial(answers, f"{url}/health", 2.0), timeout, interval=0.2):
                proc = candidate
                break
            exited = candidate.poll()
            stop_child(candidate, name="temporary Prefect API")
            if exited is None:  # alive but silent all along: another port would not help
                break
        if proc is None:
            raise ToolError(
                f"the temporary Prefect API server did not answer within {timeout:.0f} s",
                argv=[sys.executable, "-m", "uvicorn", *prefect_api_args(0)],
                advice="Run with --direct, or set PREFECT_API_URL to a running Prefect server.",
            )
        log.info("temporary Prefect API pid %d at %s", proc.pid, url)
        yield url
    finally:
        if proc is not None:
            stop_child(proc, name="temporary Prefect API")


#: the temporary Prefect API of this process, once started: its URL
_shared_api: list[str] = []


def shared_prefect_api(env: Mapping[str, str]) -> str:
    """This process's temporary Prefect API (`temporary_prefect_api`), started on first use and
    stopped when the interpreter exits (or killed with this process). Returns its API URL."""
    if not _shared_api:
        import atexit

        stack = contextlib.ExitStack()
        _shared_api.append(stack.enter_context(temporary_prefect_api(env)))
        atexit.register(stack.close)
    return _shared_api[0]


def use_temporary_prefect_api(environ: MutableMapping[str, str]) -> str | None:
    """Before this process first runs a flow: when ``environ`` (the CLI passes os.environ) names
    no Prefect server and Prefect is not loaded yet (it reads its settings once, on import), set
    its PREFECT_API_URL to this process's temporary API (`shared_prefect_api`), so that Prefect
    does not start its own, which would outlive a killed CLI. Returns the URL it set, else None."""
    if environ.get("PREFECT_API_URL") or "prefect" in sys.modules:
        return None
    url = shared_prefect_api(environ)
    environ["PREFECT_API_URL"] = url
    return url
