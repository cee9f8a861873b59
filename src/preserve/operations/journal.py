"""The journal beside each AIP on storage: every event the catalog holds about a stored AIP is also
written to each replica, as append-only event records (PREMIS XML, `packaging.eventlog`), grouped
(one record per AIP and target per flush, however many events: an audit of 10,000 objects writes
one object, not 10,000), together with the inventory of each version (`packaging.inventory`), so
that the catalog can be rebuilt from one replica alone (`operations.rebuild`).

`flush` writes what the catalog says is still pending (`Catalog.journal_pending`,
`journal_versions_pending`) and records what it wrote (`journal_written`). It is called at the end
of every operation that records events about a stored AIP (ingest, audit and repair, access changes
and withdrawals, embargo release, each deaccession step, restore, back-fill: `backfill` here), and
by `preserve serve`'s housekeeping, which writes whatever an earlier call could not. A target that
fails is reported and tried again by the next flush: a flush never raises a StorageError, and
nothing it does is recorded as an event (that would make the journal grow without end). Two
flushes at once may both write an event (the second's bookkeeping is then refused and reported):
a record is never overwritten, and a rebuild drops an event it reads twice.

On an encrypted target these objects go through its EncryptedStore like any other: encrypted to
the AIP's key, under opaque names (writing beside an AIP already there needs the target's
identity: without it the flush reports KeyUnavailable, naming the variable, and the records stay
pending); a deaccession destroys that key, and nothing more is written there.

Keys (`preserve.storage.layout`): ``<aip>/events/<UTC time>-<token>.premis.xml`` (a new key for
every record, never overwritten, never deleted by preserve: deaccession keeps them, they carry
the tombstone) and ``<aip>/versions/v<N>.json`` (deaccession deletes these: they name the files
and the title). A deaccessioned AIP gets no more inventories.

Side effects: small uploads to the targets (through `ObjectStore.put_file`, verified by SHA-256),
temporary files under <var>/journal-work, catalog writes (the journal's bookkeeping), log lines."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preserve.catalog import AipView, Catalog
from preserve.catalog.records import FileView, VersionRecord
from preserve.config import Settings, TargetSettings
from preserve.core import redact
from preserve.core.errors import CatalogError, PackagingError, StorageError, StorageUnavailable
from preserve.core.fs import private_dir
from preserve.core.model import AipStatus, Event, Role, utcnow
from preserve.packaging import bag, eventlog, inventory
from preserve.storage import ObjectStore, layout, open_store, replication
from preserve.storage.base import read_small, sha256_of
from preserve.storage.crypt import remembering_keys

log = logging.getLogger(__name__)

WORK_DIR = "journal-work"
#: more AIPs than this in one flush: first ask the catalog which have anything pending at all
MANY = 8
#: events in one record at most: 10,000 fixity checks make a record of about 20 MB (measured), so
#: an audit of 200,000 objects writes 20 records, not one object of 400 MB
MAX_EVENTS_PER_RECORD = 10_000


@dataclass(frozen=True)
class Written:
    """What one flush wrote beside one AIP on one target: its event record (``record`` "" when
    no event was pending), the number of events in it, the version inventories, or the error that
    stopped it (redacted; the rest is then written by the next flush)."""

    aip_id: str
    target: str
    record: str = ""
    events: int = 0
    inventories: tuple[str, ...] = ()
    error: str = ""
    #: how many event records (more than one only past MAX_EVENTS_PER_RECORD events); ``record`` is the last
    records: int = 1

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def wrote(self) -> bool:
        return bool(self.record or self.inventories)


@dataclass(frozen=True)
class JournalReport:
    """Everything one flush did, per AIP and target (pairs with nothing pending are left out)."""

    entries: tuple[Written, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(w.ok for w in self.entries)

    @property
    def failed(self) -> list[Written]:
        return [w for w in self.entries if not w.ok]

    @property
    def records(self) -> int:
        return sum(w.records for w in self.entries if w.record)

    @property
    def events(self) -> int:
        return sum(w.events for w in self.entries)

    def lines(self) -> list[str]:
        """One line per failure, for a report or a log."""
        return [f"{w.target}: journal of {w.aip_id} not written: {w.error}" for w in self.failed]


def flush(settings: Settings, catalog: Catalog, aip_ids: Sequence[str] | None = None) -> JournalReport:
    """Write the pending version inventories, then ONE event record with every pending event and
    the AIP's current catalog state, beside each AIP (``aip_ids``, else every AIP with something
    pending) on each configured target that holds (or, deaccessioned, held) it. A target that
    fails is reported and left for the next flush; once one is unreachable, the rest of this flush
    does not try it again. Raises only when the catalog itself fails."""
    started = time.monotonic()
    if aip_ids is None:
        ids = catalog.journal_aips_pending()
    else:
        ids = list(dict.fromkeys(aip_ids))
        if len(ids) > MANY:  # two queries over the whole catalog instead of a few for each AIP
            pending_somewhere = set(catalog.journal_aips_pending())
            ids = [a for a in ids if a in pending_somewhere]
    configured = {t.name: t for t in settings.targets}
    entries: list[Written] = []
    down: dict[str, str] = {}  # target -> why, once it was found unreachable in this flush
    with contextlib.ExitStack() as stack:
        stores: dict[str, ObjectStore] = {}

        def store_of(t: TargetSettings) -> ObjectStore:
            if t.name not in stores:
                stores[t.name] = stack.enter_context(open_store(settings, t))
            return stores[t.name]

        def other_store(name: str) -> ObjectStore | None:
            """Another target to read from (an inventory to copy); None when it is unusable now."""
            if name in down or name not in configured:
                return None
            try:
                return store_of(configured[name])
            except StorageError:
                return None

        for aip_id in ids:
            todo = _pending(
                catalog, aip_id, [configured[n] for n in catalog.journal_targets(aip_id) if n in configured]
            )
            if todo is None:
                continue
            work = private_dir(settings.var_dir / WORK_DIR)
            try:
                state = catalog.aip_state(aip_id)  # read (and numbered) once, for every target of the AIP
            except CatalogError as exc:  # e.g. SQLite busy: this AIP waits for the next flush
                entries += [Written(aip_id, t.name, error=redact.describe(exc)) for t, _, _ in todo.targets]
                continue
            for t, versions, events in todo.targets:
                if t.name in down:
                    entries.append(Written(aip_id, t.name, error=down[t.name]))
                    continue
                try:
                    entry = _write(catalog, todo.aip, store_of(t), other_store, t, versions, events, state, work)
                except StorageUnavailable as exc:
                    entry = Written(aip_id, t.name, error=redact.describe(exc))
                    down[t.name] = f"not tried: unreachable earlier in this flush ({entry.error})"
                except (StorageError, PackagingError, CatalogError) as exc:
                    entry = Written(aip_id, t.name, error=redact.describe(exc))
                entries.append(entry)
                if not entry.ok:
                    log.warning("journal: AIP %s on %s not written: %s", aip_id, t.name, entry.error)
    return JournalReport(tuple(entries), time.monotonic() - started)


@dataclass(frozen=True)
class _Todo:
    aip: AipView
    #: (target, versions whose inventory is to write, events to write) for each target with any
    targets: list[tuple[TargetSettings, list[VersionRecord], list[tuple[int, Event]]]]


def _pending(catalog: Catalog, aip_id: str, holders: Sequence[TargetSettings]) -> _Todo | None:
    """What is still to write beside the AIP on each target; None when nothing is. A deaccessioned
    AIP gets no more inventories (they name its files and title, which deaccession removes from
    storage); its event records go on (they carry the tombstone), but not to an encrypted target
    where its key is destroyed."""
    found = [
        (t, catalog.journal_versions_pending(aip_id, t.name), catalog.journal_pending(aip_id, t.name)) for t in holders
    ]
    found = [(t, v, e) for t, v, e in found if v or e]
    aip = catalog.get_aip(aip_id) if found else None
    if aip is None:
        return None
    if aip.status is AipStatus.DEACCESSIONED:
        found = [(t, [], e) for t, _, e in found if e and not _key_gone(catalog, aip_id, t)]
    return _Todo(aip, found) if found else None


def _key_gone(catalog: Catalog, aip_id: str, t: TargetSettings) -> bool:
    """An encrypted target where a deaccessioned AIP has no key (any more): nothing is written
    there (a record would need a new key object beside what the deaccession destroyed)."""
    if not t.encrypted:
        return False
    key = catalog.key_of(aip_id, t.name)
    return key is None or key.destroyed


def _write(
    catalog: Catalog,
    aip: AipView,
    store: ObjectStore,
    store_of: Callable[[str], ObjectStore | None],
    t: TargetSettings,
    versions: Sequence[VersionRecord],
    events: Sequence[tuple[int, Event]],
    state: Mapping[str, Any],
    work: Path,
) -> Written:
    """The inventories, then the event record, on one target, each recorded once it is stored.
    A StorageError or PackagingError before the first is stored propagates; after it, it is in the
    result with what was written."""
    written: list[str] = []
    try:
        for v in versions:
            key = layout.version_inventory_key(aip.id, v.number)
            data = _inventory(catalog, aip, v, state, store, store_of)
            if not _same_inventory_there(store, key, data, aip.id):
                _put(store, key, data, work, replace=True)
            catalog.journal_written(aip.id, t.name, key, version=v.number)
            written.append(key)
        if not events:
            return Written(aip.id, t.name, inventories=tuple(written))
    except (StorageError, PackagingError) as exc:
        if not written:
            raise
        return Written(aip.id, t.name, inventories=tuple(written), error=redact.describe(exc))
    keys: list[str] = []
    done = 0
    for start in range(0, len(events), MAX_EVENTS_PER_RECORD):  # a huge audit: a few records, not one huge one
        chunk = events[start : start + MAX_EVENTS_PER_RECORD]
        now = utcnow()
        key = layout.event_record_key(aip.id, now, secrets.token_hex(4))
        try:
            data = eventlog.build(aip.id, [e for _, e in chunk], dict(state), written_at=now)
            _put(store, key, data, work, replace=False)
        except (StorageError, PackagingError) as exc:
            if not written and not keys:
                raise
            return Written(aip.id, t.name, keys[-1] if keys else "", done, tuple(written), redact.describe(exc))
        try:
            catalog.journal_written(aip.id, t.name, key, event_ids=[i for i, _ in chunk], at=now)
        except CatalogError as exc:  # e.g. a concurrent flush recorded some of these events first
            # the record is on storage (a rebuild drops an event it reads twice); the next flush
            # writes whatever is still unrecorded
            return Written(aip.id, t.name, key, done + len(chunk), tuple(written), redact.describe(exc))
        keys.append(key)
        done += len(chunk)
    return Written(aip.id, t.name, keys[-1], done, tuple(written), records=len(keys))


def _same_inventory_there(store: ObjectStore, key: str, data: bytes, aip_id: str) -> bool:
    """True when ``key`` already holds an inventory of the same version with the same members (a
    flush that stopped before recording it, or a replica that had it): it is kept, whatever else
    differs (its title is that version's). An object there that is not such an inventory is
    never overwritten: StorageError, so the flush reports it for a person."""
    if store.head(key) is None:
        return False
    try:
        there = inventory.parse(read_small(store, key, inventory.MAX_BYTES), aip_id=aip_id)
    except PackagingError as exc:
        raise StorageError(f"{key} exists and is not a readable inventory ({exc}); it is never overwritten") from exc
    mine = inventory.parse(data, aip_id=aip_id)
    if there.number != mine.number or dict(there.members) != dict(mine.members):
        raise StorageError(
            f"{key} exists and lists other members than the catalog's version {mine.number}; it is never "
            "overwritten (a replica that disagrees: compare it with the others, see `preserve catalog rebuild`)"
        )
    return True


def _put(store: ObjectStore, key: str, data: bytes, work: Path, *, replace: bool) -> None:
    """Upload ``data`` under ``key``, verified by SHA-256, from a private temporary file. An
    inventory (``replace``) already there with these very bytes (written by a flush that stopped
    before recording it) is not written again."""
    sha256 = hashlib.sha256(data).hexdigest()
    if replace:
        have = store.head(key)
        if have is not None and have.size == len(data) and sha256_of(store, key) == sha256:
            return
    with tempfile.NamedTemporaryFile(dir=work, prefix=".journal-", delete=False) as f:
        tmp = Path(f.name)
        f.write(data)
    try:
        store.put_file(key, tmp, sha256=sha256, size=len(data))
    finally:
        tmp.unlink(missing_ok=True)


def _inventory(
    catalog: Catalog,
    aip: AipView,
    v: VersionRecord,
    state: Mapping[str, Any],
    store: ObjectStore,
    store_of: Callable[[str], ObjectStore | None],
) -> bytes:
    """Version ``v``'s inventory. For the current version, from the catalog: its header, the
    AIP's description (``state``, `Catalog.aip_state`) and payload files, and the size and SHA-256
    of the object behind each member. The catalog keeps the payload files of the current version
    only, so an older one's inventory (a replica back-filled after amends, or down while they were
    made) is copied from a replica that has it, read back and checked; when none has, it is made
    from the catalog and the version's own manifest-sha512.txt on ``store`` (the SHA-512s of the
    files the later versions changed), with the current title."""
    if v.number < aip.version:
        key = layout.version_inventory_key(aip.id, v.number)
        for other, kind, written, _ in catalog.journal_records(aip.id):
            source = store_of(other) if kind == "version" and written == key else None
            if source is None or source is store:
                continue
            try:
                data = read_small(source, key, inventory.MAX_BYTES)
                found = inventory.parse(data, aip_id=aip.id)
            except (StorageError, PackagingError) as exc:
                log.warning("journal: inventory %s on %s not copied: %s", key, other, redact.describe(exc))
                continue
            if found.number == v.number and dict(found.to_version_record().members) == dict(v.members):
                return data
    head = dict(state.get("aip") or {})
    objects = {o.key: o for o in catalog.objects(aip.id)}
    missing = sorted(m for m, key in v.members.items() if key not in objects)
    if missing:
        raise PackagingError(f"version {v.number} of {aip.id}: no object recorded for members {missing[:3]}")
    members = {m: inventory.Member(key, objects[key].size, objects[key].sha256) for m, key in v.members.items()}
    files = _files_of(aip, v, members, store)
    return inventory.build(
        inventory.VersionInventory(
            aip_id=aip.id,
            number=v.number,
            created=v.created,
            reason=v.reason,
            operator=v.operator,
            title=aip.title,
            submission_name=aip.submission_name,
            payload_oxum=f"{sum(f.size for f in files)}.{len(files)}",
            content_key=str(head.get("content_key") or ""),
            files=tuple(files),
            members=members,
        )
    )


def _files_of(
    aip: AipView, v: VersionRecord, members: Mapping[str, inventory.Member], store: ObjectStore
) -> list[FileView]:
    """The payload files of version ``v``: the catalog's (current) ones where they are the same
    bytes; for those a later version changed, the SHA-512 from the version's own manifest."""
    current = {f.path: f for f in aip.files}
    files: list[FileView] = []
    sha512: dict[str, str] | None = None
    for path, m in sorted(members.items()):
        if not path.startswith("data/"):
            continue
        now = current.get(path)
        if now is not None and now.sha256 == m.sha256 and now.size == m.size:
            files.append(now)
            continue
        if sha512 is None:
            manifest = members.get("manifest-sha512.txt")
            if manifest is None:
                raise PackagingError(f"version {v.number} of {aip.id} has no manifest-sha512.txt")
            sha512 = bag.parse_manifest(read_small(store, manifest.key).decode("utf-8"))
        if path not in sha512:
            raise PackagingError(f"version {v.number} of {aip.id}: {path} is not in its manifest-sha512.txt")
        files.append(
            FileView(
                path,
                m.size,
                m.sha256,
                sha512[path],
                now.role if now is not None else Role.OTHER.value,
                now.format_name if now is not None else "",
                now.format_registry_key if now is not None else "",
                now.original_name_hex if now is not None else "",
            )
        )
    return files


# -- the back-fill of a target added later ----------------------------------------------------------
def backfill(
    settings: Settings,
    catalog: Catalog,
    *,
    aip_id: str | None = None,
    target: str | None = None,
    on_result: Callable[[replication.Backfill], None] | None = None,
) -> list[replication.Backfill]:
    """`preserve replicate`: `preserve.storage.replication.backfill` (same arguments, same
    results), then the journal of every AIP copied, so the new replica gets every event record
    (none of it was there) and every version inventory. What cannot be written then is logged and
    written by housekeeping."""
    with remembering_keys():  # keys made on a new encrypted target serve its journal too
        results = replication.backfill(settings, catalog, aip_id=aip_id, target=target, on_result=on_result)
        copied = list(dict.fromkeys(r.aip_id for r in results if r.status == "copied"))
        if copied:
            flush(settings, catalog, copied)
    return results


def flush_quietly(settings: Settings, catalog: Catalog, aip_ids: Sequence[str]) -> JournalReport:
    """`flush` for the end of an operation whose outcome must not depend on the journal (an
    ingest, a restore): any failure, the catalog's included, is a log line and an empty report;
    housekeeping writes what is still pending."""
    try:
        return flush(settings, catalog, aip_ids)
    except Exception as exc:  # noqa: BLE001 - the operation itself succeeded; the journal catches up later
        log.warning("journal: not written now, housekeeping retries: %s", redact.describe(exc))
        return JournalReport()
