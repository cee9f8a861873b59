"""MediaInfo reports through the bundled libmediainfo (pymediainfo's library, in-process), JSON and XML
from one parse of the file; reads the file, writes nothing."""

from __future__ import annotations

import functools
import json
import os
import threading
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


#: one extract at a time in this process: its options live in libmediainfo's shared config
_LOCK = threading.Lock()


def _inform_both(path: Path) -> tuple[str, str]:
    """One Open of ``path`` by libmediainfo, then its JSON and its XML report of that one parse.
    The options and calls are those of pymediainfo's ``MediaInfo.parse(path, output=..., full=True)``,
    which opens and scans the file again for each output (on a file of no known format, libmediainfo
    reads it dozens of times over while trying its parsers). Raises ToolNotFound when the library
    cannot be loaded, FileNotFoundError or RuntimeError when it cannot open the file."""
    from pymediainfo import MediaInfo

    with _LOCK:  # libmediainfo keeps Inform, Complete and ParseSpeed in one process-wide config
        try:
            lib, handle, _, version = MediaInfo._get_library()
        except OSError as exc:
            raise ToolNotFound(f"libmediainfo cannot be loaded (pymediainfo is installed without it): {exc}") from exc
        try:
            if version >= (18, 3):
                lib.MediaInfo_Option(handle, "Cover_Data", "")
            lib.MediaInfo_Option(handle, "CharSet", "UTF-8")
            lib.MediaInfo_Option(handle, "Inform", "JSON")
            lib.MediaInfo_Option(handle, "Complete", "1")
            lib.MediaInfo_Option(handle, "ParseSpeed", "0.5")
            lib.MediaInfo_Option(handle, "LegacyStreamDisplay", "")
            name = os.fspath(path)
            if lib.MediaInfo_Open(handle, name) == 0:
                lib.MediaInfo_Close(handle)
                if not os.path.exists(name):
                    raise FileNotFoundError(name)
                raise RuntimeError("libmediainfo could not open it")
            text = lib.MediaInfo_Inform(handle, 0)
            lib.MediaInfo_Option(handle, "Inform", "XML")  # the same parse, told again as XML
            xml = lib.MediaInfo_Inform(handle, 0)
            lib.MediaInfo_Close(handle)
        finally:
            lib.MediaInfo_Delete(handle)
    if not isinstance(text, str) or not isinstance(xml, str):  # pragma: no cover - NULL from the library
        raise ToolError(f"MediaInfo returned no report for {path.name}")
    return text, xml


def extract(path: Path) -> MediaInfoReport:
    """Run MediaInfo on one file and return its complete JSON and XML output, both from one
    parse of the file (byte for byte what two ``MediaInfo.parse`` calls give).
    Raises ToolError when the library is missing or the file cannot be read."""
    path = Path(path)
    try:
        text, xml = _inform_both(path)
    except ToolError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:  # FileNotFoundError, open failure, decode
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
