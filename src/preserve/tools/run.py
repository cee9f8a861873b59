"""The only way preserve starts a subprocess: argv lists (never a shell), a timeout, captured
output, and the tool's version for the event record."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
) -> ToolResult:
    """Run one external program. Raises ToolNotFound / ToolTimeout, and ToolError on a non-zero
    exit when ``check`` is set. ``stdout_to`` streams stdout to a file instead of memory."""
    if shutil.which(argv[0]) is None:
        raise ToolNotFound(f"{argv[0]} is not installed or not on PATH", argv=argv)
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
    result = ToolResult(
        argv=list(argv),
        returncode=proc.returncode,
        stdout=proc.stdout if proc.stdout is not None else b"",
        stderr=stderr,
    )
    if check and proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        raise ToolError(
            f"{argv[0]} exited with status {proc.returncode}: {tail}",
            argv=argv,
            returncode=proc.returncode,
            stderr=stderr,
        )
    return result


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
