"""Where an AIP's objects sit on a target, relative to the target's prefix: version 1 of the bag as
ingested, the members later versions changed, the version inventories and the append-only event
records (the journal). Pure: builds and classifies keys, no I/O.

```
<aip>/...                                  version 1, as ingested (bagit.txt, data/..., tag files)
<aip>/versions/v<N>/<member>               what version N (N >= 2) changed: tag files, sidecar, premis.xml
<aip>/versions/v<N>.json                   version N's inventory (every version, v1 included)
<aip>/events/<YYYYMMDDTHHMMSS.ffffffZ>-<token>.premis.xml   an event record, never overwritten
```"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from preserve.storage.base import object_key

#: a top-level AIP prefix: ``str(uuid.uuid4())`` (catalog.submissions makes the ids)
AIP_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
VERSIONS_DIR = "versions"
EVENTS_DIR = "events"
EVENT_RECORD_SUFFIX = ".premis.xml"
_INVENTORY_RE = re.compile(r"^versions/v([1-9][0-9]*)\.json$")
_MEMBER_RE = re.compile(r"^versions/v([1-9][0-9]*)/.+")
_RECORD_RE = re.compile(r"^events/[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-z]+\.premis\.xml$")

KeyKind = Literal["bag", "version-member", "version-inventory", "event-record", "other"]


def version_member_key(aip_id: str, n: int, member: str) -> str:
    """The key of a bag member that version ``n`` (>= 2) wrote."""
    if n < 2:
        raise ValueError("version 1's members are the bag as ingested, under their own keys")
    return object_key(aip_id, f"{VERSIONS_DIR}/v{n}/{member}")


def version_inventory_key(aip_id: str, n: int) -> str:
    return f"{aip_id}/{VERSIONS_DIR}/v{n}.json"


def event_record_key(aip_id: str, at: dt.datetime, token: str) -> str:
    """A new event record's key: its UTC time to the microsecond, then a random token, so two
    records never share a key and listing order is time order."""
    if not re.fullmatch(r"[0-9a-z]+", token):
        raise ValueError(f"record token must be lower-case letters and digits, got {token!r}")
    stamp = at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{aip_id}/{EVENTS_DIR}/{stamp}-{token}{EVENT_RECORD_SUFFIX}"


def classify(aip_id: str, key: str) -> KeyKind:
    """What a key under the AIP's prefix is; "other" for a key outside it."""
    if not key.startswith(f"{aip_id}/"):
        return "other"
    rel = key[len(aip_id) + 1 :]
    if _INVENTORY_RE.match(rel):
        return "version-inventory"
    if _MEMBER_RE.match(rel):
        return "version-member"
    if _RECORD_RE.match(rel):
        return "event-record"
    if rel.startswith((f"{VERSIONS_DIR}/", f"{EVENTS_DIR}/")):
        return "other"
    return "bag"


def inventory_number(aip_id: str, key: str) -> int | None:
    """The version number of a version inventory's key, None for any other key."""
    m = _INVENTORY_RE.match(key.removeprefix(f"{aip_id}/")) if key.startswith(f"{aip_id}/") else None
    return int(m.group(1)) if m else None


def is_journal_key(aip_id: str, key: str) -> bool:
    """An event record or a version inventory: written by the journal, not in the catalog's
    objects (the version members are ordinary, audited objects)."""
    return classify(aip_id, key) in ("event-record", "version-inventory")
