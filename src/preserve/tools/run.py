"""The only way preserve starts a subprocess: argv lists (never a shell), a timeout, captured
output (or stdout streamed line by line to a callback), and the tool's version for the event record."""

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
from typing import IO

from preserve.core.errors import ToolError, ToolNotFound, ToolTimeout
from preserve.core.model import Agent


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
) -> ToolResult:
    """Run one external program. Raises ToolNotFound / ToolTimeout, and ToolError on a non-zero
    exit when ``check`` is set. ``stdout_to`` streams stdout to a file instead of memory;
    ``on_stdout_line`` gets each line of stdout (with its newline; the last one may lack it) as the
    tool writes it, on the calling thread, and the result's ``stdout`` is then b"". ``on_stdout_line``
    cannot be combined with ``stdout_to`` or ``stdin`` (ValueError). If the callback raises, the tool
    is killed and the exception propagates."""
    if on_stdout_line is not None and (stdout_to is not None or stdin is not None):
        raise ValueError("run(): on_stdout_line cannot be combined with stdout_to or stdin")
    if shutil.which(argv[0]) is None:
        raise ToolNotFound(f"{argv[0]} is not installed or not on PATH", argv=argv)
    if on_stdout_line is not None:
        returncode, stderr = _run_streaming(argv, timeout, on_stdout_line)
        return _finish(argv, returncode, b"", stderr, check)
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


def _drain(stream: IO[bytes], into: list[bytes]) -> None:
    """Read a pipe to its end (on its own thread, so the tool never blocks on a full pipe)."""
    for chunk in iter(lambda: stream.read(65536), b""):
        into.append(chunk)


def _run_streaming(argv: list[str], timeout: float | None, on_line: Callable[[bytes], None]) -> tuple[int, str]:
    """(returncode, stderr) of a tool whose stdout lines go to ``on_line`` as they come. stderr is
    drained on a thread; a timer kills the tool when ``timeout`` runs out (ToolTimeout)."""
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, shell=False
        )
    except FileNotFoundError as exc:
        raise ToolNotFound(f"{argv[0]} is not installed or not on PATH", argv=argv) from exc
    assert proc.stdout is not None and proc.stderr is not None
    err_chunks: list[bytes] = []
    drainer = threading.Thread(target=_drain, args=(proc.stderr, err_chunks), name=f"{argv[0]}-stderr", daemon=True)
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
    try:
        for line in proc.stdout:  # returns each line as soon as the tool has written it
            on_line(line)
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if timer is not None:
            timer.cancel()
        proc.stdout.close()
        drainer.join()
        proc.stderr.close()
    if timed_out.is_set():
        raise ToolTimeout(f"{argv[0]} ran longer than {timeout} s and was stopped", argv=argv)
    return proc.returncode, b"".join(err_chunks).decode("utf-8", errors="replace")


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
