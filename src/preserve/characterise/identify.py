"""PRONOM format identification with fido (opf-fido, in-process and offline, signatures shipped
in its release), cross-checked against what MediaInfo and ffprobe say the container is. Reads the
file's first and last bytes; writes nothing.

fido falls back to the file extension when no signature matches, and its guesses can be wrong: a
non-faststart MP4 (moov after a large mdat, beyond fido's 128 KB buffer) is "identified" as
fmt/596, Apple Lossless Audio. Such a disagreement is kept as a finding (and recorded as a warning
event); the PUID recorded for the file is then the one the container tools agree on."""

from __future__ import annotations

import contextlib
import functools
import io
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from preserve.core.errors import ToolError
from preserve.core.model import Agent
from preserve.tools.ffprobe import ProbeReport
from preserve.tools.mediainfo import MediaInfoReport

#: container families: MediaInfo General/Format (and profile) -> the PUIDs that fit it
_QUICKTIME = ("x-fmt/384",)
_MP4 = ("fmt/199",)
FAMILIES: dict[str, tuple[str, ...]] = {
    "Matroska": ("fmt/569",),
    "WebM": ("fmt/573",),
    "AVI": ("fmt/5",),
    "MXF": ("fmt/200",),
}
#: ffprobe format_name (first of its comma list) -> MediaInfo family it must agree with
_FFPROBE_FAMILY = {"matroska": ("Matroska", "WebM"), "mov": ("MPEG-4",), "avi": ("AVI",), "mxf": ("MXF",)}

_LOCK = threading.Lock()


@dataclass(frozen=True)
class FidoMatch:
    puid: str
    name: str
    version: str
    match_type: str  # signature | container | extension


@dataclass(frozen=True)
class Identification:
    """The recorded format of one file and how it was reached. ``disagreement`` is empty when
    fido, MediaInfo and ffprobe are consistent (or only fido could judge the file)."""

    puid: str
    format_name: str
    format_version: str = ""
    basis: str = ""  # "fido signature", "fido extension", "container (MediaInfo/ffprobe)", ""
    fido: tuple[FidoMatch, ...] = ()
    container: str = ""  # what MediaInfo and ffprobe call the container
    disagreement: str = ""

    @property
    def consistent(self) -> bool:
        return not self.disagreement

    def describe(self) -> str:
        fido = "; ".join(f"{m.puid} {m.name} ({m.match_type})" for m in self.fido) or "no match"
        return (
            f"{self.puid or 'unidentified'} {self.format_name}".strip()
            + f" [basis: {self.basis or 'none'}; fido: {fido}"
            + (f"; container: {self.container}" if self.container else "")
            + "]"
        )


@functools.lru_cache(maxsize=1)
def _fido() -> Any:
    """One fido instance with the PRONOM signatures of its release (loading them takes ~0.5 s)."""
    try:
        from fido import CONFIG_DIR
        from fido.fido import Fido
        from fido.versions import get_local_versions
    except ImportError as exc:  # pragma: no cover - a dependency of preserve
        raise ToolError("opf-fido is not installed (run scripts/setup.sh)") from exc
    versions = get_local_versions(CONFIG_DIR)
    sink: list[Any] = []
    instance = Fido(
        quiet=True,
        handle_matches=lambda _name, matches, _t, kind: sink.append((matches, kind)),
        format_files=[versions.pronom_signature, versions.fido_extension_signature],
    )
    instance._preserve_sink = sink
    instance._preserve_pronom = versions.pronom_version
    return instance


def agent() -> Agent:
    """fido with its version and the PRONOM signature release it uses, e.g. "1.6.1 (PRONOM v109)"."""
    try:
        version = metadata.version("opf-fido")
    except metadata.PackageNotFoundError:
        version = ""
    try:
        pronom = _fido()._preserve_pronom
    except ToolError:
        pronom = ""
    return Agent("fido", f"{version} (PRONOM v{pronom})" if pronom else version)


def _text(element: Any, tag: str) -> str:
    found = element.find(tag)
    return (found.text or "").strip() if found is not None and found.text else ""


def fido_matches(path: Path) -> list[FidoMatch]:
    """fido's matches for one file (signature, container, else extension), best first."""
    engine = _fido()
    with _LOCK:
        engine._preserve_sink.clear()
        captured = io.StringIO()  # fido reports odd files (empty, unreadable) on stderr
        with contextlib.redirect_stderr(captured):
            engine.identify_file(str(path))
        results = list(engine._preserve_sink)
        if "Error in identify_file" in captured.getvalue():
            raise ToolError(f"fido could not read {Path(path).name}: {captured.getvalue().strip()[-300:]}")
    out = []
    for matches, kind in results:
        for element, _sig in matches:
            out.append(
                FidoMatch(
                    puid=_text(element, "puid"),
                    name=_text(element, "name"),
                    version=_text(element, "version"),
                    match_type=kind,
                )
            )
    return out


def format_name_of(puid: str) -> str:
    """PRONOM's name for a PUID, from fido's signature file; '' if unknown."""
    engine = _fido()
    for element in engine.formats:
        if _text(element, "puid") == puid:
            return _text(element, "name")
    return ""


def _family(info: MediaInfoReport | None) -> tuple[str, tuple[str, ...]]:
    """The container family MediaInfo reports and the PUIDs fitting it (() when we cannot say)."""
    general = info.general if info is not None else {}
    fmt = str(general.get("Format") or "")
    if fmt == "MPEG-4":
        profile = str(general.get("Format_Profile") or "")
        brand = str(general.get("CodecID") or "").strip()
        if profile == "QuickTime" or brand == "qt":
            return "MPEG-4 (QuickTime)", _QUICKTIME
        return f"MPEG-4 ({profile or brand or 'ISO base media'})", _MP4
    return fmt, FAMILIES.get(fmt, ())


def cross_check(matches: list[FidoMatch], info: MediaInfoReport | None, probe: ProbeReport | None) -> Identification:
    """Decide the recorded format from fido's matches and the container tools (pure)."""
    family, expected = _family(info)
    ff_name = probe.format_name if probe is not None and probe.readable else ""
    ff = ff_name.split(",")[0]
    container = ", ".join(x for x in (f"MediaInfo {family}" if family else "", f"ffprobe {ff_name}" if ff else "") if x)
    problems = []
    if ff in _FFPROBE_FAMILY and family and family.split(" ")[0] not in _FFPROBE_FAMILY[ff]:
        problems.append(f"MediaInfo says {family} but ffprobe says {ff_name}")
    best = matches[0] if matches else None
    if best is None:
        if expected:
            puid = expected[0]
            problems.append(f"fido found no match; {puid} from the container ({family})")
            return Identification(
                puid, format_name_of(puid), "", "container (MediaInfo/ffprobe)", (), container, "; ".join(problems)
            )
        return Identification("", family, "", "", (), container, "; ".join(problems + ["fido found no match"]))
    if expected and best.puid not in expected:
        how = "from the file extension" if best.match_type == "extension" else f"by {best.match_type}"
        problems.append(f"fido says {best.puid} ({best.name}) {how}, but {container} fit {', '.join(expected)}")
        if best.match_type == "extension":  # a guess, overruled by two tools that read the file
            puid = expected[0]
            return Identification(
                puid,
                format_name_of(puid),
                "",
                "container (MediaInfo/ffprobe)",
                tuple(matches),
                container,
                "; ".join(problems),
            )
    return Identification(
        best.puid, best.name, best.version, f"fido {best.match_type}", tuple(matches), container, "; ".join(problems)
    )


def identify(path: Path, info: MediaInfoReport | None = None, probe: ProbeReport | None = None) -> Identification:
    """Identify one file. Raises ToolError only when fido cannot run or read it."""
    return cross_check(fido_matches(Path(path)), info, probe)
