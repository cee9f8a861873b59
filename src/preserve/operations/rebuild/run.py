"""The rebuild itself: `rebuild` (refuse, resume or merge; every AIP on the source, one transaction
each; the journal flush at the end) and the build of one AIP (its journal, its bag where needed,
its state, then the inventory pass on every target). Side effects: reads every target; writes the
catalog (AIPs, events, journal bookkeeping, the rebuild's record) and, through the journal flush,
the rebuild's own events beside each AIP.

From an encrypted target (its identity configured; without one the rebuild is refused with the
KeyUnavailable that names the variable) each AIP is listed through its EncryptedStore, so names
are revealed with the AIP's key and the journal and bag read decrypted; an AIP prefix there with
no key object (destroyed by a deaccession, or lost) cannot be read and is reported as such. Each
encrypted object is recorded with its ciphertext's key, size and SHA-256, and each AIP key found
is recorded as its key object is on the target (`Catalog.record_key`)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from preserve.catalog import Catalog, FileView, StoredObject
from preserve.catalog.records import RebuiltAip
from preserve.catalog.snapshot import default_state
from preserve.config import Settings
from preserve.core.errors import (
    CatalogError,
    ConfigError,
    KeyUnavailable,
    PackagingError,
    StorageError,
    StorageUnavailable,
)
from preserve.core.model import AccessLevel, AipStatus, Event, utcnow
from preserve.core.progress import Progress
from preserve.operations.rebuild.fallback import (
    PREMIS_MEMBER,
    content_key_of,
    files_of,
    formats_from_events,
    premis_files,
    role_of,
    versions_of,
)
from preserve.operations.rebuild.inventory_pass import Checks, expected_objects, inventory_event, take_inventory
from preserve.operations.rebuild.records import (
    Identity,
    Journal,
    compare_journals,
    identity,
    read_journal,
    union_events,
    utc,
    when,
)
from preserve.operations.rebuild.report import (
    DamagedRecord,
    Disagreement,
    Fallback,
    InventoryCount,
    NotPreserve,
    ObjectFinding,
    RebuildReport,
)
from preserve.packaging import eventlog
from preserve.storage import layout, open_store
from preserve.storage.base import ObjectInfo, ObjectStore, member_path, object_key, read_small
from preserve.storage.crypt import EncryptedStore
from preserve.storage.replication import replica_uri


# -- one AIP ---------------------------------------------------------------------------------------
@dataclass
class _Findings:
    """What the rebuild of one AIP, or of all, has to report."""

    fallbacks: list[Fallback] = field(default_factory=list)
    damaged: list[DamagedRecord] = field(default_factory=list)
    damage: list[ObjectFinding] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    unexpected: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: _Findings) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fallbacks": [dataclasses.asdict(x) for x in self.fallbacks],
            "damaged": [dataclasses.asdict(x) for x in self.damaged],
            "damage": [dataclasses.asdict(x) for x in self.damage],
            "disagreements": [dataclasses.asdict(x) for x in self.disagreements],
            "unexpected": [list(x) for x in self.unexpected],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Findings:
        return cls(
            fallbacks=[Fallback(**x) for x in data.get("fallbacks") or ()],
            damaged=[DamagedRecord(**x) for x in data.get("damaged") or ()],
            damage=[ObjectFinding(**x) for x in data.get("damage") or ()],
            disagreements=[Disagreement(**x) for x in data.get("disagreements") or ()],
            unexpected=[(str(t), str(k)) for t, k in data.get("unexpected") or ()],
        )


@dataclass
class _Built:
    """One AIP as read back: what to import (None when nothing in its prefix can be read), where
    each replica is, the journal found on each target, the inventory counts, and the findings."""

    rebuilt: RebuiltAip | None = None
    uris: dict[str, str] = field(default_factory=dict)
    #: per target: the journal objects found there (marked written after the import)
    journals: dict[str, Journal] = field(default_factory=dict)
    counts: dict[str, collections.Counter[str]] = field(default_factory=dict)
    found: _Findings = field(default_factory=_Findings)


def state_rank(rec: eventlog.EventRecord) -> tuple[int, dt.datetime]:
    """How new a record's state is: its number (`Catalog.aip_state` numbers every state it reads,
    in the same transaction), then when it was written. Two flushes racing an operation write
    records out of order; this orders them."""
    head = (rec.state or {}).get("aip") or {}
    try:
        seq = int(head.get("state_seq", -1))
    except (TypeError, ValueError):
        seq = -1
    return seq, utc(rec.written_at)


def newest_state(journals: Sequence[tuple[str, Journal]]) -> tuple[str, eventlog.EventRecord] | None:
    """The record with the newest state over these targets' journals (the first target wins ties)."""
    best: tuple[str, eventlog.EventRecord] | None = None
    for name, j in journals:
        for _, rec in j.records:
            if rec.state is not None and (best is None or state_rank(rec) > state_rank(best[1])):
                best = (name, rec)
    return best


def _newer_on_storage(
    catalog: Catalog, aip_id: str, source: str, store: ObjectStore, listed: Mapping[str, ObjectInfo]
) -> list[Disagreement]:
    """A merge skips an AIP the catalog has; say so when the source's newest record knows more of it
    than the catalog does (a catalog restored from a backup older than what happened since)."""
    j = read_journal(store, source, aip_id, listed)
    best = newest_state([(source, j)])
    have = int(catalog.aip_head(aip_id).get("state_seq", 0))
    if best is None or state_rank(best[1])[0] <= have:
        return []
    return [
        Disagreement(
            aip_id,
            source,
            "catalog",
            f"the newest record on {source} holds state number {state_rank(best[1])[0]}, the catalog only "
            f"{have}: the catalog's copy is older (its access level and history may be out of date); not "
            "merged. Rebuild into an empty database to take storage's",
        )
    ]


def _build(
    aip_id: str,
    source: str,
    stores: Mapping[str, ObjectStore],
    reachable: Sequence[str],
    listed: Mapping[str, ObjectInfo],
    rebuild_id: int,
) -> _Built:
    """Everything of one AIP for its import (``rebuilt`` None when nothing in its prefix can be read)."""
    src = stores[source]
    journal = read_journal(src, source, aip_id, listed)
    out = _Built()
    found = out.found
    out.journals[source] = journal
    found.damaged += journal.damaged
    # the other replicas' journals, read first: the newest state may be there (a damaged or
    # missing record on the source must not bring back an older access level)
    others: dict[str, tuple[set[str], Journal]] = {}
    unread: dict[str, str] = {}  # target -> why the AIP could not be listed there
    for name in stores:
        if name != source and name in reachable:
            try:
                held_there = {i.key for i in stores[name].list(f"{aip_id}/")}
            except StorageUnavailable:
                raise
            except StorageError as exc:  # an encrypted target whose key of this AIP cannot be opened
                unread[name] = str(exc)
                continue
            others[name] = (held_there, read_journal(stores[name], name, aip_id, held_there))
    mine = newest_state([(source, journal)])
    best = newest_state([(source, journal), *((n, j) for n, (_, j) in others.items())])
    # the source's own unless another replica holds a state with a higher number (the same state,
    # written to each replica by one flush, has one number everywhere)
    chosen = best if best is not None and (mine is None or state_rank(best[1])[0] > state_rank(mine[1])[0]) else mine
    state: dict[str, Any] | None = None
    state_at: dt.datetime | None = None
    if chosen is not None:
        where, rec = chosen
        state, state_at = dict(rec.state or {}), utc(rec.written_at)
        if where != source:
            found.disagreements.append(
                Disagreement(
                    aip_id,
                    where,
                    "state",
                    f"the newest record of the AIP's state (number {state_rank(rec)[0]}) is here, not on {source} "
                    f"(newest there: {state_rank(mine[1])[0] if mine else 'none'}): taken from here, so an older "
                    "access level is never brought back",
                )
            )
    has_bag = object_key(aip_id, "bagit.txt") in listed
    if state is None and not journal.inventories and not has_bag:
        return out
    head: Mapping[str, Any] = (state or {}).get("aip") or {}
    deaccessioned = str(head.get("status", "")) == AipStatus.DEACCESSIONED.value

    # the bag's PREMIS of each version: the events before packing (and before each amend)
    documents: list[list[Event]] = []
    premis_keys = sorted({k for k in listed if member_path(aip_id, k).endswith(PREMIS_MEMBER)})
    for key in premis_keys:
        try:
            documents.append(eventlog.events_from_premis(read_small(src, key)))
        except StorageUnavailable:
            raise
        except (PackagingError, StorageError, ValueError) as exc:
            found.damaged.append(DamagedRecord(aip_id, source, key, f"the bag's PREMIS: {exc}"[:300]))
    events = union_events([list(rec.events) for _, rec in journal.records], documents)

    first = journal.inventories.get(1)
    created = (
        when(head.get("created_at"))
        or (utc(first.created) if first is not None else None)
        or max((utc(e.at) for d in documents for e in d), default=None)
        or utcnow()
    )
    reported = len(found.fallbacks)
    versions, bags = versions_of(aip_id, journal, state, listed, created, src, found.fallbacks)
    if deaccessioned:  # its bag and inventories were deleted with it, on purpose: nothing to report
        del found.fallbacks[reported:]
    current = versions[-1]
    files = (
        files_of(aip_id, current, journal, bags[current.number], listed, events, found.fallbacks)
        if current.members
        else []
    )
    if not files and deaccessioned:  # its bag and inventories are gone: the tombstone keeps the digests
        identified = formats_from_events(events)
        files = [
            FileView(
                str(f["path"]),
                int(f["size"]),
                str(f["sha256"]),
                str(f["sha512"]),
                str(f.get("role") or role_of(str(f["path"]))),
                *identified.get(str(f["path"]), ("", "")),
            )
            for d in (state or {}).get("deaccessions") or ()
            for f in d.get("files") or ()
        ]
    if state is None:
        newest = journal.inventories[max(journal.inventories)] if journal.inventories else None
        info = bags[current.number].info() or bags[1].info()
        level = info.get("Access-Level", "")
        state = default_state(
            aip_id,
            title=newest.title if newest is not None else info.get("Title", ""),
            submission_name=newest.submission_name if newest is not None else "",
            created=created,
            access_level=level if level in {a.value for a in AccessLevel} else AccessLevel.RESTRICTED,
            payload_oxum=newest.payload_oxum if newest is not None else info.get("Payload-Oxum", ""),
            content_key=newest.content_key
            if newest is not None
            else content_key_of(files, premis_files(bags[1].read(PREMIS_MEMBER))),
        )
        found.fallbacks.append(
            Fallback(
                aip_id,
                f"no readable event record holds the AIP's state: access level {state['aip']['access_level']}, "
                "title and Payload-Oxum from "
                + ("its inventory and " if newest is not None else "")
                + "bag-info.txt; status stored; no access copies, access changes or replica dates "
                "(nothing verified until audited)" + ("" if newest is not None else "; the submission name is unknown"),
            )
        )

    # the inventory pass: the source first, then every other target that holds the AIP
    checks = Checks.of(events, state, state_at)
    expected = {} if deaccessioned else expected_objects(versions, journal, listed, bags)
    in_versions = {k for v in versions for k in v.members.values()}

    def strays(target: str, keys: Iterable[str]) -> list[tuple[str, str]]:
        if deaccessioned:  # what is left of it is in its tombstone's deletions
            return []
        return [(target, k) for k in sorted(keys) if not layout.is_journal_key(aip_id, k) and k not in in_versions]

    found.unexpected += strays(source, listed)
    had = {str(r.get("target")) for r in state.get("replicas") or ()}
    recorded = state_at is not None  # the state is a record's, not the default of a bag
    objects: list[StoredObject] = []
    inventory_events: list[Event] = []
    sealed: dict[str, dict[str, Mapping[str, Any]]] = {}
    for o in state.get("objects") or ():
        sealed.setdefault(str(o.get("target")), {})[str(o.get("key"))] = o
    for name in [source, *(n for n in stores if n != source)]:
        readable = name in reachable and (name == source or name in others)
        store: ObjectStore | None = stores[name] if readable else None
        if name == source:
            held: set[str] = set(listed)
        elif store is not None:
            held, other = others[name]
            out.journals[name] = other
            found.damaged += other.damaged
            found.disagreements += compare_journals(aip_id, source, name, journal, other)
            found.unexpected += strays(name, held)
        elif name in had or name in unread:  # down: what it held is not known; pending until an audit reaches it
            held = set(expected)
        else:
            continue
        if not expected:
            continue
        if name in unread:
            found.disagreements.append(
                Disagreement(
                    aip_id, name, "replica", f"not read: {unread[name]}; its objects are pending until audited"
                )
            )
            held = set(expected)
        if not held & set(expected):
            if name in had and recorded:
                found.disagreements.append(
                    Disagreement(
                        aip_id, name, "replica", "the AIP's record has a replica here, but none of its objects"
                    )
                )
            continue
        objs, findings = take_inventory(aip_id, name, store, expected, checks, sealed.get(name))
        objects += objs
        out.counts[name] = collections.Counter(o.status.value for o in objs)
        if store is None:
            continue
        out.uris[name] = replica_uri(store, aip_id)
        inventory_events.append(inventory_event(name, source, objs, rebuild_id))
        if name == source:
            found.damage += findings
            continue
        found.disagreements += [
            Disagreement(aip_id, name, "object", f"{f.key}: {f.problem} (expected {f.expected}, found {f.found})")
            for f in findings
        ]
        if name not in had and recorded:
            found.disagreements.append(
                Disagreement(
                    aip_id, name, "replica", f"holds the AIP, but the record on {source} knows no replica here"
                )
            )
    out.rebuilt = RebuiltAip(
        state=state, files=files, versions=versions, objects=objects, events=[*events, *inventory_events]
    )
    return out


def _mark_journal(catalog: Catalog, aip_id: str, source: str, built: _Built) -> None:
    """Record as written the event records and inventories found on each target, so that the next
    journal flush writes only what a target lacks, and the rebuild's own events."""
    truth = built.journals[source]
    for target, journal in built.journals.items():
        free: dict[Identity, list[int]] = {}
        for event_id, e in catalog.journal_pending(aip_id, target):
            free.setdefault(identity(e), []).append(event_id)
        for key, rec in journal.records:
            ids: list[int] = []
            for e in rec.events:
                waiting = free.get(identity(e))
                if waiting:
                    ids.append(waiting.pop(0))
            if ids:
                catalog.journal_written(aip_id, target, key, event_ids=ids, at=utc(rec.written_at))
        for n, key in sorted(journal.inventory_keys.items()):
            # an inventory that differs from the source's is left pending: the flush writes the truth
            if n in journal.inventories and journal.inventories[n] == truth.inventories.get(n):
                catalog.journal_written(aip_id, target, key, version=n)


# -- the whole rebuild ------------------------------------------------------------------------------
def _group(infos: Iterable[ObjectInfo]) -> dict[str, dict[str, ObjectInfo]]:
    groups: dict[str, dict[str, ObjectInfo]] = {}
    for info in infos:
        groups.setdefault(info.key.split("/", 1)[0], {})[info.key] = info
    return groups


def _listing(
    store: ObjectStore, not_preserve: list[NotPreserve], errors: list[str]
) -> dict[str, dict[str, ObjectInfo]]:
    """Every object on the source, by prefix. An encrypted target is listed as stored first, then
    each AIP on it through its key (its names revealed); an AIP whose key object is not there, or
    cannot be opened with the target's identity, is reported instead (``not_preserve``,
    ``errors``)."""
    if not isinstance(store, EncryptedStore):
        return _group(store.list(""))
    groups: dict[str, dict[str, ObjectInfo]] = {}
    for prefix, keys in sorted(_group(store.raw.list("")).items()):
        if not layout.AIP_ID_RE.match(prefix):
            groups[prefix] = keys  # reported as not an AIP
        elif store.key_object_key(prefix) not in keys:
            not_preserve.append(
                NotPreserve(
                    prefix,
                    len(keys),
                    sum(i.size for i in keys.values()),
                    "encrypted, and its key object is not there (destroyed by a deaccession, or lost: the escrow "
                    "copy of `preserve keys export` puts it back): nothing in it can be read",
                )
            )
        else:
            try:
                groups[prefix] = {i.key: i for i in store.list(f"{prefix}/")}
            except StorageUnavailable:
                raise
            except StorageError as exc:  # its key cannot be opened, or a name does not decrypt
                errors.append(f"{prefix}: not imported: {exc}")
    return groups


def _record_keys(catalog: Catalog, aip_id: str, stores: Mapping[str, ObjectStore], held: Iterable[str]) -> list[str]:
    """Record the AIP's key on each encrypted target that holds it, as its key object is there
    (after the import: the catalog's own record, over the state's copy). Returns what failed."""
    failed: list[str] = []
    for name in held:
        store = stores[name]
        if not isinstance(store, EncryptedStore):
            continue
        try:
            store.key_for(aip_id)
            rec = store.key_record(aip_id)
            if rec is not None:
                catalog.record_key(rec)
        except StorageUnavailable:
            raise
        except (StorageError, CatalogError) as exc:
            failed.append(f"{aip_id}: its key on {name} was not recorded: {exc}")
    return failed


def _looks_like_aip(aip_id: str, keys: Iterable[str]) -> bool:
    """A bagit.txt, a version inventory or an event record (all a deaccessioned AIP keeps)."""
    return any(
        k == f"{aip_id}/bagit.txt" or layout.classify(aip_id, k) in ("version-inventory", "event-record") for k in keys
    )


def rebuild(
    settings: Settings,
    catalog: Catalog,
    source: str,
    *,
    merge: bool = False,
    progress: Progress | None = None,
    flush: Callable[[Sequence[str]], object] | None = None,
) -> RebuildReport:
    """Build the catalog from the replica on target ``source``. Refused (ConfigError) into a catalog
    that is not empty, unless ``merge`` (the AIPs it has are skipped) or it holds this very rebuild,
    interrupted (resumed: the AIPs that run imported are skipped). ``progress(done, total)`` counts
    AIPs. At the end ``flush(aip_ids)`` writes the journal of the AIPs (default:
    `operations.journal.flush`: the rebuild's own events, and what a replica's journal lacks).
    StorageUnavailable when the source cannot be read: the rebuild stays unfinished, and the next
    run resumes it."""
    started = time.monotonic()
    names = [t.name for t in settings.targets]
    if source not in names:
        raise ConfigError(
            f"no replica target named {source!r}; known: {names}",
            advice="Name one of the [[targets]] of the configuration with --from.",
        )
    if settings.target(source).encrypted:  # refused before anything is written, naming the variable
        with open_store(settings, settings.target(source)) as probe:
            if isinstance(probe, EncryptedStore):
                probe.identities()
    running = catalog.rebuild_running()
    resumed = running is not None and running[1] == source
    if not resumed and not merge and not catalog.is_empty():
        raise ConfigError(
            "the catalog is not empty: a rebuild goes into an empty database"
            + (f" (it holds an unfinished rebuild from {running[1]})" if running else ""),
            advice="Point [archive] catalog_url at a new, empty database (or move the SQLite file aside) and run "
            "again; or add --merge to import only the AIPs this catalog does not have"
            + (f"; or finish the interrupted rebuild: --from {running[1]}" if running else "")
            + ".",
        )
    if running is not None and not resumed:
        catalog.rebuild_end(running[0], {"abandoned": True, "superseded_by": source})
    rebuild_id = running[0] if running is not None and resumed else catalog.rebuild_begin(source)

    imported: list[str] = []
    skipped: list[str] = []
    not_preserve: list[NotPreserve] = []
    errors: list[str] = []
    found = _Findings()
    if resumed:  # what the interrupted run found about the AIPs it imported is reported again
        for earlier in catalog.rebuild_notes(rebuild_id):
            found.add(_Findings.from_dict(earlier))
    replicas: collections.Counter[str] = collections.Counter()
    counts: dict[str, collections.Counter[str]] = {n: collections.Counter() for n in names}
    with contextlib.ExitStack() as stack:
        stores = {t.name: stack.enter_context(open_store(settings, t)) for t in settings.targets}
        stores[source].check_reachable()
        reachable = [source]
        for name in names:
            if name == source:
                continue
            other = stores[name]
            if isinstance(other, EncryptedStore) and not other.has_identity:
                errors.append(
                    f"{name}: encrypted, and no identity is configured for it (set "
                    f"{other.target.identity_env_name()}); its objects are recorded as pending, unverified, "
                    "until an audit reads it"
                )
                continue
            try:
                stores[name].check_reachable()
                reachable.append(name)
            except StorageUnavailable as exc:
                errors.append(
                    f"{name}: unreachable ({exc}); its objects are recorded as pending, unverified, "
                    "until an audit reaches it"
                )
        groups = _listing(stores[source], not_preserve, errors)
        aips: list[str] = []
        for prefix, keys in sorted(groups.items()):
            if not layout.AIP_ID_RE.match(prefix):
                reason = "not an AIP id"
            elif not _looks_like_aip(prefix, keys):
                reason = "neither a bagit.txt, a version inventory nor an event record"
            else:
                aips.append(prefix)
                continue
            not_preserve.append(NotPreserve(prefix, len(keys), sum(i.size for i in keys.values()), reason))
        if progress is not None:
            progress(0, len(aips))
        for done, aip_id in enumerate(aips, start=1):
            if catalog.has_aip(aip_id):
                skipped.append(aip_id)
                if not resumed:  # a merge: is the catalog's copy of this AIP as new as storage's?
                    found.disagreements += _newer_on_storage(catalog, aip_id, source, stores[source], groups[aip_id])
            else:
                try:
                    built = _build(aip_id, source, stores, reachable, groups[aip_id], rebuild_id)
                    if built.rebuilt is not None:
                        catalog.import_aip(built.rebuilt, uris=built.uris)
                except (CatalogError, PackagingError) as exc:  # this AIP only: the others go on
                    errors.append(f"{aip_id}: not imported: {exc}")
                    built = _Built()
                except KeyUnavailable as exc:  # its key on the source cannot be opened: the others go on
                    errors.append(f"{aip_id}: not imported: {exc}")
                    built = _Built()
                if built.rebuilt is not None:
                    errors += _record_keys(catalog, aip_id, stores, built.uris)
                if built.rebuilt is not None:
                    try:
                        _mark_journal(catalog, aip_id, source, built)
                    except CatalogError as exc:  # imported; its journal is then written again in full
                        errors.append(f"{aip_id}: what its replicas' journals hold was not recorded: {exc}")
                found.add(built.found)
                if built.rebuilt is not None and any(dataclasses.astuple(built.found)):
                    catalog.rebuild_note(rebuild_id, built.found.to_dict())  # kept for a resumed run's report
                if built.rebuilt is not None:
                    imported.append(aip_id)
                    for name, c in built.counts.items():
                        counts[name] += c
                        replicas[name] += 1
                elif not any(e.startswith(f"{aip_id}:") for e in errors):
                    keys = groups[aip_id]
                    size = sum(i.size for i in keys.values())
                    not_preserve.append(NotPreserve(aip_id, len(keys), size, "nothing in it can be read"))
            if progress is not None:
                progress(done, len(aips))
    if imported or skipped:
        if flush is None:
            from preserve.operations import journal

            journal.flush(settings, catalog, [*imported, *skipped])
        else:
            flush([*imported, *skipped])
    report = RebuildReport(
        source=source,
        rebuild_id=rebuild_id,
        resumed=resumed,
        imported=tuple(imported),
        skipped=tuple(skipped),
        fallbacks=tuple(found.fallbacks),
        not_preserve=tuple(not_preserve),
        damaged_records=tuple(found.damaged),
        damage=tuple(found.damage),
        disagreements=tuple(found.disagreements),
        unexpected=tuple(found.unexpected),
        targets=tuple(
            InventoryCount(
                n,
                replicas[n],
                sum(counts[n].values()),
                counts[n]["verified"],
                counts[n]["pending"],
                counts[n]["missing"],
                counts[n]["damaged"],
            )
            for n in names
        ),
        errors=tuple(errors),
        seconds=round(time.monotonic() - started, 3),
    )
    catalog.rebuild_end(rebuild_id, report.to_dict())
    return report
