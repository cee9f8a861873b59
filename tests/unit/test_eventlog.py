"""Event records (preserve.packaging.eventlog): lossless round trip of every kind of event and of the
AIP's state, validity against the shipped PREMIS XSD, refusal of every kind of damage, and the
best-effort reading of a bag's premis.xml."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from lxml import etree

from preserve.core.errors import PackagingError
from preserve.core.model import Agent, Event, EventType, Outcome
from preserve.packaging import eventlog, premis

AIP = "0b7e3c1a-5d2f-4e8a-9c3b-1f2e3d4c5b6a"
T0 = dt.datetime(2026, 12, 1, 3, 4, 5, 123456, tzinfo=dt.UTC)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
#: every character XML 1.0 cannot hold and lxml refuses (lone surrogates too: a name that was not
#: UTF-8), plus some it can (DEL, NEL, non-BMP, CJK)
AWKWARD = "a\x00\x01\x08\x0b\x0c\x1f\x7f\x85\udfff\ud800\ufffe\uffff\t\n\r 独立电影 🎬𠀀 z"


def _events() -> list[Event]:
    agents = [Agent("preserve", "0.14.0"), Agent("archivist 王", "", "person"), Agent("BAVC", "1", "organization")]
    outcomes = list(Outcome)
    out = []
    for i, t in enumerate(EventType):
        out.append(
            Event(
                t,
                outcomes[i % len(outcomes)],
                agents[i % len(agents)],
                detail=f"{t.value} {AWKWARD}" if i % 2 else "",
                at=(T0 + dt.timedelta(minutes=i)).astimezone(SHANGHAI if i % 3 == 0 else dt.UTC),
                subject=f"data/objects/电影 {i}.mov" if i % 4 else "",
                extra={"n": i, "nested": {"list": [1, 2.5, None, True, AWKWARD], AWKWARD: {"deep": [[{}]]}}}
                if i % 2
                else {},
            )
        )
    # the same event twice (an identifier with an occurrence number), and one at a whole second
    out += [out[0], out[0], Event(EventType.FIXITY_CHECK, Outcome.PASS, agents[0], at=T0.replace(microsecond=0))]
    # a deaccession with its two people, an agent whose name and version need escaping
    out.append(
        Event(EventType.DEACCESSION, Outcome.PASS, Agent("preserve", "0.14\x01"), extra={"authorized_by": ["张", "李"]})
    )
    out.append(Event(EventType.ACCESS_DECISION, Outcome.PASS, Agent(AWKWARD, AWKWARD, "person"), AWKWARD, T0, AWKWARD))
    return out


STATE = {
    "aip": {"title": "独立电影 " + AWKWARD, "status": "stored", "access_level": "embargoed", "created": T0.isoformat()},
    "replicas": [{"target": "primary", "uri": "s3://bucket/x", "status": "verified", "verified_at": None}],
    "deaccessions": [{"objects": [{"key": f"{AIP}/data/objects/{i}.mov", "size": i} for i in range(3)]}],
}


def _record(events: list[Event] | None = None, state: dict | None = STATE) -> bytes:  # type: ignore[type-arg]
    return eventlog.build(AIP, _events() if events is None else events, state, written_at=T0)


# -- round trip -------------------------------------------------------------------------------------
def test_round_trip_is_lossless_for_every_event_type_and_awkward_text() -> None:
    events = _events()
    assert {e.type for e in events} == set(EventType)
    xml = _record(events)
    assert premis.validate(xml) == []
    r = eventlog.parse(xml, aip_id=AIP)
    assert r.aip_id == AIP and r.written_at == T0 and r.state == STATE
    assert r.events == tuple(events)
    for have, want in zip(r.events, events, strict=True):
        assert have.at.utcoffset() == want.at.utcoffset() and have.at.microsecond == want.at.microsecond
        assert have.detail == want.detail and have.extra == want.extra  # exact strings, control characters too
    assert AWKWARD in r.state["aip"]["title"]  # type: ignore[index]
    # the CJK and non-BMP text is stored as UTF-8 text, not escaped
    assert "独立电影 🎬𠀀".encode() in xml
    # the same input gives the same bytes; a second build of what was read gives them too
    assert _record(events) == xml
    assert eventlog.build(AIP, r.events, r.state, written_at=r.written_at) == xml


def test_the_events_are_written_as_premis_document_writes_them() -> None:
    events = _events()
    root = etree.fromstring(_record(events))
    ns = {"p": premis.NS, "pe": eventlog.EVENT_NS}
    ids = root.xpath("p:event/p:eventIdentifier/p:eventIdentifierValue/text()", namespaces=ns)
    assert ids == premis.event_ids(AIP, events) and len(set(ids)) == len(ids)
    assert root.xpath("p:object/@xsi:type", namespaces={**ns, "xsi": premis.XSI}) == ["intellectualEntity"]
    # every event is linked to the AIP (a record does not list the files) and has its extension
    for ev in root.xpath("p:event", namespaces=ns):
        assert ev.xpath("p:linkingObjectIdentifier/p:linkingObjectIdentifierValue/text()", namespaces=ns) == [AIP]
        assert len(ev.xpath("p:eventDetailInformation/p:eventDetailExtension/pe:event", namespaces=ns)) == 1
    agent_ids = set(root.xpath("p:agent/p:agentIdentifier/p:agentIdentifierValue/text()", namespaces=ns))
    assert {premis._clean(premis.agent_id(e.agent)) for e in events} | {"张", "李"} == agent_ids
    state = root.xpath("p:rights/p:rightsExtension/ps:state", namespaces={**ns, "ps": eventlog.STATE_NS})
    assert len(state) == 1 and state[0].get("written") == "2026-12-01T03:04:05.123456+00:00"
    # an event of premis.document's output (with no file objects) is the same element, but for the extension
    doc = etree.fromstring(premis.document(AIP, [], events))
    for have, want in zip(root.iterfind(f"{{{premis.NS}}}event"), doc.iterfind(f"{{{premis.NS}}}event"), strict=True):
        for ext in have.xpath("p:eventDetailInformation/p:eventDetailExtension", namespaces=ns):
            info = ext.getparent()
            info.remove(ext)
            if not len(info):
                have.remove(info)
        assert [(e.tag, e.text, dict(e.attrib)) for e in have.iter()] == [
            (e.tag, e.text, dict(e.attrib)) for e in want.iter()
        ]


def test_a_surrogate_pair_of_lone_surrogates_reads_back_as_its_character() -> None:
    """As in any JSON (the catalog's own column too): a high surrogate right before a low one is
    the escape of one character; each alone stays itself."""
    e = Event(
        EventType.VALIDATION, Outcome.PASS, Agent("preserve"), at=T0, extra={"pair": "\ud800\udfff", "alone": "\udc80x"}
    )
    (got,) = eventlog.parse(eventlog.build(AIP, [e], None, written_at=T0)).events
    assert got.extra == {"pair": "\U000103ff", "alone": "\udc80x"}


def test_a_record_without_state_and_without_events() -> None:
    xml = eventlog.build(AIP, [], None, written_at=T0.astimezone(SHANGHAI))
    assert premis.validate(xml) == []
    r = eventlog.parse(xml)
    assert (r.aip_id, r.events, r.state, r.written_at) == (AIP, (), None, T0)
    assert r.written_at.utcoffset() == dt.timedelta(hours=8)


def test_json_longer_than_one_text_node_is_split_and_read_back() -> None:
    big_state = {"deaccessions": [{"objects": [{"key": f"{AIP}/data/objects/{i:07d}.mov"} for i in range(60_000)]}]}
    big_event = Event(EventType.FIXITY_CHECK, Outcome.FAIL, Agent("preserve"), extra={"damaged": ["电" * 50] * 50_000})
    assert len(json.dumps(big_state)) > 2 * eventlog.PART_CHARS
    xml = eventlog.build(AIP, [big_event], big_state, written_at=T0)
    assert len(xml) > 10_000_000  # past what one text node of a hardened parser may hold
    assert premis.validate(xml) == []
    assert xml.count(b"<ps:part>") >= 3 and xml.count(b"<pe:part>") >= 3
    r = eventlog.parse(xml, aip_id=AIP)
    assert r.state == big_state and r.events == (big_event,)


def test_build_refuses_what_it_cannot_write_losslessly() -> None:
    naive = Event(EventType.REPLICATION, Outcome.PASS, Agent("preserve"), at=dt.datetime(2026, 1, 1))
    with pytest.raises(PackagingError, match="without UTC offset"):
        eventlog.build(AIP, [naive], None, written_at=T0)
    with pytest.raises(PackagingError, match="written_at has no UTC offset"):
        eventlog.build(AIP, [], None, written_at=dt.datetime(2026, 1, 1))
    odd = Event(EventType.REPLICATION, Outcome.PASS, Agent("preserve"), at=T0, extra={"when": T0})
    with pytest.raises(PackagingError, match="extra that is not JSON"):
        eventlog.build(AIP, [odd], None, written_at=T0)
    with pytest.raises(PackagingError, match="state is not JSON"):
        eventlog.build(AIP, [], {"x": {1, 2}}, written_at=T0)


# -- damage -----------------------------------------------------------------------------------------
def _refused(xml: bytes, match: str, **kw: str) -> None:
    with pytest.raises(PackagingError, match=match):
        eventlog.parse(xml, **kw)


def _resign(xml: bytes, old: bytes, new: bytes) -> bytes:
    """Replace ``old`` by ``new`` inside the first extension and fix its digest, as a writer would
    that got the JSON wrong (so the check of the content itself is what refuses it)."""
    m = re.search(rb'<pe:event sha256="([0-9a-f]{64})">([^<]*)</pe:event>', xml)
    assert m and old in m[2]
    text = m[2].replace(old, new, 1)
    digest = hashlib.sha256(etree.fromstring(b"<a>" + text + b"</a>").text.encode()).hexdigest()  # type: ignore[union-attr]
    return xml[: m.start()] + b'<pe:event sha256="' + digest.encode() + b'">' + text + b"</pe:event>" + xml[m.end() :]


def test_truncated_record_is_refused() -> None:
    xml = _record()
    for cut in (0, 1, 100, len(xml) // 2, len(xml) - 20):
        _refused(xml[:cut], "not XML|not well-formed")


def test_a_flipped_byte_inside_the_json_is_refused() -> None:
    xml = _record()
    start = xml.index(b'<pe:event sha256="') + 90
    flips = 0
    for i in range(start, start + 200, 7):  # quotes, digits, letters, braces: broken or merely different JSON
        damaged = xml[:i] + bytes([xml[i] ^ 0x01]) + xml[i + 1 :]
        with pytest.raises(PackagingError):
            eventlog.parse(damaged)
        flips += 1
    assert flips > 20
    # a changed value that is still valid JSON is found by the digest
    _refused(xml.replace(b'"n":1,', b'"n":9,', 1), "does not match its SHA-256")
    # a flipped byte in the state too
    i = xml.index(b"<ps:state") + 150
    _refused(xml[:i] + bytes([xml[i] ^ 0x02]) + xml[i + 1 :], "state")


def test_broken_or_unknown_event_json_is_refused_even_with_a_matching_digest() -> None:
    xml = _record()
    _refused(_resign(xml, b'"type":"ingestion"', b'"type":"ingestion'), "is not JSON")
    _refused(_resign(xml, b'"type":"ingestion"', b'"type":"teleportation"'), "type is not one preserve knows")
    _refused(_resign(xml, b'"outcome":"pass"', b'"outcome":"maybe"'), "outcome is not one preserve knows")
    _refused(_resign(xml, b'"subject":"",', b""), "wrong fields")
    _refused(_resign(xml, b'"subject":""', b'"subject":"","colour":"red"'), "wrong fields")
    _refused(_resign(xml, b"+08:00", b""), "no UTC offset")
    _refused(_resign(xml, b'"kind":"software"', b'"kind":1'), "malformed agent")
    _refused(_resign(xml, b'"extra":{}', b'"extra":[]'), "extra is not a JSON object")
    # an extension that is another event than its PREMIS fields say
    _refused(_resign(xml, b'"detail":""', b'"detail":"x"'), "identifier does not match")


def test_premis_fields_that_disagree_with_the_extension_are_refused() -> None:
    xml = _record()
    _refused(xml.replace(b"<eventOutcome>pass</eventOutcome>", b"<eventOutcome>fail</eventOutcome>", 1), "outcome")
    ident = premis.event_ids(AIP, _events())[0].encode()
    _refused(xml.replace(ident, b"00000000-0000-5000-8000-000000000000", 1), "identifier does not match")


def test_missing_extensions_or_state_are_refused() -> None:
    xml = _record()
    no_ext = re.sub(rb"<eventDetailExtension>.*?</eventDetailExtension>", b"", xml, count=1, flags=re.S)
    _refused(no_ext, "carries no preserve event extension")
    no_state = re.sub(rb"<rights>.*</rights>", b"", xml, flags=re.S)
    assert premis.validate(no_state) == []
    _refused(no_state, "0 state extensions")


def test_a_record_of_another_aip_is_refused() -> None:
    xml = _record()
    _refused(xml, "not of 11111111", aip_id="11111111-2222-4333-8444-555555555555")
    assert eventlog.parse(xml, aip_id=AIP).aip_id == AIP


def test_wrong_namespace_or_version_is_not_premis_3() -> None:
    xml = _record()
    _refused(xml.replace(premis.NS.encode(), b"http://www.loc.gov/premis/v2"), "not PREMIS 3")
    _refused(xml.replace(b'version="3.0"', b'version="2.2"', 1), "not PREMIS 3")
    _refused(b"<?xml version='1.0'?><mets xmlns='http://www.loc.gov/METS/'/>", "not PREMIS 3")


def test_schema_invalid_record_is_refused() -> None:
    xml = _record()
    bad = xml.replace(b"<eventDateTime>", b"<eventDate>", 1).replace(b"</eventDateTime>", b"</eventDate>", 1)
    assert premis.validate(bad)
    _refused(bad, "not valid PREMIS 3.0")
    _refused(re.sub(rb"<object .*?</object>", b"", xml, count=1, flags=re.S), "not valid PREMIS 3.0")


def test_doctype_and_entity_bombs_are_refused_before_parsing() -> None:
    lol = b'<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
    )
    root = f'<premis xmlns="{premis.NS}" version="3.0">&lol9;</premis>'.encode()
    bomb = b'<?xml version="1.0"?>\n<!DOCTYPE premis [' + lol + b"]>\n" + root
    _refused(bomb, "DOCTYPE or entity declarations")
    # an external entity (a file of the machine), and a harmless-looking DOCTYPE in front of a good record
    xxe = b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><p>&x;</p>'
    _refused(xxe, "DOCTYPE")
    good = _record()
    decl, rest = good.split(b"\n", 1)
    _refused(decl + b"\n<!DOCTYPE premis>\n" + rest, "DOCTYPE")
    # other encodings than UTF-8 are not read (a byte scan could not see their declarations)
    _refused(good.decode().replace("encoding='UTF-8'", "encoding='UTF-16'").encode("utf-16"), "not XML in UTF-8")
    _refused(b"", "not XML in UTF-8")
    with pytest.raises(PackagingError, match="DOCTYPE"):
        eventlog.events_from_premis(bomb)


# -- a bag's premis.xml -----------------------------------------------------------------------------
def test_events_from_premis_reads_a_bags_premis_document() -> None:
    paths = ["data/objects/电影.mov", "data/objects/电影.mov.ffv1.mkv", "data/metadata/电影.mov.mediainfo.json"]
    files = [premis.PremisFile(p, 10, "a" * 64, "b" * 128, "QuickTime", "x-fmt/384") for p in paths]
    events = [
        Event(
            EventType.MESSAGE_DIGEST_CALCULATION, Outcome.PASS, Agent("hashlib", "3.11"), "sha256 sha512", T0, paths[0]
        ),
        Event(
            EventType.NORMALIZATION,
            Outcome.PASS,
            Agent("ffmpeg", "5.1.9"),
            "lossless 独立 🎬",
            T0.astimezone(SHANGHAI),
            paths[0],
            {"master": paths[1], "streams": [{"index": 0, "codec": "ffv1"}], "note": None},
        ),
        Event(
            EventType.VALIDATION, Outcome.WARNING, Agent("archivist", "", "person"), "accepted as it is", T0, paths[1]
        ),
        Event(EventType.PACKING, Outcome.PASS, Agent("preserve", "0.14.0"), "", T0.replace(microsecond=0)),
        Event(
            EventType.DELETION,
            Outcome.PASS,
            Agent("preserve", "0.14.0"),
            "",
            T0,
            paths[2],
            {"authorized_by": ["a", "b"]},
        ),
        Event(
            EventType.VIRUS_CHECK, Outcome.NOT_PERFORMED, Agent("ClamAV", "1.4.6", "organization"), "no database", T0
        ),
    ]
    xml = premis.document(AIP, files, events)
    assert premis.validate(xml) == []
    assert eventlog.events_from_premis(xml) == events
    # a subject that is no file of the document is not recoverable from it: ""
    other = Event(EventType.REPLICATION, Outcome.PASS, Agent("preserve"), "to primary", T0, "primary")
    (got,) = eventlog.events_from_premis(premis.document(AIP, files, [other]))
    assert got.subject == "" and got.type is EventType.REPLICATION and got.detail == "to primary"
    # control characters are as premis.document wrote them (escaped text), the rest as it was
    ctl = Event(EventType.VALIDATION, Outcome.FAIL, Agent("ffmpeg"), "bad\x01frame", T0, paths[0], {"m": "x\x02"})
    (got,) = eventlog.events_from_premis(premis.document(AIP, files, [ctl]))
    assert got.detail == "bad\\x01frame" and got.extra == {"m": "x\x02"}


def test_events_from_premis_reads_an_event_record_losslessly() -> None:
    events = _events()
    assert eventlog.events_from_premis(_record(events)) == events


def test_events_from_premis_refuses_what_is_not_a_preserve_premis_document() -> None:
    xml = premis.document(AIP, [], [Event(EventType.PACKING, Outcome.PASS, Agent("preserve"), at=T0)])
    for bad, match in (
        (xml[:-30], "not well-formed"),
        (b"<html/>", "not PREMIS 3"),
        (xml.replace(b">packing<", b">teleportation<"), "event type is not one preserve knows"),
        (xml.replace(b"<eventOutcome>pass", b"<eventOutcome>great"), "outcome is not one preserve knows"),
        (xml.replace(b"<eventDateTime>2026", b"<eventDateTime>soon"), "not an ISO 8601 time"),
    ):
        with pytest.raises(PackagingError, match=match):
            eventlog.events_from_premis(bad)


def test_premis_document_holds_text_lxml_would_refuse() -> None:
    """Lone surrogates and U+FFFE/U+FFFF made premis.document raise; they are now escaped."""
    e = Event(
        EventType.VALIDATION, Outcome.FAIL, Agent("tool\ud800", "1\uffff"), "x\ud800\ufffe", T0, extra={"k": "\udfff"}
    )
    xml = premis.document(AIP, [], [e])
    assert premis.validate(xml) == []
    (got,) = eventlog.events_from_premis(xml)
    assert got.detail == "x\\ud800\\ufffe" and got.extra == {"k": "\udfff"} and got.agent.name == "tool\\ud800"


def test_a_record_of_ten_thousand_fixity_checks_round_trips() -> None:
    """An audit's worth of events in one record: a document past what one text node may hold in
    total, read by the hardened parser (build 1.0-2.3 s, parse 0.8-1.8 s on the shared 2 cores).
    """
    events = [
        Event(
            EventType.FIXITY_CHECK,
            Outcome.PASS,
            Agent("preserve", "0.14.0"),
            "SHA-256 matches the catalog",
            T0 + dt.timedelta(microseconds=i),
            f"data/objects/reel {i:05d} 电影.mov",
            {"target": "primary", "key": f"{AIP}/data/objects/reel {i:05d} 电影.mov", "size": i, "sha256": "0" * 64},
        )
        for i in range(10_000)
    ]
    xml = eventlog.build(AIP, events, STATE, written_at=T0)
    assert len(xml) > 10_000_000
    r = eventlog.parse(xml, aip_id=AIP)
    assert r.events == tuple(events) and r.state == STATE
