"""ExifTool reports (every tag it can find, embedded and unknown ones included, with its group) of
one file; runs exiftool via tools.run, writes nothing.

ExifTool reads far more metadata than ffprobe or MediaInfo does: ICC profiles, JPEG APPn segments,
QuickTime atoms it does not know (``-u``), timed metadata inside tracks (``-ee``). That makes it the
privacy post-check's widest net (`preserve.access.scrub`)."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preserve import tools
from preserve.core.errors import ToolError
from preserve.core.model import Agent

#: keys of ExifTool's JSON that describe the run and the local file (name, folder, file system
#: dates and permissions), never the file's content
RUN_KEYS = frozenset({"SourceFile", "ExifTool:ExifToolVersion"})
LOCAL_FILE_GROUP = "System"


def exiftool_argv(path: Path) -> list[str]:
    """The command line (pure): JSON (``-j``), group names of family 1 (``-G1``: "Track1",
    "ICC_Profile", "JFIF" …), duplicates (``-a``), unknown tags (``-u``), embedded and timed
    metadata (``-ee``), raw values (``-n``: no print conversion), files over 2 GiB, and the path
    after ``--`` so that no name becomes an option."""
    return [
        "exiftool",
        "-j",
        "-ee",
        "-G1",
        "-a",
        "-u",
        "-n",
        "-api",
        "LargeFileSupport=1",
        "-charset",
        "filename=utf8",
        "--",
        os.fspath(Path(path).absolute()),
    ]


@dataclass(frozen=True)
class ExifToolReport:
    """ExifTool's tags of one file as ``"Group:Tag" -> value`` (raw output kept as it came).
    ``error`` holds ExifTool's own complaint when it could not read the file."""

    raw: dict[str, Any]
    error: str = ""
    warnings: tuple[str, ...] = ()
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return not self.error

    def content_tags(self) -> dict[str, Any]:
        """The tags about the file's content: without the run's and the local file system's own."""
        return {
            k: v
            for k, v in self.tags.items()
            if k not in RUN_KEYS and not k.startswith(LOCAL_FILE_GROUP + ":") and k not in _DIAGNOSTICS
        }


_DIAGNOSTICS = frozenset({"ExifTool:Error", "ExifTool:Warning"})


def parse(stdout: bytes) -> ExifToolReport:
    """Interpret ExifTool's ``-j`` output (pure): a JSON list with one object per file."""
    try:
        data = json.loads(stdout.decode("utf-8", errors="replace") or "[]")
    except json.JSONDecodeError as exc:
        return ExifToolReport(raw={}, error=f"ExifTool produced invalid JSON: {exc.msg}")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return ExifToolReport(raw={}, error="ExifTool reported nothing")
    raw: dict[str, Any] = data[0]
    error = raw.get("ExifTool:Error", "")
    warning = raw.get("ExifTool:Warning", ())
    warnings = tuple(str(w) for w in (warning if isinstance(warning, list) else [warning])) if warning else ()
    return ExifToolReport(raw=raw, error=str(error or ""), warnings=warnings, tags=dict(raw))


def describe(path: Path, *, timeout: float = 600) -> ExifToolReport:
    """Run ExifTool on one file. A file it cannot read gives a report with ``error`` (exit status 1
    is ExifTool's way of saying so); raises ToolError when ExifTool cannot run or is killed."""
    argv = exiftool_argv(path)
    result = tools.run(argv, timeout=timeout, check=False)
    if result.returncode < 0 or result.returncode > 1 or (result.returncode == 1 and not result.stdout.strip()):
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise ToolError(
            f"exiftool exited with status {result.returncode}: {tail}",
            argv=argv,
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return parse(result.stdout)


@functools.cache
def version() -> str:
    """ExifTool's version (``exiftool -ver``); '' if it cannot run."""
    try:
        res = tools.run(["exiftool", "-ver"], timeout=30, check=False)
    except ToolError:
        return ""
    return res.stdout.decode("utf-8", errors="replace").strip()


def agent() -> Agent:
    return Agent(name="ExifTool", version=version())
