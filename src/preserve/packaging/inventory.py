"""Version inventories: the JSON document written beside a stored AIP for each of its versions
(``<aip>/versions/v<N>.json``) naming every bag member of the version with the object that holds it,
and the version's payload files with their digests and formats; building it (deterministic bytes)
and reading it back with every consistency check. Pure: builds and parses bytes.

```
{"type": "preserve-aip-version", "format": 1, "aip": "<AIP id>", "version": N,
 "created": "ISO 8601 with offset", "reason": "...", "operator": "...", "title": "...",
 "submission_name": "...", "payload_oxum": "<bytes>.<count>", "content_key": "...",
 "files": [{"path", "size", "sha256", "sha512", "role", "format", "puid", "original_name_hex"}],
 "members": {"<bag member>": {"key": "<object key>", "size": N, "sha256": "..."}}}
```

UTF-8, keys sorted, files sorted by path, one space of indent. ``files`` are the version's payload
files (every member under ``data/``, and only those); ``members`` every file of the bag, each with
the key of its object (the same key on every target, under ``<aip>/``)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from preserve.catalog.records import FileView, VersionRecord
from preserve.core.errors import PackagingError

TYPE = "preserve-aip-version"
FORMAT = 1
MAX_MEMBERS = 200_000
MAX_BYTES = 256 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TOP = {
    "type": str,
    "format": int,
    "aip": str,
    "version": int,
    "created": str,
    "reason": str,
    "operator": str,
    "title": str,
    "submission_name": str,
    "payload_oxum": str,
    "content_key": str,
    "files": list,
    "members": dict,
}
_FILE = {
    "path": str,
    "size": int,
    "sha256": str,
    "sha512": str,
    "role": str,
    "format": str,
    "puid": str,
    "original_name_hex": str,
}
_MEMBER = {"key": str, "size": int, "sha256": str}
_ADVICE = (
    "A version inventory beside an AIP is damaged, inconsistent or not one preserve wrote (the message says "
    "what); the same version's inventory on another replica, or the bag itself, still tells its members."
)


@dataclass(frozen=True)
class Member:
    """One bag member of a version: the object that holds it."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class VersionInventory:
    """One version of an AIP, as its inventory tells it."""

    aip_id: str
    number: int
    created: dt.datetime
    reason: str
    operator: str
    title: str
    submission_name: str
    payload_oxum: str
    content_key: str
    files: tuple[FileView, ...]
    members: Mapping[str, Member]

    def to_version_record(self) -> VersionRecord:
        return VersionRecord(
            number=self.number,
            created=self.created,
            reason=self.reason,
            operator=self.operator,
            members={m: v.key for m, v in self.members.items()},
        )


def build(inv: VersionInventory) -> bytes:
    """The inventory's bytes (the same value gives the same bytes). PackagingError if the value
    breaks a rule `parse` checks, so preserve never writes an inventory it would refuse."""
    if inv.created.utcoffset() is None:
        raise _error("version inventory: created has no UTC offset")
    doc: dict[str, Any] = {
        "type": TYPE,
        "format": FORMAT,
        "aip": inv.aip_id,
        "version": inv.number,
        "created": inv.created.isoformat(timespec="microseconds"),
        "reason": inv.reason,
        "operator": inv.operator,
        "title": inv.title,
        "submission_name": inv.submission_name,
        "payload_oxum": inv.payload_oxum,
        "content_key": inv.content_key,
        "files": [
            {
                "path": f.path,
                "size": f.size,
                "sha256": f.sha256,
                "sha512": f.sha512,
                "role": f.role,
                "format": f.format_name,
                "puid": f.format_registry_key,
                "original_name_hex": f.original_name_hex,
            }
            for f in sorted(inv.files, key=lambda f: f.path)
        ],
        "members": {m: {"key": v.key, "size": v.size, "sha256": v.sha256} for m, v in inv.members.items()},
    }
    _check(doc, None)
    text = json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1, allow_nan=False)
    # lone surrogates cannot be UTF-8: keep them as JSON escapes (they only ever sit inside strings)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8") + b"\n"


def parse(data: bytes, *, aip_id: str | None = None) -> VersionInventory:
    """Read an inventory back. PackagingError, with the reason, when it is over `MAX_BYTES`, not
    UTF-8 JSON, not a format-1 inventory, misses or mistypes a field, is of another AIP than
    ``aip_id``, or is inconsistent (see `build`'s rules: member keys under ``<aip>/``, digests in
    lower-case hex, payload files and ``data/`` members the same set with the same sizes and
    SHA-256s, Payload-Oxum their sum, at most `MAX_MEMBERS` members)."""
    if len(data) > MAX_BYTES:
        raise _error(f"version inventory: {len(data)} bytes, more than the {MAX_BYTES} an inventory may have")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(f"version inventory: not UTF-8 ({exc})") from exc
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ValueError as exc:
        raise _error(f"version inventory: not JSON ({exc})") from exc
    _check(doc, aip_id)
    return VersionInventory(
        aip_id=doc["aip"],
        number=doc["version"],
        created=dt.datetime.fromisoformat(doc["created"]),
        reason=doc["reason"],
        operator=doc["operator"],
        title=doc["title"],
        submission_name=doc["submission_name"],
        payload_oxum=doc["payload_oxum"],
        content_key=doc["content_key"],
        files=tuple(
            FileView(
                path=f["path"],
                size=f["size"],
                sha256=f["sha256"],
                sha512=f["sha512"],
                role=f["role"],
                format_name=f["format"],
                format_registry_key=f["puid"],
                original_name_hex=f["original_name_hex"],
            )
            for f in doc["files"]
        ),
        members={m: Member(v["key"], v["size"], v["sha256"]) for m, v in doc["members"].items()},
    )


def _check(doc: Any, aip_id: str | None) -> None:
    """Every rule of an inventory, on its JSON value."""
    _fields(doc, _TOP, "the inventory")
    if doc["type"] != TYPE:
        raise _error(f"version inventory: type is not {TYPE!r}")
    if doc["format"] != FORMAT:
        raise _error(f"version inventory: format {doc['format']}, this preserve reads format {FORMAT}")
    aip = doc["aip"]
    if not aip or "/" in aip:
        raise _error("version inventory: aip is not an AIP id")
    if aip_id is not None and aip != aip_id:
        raise _error(f"version inventory: it is an inventory of AIP {aip}, not of {aip_id}")
    if doc["version"] < 1:
        raise _error(f"version inventory: version {doc['version']} (versions start at 1)")
    try:
        created = dt.datetime.fromisoformat(doc["created"])
    except ValueError:
        raise _error("version inventory: created is not an ISO 8601 time") from None
    if created.utcoffset() is None:
        raise _error("version inventory: created has no UTC offset")

    members: dict[str, Any] = doc["members"]
    if len(members) > MAX_MEMBERS:
        raise _error(f"version inventory: {len(members)} members, more than {MAX_MEMBERS}")
    for name, m in members.items():
        _fields(m, _MEMBER, f"member {name!r}")
        if not _safe_member(name):
            raise _error(f"version inventory: member {name!r} is not a relative path inside the bag")
        if not m["key"].startswith(f"{aip}/") or m["key"] == f"{aip}/":
            raise _error(f"version inventory: member {name!r} is held by a key outside the AIP's prefix {aip}/")
        if m["size"] < 0 or not _HEX64.fullmatch(m["sha256"]):
            raise _error(f"version inventory: member {name!r} has a negative size or a SHA-256 not in lower-case hex")

    files: list[Any] = doc["files"]
    paths: set[str] = set()
    total = 0
    for i, f in enumerate(files):
        _fields(f, _FILE, f"file {i}")
        path = f["path"]
        if path in paths:
            raise _error(f"version inventory: payload file {path!r} is listed twice")
        paths.add(path)
        if f["size"] < 0:
            raise _error(f"version inventory: payload file {path!r} has a negative size")
        if not _HEX64.fullmatch(f["sha256"]) or not _HEX128.fullmatch(f["sha512"]):
            raise _error(f"version inventory: payload file {path!r} has a digest not in lower-case hex of its length")
        if not _HEX.fullmatch(f["original_name_hex"]):
            raise _error(f"version inventory: payload file {path!r} has an original name that is not lower-case hex")
        m = members.get(path)
        if not path.startswith("data/") or m is None:
            raise _error(f"version inventory: payload file {path!r} is not a member under data/")
        if m["size"] != f["size"] or m["sha256"] != f["sha256"]:
            raise _error(f"version inventory: payload file {path!r} differs from its member in size or SHA-256")
        total += f["size"]
    stray = sorted(name for name in members if name.startswith("data/") and name not in paths)
    if stray:
        raise _error(f"version inventory: member {stray[0]!r} under data/ is not a payload file ({len(stray)} such)")
    if doc["payload_oxum"] != f"{total}.{len(files)}":
        raise _error(f"version inventory: Payload-Oxum is not the payload files' {total}.{len(files)}")


def _fields(value: Any, spec: Mapping[str, type], what: str) -> None:
    if not isinstance(value, dict):
        raise _error(f"version inventory: {what} is not a JSON object")
    if set(value) != set(spec):
        missing, unknown = sorted(set(spec) - set(value)), sorted(set(value) - set(spec))
        raise _error(f"version inventory: {what} misses fields {missing} or has unknown ones {unknown}")
    for name, kind in spec.items():
        v = value[name]
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise _error(f"version inventory: {what}: {name} is not a {kind.__name__}")


def _safe_member(name: str) -> bool:
    """A bag member path a restore can write under its destination: relative, no empty, . or ..
    segments."""
    return bool(name) and not name.startswith("/") and all(s not in ("", ".", "..") for s in name.split("/"))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _error(f"version inventory: the key {k!r} appears twice in one object")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise _error(f"version inventory: {name} is not JSON")


def _error(message: str) -> PackagingError:
    return PackagingError(message, advice=_ADVICE)
