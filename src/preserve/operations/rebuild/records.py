"""What a target holds of one AIP in its journal, read back: its version inventories and event
records (a damaged one listed, the others used), the union of their events (each event once, by
`identity`), and the comparison of two replicas' journals. Side effects: reads the journal objects
of one AIP on one target."""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from preserve.core.errors import PackagingError, StorageError, StorageUnavailable
from preserve.core.model import Event
from preserve.operations.rebuild.report import DamagedRecord, Disagreement
from preserve.packaging import eventlog, inventory
from preserve.storage import layout
from preserve.storage.base import ObjectStore, read_small


@dataclass
class Journal:
    """The journal objects of one AIP on one target, as read."""

    inventories: dict[int, inventory.VersionInventory] = field(default_factory=dict)
    inventory_keys: dict[int, str] = field(default_factory=dict)
    #: (key, record), oldest first (by the time each was written, then key)
    records: list[tuple[str, eventlog.EventRecord]] = field(default_factory=list)
    damaged: list[DamagedRecord] = field(default_factory=list)


def read_journal(store: ObjectStore, target: str, aip_id: str, keys: Iterable[str]) -> Journal:
    """Parse every version inventory and event record among ``keys``; one that is damaged or cannot
    be read is listed and the others are used (StorageUnavailable propagates: nothing can be
    concluded from a target that is down)."""
    j = Journal()
    records: list[tuple[dt.datetime, str, eventlog.EventRecord]] = []
    for key in sorted(keys):
        kind = layout.classify(aip_id, key)
        if kind not in ("version-inventory", "event-record"):
            continue
        try:
            data = read_small(store, key)
            if kind == "version-inventory":
                inv = inventory.parse(data, aip_id=aip_id)
                if inv.number != layout.inventory_number(aip_id, key):
                    raise PackagingError(f"it is the inventory of version {inv.number}")
                j.inventories[inv.number] = inv
                j.inventory_keys[inv.number] = key
            else:
                rec = eventlog.parse(data, aip_id=aip_id)
                records.append((utc(rec.written_at), key, rec))
        except StorageUnavailable:
            raise
        except (PackagingError, StorageError, ValueError) as exc:
            j.damaged.append(DamagedRecord(aip_id, target, key, str(exc)[:300]))
    j.records = [(key, rec) for _, key, rec in sorted(records, key=lambda r: (r[0], r[1]))]
    return j


def utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def when(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return utc(value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return None


# -- events: the union over records ----------------------------------------------------------------
Identity = tuple[str, ...]


def identity(e: Event) -> Identity:
    """Two events are the same event when every field is (records repeat events: the same events
    go to every target, and a record written again after a crash repeats them)."""
    return (
        e.type.value,
        e.outcome.value,
        utc(e.at).isoformat(),
        e.agent.name,
        e.agent.version,
        e.agent.kind,
        e.subject,
        e.detail,
        json.dumps(e.extra, sort_keys=True, default=str, ensure_ascii=False),
    )


def _loose(e: Event) -> Identity:
    """What a bag's premis.xml keeps of an event for certain: its type, time and outcome (its
    subject only when it is a file the document lists, its agent kind not always)."""
    return (e.type.value, utc(e.at).isoformat(), e.outcome.value)


def union_events(records: Sequence[Sequence[Event]], documents: Sequence[Sequence[Event]] = ()) -> list[Event]:
    """The events of every record, each once (an event repeated within one record is kept as often
    as that record has it), then those of the bag's PREMIS documents that no record has (the
    events before packing, when no record could be read); oldest first, ties in record order."""
    out: list[Event] = []
    have: dict[Callable[[Event], Identity], collections.Counter[Identity]] = {
        identity: collections.Counter(),
        _loose: collections.Counter(),
    }
    for events, key in [*((r, identity) for r in records), *((d, _loose) for d in documents)]:
        here: collections.Counter[Identity] = collections.Counter()
        for e in events:
            k = key(e)
            here[k] += 1
            if here[k] > have[key][k]:
                out.append(e)
                for kind, counted in have.items():
                    counted[kind(e)] += 1
    return sorted(out, key=lambda e: utc(e.at))


# -- two replicas' journals -----------------------------------------------------------------------
def compare_journals(aip_id: str, source: str, target: str, src: Journal, other: Journal) -> list[Disagreement]:
    """Versions and events of the AIP that one of the two replicas records and the other does not."""
    out: list[Disagreement] = []
    for n in sorted(set(src.inventory_keys) | set(other.inventory_keys)):
        if n not in other.inventory_keys:
            out.append(Disagreement(aip_id, target, "version", f"version {n}'s inventory is on {source}, not here"))
        elif n not in src.inventory_keys:
            out.append(
                Disagreement(
                    aip_id, target, "version", f"version {n}'s inventory is here, not on {source}: not imported"
                )
            )
        elif n in src.inventories and n in other.inventories and src.inventories[n] != other.inventories[n]:
            out.append(Disagreement(aip_id, target, "version", f"version {n}'s inventory differs from {source}'s"))

    def held(j: Journal) -> collections.Counter[Identity]:
        """Each event as often as the record that has it most often."""
        c: collections.Counter[Identity] = collections.Counter()
        for _, rec in j.records:
            for k, n in collections.Counter(identity(e) for e in rec.events).items():
                c[k] = max(c[k], n)
        return c

    here, there = held(src), held(other)
    if missing := here - there:
        out.append(
            Disagreement(
                aip_id,
                target,
                "events",
                f"{sum(missing.values())} event(s) recorded on {source} are in no record here "
                "(the journal flush writes them)",
            )
        )
    if extra := there - here:
        out.append(
            Disagreement(
                aip_id,
                target,
                "events",
                f"{sum(extra.values())} event(s) recorded here are in no record on {source}: not imported",
            )
        )
    return out
