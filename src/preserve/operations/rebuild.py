"""A catalog rebuilt from one replica alone (`preserve catalog rebuild --from TARGET`): every AIP on
the source target, from its version inventories, its event records (the newest one's state) and,
where those cannot be read, its bag; then an inventory pass (HEAD: presence, size, stored
checksum) over every configured target, which marks an object verified only when a recorded check
vouches for it. Foreign objects, damaged records and replicas that disagree are reported, never
merged or deleted. One transaction per AIP, so a rebuild killed half-way resumes. Side effects:
reads every target; writes the catalog (AIPs, events, journal bookkeeping, the rebuild's record)
and, through the journal flush, the rebuild's own events beside each AIP."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from preserve import tools
from preserve.catalog import Catalog, FileView, StoredObject
from preserve.catalog.records import RebuiltAip, VersionRecord
from preserve.catalog.snapshot import default_state
from preserve.config import Settings
from preserve.core.errors import CatalogError, ConfigError, PackagingError, StorageError, StorageUnavailable
from preserve.core.model import AccessLevel, AipStatus, Event, EventType, Outcome, ReplicaStatus, Role, utcnow
from preserve.core.progress import Progress
from preserve.intake.submission import role_for
from preserve.packaging import eventlog, inventory, premis
from preserve.storage import layout, open_store
from preserve.storage.base import ObjectInfo, ObjectStore, member_path, object_key
from preserve.storage.replication import replica_uri

#: the largest journal object, tag file or PREMIS record read into memory
MAX_SMALL_OBJECT = 256 << 20
#: HEADs in flight per target during the inventory pass
HEAD_WORKERS = 8
#: the tag files of a bag (or of a version) at its top level
_TAG_RE = re.compile(r"^(bagit\.txt|bag-info\.txt|(tag)?manifest-[a-z0-9]+\.txt)$")
_PREMIS_MEMBER = "data/metadata/premis.xml"


# -- the report ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotPreserve:
    """A top-level prefix of the source that is not a preserve AIP: ignored, never deleted."""

    prefix: str
    objects: int
    bytes: int
    reason: str


@dataclass(frozen=True)
class DamagedRecord:
    """An event record or version inventory that could not be read (the rest were used)."""

    aip_id: str
    target: str
    key: str
    reason: str


@dataclass(frozen=True)
class Fallback:
    """Something of an AIP rebuilt from its bag (or left at a default), not from its journal."""

    aip_id: str
    reason: str


@dataclass(frozen=True)
class ObjectFinding:
    """An object that is not as the source's inventory says, on one target."""

    aip_id: str
    target: str
    key: str
    problem: str  # missing | size | checksum | recorded (the last recorded check of it failed)
    expected: str
    found: str


@dataclass(frozen=True)
class Disagreement:
    """Where another replica differs from the source (reported, not merged: the source's inventory
    stays the truth, and the other replica's object is marked so the next audit repairs it)."""

    aip_id: str
    target: str
    what: str  # object | version | events | replica
    detail: str


@dataclass(frozen=True)
class InventoryCount:
    """What the inventory pass found on one target."""

    target: str
    replicas: int = 0
    objects: int = 0
    verified: int = 0
    pending: int = 0
    missing: int = 0
    damaged: int = 0


@dataclass(frozen=True)
class RebuildReport:
    source: str
    rebuild_id: int
    resumed: bool
    imported: tuple[str, ...]
    #: already in the catalog (imported by an interrupted run of this rebuild, or there before a merge)
    skipped: tuple[str, ...]
    fallbacks: tuple[Fallback, ...]
    not_preserve: tuple[NotPreserve, ...]
    damaged_records: tuple[DamagedRecord, ...]
    #: objects on the source that are not as its own inventory says
    damage: tuple[ObjectFinding, ...]
    disagreements: tuple[Disagreement, ...]
    #: keys under an AIP's prefix that belong to none of its versions (left in place)
    unexpected: tuple[tuple[str, str], ...]
    targets: tuple[InventoryCount, ...]
    #: operational: a target other than the source that could not be reached
    errors: tuple[str, ...]
    seconds: float

    @property
    def clean(self) -> bool:
        """Nothing to report: every AIP from its journal, every object where its inventory says."""
        return not (
            self.fallbacks
            or self.not_preserve
            or self.damaged_records
            or self.damage
            or self.disagreements
            or self.unexpected
            or self.errors
        )

    @property
    def exit_code(self) -> int:
        """0 clean; 1 something reported; 2 a target was unreachable."""
        return 2 if self.errors else 0 if self.clean else 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["unexpected"] = [{"target": t, "key": k} for t, k in self.unexpected]
        data["clean"] = self.clean
        return data


# -- what a target holds of one AIP: its journal ------------------------------------------------------
@dataclass
class _Journal:
    """The journal objects of one AIP on one target, as read."""

    inventories: dict[int, inventory.VersionInventory] = field(default_factory=dict)
    inventory_keys: dict[int, str] = field(default_factory=dict)
    #: (key, record), oldest first (by the time each was written, then key)
    records: list[tuple[str, eventlog.EventRecord]] = field(default_factory=list)
    damaged: list[DamagedRecord] = field(default_factory=list)


def _read(store: ObjectStore, key: str, limit: int = MAX_SMALL_OBJECT) -> bytes:
    out = bytearray()
    for chunk in store.read_chunks(key):
        out += chunk
        if len(out) > limit:
            raise StorageError(f"{key} is larger than {limit} bytes: not a journal object or a tag file")
    return bytes(out)


def _read_journal(store: ObjectStore, target: str, aip_id: str, keys: Iterable[str]) -> _Journal:
    """Parse every version inventory and event record among ``keys``; one that is damaged or cannot
    be read is listed and the others are used (StorageUnavailable propagates: nothing can be
    concluded from a target that is down)."""
    j = _Journal()
    records: list[tuple[dt.datetime, str, eventlog.EventRecord]] = []
    for key in sorted(keys):
        kind = layout.classify(aip_id, key)
        if kind not in ("version-inventory", "event-record"):
            continue
        try:
            data = _read(store, key)
            if kind == "version-inventory":
                inv = inventory.parse(data, aip_id=aip_id)
                if inv.number != layout.inventory_number(aip_id, key):
                    raise PackagingError(f"it is the inventory of version {inv.number}")
                j.inventories[inv.number] = inv
                j.inventory_keys[inv.number] = key
            else:
                rec = eventlog.parse(data, aip_id=aip_id)
                records.append((_utc(rec.written_at), key, rec))
        except StorageUnavailable:
            raise
        except (PackagingError, StorageError, ValueError) as exc:
            j.damaged.append(DamagedRecord(aip_id, target, key, str(exc)[:300]))
    j.records = [(key, rec) for _, key, rec in sorted(records, key=lambda r: (r[0], r[1]))]
    return j


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _when(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return _utc(value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value)))
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
        _utc(e.at).isoformat(),
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
    return (e.type.value, _utc(e.at).isoformat(), e.outcome.value)


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
    return sorted(out, key=lambda e: _utc(e.at))


# -- the bag, where the journal cannot tell ---------------------------------------------------------
def _manifest(text: str) -> dict[str, str]:
    """A BagIt manifest: path -> digest (paths percent-decoded as BagIt encodes them)."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"(\S+)[ \t]+(.+)$", line)
        if m:
            entries[m.group(2).replace("%0A", "\n").replace("%0D", "\r")] = m.group(1).lower()
    return entries


def _bag_info(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and last:
            info[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            last = name.strip()
            info[last] = value.strip()
    return info


class _Bag:
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
                    data = _read(self.store, key)
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
        return _bag_info(self.text("bag-info.txt"))

    def manifest(self, alg: str, *, tag: bool = False) -> dict[str, str]:
        return _manifest(self.text(f"{'tag' if tag else ''}manifest-{alg}.txt"))


def _premis_files(xml: bytes | None) -> dict[str, tuple[str, str, str]]:
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


def _formats_from_events(events: Sequence[Event]) -> dict[str, tuple[str, str]]:
    """path -> (format name, PUID) as the newest format identification of each file said."""
    out: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.type is EventType.FORMAT_IDENTIFICATION and e.subject and ("format" in e.extra or "puid" in e.extra):
            out[e.subject] = (str(e.extra.get("format") or ""), str(e.extra.get("puid") or ""))
    return out


def _role(path: str) -> str:
    if path.startswith("data/metadata/"):
        return Role.SIDECAR.value
    return role_for(path.rsplit("/", 1)[-1]).value


def _version_of_member_key(aip_id: str, key: str) -> int | None:
    if layout.classify(aip_id, key) != "version-member":
        return None
    return int(key[len(aip_id) + 1 :].split("/")[1][1:])


def _versions(
    aip_id: str,
    journal: _Journal,
    state: Mapping[str, Any] | None,
    listed: Mapping[str, ObjectInfo],
    created: dt.datetime,
    store: ObjectStore,
    fallbacks: list[Fallback],
) -> tuple[list[VersionRecord], dict[int, _Bag]]:
    """Every version, with the bag of each: from its inventory, else rebuilt from the bag (version
    1: its tag files and what its manifest names; version N: the keys under versions/v<N>/ over
    version N-1, without the payload files its own manifest no longer names)."""
    headers = {int(h["number"]): h for h in (state or {}).get("versions") or () if "number" in h}
    numbers = {1, *journal.inventories, *headers}
    numbers |= {n for k in listed if (n := _version_of_member_key(aip_id, k)) is not None}
    versions: list[VersionRecord] = []
    bags: dict[int, _Bag] = {}
    previous: dict[str, str] = {}
    for n in sorted(numbers):
        inv = journal.inventories.get(n)
        if inv is not None:
            record = inv.to_version_record()
            record = VersionRecord(n, _utc(record.created), record.reason, record.operator, dict(record.members))
            bags[n] = _Bag(store, dict(record.members), listed)
        else:
            if n == 1:
                members = {
                    member_path(aip_id, k): k
                    for k in listed
                    if layout.classify(aip_id, k) == "bag" and _TAG_RE.match(member_path(aip_id, k))
                }
                bag = _Bag(store, members, listed)
                for path in bag.manifest("sha256"):
                    members.setdefault(path, object_key(aip_id, path))
            else:
                below = f"{layout.VERSIONS_DIR}/v{n}/"
                members = dict(previous)
                for k in listed:
                    if _version_of_member_key(aip_id, k) == n:
                        members[member_path(aip_id, k).removeprefix(below)] = k
                bag = _Bag(store, members, listed)
                payload = bag.manifest("sha256")
                if payload:
                    members = {m: k for m, k in members.items() if not m.startswith("data/") or m in payload}
                    bag.members = members
            h = headers.get(n, {})
            record = VersionRecord(
                n,
                _when(h.get("created")) or created,
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


@dataclass(frozen=True)
class _Expected:
    """What the rebuilt catalog says one object is: its size and SHA-256; whether they come from an
    inventory (else from the bag or the object itself, never enough to call it verified); the
    version that first has it, and when that version was made."""

    size: int | None  # None: unknown (no inventory, and the source does not hold it)
    sha256: str
    trusted: bool
    version: int
    born: dt.datetime | None


def _expected(
    versions: Sequence[VersionRecord], journal: _Journal, listed: Mapping[str, ObjectInfo], bags: Mapping[int, _Bag]
) -> dict[str, _Expected]:
    """key -> what the object must be, over every version (each key once)."""
    out: dict[str, _Expected] = {}
    for v in versions:
        born = None if v.number == 1 else v.created
        inv = journal.inventories.get(v.number)
        if inv is not None:
            for m in inv.members.values():
                out.setdefault(m.key, _Expected(m.size, m.sha256, True, v.number, born))
            continue
        bag = bags[v.number]
        payload, tags = bag.manifest("sha256"), bag.manifest("sha256", tag=True)
        for member, key in v.members.items():
            if key in out:
                continue
            digest = payload.get(member) or tags.get(member) or ""
            if not digest and _TAG_RE.match(member):
                data = bag.read(member)  # a tag manifest names no digest of itself
                digest = hashlib.sha256(data).hexdigest() if data is not None else ""
            info = listed.get(key)
            out[key] = _Expected(info.size if info else None, digest, False, v.number, born)
    return out


def _files(
    aip_id: str,
    current: VersionRecord,
    journal: _Journal,
    bag: _Bag,
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
    formats = _premis_files(bag.read(_PREMIS_MEMBER))
    identified = _formats_from_events(events)
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
            FileView(path, info.size if info else 0, sha256[path], sha512.get(path, ""), _role(path), name, puid)
        )
    fallbacks.append(
        Fallback(
            aip_id,
            f"files of version {current.number} from the bag (its manifests, PREMIS formats, roles by name); "
            "an original name that was not UTF-8 is not recoverable from it",
        )
    )
    return out


def _content_key(files: Sequence[FileView], formats: Mapping[str, tuple[str, str, str]]) -> str:
    """`catalog.content_key` of the originals: data/objects/ without the preservation masters."""
    masters = {p for p, (_, _, source) in formats.items() if source}
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        if f.path.startswith("data/objects/") and f.path not in masters:
            h.update(f"{f.path}\0{f.sha256}\n".encode())
    return h.hexdigest()


# -- which recorded check vouches for an object -----------------------------------------------------
@dataclass(frozen=True)
class _Checks:
    """The recorded checks of one AIP: per (target, key) the object's own checks and repairs (a
    fixity check counts only when it re-read the bytes), per target the replications (a whole
    replica stored and verified), per version the amend that stored and verified its new objects,
    and the state's replica verification times as of the state's record."""

    per_object: Mapping[tuple[str, str], Sequence[Event]]
    per_replica: Mapping[str, Sequence[Event]]
    per_version: Mapping[int, dt.datetime]
    replica_verified: Mapping[str, dt.datetime]
    state_at: dt.datetime | None

    @classmethod
    def of(cls, events: Sequence[Event], state: Mapping[str, Any], state_at: dt.datetime | None) -> _Checks:
        per_object: dict[tuple[str, str], list[Event]] = {}
        per_replica: dict[str, list[Event]] = {}
        per_version: dict[int, dt.datetime] = {}
        for e in events:
            if e.type in (EventType.FIXITY_CHECK, EventType.REPAIR) and ":" in e.subject:
                if e.type is EventType.FIXITY_CHECK and e.outcome is Outcome.PASS and not e.extra.get("reread"):
                    continue  # a HEAD (inventory) check vouches for no byte
                target, _, key = e.subject.partition(":")
                per_object.setdefault((target, key), []).append(e)
            elif e.type is EventType.REPLICATION and e.outcome is Outcome.PASS and e.subject:
                per_replica.setdefault(e.subject, []).append(e)
            elif e.type is EventType.METADATA_MODIFICATION and e.outcome is Outcome.PASS:
                n = e.extra.get("version")
                if isinstance(n, int) and n >= 2:
                    per_version[n] = max(per_version.get(n, _utc(e.at)), _utc(e.at))
        verified = {str(r.get("target")): t for r in state.get("replicas") or () if (t := _when(r.get("verified_at")))}
        return cls(per_object, per_replica, per_version, verified, state_at)

    def vouch(self, target: str, key: str, exp: _Expected) -> tuple[dt.datetime | None, Event | None]:
        """(when a recorded check last verified the object, a failure recorded after every pass).

        The state's replica verification time stands for the checks its record already reflects
        (so a replica rebuilt from it keeps the very time the catalog had: the oldest of its
        objects' checks); checks recorded after it (in newer records than the newest readable
        state, or in the bag's PREMIS) count one by one. Nothing counts from before the object's
        version was made."""
        state_time = self.replica_verified.get(target)
        covered = state_time is not None and (exp.born is None or exp.born <= state_time)
        candidates = [state_time] if covered and state_time is not None else []
        if exp.version in self.per_version and exp.born is not None:
            candidates.append(self.per_version[exp.version])

        def counts(e: Event) -> bool:
            at = _utc(e.at)
            if exp.born is not None and at < exp.born:
                return False
            return not covered or self.state_at is None or at > self.state_at

        own = self.per_object.get((target, key), ())
        replicas = self.per_replica.get(target, ())
        candidates += [_utc(e.at) for e in own if e.outcome is Outcome.PASS and counts(e)]
        candidates += [_utc(e.at) for e in replicas if counts(e)]
        passes = [_utc(e.at) for e in own if e.outcome is Outcome.PASS] + [_utc(e.at) for e in replicas]
        passes += [state_time] if state_time is not None else []
        fails = [e for e in own if e.outcome is Outcome.FAIL]
        failure = max(fails, key=lambda e: _utc(e.at)) if fails else None
        if failure is not None and passes and max(passes) >= _utc(failure.at):
            failure = None
        return max(candidates, default=None), failure


# -- the inventory pass -----------------------------------------------------------------------------
def _heads(store: ObjectStore, keys: Sequence[str]) -> dict[str, ObjectInfo | None]:
    if len(keys) < 4:
        return {k: store.head(k) for k in keys}
    with ThreadPoolExecutor(max_workers=HEAD_WORKERS) as pool:
        return dict(zip(keys, pool.map(store.head, keys), strict=True))


def _inventory(
    aip_id: str, target: str, store: ObjectStore | None, expected: Mapping[str, _Expected], checks: _Checks
) -> tuple[list[StoredObject], list[ObjectFinding]]:
    """Every expected object on one target by HEAD (``store`` None: the target is down, so every
    object is pending), compared with what it must be."""
    keys = sorted(expected)
    found = _heads(store, keys) if store is not None else {}
    objects: list[StoredObject] = []
    findings: list[ObjectFinding] = []
    for key in keys:
        exp, info = expected[key], found.get(key)
        verified_at, failure = checks.vouch(target, key, exp)
        problem = ("", "", "")
        if store is None:
            status = ReplicaStatus.PENDING
        elif info is None:
            want = f"{exp.size} bytes" if exp.size is not None else "an object"
            status, problem = ReplicaStatus.MISSING, ("missing", want, "no object")
        elif exp.size is not None and info.size != exp.size:
            status, problem = ReplicaStatus.DAMAGED, ("size", f"{exp.size} bytes", f"{info.size} bytes")
        elif exp.sha256 and info.sha256 is not None and info.sha256 != exp.sha256:
            status, problem = (
                ReplicaStatus.DAMAGED,
                ("checksum", f"sha256 {exp.sha256}", f"stored checksum {info.sha256}"),
            )
        elif failure is not None:
            status = ReplicaStatus.MISSING if failure.detail.startswith("missing") else ReplicaStatus.DAMAGED
            problem = (
                "recorded",
                "a passing check after the last failure",
                f"{failure.type.value} failed at {_utc(failure.at).isoformat()}: {failure.detail[:160]}",
            )
        elif exp.trusted and verified_at is not None:
            status = ReplicaStatus.VERIFIED
        else:
            status = ReplicaStatus.PENDING
        if problem[0]:
            findings.append(ObjectFinding(aip_id, target, key, *problem))
        objects.append(
            StoredObject(
                target=target,
                key=key,
                size=exp.size if exp.size is not None else (info.size if info is not None else 0),
                sha256=exp.sha256 or (info.sha256 if info is not None and info.sha256 else ""),
                verified_at=None if status is ReplicaStatus.PENDING else verified_at,
                version_id=(info.version_id or "") if info is not None else "",
                lock_mode=(info.lock_mode or "") if info is not None else "",
                lock_until=info.lock_until if info is not None else None,
                status=status,
                aip_id=aip_id,
            )
        )
    return objects, findings


def _inventory_event(target: str, source: str, objects: Sequence[StoredObject], rebuild_id: int) -> Event:
    n = collections.Counter(o.status.value for o in objects)
    bad = n[ReplicaStatus.MISSING.value] + n[ReplicaStatus.DAMAGED.value]
    return Event(
        EventType.FIXITY_CHECK,
        Outcome.FAIL if bad else Outcome.PASS,
        tools.preserve_agent(),
        f"rebuild inventory (the catalog rebuilt from {source}): {len(objects)} objects looked at by HEAD "
        f"(presence, size, stored checksum; not a re-read): {n['verified']} verified by an earlier recorded "
        f"check, {n['pending']} pending a re-read, {n['missing']} missing, {n['damaged']} damaged",
        subject=target,
        extra={
            "replica": target,
            "reread": False,
            "rebuild": rebuild_id,
            "source": source,
            "objects": len(objects),
            **{k: n[k] for k in ("verified", "pending", "missing", "damaged")},
        },
    )


def _compare_journals(aip_id: str, source: str, target: str, src: _Journal, other: _Journal) -> list[Disagreement]:
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

    def held(j: _Journal) -> collections.Counter[Identity]:
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


@dataclass
class _Built:
    """One AIP as read back: what to import (None when nothing in its prefix can be read), where
    each replica is, the journal found on each target, the inventory counts, and the findings."""

    rebuilt: RebuiltAip | None = None
    uris: dict[str, str] = field(default_factory=dict)
    #: per target: the journal objects found there (marked written after the import)
    journals: dict[str, _Journal] = field(default_factory=dict)
    counts: dict[str, collections.Counter[str]] = field(default_factory=dict)
    found: _Findings = field(default_factory=_Findings)


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
    journal = _read_journal(src, source, aip_id, listed)
    out = _Built()
    found = out.found
    out.journals[source] = journal
    found.damaged += journal.damaged
    with_state = [rec for _, rec in journal.records if rec.state is not None]
    state: dict[str, Any] | None = dict(with_state[-1].state or {}) if with_state else None
    state_at = _utc(with_state[-1].written_at) if with_state else None
    has_bag = object_key(aip_id, "bagit.txt") in listed
    if state is None and not journal.inventories and not has_bag:
        return out
    head: Mapping[str, Any] = (state or {}).get("aip") or {}
    deaccessioned = str(head.get("status", "")) == AipStatus.DEACCESSIONED.value

    # the bag's PREMIS of each version: the events before packing (and before each amend)
    documents: list[list[Event]] = []
    premis_keys = sorted({k for k in listed if member_path(aip_id, k).endswith(_PREMIS_MEMBER)})
    for key in premis_keys:
        try:
            documents.append(eventlog.events_from_premis(_read(src, key)))
        except StorageUnavailable:
            raise
        except (PackagingError, StorageError, ValueError) as exc:
            found.damaged.append(DamagedRecord(aip_id, source, key, f"the bag's PREMIS: {exc}"[:300]))
    events = union_events([list(rec.events) for _, rec in journal.records], documents)

    first = journal.inventories.get(1)
    created = (
        _when(head.get("created_at"))
        or (_utc(first.created) if first is not None else None)
        or max((_utc(e.at) for d in documents for e in d), default=None)
        or utcnow()
    )
    versions, bags = _versions(aip_id, journal, state, listed, created, src, found.fallbacks)
    current = versions[-1]
    files = (
        _files(aip_id, current, journal, bags[current.number], listed, events, found.fallbacks)
        if current.members
        else []
    )
    if not files and deaccessioned:  # its bag and inventories are gone: the tombstone keeps the digests
        identified = _formats_from_events(events)
        files = [
            FileView(
                str(f["path"]),
                int(f["size"]),
                str(f["sha256"]),
                str(f["sha512"]),
                str(f.get("role") or _role(str(f["path"]))),
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
            else _content_key(files, _premis_files(bags[1].read(_PREMIS_MEMBER))),
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
    checks = _Checks.of(events, state, state_at)
    expected = {} if deaccessioned else _expected(versions, journal, listed, bags)
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
    for name in [source, *(n for n in stores if n != source)]:
        store: ObjectStore | None = stores[name] if name in reachable else None
        if name == source:
            held: set[str] = set(listed)
        elif store is not None:
            held = {i.key for i in store.list(f"{aip_id}/")}
            other = _read_journal(store, name, aip_id, held)
            out.journals[name] = other
            found.damaged += other.damaged
            found.disagreements += _compare_journals(aip_id, source, name, journal, other)
            found.unexpected += strays(name, held)
        elif name in had:  # down: what it held is not known; pending until an audit reaches it
            held = set(expected)
        else:
            continue
        if not expected:
            continue
        if not held & set(expected):
            if name in had and recorded:
                found.disagreements.append(
                    Disagreement(
                        aip_id, name, "replica", "the AIP's record has a replica here, but none of its objects"
                    )
                )
            continue
        objs, findings = _inventory(aip_id, name, store, expected, checks)
        objects += objs
        out.counts[name] = collections.Counter(o.status.value for o in objs)
        if store is None:
            continue
        out.uris[name] = replica_uri(store, aip_id)
        inventory_events.append(_inventory_event(name, source, objs, rebuild_id))
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
                catalog.journal_written(aip_id, target, key, event_ids=ids, at=_utc(rec.written_at))
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
    replicas: collections.Counter[str] = collections.Counter()
    counts: dict[str, collections.Counter[str]] = {n: collections.Counter() for n in names}
    with contextlib.ExitStack() as stack:
        stores = {t.name: stack.enter_context(open_store(settings, t)) for t in settings.targets}
        stores[source].check_reachable()
        reachable = [source]
        for name in names:
            if name == source:
                continue
            try:
                stores[name].check_reachable()
                reachable.append(name)
            except StorageUnavailable as exc:
                errors.append(
                    f"{name}: unreachable ({exc}); its objects are recorded as pending, unverified, "
                    "until an audit reaches it"
                )
        groups = _group(stores[source].list(""))
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
            else:
                try:
                    built = _build(aip_id, source, stores, reachable, groups[aip_id], rebuild_id)
                    if built.rebuilt is not None:
                        catalog.import_aip(built.rebuilt, uris=built.uris)
                except (CatalogError, PackagingError) as exc:  # this AIP only: the others go on
                    errors.append(f"{aip_id}: not imported: {exc}")
                    built = _Built()
                if built.rebuilt is not None:
                    try:
                        _mark_journal(catalog, aip_id, source, built)
                    except CatalogError as exc:  # imported; its journal is then written again in full
                        errors.append(f"{aip_id}: what its replicas' journals hold was not recorded: {exc}")
                found.add(built.found)
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


def format_report(report: RebuildReport) -> str:
    """The report for a person: what was imported, the counts per target, then every finding."""
    lines = [
        f"catalog rebuilt from {report.source}{' (resumed)' if report.resumed else ''} in {report.seconds:.1f} s: "
        f"{len(report.imported)} AIP(s) imported, {len(report.skipped)} already in the catalog"
    ]
    lines += [
        f"  {c.target:<16} {c.replicas} replica(s), {c.objects} objects: {c.verified} verified, "
        f"{c.pending} pending a re-read, {c.missing} missing, {c.damaged} damaged"
        for c in report.targets
    ]
    lines += [
        f"NOT PRESERVE {p.prefix}/ ({p.objects} objects, {p.bytes} bytes): {p.reason}; ignored, left in place"
        for p in report.not_preserve
    ]
    lines += [f"DAMAGED RECORD {d.target}:{d.key}: {d.reason}" for d in report.damaged_records]
    lines += [f"FALLBACK {f.aip_id}: {f.reason}" for f in report.fallbacks]
    lines += [f"DAMAGE {f.target}:{f.key}: {f.problem} (expected {f.expected}, found {f.found})" for f in report.damage]
    lines += [f"DISAGREES {d.target} {d.aip_id} ({d.what}): {d.detail}" for d in report.disagreements]
    lines += [f"UNEXPECTED {t}:{k} (in no version of the AIP; left in place)" for t, k in report.unexpected]
    lines += [f"ERROR {e}" for e in report.errors]
    if report.clean:
        lines.append("nothing to report")
    if report.damage or report.disagreements or any(c.pending for c in report.targets):
        lines.append("next: `preserve audit` re-reads what is pending and repairs what is missing or damaged")
    return "\n".join(lines)
