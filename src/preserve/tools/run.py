"""The only way preserve starts a subprocess: argv lists (never a shell), a timeout, captured
output (or stdout and stderr streamed line by line to callbacks, in bounded memory), and the tool's
version for the event record."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from preserve.core.errors import ToolError, ToolNotFound, ToolTimeout
from preserve.core.model import Agent

#: how much of the end of stderr a run whose stderr lines go to a callback still keeps (bytes), for
#: the messages of its errors
STDERR_TAIL_BYTES = 64 * 1024
#: the longest line a callback is given; a longer one comes in pieces of this size (no tool's real
#: line is this long, and memory stays bounded if one never ends)
MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ToolResult:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: str


def media_path(path: Path) -> str:
    """A path as ffmpeg/ffprobe must see it: absolute and behind the ``file:`` protocol, so a name
    starting with ``-`` is never an option and a name with ``:`` is never another protocol."""
    return "file:" + os.fspath(Path(path).absolute())


def run(
    argv: list[str],
    *,
    timeout: float | None = 3600,
    check: bool = True,
    stdin: bytes | None = None,
    stdout_to: Path | None = None,
    on_stdout_line: Callable[[bytes], None] | None = None,
    on_stderr_line: Callable[[bytes], None] | None = None,
) -> ToolResult:
    """Run one external program. Raises ToolNotFound / ToolTimeout, and ToolError on a non-zero
    exit when ``check`` is set. ``stdout_to`` streams stdout to a file instead of memory;
    ``on_stdout_line`` gets each line of stdout (with its newline; the last one may lack it) as the
    tool writes it, on the calling thread, and the result's ``stdout`` is then b"".
    ``on_stderr_line`` gets each line of stderr the same way, on the thread that drains stderr, and
    the result's ``stderr`` then keeps only its last STDERR_TAIL_BYTES (from a line's start), so
    memory stays bounded however much the tool prints. A line longer than MAX_LINE_BYTES comes in
    pieces. Neither callback can be combined with ``stdout_to`` or ``stdin`` (ValueError). If a
    callback raises, the tool is killed and the exception propagates."""
    streaming = on_stdout_line is not None or on_stderr_line is not None
    if streaming and (stdout_to is not None or stdin is not None):
        raise ValueError("run(): on_stdout_line and on_stderr_line cannot be combined with stdout_to or stdin")
    if shutil.which(argv[0]) is None:
        raise ToolNotFound(f"{argv[0]} is not installed or not on PATH", argv=argv)
    if streaming:
        returncode, stdout, stderr = _run_streaming(argv, timeout, on_stdout_line, on_stderr_line)
        return _finish(argv, returncode, stdout, stderr, check)
    out_handle = open(stdout_to, "wb") if stdout_to is not None else None
    try:
        proc = subprocess.run(
            argv,
            input=stdin,
            stdout=out_handle if out_handle is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            timeout=timeout,
            check=False,
            shell=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolTimeout(f"{argv[0]} ran longer than {timeout} s and was stopped", argv=argv) from exc
    finally:
        if out_handle is not None:
            out_handle.close()
    stderr = proc.stderr.decode("utf-8", errors="replace")
    return _finish(argv, proc.returncode, proc.stdout if proc.stdout is not None else b"", stderr, check)


def _finish(argv: list[str], returncode: int, stdout: bytes, stderr: str, check: bool) -> ToolResult:
    result = ToolResult(argv=list(argv), returncode=returncode, stdout=stdout, stderr=stderr)
    if check and returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        raise ToolError(
            f"{argv[0]} exited with status {returncode}: {tail}",
            argv=argv,
            returncode=returncode,
            stderr=stderr,
        )
    return result


class _Tail:
    """The last STDERR_TAIL_BYTES of a stream, added to line by line (memory: at most twice that)."""

    def __init__(self, limit: int = STDERR_TAIL_BYTES) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._cut = False

    def add(self, line: bytes) -> None:
        self._buf += line
        if len(self._buf) > 2 * self.limit:
            del self._buf[: len(self._buf) - self.limit]
            self._cut = True

    def text(self) -> str:
        data = bytes(self._buf)
        if self._cut or len(data) > self.limit:
            data = data[-self.limit :]
            newline = data.find(b"\n")
            data = data[newline + 1 :] if newline >= 0 else data  # from the start of a line
        return data.decode("utf-8", errors="replace")


class _Drain:
    """Reads stderr to its end on a thread of its own, so the tool never blocks on a full pipe:
    all of it kept, or each line given to ``on_line`` (only the tail kept). A callback's exception
    kills the tool and is kept in ``error`` for the calling thread to raise."""

    def __init__(self, proc: subprocess.Popen[bytes], on_line: Callable[[bytes], None] | None) -> None:
        self.proc, self.on_line = proc, on_line
        self.chunks: list[bytes] = []
        self.tail = _Tail()
        self.error: BaseException | None = None

    def __call__(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        if self.on_line is None:
            for chunk in iter(lambda: stream.read(65536), b""):
                self.chunks.append(chunk)
            return
        try:
            for line in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
                self.tail.add(line)
                self.on_line(line)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which raises it
            self.error = exc
            self.proc.kill()

    def text(self) -> str:
        if self.on_line is None:
            return b"".join(self.chunks).decode("utf-8", errors="replace")
        return self.tail.text()


def _run_streaming(
    argv: list[str],
    timeout: float | None,
    on_out: Callable[[bytes], None] | None,
    on_err: Callable[[bytes], None] | None,
) -> tuple[int, bytes, str]:
    """(returncode, stdout, stderr) of a tool whose stdout lines go to ``on_out`` (stdout then b"")
    and stderr lines to ``on_err`` (stderr then its tail) as they come; without a callback, that
    stream is kept whole. stderr is drained on a thread; a timer kills the tool when ``timeout``
    runs out (ToolTimeout)."""
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, shell=False
        )
    except FileNotFoundError as exc:
        raise ToolNotFound(f"{argv[0]} is not installed or not on PATH", argv=argv) from exc
    assert proc.stdout is not None and proc.stderr is not None
    drain = _Drain(proc, on_err)
    drainer = threading.Thread(target=drain, name=f"{argv[0]}-stderr", daemon=True)
    drainer.start()
    timed_out = threading.Event()

    def _expire() -> None:
        if proc.poll() is None:
            timed_out.set()
            proc.kill()

    timer = threading.Timer(timeout, _expire) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    out, out_chunks = proc.stdout, []
    try:
        if on_out is not None:  # each line as soon as the tool has written it
            for line in iter(lambda: out.readline(MAX_LINE_BYTES), b""):
                on_out(line)
        else:
            for chunk in iter(lambda: out.read(65536), b""):
                out_chunks.append(chunk)
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if timer is not None:
            timer.cancel()
        out.close()
        drainer.join()
        proc.stderr.close()
    if drain.error is not None:
        raise drain.error
    if timed_out.is_set():
        raise ToolTimeout(f"{argv[0]} ran longer than {timeout} s and was stopped", argv=argv)
    return proc.returncode, b"".join(out_chunks), drain.text()


@functools.cache
def version_of(tool: str) -> str:
    """The tool's version string, e.g. ``5.1.9-0+deb12u1`` for ffmpeg; '' if unknown."""
    flag = {"mediainfo": "--Version", "mediaconch": "--Version"}.get(tool, "-version")
    try:
        res = run([tool, flag], timeout=30, check=False)
    except ToolError:
        return ""
    text = res.stdout.decode("utf-8", errors="replace") + res.stderr
    m = re.search(r"version\s+v?([\w.+~:-]+)", text, re.IGNORECASE) or re.search(r"v(\d[\w.]*)", text)
    return m.group(1) if m else text.strip().splitlines()[0] if text.strip() else ""


def agent(tool: str) -> Agent:
    """An event agent for an external tool, with its real version."""
    return Agent(name=tool, version=version_of(tool))


def python_agent(distribution: str) -> Agent:
    """An event agent for a Python library, with its installed version."""
    from importlib import metadata

    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = ""
    return Agent(name=distribution, version=version)


def preserve_agent() -> Agent:
    return python_agent("preserve")
