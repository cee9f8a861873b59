"""The optional metadata sidecar (metadata.yaml, or <file>.yaml): parsed safely, validated against
a small schema, and reported with line numbers. Pure: reads the one file it is given."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from preserve.core.errors import SidecarError

ACCESS_LEVELS = ("open", "restricted", "embargoed", "dark")
FIELDS = ("title", "original_title", "director", "year", "language", "synopsis", "rights", "access", "contributor_id")
MAX_SIDECAR_BYTES = 1 << 20
#: a pseudonym: letters, digits, '-', '_' — no spaces, so a real name is unlikely to be pasted here
PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$")


@dataclass(frozen=True)
class Access:
    level: str = "open"
    until: dt.date | None = None  # for embargoed


@dataclass(frozen=True)
class Sidecar:
    title: str = ""
    original_title: str = ""
    directors: tuple[str, ...] = ()
    year: int | None = None
    language: str = ""
    synopsis: str = ""
    rights: str = ""
    access: Access = field(default_factory=Access)
    contributor_id: str = ""


def _line(node: yaml.Node | None) -> str:
    return f"line {node.start_mark.line + 1}" if node is not None else "top"


def parse(text: str, source: str = "metadata.yaml") -> Sidecar:
    """Validate and convert. Raises SidecarError listing every problem with its line number."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SidecarError(f"{source}: not valid YAML at {where}: {problem}") from exc
    if root is None:
        return Sidecar()
    if not isinstance(root, yaml.MappingNode):
        raise SidecarError(f"{source}: {_line(root)}: expected a mapping of fields ({', '.join(FIELDS)})")
    data: dict[str, Any] = yaml.safe_load(text) or {}
    nodes = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    problems: list[str] = []

    def bad(key: str, msg: str) -> None:
        problems.append(f"{_line(nodes.get(key))}: {key}: {msg}")

    for key in data:
        if key not in FIELDS:
            bad(str(key), f"unknown field (allowed: {', '.join(FIELDS)})")
    for key, value in data.items():
        for path in _path_like(value):
            bad(
                str(key),
                f"{path!r} is a path outside the submission; a sidecar cannot point at files, "
                "least of all outside the folder it came in",
            )

    def text_field(key: str) -> str:
        v = data.get(key, "")
        if v is None:
            return ""
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            bad(key, "must be text")
            return ""
        s = str(v).strip()
        if "\0" in s:
            bad(key, "contains a NUL character")
        return s

    title = text_field("title")
    original_title = text_field("original_title")
    language = text_field("language")
    synopsis = text_field("synopsis")
    rights = text_field("rights")
    contributor_id = text_field("contributor_id")
    if contributor_id and not PSEUDONYM.match(contributor_id):
        bad("contributor_id", "must be a pseudonym: 2-64 letters, digits, '-' or '_' (no spaces, no real names)")

    directors_raw = data.get("director", [])
    directors: tuple[str, ...] = ()
    if isinstance(directors_raw, str):
        directors = (directors_raw.strip(),)
    elif isinstance(directors_raw, list) and all(isinstance(d, str) for d in directors_raw):
        directors = tuple(d.strip() for d in directors_raw)
    elif directors_raw not in (None, []):
        bad("director", "must be a name or a list of names")

    year = data.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int) or not 1888 <= year <= 2100):
        bad("year", f"must be a year between 1888 and 2100, got {year!r}")
        year = None

    access = Access()
    raw_access = data.get("access", "open")
    if isinstance(raw_access, str):
        level, until = raw_access.strip(), None
    elif isinstance(raw_access, dict):
        level, until = str(raw_access.get("level", "")), raw_access.get("until")
    else:
        level, until = "", None
    if level not in ACCESS_LEVELS:
        bad("access", f"must be one of {', '.join(ACCESS_LEVELS)} (embargoed needs `until: YYYY-MM-DD`)")
    elif level == "embargoed":
        if isinstance(until, str):
            try:
                until = dt.date.fromisoformat(until)
            except ValueError:
                until = None
        if not isinstance(until, dt.date):
            bad("access", "embargoed needs `until:` with a date (YYYY-MM-DD)")
        else:
            access = Access(level, until if not isinstance(until, dt.datetime) else until.date())
    else:
        access = Access(level)

    if problems:
        raise SidecarError(f"{source} is invalid:\n  " + "\n  ".join(problems))
    return Sidecar(
        title=title,
        original_title=original_title,
        directors=directors,
        year=year,
        language=language,
        synopsis=synopsis,
        rights=rights,
        access=access,
        contributor_id=contributor_id,
    )


_ESCAPING_PATH = re.compile(r"^(?:\.\./|/|~/|[A-Za-z]:[\\/]|\.\.\\)|(?:^|[/\\])\.\.(?:[/\\]|$)")


def _path_like(value: Any) -> list[str]:
    """Values that look like paths leaving the submission (`../../x`, `/etc/passwd`, `C:\\x`), at
    any depth of the YAML."""
    if isinstance(value, str):
        v = value.strip()
        return [v] if " " not in v and _ESCAPING_PATH.search(v) else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _path_like(v)]
    if isinstance(value, list):
        return [p for v in value for p in _path_like(v)]
    return []


def load(path: Path | None) -> Sidecar:
    if path is None:
        return Sidecar()
    if path.stat().st_size > MAX_SIDECAR_BYTES:
        raise SidecarError(f"{path.name} is larger than {MAX_SIDECAR_BYTES} bytes; it is not a metadata sidecar")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SidecarError(f"{path.name} is not UTF-8 text") from exc
    return parse(text, path.name)
