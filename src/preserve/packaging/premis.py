"""PREMIS 3.0 XML for one AIP: objects (the AIP as an intellectual entity; each original and each
preservation master with size, SHA-256 and SHA-512 fixity and PRONOM format), every event (with
outcome, detail, linked agents and objects) and every agent (tool name and version); plus offline
validation against the PREMIS 3.0 XSD shipped in schemas/. Pure: builds bytes, reads only the
schema files.

The same builder serves the bag (data/metadata/premis.xml, written before packing, so it holds the
events up to then) and `preserve premis AIP_ID` (from the catalog, with every later event:
packing, replication, ingestion, accession, fixity checks of audits); its event and agent elements
also serve the event records written beside stored AIPs (`preserve.packaging.eventlog`)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from preserve.core.model import Agent, Event, EventType

if TYPE_CHECKING:
    from lxml.etree._docloader import _InputDocument  # the stubs' name for what resolve_*() return

    from preserve.catalog import AipView

NS = "http://www.loc.gov/premis/v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA_LOCATION = "http://www.loc.gov/standards/premis/v3/premis.xsd"
#: remote schema locations answered from local copies, so validation never touches the network
LOCAL_SCHEMAS = {
    "http://www.loc.gov/standards/premis/v3/premis.xsd": SCHEMA_DIR / "premis.xsd",
    "http://www.loc.gov/standards/premis/premis.xsd": SCHEMA_DIR / "premis.xsd",
    "http://www.loc.gov/standards/xlink/xlink.xsd": SCHEMA_DIR / "xlink.xsd",
    "http://www.w3.org/1999/xlink.xsd": SCHEMA_DIR / "xlink.xsd",
    "xlink.xsd": SCHEMA_DIR / "xlink.xsd",
}
#: event types that are terms of the Library of Congress PREMIS eventType vocabulary
LOC_EVENT_TYPES = frozenset(
    {
        "ingestion",
        "message digest calculation",
        "fixity check",
        "format identification",
        "metadata extraction",
        "validation",
        "virus check",
        "normalization",
        "creation",
        "metadata modification",
        "packing",
        "replication",
        "recovery",
        "accession",
        "quarantine",
        "deletion",
        "deaccession",
        "filename change",
        "dissemination",
        "policy assignment",
    }
)
EVENT_TYPE_AUTHORITY = "http://id.loc.gov/vocabulary/preservation/eventType"
#: fixed namespace for event identifiers, so the same event has the same UUID in every export
_EVENT_NS = uuid.UUID("6f1c4d1e-3b0a-5c55-9a7e-7072657365ff")


@dataclass(frozen=True)
class PremisFile:
    """One file object: an original or a preservation master, as it sits in the bag."""

    path: str  # bag-relative, e.g. data/objects/film.mov
    size: int
    sha256: str
    sha512: str
    format_name: str = ""
    puid: str = ""
    derived_from: str = ""  # for a master: the path of its original


def event_id(aip_id: str, e: Event, occurrence: int = 0) -> str:
    key = f"{aip_id}|{e.type.value}|{e.at.isoformat()}|{e.subject}|{e.detail}|{occurrence}"
    # uuid.uuid5, but a lone surrogate (a name that was not UTF-8) is hashed rather than raising
    digest = hashlib.sha1(_EVENT_NS.bytes + key.encode("utf-8", "surrogatepass"), usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def agent_id(a: Agent) -> str:
    return f"{a.name} {a.version}".strip()


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    e = etree.SubElement(parent, f"{{{NS}}}{tag}", {k: v for k, v in attrs.items() if v})
    if text is not None:
        e.text = text
    return e


def _identifier(parent: etree._Element, tag: str, kind: str, value: str) -> etree._Element:
    """objectIdentifier, linkingAgentIdentifier, ...: <tag><tagType/><tagValue/></tag>."""
    e = _el(parent, tag)
    _el(e, f"{tag}Type", kind)
    _el(e, f"{tag}Value", _clean(value))
    return e


def _clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters; tool output sometimes has them. Lone
    surrogates and U+FFFE/U+FFFF (which lxml refuses too) become ``\\uXXXX``."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x20 else f"\\u{ord(m[0]):04x}", text)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def event_ids(aip_id: str, events: Sequence[Event]) -> list[str]:
    """The identifier of each event, in order: `event_id`, with an occurrence number for repeats."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    for e in events:
        base = event_id(aip_id, e)
        seen[base] = seen.get(base, -1) + 1
        ids.append(event_id(aip_id, e, seen[base]) if seen[base] else base)
    return ids


def document(aip_id: str, files: Sequence[PremisFile], events: Sequence[Event]) -> bytes:
    """The PREMIS 3.0 document (UTF-8 bytes) of one AIP. It names no person of the submission: its
    title and names stay in the catalog; agents are tools (and the role "archivist"), and the
    archive's own operators where an event records their decision (a deaccession's requester and
    approver are linked to its deletion events as "authorizer")."""
    root = etree.Element(f"{{{NS}}}premis", nsmap={None: NS, "xsi": XSI}, version="3.0")
    root.set(f"{{{XSI}}}schemaLocation", f"{NS} {SCHEMA_LOCATION}")
    paths = {f.path for f in files}
    ids = list(zip(events, event_ids(aip_id, events), strict=True))
    normalization_of = {
        str(e.extra.get("master")): eid for e, eid in ids if e.type is EventType.NORMALIZATION and e.extra.get("master")
    }

    ie = _el(root, "object")
    ie.set(f"{{{XSI}}}type", "intellectualEntity")
    _identifier(ie, "objectIdentifier", "UUID", aip_id)
    for f in files:
        rel = _el(ie, "relationship")
        _el(rel, "relationshipType", "structural")
        _el(rel, "relationshipSubType", "includes")
        _identifier(rel, "relatedObjectIdentifier", "local", f.path)

    for f in files:
        obj = _el(root, "object")
        obj.set(f"{{{XSI}}}type", "file")
        _identifier(obj, "objectIdentifier", "local", f.path)
        chars = _el(obj, "objectCharacteristics")
        _el(chars, "compositionLevel", "0")
        for alg, value in (("SHA-256", f.sha256), ("SHA-512", f.sha512)):
            if value:
                fx = _el(chars, "fixity")
                _el(fx, "messageDigestAlgorithm", alg)
                _el(fx, "messageDigest", value)
                _el(fx, "messageDigestOriginator", "preserve")
        _el(chars, "size", str(f.size))
        fmt = _el(chars, "format")
        designation = _el(fmt, "formatDesignation")
        _el(designation, "formatName", _clean(f.format_name or "unknown"))
        if f.puid:
            reg = _el(fmt, "formatRegistry")
            _el(reg, "formatRegistryName", "PRONOM")
            _el(reg, "formatRegistryKey", f.puid)
            _el(reg, "formatRegistryRole", "specification")
        _el(obj, "originalName", f.path.removeprefix("data/objects/"))
        if f.derived_from:
            rel = _el(obj, "relationship")
            _el(rel, "relationshipType", "derivation")
            _el(rel, "relationshipSubType", "has source")
            _identifier(rel, "relatedObjectIdentifier", "local", f.derived_from)
            if f.path in normalization_of:
                _identifier(rel, "relatedEventIdentifier", "UUID", normalization_of[f.path])

    agents: dict[str, Agent] = {}
    for e, eid in ids:
        event_element(root, aip_id, e, eid, paths=paths, agents=agents)
    for a in sorted_agents(agents):
        agent_element(root, a)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def event_element(
    parent: etree._Element,
    aip_id: str,
    e: Event,
    eid: str,
    *,
    paths: Set[str],
    agents: dict[str, Agent],
    extension: etree._Element | None = None,
) -> etree._Element:
    """Append one <event> (identifier ``eid``) to ``parent``, linked to the file objects of
    ``paths`` it is about (else to the AIP); adds the agents it links to ``agents`` (by
    `agent_id`). ``extension``, if given, goes in eventDetailInformation/eventDetailExtension."""
    ev = _el(parent, "event")
    _identifier(ev, "eventIdentifier", "UUID", eid)
    loc = e.type.value in LOC_EVENT_TYPES
    _el(
        ev,
        "eventType",
        e.type.value,
        authority="eventType" if loc else "",
        authorityURI=EVENT_TYPE_AUTHORITY if loc else "",
    )
    _el(ev, "eventDateTime", e.at.isoformat())
    if e.detail or extension is not None:
        info = _el(ev, "eventDetailInformation")
        if e.detail:
            _el(info, "eventDetail", _clean(e.detail))
        if extension is not None:
            _el(info, "eventDetailExtension").append(extension)
    out = _el(ev, "eventOutcomeInformation")
    _el(out, "eventOutcome", e.outcome.value)
    if e.extra:
        note = json.dumps(e.extra, ensure_ascii=False, sort_keys=True, default=str)
        _el(_el(out, "eventOutcomeDetail"), "eventOutcomeDetailNote", _clean(note))
    agents.setdefault(agent_id(e.agent), e.agent)
    link = _identifier(ev, "linkingAgentIdentifier", "preserve agent", agent_id(e.agent))
    _el(link, "linkingAgentRole", "executing program" if e.agent.kind == "software" else "implementer")
    for name in dict.fromkeys(str(n) for n in e.extra.get("authorized_by", ())):  # a deaccession's two people
        person = Agent(name, kind="person")
        agents.setdefault(agent_id(person), person)
        link = _identifier(ev, "linkingAgentIdentifier", "preserve agent", agent_id(person))
        _el(link, "linkingAgentRole", "authorizer")
    for path, role in _objects_of(e, paths):
        obj = _identifier(ev, "linkingObjectIdentifier", "local", path)
        _el(obj, "linkingObjectRole", role)
    if not any(True for _ in _objects_of(e, paths)):
        obj = _identifier(ev, "linkingObjectIdentifier", "UUID", aip_id)
        _el(obj, "linkingObjectRole", "source")
    return ev


def sorted_agents(agents: dict[str, Agent]) -> list[Agent]:
    """The agents collected by `event_element`, in the order a document lists them."""
    return [a for _, a in sorted(agents.items())]


def agent_element(parent: etree._Element, a: Agent) -> etree._Element:
    """Append one <agent> (identified by `agent_id`) to ``parent``."""
    ag = _el(parent, "agent")
    _identifier(ag, "agentIdentifier", "preserve agent", agent_id(a))
    _el(ag, "agentName", _clean(a.name))
    _el(ag, "agentType", a.kind)
    if a.version:
        _el(ag, "agentVersion", _clean(a.version))
    return ag


def _objects_of(e: Event, paths: Set[str]) -> Iterable[tuple[str, str]]:
    """The file objects an event is about: its subject (source) and a master it produced (outcome)."""
    if e.subject in paths:
        yield e.subject, "source"
    deleted = str(e.extra.get("file", ""))  # a deletion event names the file its object held
    if deleted in paths and deleted != e.subject:
        yield deleted, "source"
    master = str(e.extra.get("master", ""))
    if master in paths and master != e.subject:
        yield master, "outcome"


class _LocalSchemas(etree.Resolver):
    def resolve(self, url: str | None, pubid: str | None, context: object) -> _InputDocument | None:
        if url is None:
            return None
        local = LOCAL_SCHEMAS.get(url) or LOCAL_SCHEMAS.get(Path(url).name)
        return self.resolve_filename(str(local), context) if local else None


@functools.lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    """The PREMIS 3.0 schema, loaded offline (remote imports answered from schemas/)."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_LocalSchemas())
    doc = etree.parse(str(SCHEMA_DIR / "premis.xsd"), parser)
    return etree.XMLSchema(doc)


def validate(xml: bytes) -> list[str]:
    """Schema errors of a PREMIS document; empty when it is valid."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    try:
        doc = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    s = schema()
    if s.validate(doc):
        return []
    return [f"line {err.line}: {err.message}" for err in s.error_log]


def from_catalog(aip: AipView) -> bytes:
    """The full PREMIS document of a stored AIP from the catalog: every event recorded so far
    (packing, replication, ingestion, accession, later fixity checks and releases included).
    Generated files in data/metadata/ (technical metadata, framemd5, this record's bag copy) are
    not objects of their own, as in the bag's premis.xml."""
    master_of = {
        str(e.extra["master"]): e.subject
        for e in aip.events
        if e.type is EventType.NORMALIZATION and e.extra.get("master")
    }
    files = [
        PremisFile(f.path, f.size, f.sha256, f.sha512, f.format_name, f.format_registry_key, master_of.get(f.path, ""))
        for f in aip.files
        if not f.path.startswith("data/metadata/")
    ]
    return document(aip.id, files, list(aip.events))
