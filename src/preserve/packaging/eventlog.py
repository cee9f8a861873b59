"""Event records: the PREMIS 3.0 documents written beside a stored AIP (``<aip>/events/*.premis.xml``),
one per journal flush, each holding the events recorded since the last one, losslessly, and the
AIP's catalog state; and reading events back from them or from any preserve PREMIS document (the
bag's data/metadata/premis.xml). Pure: builds and parses bytes, reads only the schema files.

A record is an ordinary PREMIS document, valid against the shipped XSD: the AIP as an
intellectualEntity, its events as `premis.document` writes them (same identifiers, agents, outcome
notes; linked to the AIP, since a record does not list the files) and their agents. Two extensions
make it lossless, both JSON (UTF-8; characters XML 1.0 cannot hold are JSON ``\\uXXXX`` escapes):

- each event's ``eventDetailInformation/eventDetailExtension`` holds
  ``<pe:event xmlns:pe="https://github.com/preserve-archive/preserve/ns/event/1" sha256="...">``
  with ``{"type", "outcome", "at" (ISO 8601, offset and microseconds), "agent": {"name", "version",
  "kind"}, "subject", "detail", "extra"}``;
- one ``rights/rightsExtension`` holds ``<ps:state xmlns:ps="https://github.com/preserve-archive/preserve/ns/state/1"
  written="ISO 8601" sha256="...">`` with the AIP's state (`Catalog.aip_state`), or ``null``.

``sha256`` is the digest of the JSON text (UTF-8), so a changed byte is found even where the JSON
still parses. JSON longer than `PART_CHARS` characters is split over ``<pe:part>``/``<ps:part>``
children, read back in order (a hardened parser refuses longer text nodes). One thing JSON cannot
tell apart: a lone high surrogate right before a lone low one reads back as the character the pair
encodes (the catalog's JSON columns do the same; its text columns cannot hold surrogates at all)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree

from preserve.core.errors import PackagingError
from preserve.core.model import Agent, Event, EventType, Outcome
from preserve.packaging import premis
from preserve.packaging.premis import NS, SCHEMA_LOCATION, XSI

EVENT_NS = "https://github.com/preserve-archive/preserve/ns/event/1"
STATE_NS = "https://github.com/preserve-archive/preserve/ns/state/1"
#: the most characters of JSON one element's text holds (libxml2 refuses text nodes over 10 MB
#: without huge_tree, and a character is at most 4 bytes, 6 when escaped as ``&amp;``)
PART_CHARS = 1_000_000
_EVENT_KEYS = frozenset({"type", "outcome", "at", "agent", "subject", "detail", "extra"})
_AGENT_KEYS = frozenset({"name", "version", "kind"})
#: what XML 1.0 cannot hold and json.dumps(ensure_ascii=False) leaves raw (it escapes U+0000-U+001F)
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")
_P = f"{{{NS}}}"
_EXT_PATH = f"{_P}eventDetailInformation/{_P}eventDetailExtension/{{{EVENT_NS}}}event"
_STATE_PATH = f"{_P}rights/{_P}rightsExtension/{{{STATE_NS}}}state"
_E = TypeVar("_E", EventType, Outcome)
_ADVICE = (
    "An event record or PREMIS document beside an AIP is damaged or not one preserve wrote (the message says "
    "what); the AIP's other records and its other replicas still hold their events."
)


_BUILD_ADVICE = "The events or state cannot be written as a record (a defect in preserve); report it to its developers."


def _error(message: str, advice: str = _ADVICE) -> PackagingError:
    return PackagingError(message, advice=advice)


@dataclass(frozen=True)
class EventRecord:
    """One event record, read back."""

    aip_id: str
    written_at: dt.datetime
    events: tuple[Event, ...]
    state: dict[str, Any] | None


# -- writing ----------------------------------------------------------------------------------------
def build(aip_id: str, events: Sequence[Event], state: Mapping[str, Any] | None, *, written_at: dt.datetime) -> bytes:
    """The event record (UTF-8 bytes) of ``events`` of one AIP, with its ``state`` (None: none
    given), written at ``written_at`` (timezone-aware). PackagingError if an event's time has no
    offset or its extra, or the state, is not JSON."""
    if written_at.utcoffset() is None:
        raise _error("event record: written_at has no UTC offset", _BUILD_ADVICE)
    root = etree.Element(f"{_P}premis", nsmap={None: NS, "xsi": XSI, "pe": EVENT_NS, "ps": STATE_NS}, version="3.0")
    root.set(f"{{{XSI}}}schemaLocation", f"{NS} {SCHEMA_LOCATION}")
    ie = etree.SubElement(root, f"{_P}object")
    ie.set(f"{{{XSI}}}type", "intellectualEntity")
    oid = etree.SubElement(ie, f"{_P}objectIdentifier")
    etree.SubElement(oid, f"{_P}objectIdentifierType").text = "UUID"
    etree.SubElement(oid, f"{_P}objectIdentifierValue").text = aip_id

    agents: dict[str, Agent] = {}
    for n, (e, eid) in enumerate(zip(events, premis.event_ids(aip_id, events), strict=True)):
        ext = etree.Element(f"{{{EVENT_NS}}}event", nsmap={"pe": EVENT_NS})
        _put_json(ext, _event_json(e, n), f"{{{EVENT_NS}}}part")
        premis.event_element(root, aip_id, e, eid, paths=frozenset(), agents=agents, extension=ext)
    for a in premis.sorted_agents(agents):
        premis.agent_element(root, a)

    ext = etree.SubElement(etree.SubElement(root, f"{_P}rights"), f"{_P}rightsExtension")
    st = etree.SubElement(ext, f"{{{STATE_NS}}}state", written=written_at.isoformat(timespec="microseconds"))
    try:
        text = json.dumps(None if state is None else dict(state), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise _error(f"event record: the AIP's state is not JSON ({exc})", _BUILD_ADVICE) from exc
    _put_json(st, _xml_safe(text), f"{{{STATE_NS}}}part")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _event_json(e: Event, n: int) -> str:
    if e.at.utcoffset() is None:
        raise _error(f"event record: event {n} ({e.type.value}) has a time without UTC offset", _BUILD_ADVICE)
    doc = {
        "type": e.type.value,
        "outcome": e.outcome.value,
        "at": e.at.isoformat(timespec="microseconds"),
        "agent": {"name": e.agent.name, "version": e.agent.version, "kind": e.agent.kind},
        "subject": e.subject,
        "detail": e.detail,
        "extra": e.extra,
    }
    try:
        return _xml_safe(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        raise _error(
            f"event record: event {n} ({e.type.value}) has an extra that is not JSON ({exc})", _BUILD_ADVICE
        ) from exc


def _xml_safe(text: str) -> str:
    """JSON text whose every character XML 1.0 can hold: the others (only ever inside strings) escaped."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _put_json(el: etree._Element, text: str, part_tag: str) -> None:
    el.set("sha256", hashlib.sha256(text.encode("utf-8")).hexdigest())
    if len(text) <= PART_CHARS:
        el.text = text
        return
    for i in range(0, len(text), PART_CHARS):
        etree.SubElement(el, part_tag).text = text[i : i + PART_CHARS]


# -- reading ----------------------------------------------------------------------------------------
def parse(xml: bytes, *, aip_id: str | None = None) -> EventRecord:
    """Read an event record back. PackagingError, with the reason, when it is not well-formed, not
    PREMIS 3, not valid against the schema, has a DOCTYPE, misses or has damaged extensions (JSON
    broken, digest not matching, not an event preserve knows), disagrees with its own PREMIS fields,
    or is of another AIP than ``aip_id``."""
    root = _load(xml)
    s = premis.schema()
    if not s.validate(root):
        first = s.error_log[0] if s.error_log else None
        where = f"line {first.line}: {first.message}" if first is not None else "schema-invalid"
        raise _error(f"event record: not valid PREMIS 3.0 ({where})")

    entities = [o for o in root.iterfind(f"{_P}object") if _local(o.get(f"{{{XSI}}}type", "")) == "intellectualEntity"]
    found = [
        (i.findtext(f"{_P}objectIdentifierValue") or "")
        for o in entities
        for i in o.iterfind(f"{_P}objectIdentifier")
        if i.findtext(f"{_P}objectIdentifierType") == "UUID"
    ]
    if len(found) != 1 or not found[0]:
        raise _error("event record: it does not name exactly one AIP (intellectualEntity with a UUID)")
    record_aip = found[0]
    if aip_id is not None and record_aip != aip_id:
        raise _error(f"event record: it is a record of AIP {record_aip}, not of {aip_id}")

    states = root.findall(_STATE_PATH)
    if len(states) != 1:
        raise _error(f"event record: {len(states)} state extensions, expected 1")
    written_at = _time(states[0].get("written", ""), "the state's written time")
    state = _json(states[0], f"{{{STATE_NS}}}part", "the state")
    if state is not None and not isinstance(state, dict):
        raise _error("event record: the state is neither a JSON object nor null")

    events: list[Event] = []
    elements = list(root.iterfind(f"{_P}event"))
    for n, ev in enumerate(elements):
        ext = ev.find(_EXT_PATH)
        if ext is None:
            raise _error(f"event record: event {n} carries no preserve event extension")
        e = _event_of(ext, n)
        if ev.findtext(f"{_P}eventType") != e.type.value or (
            ev.findtext(f"{_P}eventOutcomeInformation/{_P}eventOutcome") != e.outcome.value
        ):
            raise _error(f"event record: event {n}'s PREMIS type or outcome differs from its extension")
        events.append(e)
    ids = [ev.findtext(f"{_P}eventIdentifier/{_P}eventIdentifierValue") for ev in elements]
    for n, (have, want) in enumerate(zip(ids, premis.event_ids(record_aip, events), strict=True)):
        if have != want:
            raise _error(f"event record: event {n}'s identifier does not match its extension")
    return EventRecord(record_aip, written_at, tuple(events), state)


def events_from_premis(xml: bytes) -> list[Event]:
    """The events of a preserve PREMIS document, in document order: from each event's extension
    where it has one (event records), else, best effort, from the standard fields as
    `premis.document` writes them (the bag's premis.xml): type, date, detail, outcome, the outcome
    note's JSON as extra, the executing agent (name, version, kind from its agent entity) and the
    subject (the linked "local" object of role "source", else ""). Control characters that
    `premis.document` wrote as ``\\xNN`` text stay so. PackagingError when the document cannot be
    read (not well-formed, DOCTYPE, not PREMIS 3) or an event is not one preserve writes."""
    root = _load(xml)
    agents: dict[str, Agent] = {}
    for ag in root.iterfind(f"{_P}agent"):
        a = Agent(
            ag.findtext(f"{_P}agentName") or "",
            ag.findtext(f"{_P}agentVersion") or "",
            ag.findtext(f"{_P}agentType") or "software",
        )
        for ident in ag.iterfind(f"{_P}agentIdentifier"):
            agents.setdefault(ident.findtext(f"{_P}agentIdentifierValue") or "", a)
    events: list[Event] = []
    for n, ev in enumerate(root.iterfind(f"{_P}event")):
        ext = ev.find(_EXT_PATH)
        events.append(_event_of(ext, n) if ext is not None else _event_from_fields(ev, n, agents))
    return events


def _event_from_fields(ev: etree._Element, n: int, agents: Mapping[str, Agent]) -> Event:
    where = f"PREMIS event {n}"
    type_ = _enum(EventType, ev.findtext(f"{_P}eventType"), f"{where}: event type")
    outcome = _enum(Outcome, ev.findtext(f"{_P}eventOutcomeInformation/{_P}eventOutcome"), f"{where}: outcome")
    at = _time(ev.findtext(f"{_P}eventDateTime") or "", f"{where}: date", naive_is_utc=True)
    detail = ev.findtext(f"{_P}eventDetailInformation/{_P}eventDetail") or ""
    extra: dict[str, Any] = {}
    note = ev.findtext(f"{_P}eventOutcomeInformation/{_P}eventOutcomeDetail/{_P}eventOutcomeDetailNote")
    if note is not None:
        try:
            extra = json.loads(note)
        except ValueError as exc:
            raise _error(f"{where}: the outcome note is not JSON ({exc})") from exc
        if not isinstance(extra, dict):
            raise _error(f"{where}: the outcome note is not a JSON object")
    agent: Agent | None = None
    for link in ev.iterfind(f"{_P}linkingAgentIdentifier"):
        role = link.findtext(f"{_P}linkingAgentRole") or ""
        if role == "authorizer":
            continue
        value = link.findtext(f"{_P}linkingAgentIdentifierValue") or ""
        agent = agents.get(value) or Agent(value, kind="software" if role == "executing program" else "person")
        break
    if agent is None:
        raise _error(f"{where}: no executing agent")
    subject = ""
    for link in ev.iterfind(f"{_P}linkingObjectIdentifier"):
        if (
            link.findtext(f"{_P}linkingObjectIdentifierType") == "local"
            and link.findtext(f"{_P}linkingObjectRole") == "source"
        ):
            subject = link.findtext(f"{_P}linkingObjectIdentifierValue") or ""
            break
    return Event(type_, outcome, agent, detail, at, subject, extra)


def _event_of(ext: etree._Element, n: int) -> Event:
    """The Event an extension element holds (checked against its digest)."""
    where = f"event {n}'s extension"
    doc = _json(ext, f"{{{EVENT_NS}}}part", where)
    if not isinstance(doc, dict) or set(doc) != _EVENT_KEYS:
        raise _error(f"event record: {where} is not a preserve event (wrong fields)")
    agent = doc["agent"]
    if not isinstance(agent, dict) or set(agent) != _AGENT_KEYS or not all(isinstance(v, str) for v in agent.values()):
        raise _error(f"event record: {where} has a malformed agent")
    for name in ("subject", "detail", "at"):
        if not isinstance(doc[name], str):
            raise _error(f"event record: {where}: {name} is not a string")
    if not isinstance(doc["extra"], dict):
        raise _error(f"event record: {where}: extra is not a JSON object")
    return Event(
        type=_enum(EventType, doc["type"], f"event record: {where}: type"),
        outcome=_enum(Outcome, doc["outcome"], f"event record: {where}: outcome"),
        agent=Agent(agent["name"], agent["version"], agent["kind"]),
        detail=doc["detail"],
        at=_time(doc["at"], f"{where}: time"),
        subject=doc["subject"],
        extra=doc["extra"],
    )


def _json(el: etree._Element, part_tag: str, what: str) -> Any:
    parts = list(el)
    if parts:
        if any(p.tag != part_tag for p in parts) or (el.text or "").strip():
            raise _error(f"event record: {what} has unexpected content")
        text = "".join(p.text or "" for p in parts)
    else:
        text = el.text or ""
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != el.get("sha256"):
        raise _error(f"event record: {what} does not match its SHA-256 (damaged)")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _error(f"event record: {what} is not JSON ({exc})") from exc


def _enum(kind: type[_E], value: object, what: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise _error(f"{what} is not one preserve knows") from None


def _time(text: str, what: str, *, naive_is_utc: bool = False) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _error(f"event record: {what} is not an ISO 8601 time") from None
    if at.utcoffset() is None:
        if not naive_is_utc:
            raise _error(f"event record: {what} has no UTC offset")
        at = at.replace(tzinfo=dt.UTC)
    return at


def _local(qname: str) -> str:
    return qname.rpartition(":")[2]


def _load(xml: bytes) -> etree._Element:
    """Parse untrusted PREMIS bytes: no network, no entities, no DOCTYPE at all (refused before
    parsing, so an entity bomb costs a byte scan), no huge text nodes; the root must be PREMIS 3."""
    if not isinstance(xml, bytes):
        raise _error("PREMIS document: not bytes")
    start = xml.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not start.startswith(b"<"):
        raise _error("PREMIS document: not XML in UTF-8 (or empty)")
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise _error("PREMIS document: has a DOCTYPE or entity declarations (refused: never needed, a bomb risk)")
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=False, load_dtd=False)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise _error(f"PREMIS document: not well-formed XML ({exc})") from exc
    if root.getroottree().docinfo.doctype:
        raise _error("PREMIS document: has a DOCTYPE (refused)")
    if root.tag != f"{_P}premis":
        raise _error(f"PREMIS document: not PREMIS 3 (root element {str(root.tag)[:200]!r})")
    if root.get("version") != "3.0":
        raise _error("PREMIS document: not PREMIS 3 (version attribute is not 3.0)")
    return root
