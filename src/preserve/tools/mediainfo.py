"""MediaInfo reports through the bundled libmediainfo (pymediainfo, in-process); reads the file, writes nothing."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preserve.core.errors import ToolError, ToolNotFound
from preserve.core.model import Agent


@dataclass(frozen=True)
class MediaInfoReport:
    """The tool's raw output, kept apart from any interpretation of it (file-scraper style):
    ``data`` is the parsed JSON output, ``xml`` the full XML output, both as MediaInfo gave them."""

    data: dict[str, Any]
    xml: str

    @property
    def tracks(self) -> list[dict[str, Any]]:
        """Every track (General, Video, Audio, Text, Menu, Image, Other) in file order."""
        media = self.data.get("media") or {}
        tracks = media.get("track") or []
        return [t for t in tracks if isinstance(t, dict)]

    @property
    def general(self) -> dict[str, Any]:
        """The General track; empty if MediaInfo produced none."""
        for track in self.tracks:
            if track.get("@type") == "General":
                return track
        return {}


def _parse(path: Path, output: str) -> str:
    from pymediainfo import MediaInfo

    if not MediaInfo.can_parse():
        raise ToolNotFound("libmediainfo cannot be loaded (pymediainfo is installed without it)")
    # encoding_errors="replace": a tag in a broken encoding must not make the whole report fail
    result = MediaInfo.parse(path, output=output, full=True, encoding_errors="replace")
    if not isinstance(result, str):  # pragma: no cover - pymediainfo returns str when output is set
        raise ToolError(f"MediaInfo returned {type(result).__name__} instead of {output} text")
    return result


def extract(path: Path) -> MediaInfoReport:
    """Run MediaInfo on one file and return its complete JSON and XML output.
    Raises ToolError when the library is missing or the file cannot be read."""
    path = Path(path)
    try:
        text = _parse(path, "JSON")
        xml = _parse(path, "XML")
    except ToolError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:  # FileNotFoundError, ctypes load, decode
        raise ToolError(f"MediaInfo could not read {path.name}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"MediaInfo produced invalid JSON for {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise ToolError(f"MediaInfo produced unexpected JSON for {path.name}")
    return MediaInfoReport(data=data, xml=xml)


@functools.lru_cache(maxsize=1)
def _library_version() -> str:
    """libmediainfo's own version (what actually parsed the file); '' if it cannot be loaded."""
    try:
        from pymediainfo import MediaInfo

        lib, handle, version, _ = MediaInfo._get_library()
        try:
            lib.MediaInfo_Delete(handle)
        except Exception:  # noqa: BLE001 - cleanup of a ctypes handle; any failure there is harmless
            pass
        return str(version)
    except Exception:  # noqa: BLE001 - ctypes loading can fail in many ways; the caller falls back
        return ""


def agent() -> Agent:
    """The event agent: MediaInfo with the bundled library's version (pymediainfo's as fallback)."""
    version = _library_version()
    if not version:
        from importlib import metadata

        try:
            version = "pymediainfo " + metadata.version("pymediainfo")
        except metadata.PackageNotFoundError:
            version = ""
    return Agent(name="MediaInfo", version=version)
