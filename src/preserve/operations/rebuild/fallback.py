"""The bag itself, where the journal cannot tell: each version's members from the bag's tag files,
its manifests and the keys under versions/v<N>/, the current version's files from its manifests and
PREMIS, the content key of its originals; every such guess reported as a `Fallback`. Side effects:
reads tag files and PREMIS documents of one AIP on the source."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from preserve.catalog import FileView
from preserve.catalog.records import VersionRecord
from preserve.core.errors import StorageError, StorageUnavailable
from preserve.core.model import Event, EventType, Role
from preserve.intake.submission import role_for
from preserve.operations.rebuild.records import Journal, utc, when
from preserve.operations.rebuild.report import Fallback
from preserve.packaging import bag, premis
from preserve.storage import layout
from preserve.storage.base import ObjectInfo, ObjectStore, member_path, object_key, read_small

#: the tag files of a bag (or of a version) at its top level
TAG_RE = re.compile(r"^(bagit\.txt|bag-info\.txt|(tag)?manifest-[a-z0-9]+\.txt)$")
PREMIS_MEMBER = "data/metadata/premis.xml"


class Bag:
    """The tag files and PREMIS of one version of a bag on the source, each read once, on demand."""

    def __init__(self, store: ObjectStore, members: dict[str, str], listed: Mapping[str, ObjectInfo]) -> None:
        self.store, self.members, self.listed = store, members, listed
        self._cache: dict[str, bytes | None] = {}

    def read(self, member: str) -> bytes | None:
        if member not in self._cache:
            key = self.members.get(member)
            data: bytes | None = None
            if key is not None and key in self.listed:
                try:
                    data = read_small(self.store, key)
                except StorageUnavailable:
                    raise
                except StorageError:
                    data = None
            self._cache[member] = data
        return self._cache[member]

    def text(self, member: str) -> str:
        data = self.read(member)
        return data.decode("utf-8", errors="replace") if data is not None else ""

    def info(self) -> dict[str, str]:
        return bag.parse_bag_info(self.text("bag-info.txt"))

    def manifest(self, alg: str, *, tag: bool = False) -> dict[str, str]:
        return bag.parse_manifest(self.text(f"{'tag' if tag else ''}manifest-{alg}.txt"))


def premis_files(xml: bytes | None) -> dict[str, tuple[str, str, str]]:
    """path -> (format name, PUID, the original it derives from) of the file objects of a preserve
    PREMIS document (its originals and preservation masters)."""
    if not xml:
        return {}
    from lxml import etree

    ns = {"p": premis.NS}
    try:
        root = etree.fromstring(xml, etree.XMLParser(no_network=True, resolve_entities=False))
    except etree.XMLSyntaxError:
        return {}
    out: dict[str, tuple[str, str, str]] = {}
    for obj in root.findall("p:object", ns):
        path = obj.findtext("p:objectIdentifier/p:objectIdentifierValue", default="", namespaces=ns)
        if not path.startswith("data/"):
            continue
        name = obj.findtext(".//p:formatDesignation/p:formatName", default="", namespaces=ns)
        puid = obj.findtext(".//p:formatRegistry/p:formatRegistryKey", default="", namespaces=ns)
        source = ""
        for rel in obj.findall("p:relationship", ns):
            if rel.findtext("p:relationshipType", default="", namespaces=ns) == "derivation":
                source = rel.findtext(
                    "p:relatedObjectIdentifier/p:relatedObjectIdentifierValue", default="", namespaces=ns
                )
        out[path] = ("" if name == "unknown" else name, puid, source)
    return out


def formats_from_events(events: Sequence[Event]) -> dict[str, tuple[str, str]]:
    """path -> (format name, PUID) as the newest format identification of each file said."""
    out: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.type is EventType.FORMAT_IDENTIFICATION and e.subject and ("format" in e.extra or "puid" in e.extra):
            out[e.subject] = (str(e.extra.get("format") or ""), str(e.extra.get("puid") or ""))
    return out


def role_of(path: str) -> str:
    if path.startswith("data/metadata/"):
        return Role.SIDECAR.value
    return role_for(path.rsplit("/", 1)[-1]).value


def _version_of_member_key(aip_id: str, key: str) -> int | None:
    if layout.classify(aip_id, key) != "version-member":
        return None
    return int(key[len(aip_id) + 1 :].split("/")[1][1:])


def versions_of(
    aip_id: str,
    journal: Journal,
    state: Mapping[str, Any] | None,
    listed: Mapping[str, ObjectInfo],
    created: dt.datetime,
    store: ObjectStore,
    fallbacks: list[Fallback],
) -> tuple[list[VersionRecord], dict[int, Bag]]:
    """Every version, with the bag of each: from its inventory, else rebuilt from the bag (version
    1: its tag files and what its manifest names; version N: the keys under versions/v<N>/ over
    version N-1, without the payload files its own manifest no longer names)."""
    headers = {int(h["number"]): h for h in (state or {}).get("versions") or () if "number" in h}
    numbers = {1, *journal.inventories, *headers}
    numbers |= {n for k in listed if (n := _version_of_member_key(aip_id, k)) is not None}
    versions: list[VersionRecord] = []
    bags: dict[int, Bag] = {}
    previous: dict[str, str] = {}
    for n in sorted(numbers):
        inv = journal.inventories.get(n)
        if inv is not None:
            record = inv.to_version_record()
            record = VersionRecord(n, utc(record.created), record.reason, record.operator, dict(record.members))
            bags[n] = Bag(store, dict(record.members), listed)
        else:
            if n == 1:
                members = {
                    member_path(aip_id, k): k
                    for k in listed
                    if layout.classify(aip_id, k) == "bag" and TAG_RE.match(member_path(aip_id, k))
                }
                bag = Bag(store, members, listed)
                for path in bag.manifest("sha256"):
                    members.setdefault(path, object_key(aip_id, path))
            else:
                below = f"{layout.VERSIONS_DIR}/v{n}/"
                members = dict(previous)
                for k in listed:
                    if _version_of_member_key(aip_id, k) == n:
                        members[member_path(aip_id, k).removeprefix(below)] = k
                bag = Bag(store, members, listed)
                payload = bag.manifest("sha256")
                if payload:
                    members = {m: k for m, k in members.items() if not m.startswith("data/") or m in payload}
                    bag.members = members
            h = headers.get(n, {})
            record = VersionRecord(
                n,
                when(h.get("created")) or created,
                str(h.get("reason") or ("ingest" if n == 1 else "")),
                str(h.get("operator") or ""),
                members,
            )
            bags[n] = bag
            what = (
                "the bag's tag files and manifest" if n == 1 else f"the keys under versions/v{n}/ over version {n - 1}"
            )
            fallbacks.append(
                Fallback(
                    aip_id,
                    f"version {n}: no readable inventory; its members are {what}"
                    + ("" if h or n == 1 else "; its date, reason and operator are unknown"),
                )
            )
        versions.append(record)
        previous = dict(record.members)
    return versions, bags


def files_of(
    aip_id: str,
    current: VersionRecord,
    journal: Journal,
    bag: Bag,
    listed: Mapping[str, ObjectInfo],
    events: Sequence[Event],
    fallbacks: list[Fallback],
) -> list[FileView]:
    """The payload files of the current version: its inventory's, else its manifests' (SHA-256 and
    SHA-512; sizes as stored; formats from its PREMIS or the format identification events; roles
    as an older readable inventory says, else by name)."""
    inv = journal.inventories.get(current.number)
    if inv is not None:
        return list(inv.files)
    older = {(f.path, f.sha256): f for n in sorted(journal.inventories) for f in journal.inventories[n].files}
    sha256, sha512 = bag.manifest("sha256"), bag.manifest("sha512")
    formats = premis_files(bag.read(PREMIS_MEMBER))
    identified = formats_from_events(events)
    out: list[FileView] = []
    for path in sorted(sha256):
        old = older.get((path, sha256[path]))
        if old is not None:
            out.append(old)
            continue
        info = listed.get(current.members.get(path, object_key(aip_id, path)))
        name, puid, _ = formats.get(path, ("", "", ""))
        if not name and not puid:
            name, puid = identified.get(path, ("", ""))
        out.append(
            FileView(path, info.size if info else 0, sha256[path], sha512.get(path, ""), role_of(path), name, puid)
        )
    fallbacks.append(
        Fallback(
            aip_id,
            f"files of version {current.number} from the bag (its manifests, PREMIS formats, roles by name); "
            "an original name that was not UTF-8 is not recoverable from it",
        )
    )
    return out


def content_key_of(files: Sequence[FileView], formats: Mapping[str, tuple[str, str, str]]) -> str:
    """`catalog.content_key` of the originals: data/objects/ without the preservation masters."""
    masters = {p for p, (_, _, source) in formats.items() if source}
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        if f.path.startswith("data/objects/") and f.path not in masters:
            h.update(f"{f.path}\0{f.sha256}\n".encode())
    return h.hexdigest()
