"""Fixity audits: a cheap inventory check of every stored object on every run, a true re-read of
the least recently verified objects within a byte budget, bag-level checks, a report of unexpected
objects, and repair of damaged copies from a replica that verifies now; for deaccessioned AIPs,
the deletions whose date has come, and a look for what should be gone (`deaccession`). Findings
are values; only an unusable configuration raises. Side effects: reads from storage, writes
repaired objects, deletes objects of deaccessioned AIPs, records check results and events in the
catalog, and writes them beside each AIP audited (one event record per AIP and replica per run,
`operations.journal`). The journal's own keys (event records, version inventories) are not catalog
objects: they are never reported unexpected.

On an encrypted target the objects are checked as the target holds them (the opaque key, the
ciphertext's size and SHA-256 the catalog recorded), which needs no key at all; with ``decrypt``
the re-read is also decrypted as it streams (the bytes are downloaded once) and the plaintext
compared with the catalog's SHA-256. Every run also checks each AIP's key object there against
the catalog (present, same SHA-256), puts a missing or damaged one back from the catalog's copy,
and raises an alert: without its key object an AIP cannot be read from that target."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.catalog import AipView, Catalog, StoredObject
from preserve.catalog.deaccessions import CARRIED_OUT
from preserve.catalog.records import ReplicaRecord
from preserve.config import Settings, TargetSettings
from preserve.core.errors import (
    CatalogError,
    ConfigError,
    DecryptionFailed,
    KeyUnavailable,
    ObjectMissing,
    StorageError,
    StorageUnavailable,
)
from preserve.core.model import Agent, AipStatus, Event, EventType, Outcome, ReplicaStatus, utcnow
from preserve.fixity.digest import MultiHasher
from preserve.operations import alerts, deaccession, journal
from preserve.operations.deaccession import DeletionFinding
from preserve.operations.journal import JournalReport
from preserve.operations.keys import KeyCheck, check_key_object, restore_key_object
from preserve.packaging import bag
from preserve.storage import layout, open_store
from preserve.storage.base import ObjectStore, StoredForm, member_path, read_small
from preserve.storage.crypt import EncryptedStore, as_stored, names
from preserve.storage.crypt import age as age_format
from preserve.storage.crypt.keys import AipKey

GB = 1000**3
#: the largest tag file (bag-info, manifest) the bag-level check reads into memory
TAG_FILE_LIMIT = 64 << 20
TAG_FILES = (
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "manifest-sha512.txt",
    "tagmanifest-sha256.txt",
    "tagmanifest-sha512.txt",
)


@dataclass(frozen=True)
class ObjectCheck:
    """The result of checking one object on one replica."""

    aip_id: str
    target: str
    key: str
    problem: str  # "" when it verified; else missing | size | checksum | unreadable
    expected: str = ""
    found: str = ""
    bytes_read: int = 0
    reread: bool = False  # a true fixity check (bytes re-read and hashed), not only inventory
    #: the object is encrypted on its target and was checked as stored (ciphertext), keylessly
    encrypted: bool = False
    #: the re-read was also decrypted and the plaintext's SHA-256 compared (``--decrypt``)
    decrypted: bool = False

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class Repair:
    aip_id: str
    target: str
    key: str
    source: str  # the replica the good bytes came from ("catalog" for a key object); "" when none verified
    ok: bool
    detail: str
    #: on an encrypted target: what the repaired object is stored as now (for the catalog)
    stored: StoredForm | None = None


@dataclass
class AuditReport:
    """Everything one audit run found and did; the CLI's exit code and the flow's artifact."""

    started_at: dt.datetime
    checks: list[ObjectCheck] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    unexpected: list[tuple[str, str]] = field(default_factory=list)  # (target, key)
    bag_problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # operational: storage unreachable, ...
    at_risk: list[str] = field(default_factory=list)
    oldest_verified: dt.datetime | None = None
    bytes_overdue: int = 0
    objects_overdue: int = 0
    interval_days: int = 90
    #: objects of deaccessioned AIPs: deleted now that their date came, or still there (see deaccession)
    deaccession: list[DeletionFinding] = field(default_factory=list)
    #: the event records this run's events were written to, beside each AIP on each replica (one
    #: per AIP and target, whatever the number of objects checked); a failure is retried later
    journal: JournalReport = field(default_factory=JournalReport)
    #: the key objects of AIPs on encrypted targets, checked against the catalog
    key_checks: list[KeyCheck] = field(default_factory=list)
    #: what a person should know but is not damage (a key object the catalog lacks, ...)
    warnings: list[str] = field(default_factory=list)
    #: objects under AIPs on encrypted targets whose opaque names only an identity can read,
    #: not in the catalog (the journal's event records among them): classified with ``decrypt``
    unclassified: int = 0
    #: the re-read objects of encrypted targets were also decrypted (``decrypt``)
    decrypt: bool = False

    @property
    def bytes_read(self) -> int:
        return sum(c.bytes_read for c in self.checks)

    @property
    def failures(self) -> list[ObjectCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def key_failures(self) -> list[KeyCheck]:
        return [k for k in self.key_checks if k.failed]

    @property
    def damage_found(self) -> bool:
        leftovers = [f for f in self.deaccession if f.problem in ("overdue", "reappeared")]
        return bool(self.failures or self.key_failures or self.unexpected or self.bag_problems or leftovers)

    @property
    def unrepaired(self) -> list[Repair]:
        return [r for r in self.repairs if not r.ok]

    @property
    def promise_holds(self) -> bool:
        """Every re-readable object was verified within the audit interval."""
        return self.objects_overdue == 0

    @property
    def exit_code(self) -> int:
        """0 all good; 1 damage found (repaired or not); 2 operational error. An unreachable
        replica is an error, never a pass."""
        if self.errors:
            return 2
        return 1 if self.damage_found else 0

    def summary_rows(self) -> list[tuple[str, str]]:
        return [
            ("objects checked", str(len(self.checks))),
            ("objects re-read", str(sum(c.reread for c in self.checks))),
            (
                "encrypted objects (checked as stored)",
                f"{sum(c.encrypted for c in self.checks)}, {sum(c.decrypted for c in self.checks)} also decrypted",
            ),
            (
                "key objects checked",
                f"{len(self.key_checks)}, {len(self.key_failures)} missing or damaged",
            ),
            ("bytes read", str(self.bytes_read)),
            ("failures", str(len(self.failures))),
            ("repairs", f"{sum(r.ok for r in self.repairs)} ok, {len(self.unrepaired)} impossible"),
            ("unexpected objects", str(len(self.unexpected))),
            ("encrypted objects not classified (no --decrypt)", str(self.unclassified)),
            ("bag problems", str(len(self.bag_problems))),
            ("operational errors", str(len(self.errors))),
            (
                "event records written",
                f"{self.journal.records} ({self.journal.events} events)"
                + (f", {len(self.journal.failed)} not written (retried)" if self.journal.failed else ""),
            ),
            ("AIPs at risk", ", ".join(self.at_risk) or "none"),
            (
                "deaccessioned objects",
                f"{sum(f.ok for f in self.deaccession)} deleted now, "
                + ", ".join(
                    f"{sum(f.problem == p for f in self.deaccession)} {p}" for p in ("overdue", "reappeared", "failed")
                ),
            ),
            (
                "oldest verification",
                self.oldest_verified.isoformat(timespec="seconds") if self.oldest_verified else "never",
            ),
            ("bytes overdue", f"{self.bytes_overdue} in {self.objects_overdue} objects"),
            (f"every object re-read within {self.interval_days} days", "yes" if self.promise_holds else "NO"),
        ]


# -- the rolling schedule --------------------------------------------------------------------------
def select_for_reread(objects: Sequence[StoredObject], budget_bytes: int) -> list[StoredObject]:
    """Least recently verified first (never-verified before all), within the byte budget. The
    first object is always taken, even if it alone exceeds the budget, so a film larger than the
    nightly budget is still audited."""
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    ordered = sorted(objects, key=lambda o: (o.verified_at or epoch, o.aip_id, o.target, o.key))
    chosen: list[StoredObject] = []
    spent = 0
    for obj in ordered:
        if chosen and spent + obj.size > budget_bytes:
            break
        chosen.append(obj)
        spent += obj.size
    return chosen


def overdue(objects: Iterable[StoredObject], now: dt.datetime, interval_days: int) -> list[StoredObject]:
    limit = now - dt.timedelta(days=interval_days)
    return [o for o in objects if o.verified_at is None or o.verified_at < limit]


# -- checks on one object -----------------------------------------------------------------------
def _expected_digest(obj: StoredObject) -> str:
    return f"ciphertext sha256 {obj.physical_sha256}" if obj.encrypted else f"sha256 {obj.sha256}"


def inventory_check(store: ObjectStore, obj: StoredObject) -> ObjectCheck:
    """HEAD only: exists, right size, and the stored S3 checksum (when the server keeps one for the
    whole object) equals our SHA-256. On an encrypted target: the object as stored (opaque key,
    ciphertext size and SHA-256), no key needed."""
    enc = obj.encrypted
    info = as_stored(store).head(obj.physical_key)
    if info is None:
        return ObjectCheck(
            obj.aip_id, obj.target, obj.key, "missing", f"{obj.physical_size} bytes", "no object", encrypted=enc
        )
    if info.size != obj.physical_size:
        return ObjectCheck(
            obj.aip_id,
            obj.target,
            obj.key,
            "size",
            f"{obj.physical_size} bytes",
            f"{info.size} bytes",
            encrypted=enc,
        )
    if info.sha256 is not None and info.sha256 != obj.physical_sha256:
        return ObjectCheck(
            obj.aip_id,
            obj.target,
            obj.key,
            "checksum",
            _expected_digest(obj),
            f"stored checksum {info.sha256}",
            encrypted=enc,
        )
    return ObjectCheck(obj.aip_id, obj.target, obj.key, "", encrypted=enc)


def fixity_check(store: ObjectStore, obj: StoredObject, *, secret: bytes | None = None) -> ObjectCheck:
    """Re-read every byte, streaming, and compare with the catalog's SHA-256 (never the ETag). An
    encrypted object is re-read as stored and compared with its ciphertext's SHA-256; given the
    AIP's key ``secret``, the same bytes are also decrypted as they arrive (downloaded once) and
    the plaintext compared with the catalog's SHA-256: a chunk that fails age's authentication is
    damage ("decryption")."""
    enc = obj.encrypted
    stored = MultiHasher(("sha256",))
    plain = MultiHasher(("sha256",)) if enc and secret is not None else None

    def tee() -> Iterator[bytes]:
        for chunk in as_stored(store).read_chunks(obj.physical_key):
            stored.update(chunk)
            yield chunk

    def check(problem: str = "", expected: str = "", found: str = "") -> ObjectCheck:
        return ObjectCheck(
            obj.aip_id,
            obj.target,
            obj.key,
            problem,
            expected,
            found,
            stored.size,
            True,
            encrypted=enc,
            decrypted=plain is not None,
        )

    stream = tee()
    refused: StorageError | None = None
    try:
        if plain is None:
            for _ in stream:
                pass
        else:
            try:
                for piece in age_format.decrypt_chunks(stream, secret or b""):
                    plain.update(piece)
            except (DecryptionFailed, KeyUnavailable) as exc:  # the key opened: this is the object's fault
                refused = exc
                for _ in stream:  # the rest of the ciphertext, for its digest
                    pass
    except StorageUnavailable:
        raise
    except StorageError as exc:
        return check("missing" if isinstance(exc, ObjectMissing) else "unreadable", _expected_digest(obj), str(exc))
    d = stored.result()
    if d.size != obj.physical_size:
        return check("size", f"{obj.physical_size} bytes", f"{d.size} bytes")
    if d.values["sha256"] != obj.physical_sha256:
        found = f"ciphertext sha256 {d.values['sha256']}" if enc else f"sha256 {d.values['sha256']}"
        return check("checksum", _expected_digest(obj), found)
    if plain is None:
        return check()
    if refused is not None:
        return check("decryption", "an age file that decrypts with the AIP's key", str(refused))
    p = plain.result()
    if p.size != obj.size:
        return check("size", f"{obj.size} bytes decrypted", f"{p.size} bytes decrypted")
    if p.values["sha256"] != obj.sha256:
        return check("checksum", f"plaintext sha256 {obj.sha256}", f"plaintext sha256 {p.values['sha256']}")
    return check()


# -- bag-level checks -------------------------------------------------------------------------------


def bag_check(store: ObjectStore, aip: AipView, objects: Sequence[StoredObject]) -> list[str]:
    """The replica's tag files agree with the catalog: Payload-Oxum, payload manifest and tag
    manifest digests. Returns problems (empty when the bag-level record holds)."""
    problems: list[str] = []
    held = {o.key: o for o in objects}
    # the current version's members (version 1: the bag as ingested, under its own keys)
    members = dict(aip.versions[-1].members) if aip.versions else {member_path(aip.id, k): k for k in held}
    by_rel = {m: held[k] for m, k in members.items() if k in held}

    def key(member: str) -> str:
        return members.get(member, f"{aip.id}/{member}")

    try:
        info = read_small(store, key("bag-info.txt"), TAG_FILE_LIMIT).decode("utf-8", errors="replace")
        m = re.search(r"^Payload-Oxum:\s*(\S+)", info, re.MULTILINE)
        if not m or m.group(1) != aip.payload_oxum:
            problems.append(f"{aip.id}: Payload-Oxum {m.group(1) if m else 'absent'} != catalog {aip.payload_oxum}")
        manifest = bag.parse_manifest(read_small(store, key("manifest-sha256.txt"), TAG_FILE_LIMIT).decode("utf-8"))
        catalog_files = {f.path: f.sha256 for f in aip.files}
        if manifest != catalog_files:
            diff = sorted(set(manifest.items()) ^ set(catalog_files.items()))[:3]
            problems.append(f"{aip.id}: manifest-sha256.txt differs from the catalog: {diff}")
        tagmanifest = bag.parse_manifest(
            read_small(store, key("tagmanifest-sha256.txt"), TAG_FILE_LIMIT).decode("utf-8")
        )
        for rel, digest in tagmanifest.items():
            obj = by_rel.get(rel)
            if obj is None or obj.sha256 != digest:
                problems.append(f"{aip.id}: tagmanifest entry for {rel} does not match the catalog")
    except StorageUnavailable:
        raise
    except (StorageError, UnicodeDecodeError) as exc:
        problems.append(f"{aip.id}: tag files unreadable: {exc}")
    return problems


# -- repair -----------------------------------------------------------------------------------------
def repair_object(
    settings: Settings,
    stores: dict[str, ObjectStore],
    obj: StoredObject,
    candidates: Sequence[StoredObject],
    work_dir: Path,
) -> Repair:
    """Restore one damaged or missing copy from another replica whose copy verifies *now*: download
    it (hashing as it arrives), upload it to the damaged target (checksummed and verified). Across
    encrypted and plain targets both ways: the good copy is read through its target's store (an
    encrypted one decrypts it, with that target's identity) and the damaged one written through
    its target's: on an encrypted target always encrypted (which needs its identity), even for
    an object recorded without its stored form (never plaintext there), and ``stored`` says what
    it is stored as now, for the catalog."""
    target = stores[obj.target]
    if obj.encrypted and not isinstance(target, EncryptedStore):
        return Repair(
            obj.aip_id,
            obj.target,
            obj.key,
            "",
            False,
            f"the object was stored encrypted but {obj.target} is no longer configured for encryption; nothing was written",
        )
    if isinstance(target, EncryptedStore) and not target.has_identity:
        return Repair(
            obj.aip_id,
            obj.target,
            obj.key,
            "",
            False,
            f"{obj.target} is encrypted: writing the object again (encrypted) needs one of its identities (set "
            f"{target.target.identity_env_name()} to a file holding one); nothing was written",
        )
    tried: list[str] = []
    for source in candidates:
        if source.target == obj.target or source.target not in stores:
            continue
        check = fixity_check(stores[source.target], source)
        if not check.ok:
            tried.append(f"{source.target}: {check.problem}")
            continue
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            local = Path(tmp) / "object"
            try:
                got = _fetch(stores[source.target], source, local)
            except StorageUnavailable:
                raise
            except StorageError as exc:  # no identity for an encrypted source, or it does not decrypt
                tried.append(f"{source.target}: {exc}")
                continue
            if got != obj.sha256:
                tried.append(f"{source.target}: changed while copying")
                continue
            was_locked = bool(obj.lock_mode and obj.lock_until and obj.lock_until > utcnow())
            # through the target's own store: an encrypted one encrypts (its opaque name, its key)
            info = target.put_file(obj.key, local, sha256=obj.sha256, size=obj.size)
        encrypted = isinstance(target, EncryptedStore)
        if encrypted and info.stored is None:
            return Repair(
                obj.aip_id,
                obj.target,
                obj.key,
                "",
                False,
                f"written encrypted to {obj.target} from {source.target}, but the store did not say what it stored "
                "(its opaque name and ciphertext digest), so the catalog cannot record it",
            )
        if encrypted and not obj.encrypted:  # recorded without its stored form: never written in plaintext
            how = (
                "written under its opaque name; the catalog had no stored form of it, so anything under its "
                "plain name there is left in place (the audit reports it unexpected)"
            )
        elif was_locked and obj.lock_until:
            how = (
                f"written as a new version {info.version_id}; the damaged version stays under Object Lock "
                f"({obj.lock_mode}) until {obj.lock_until:%Y-%m-%d}"
            )
        else:
            how = "overwritten" + (f" (new version {info.version_id})" if info.version_id else "")
        layers = ""
        if encrypted and info.stored is not None:
            layers = f", {'encrypted again' if obj.encrypted else 'encrypted'} (ciphertext sha256 {info.stored.sha256})"
        return Repair(
            obj.aip_id,
            obj.target,
            obj.key,
            source.target,
            True,
            f"restored from {source.target}, verified sha256 {obj.sha256}{layers}; {how}",
            info.stored if encrypted else None,
        )
    return Repair(
        obj.aip_id,
        obj.target,
        obj.key,
        "",
        False,
        "no other replica verifies now" + (f" ({'; '.join(tried)})" if tried else ""),
    )


def _fetch(store: ObjectStore, obj: StoredObject, dest: Path) -> str:
    """Download one object's plaintext to dest (an encrypted object decrypted, a plaintext one
    on an encrypted target read as stored); its SHA-256."""
    return (store if obj.encrypted else as_stored(store)).get_file(obj.key, dest)


# -- a whole run --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditScope:
    aip_id: str | None = None
    replica: str | None = None
    full: bool = False  # re-read everything in scope, ignoring the budget


def _agent() -> Agent:
    return tools.preserve_agent()


def _event(check: ObjectCheck, agent: Agent) -> Event:
    if check.ok and check.decrypted:
        how = "re-read, ciphertext sha256 matches; decrypted, plaintext sha256 matches"
    elif check.ok and check.reread:
        how = "re-read, ciphertext sha256 matches (not decrypted)" if check.encrypted else "re-read, sha256 matches"
    else:
        how = "present, size and stored checksum match" + (" (as stored, encrypted)" if check.encrypted else "")
    detail = "verified: " + how if check.ok else f"{check.problem}: expected {check.expected}, found {check.found}"
    extra: dict[str, object] = {"replica": check.target, "reread": check.reread, "bytes_read": check.bytes_read}
    if check.encrypted:
        extra.update(encrypted=True, decrypted=check.decrypted)
    return Event(
        EventType.FIXITY_CHECK,
        Outcome.PASS if check.ok else Outcome.FAIL,
        agent,
        detail,
        subject=f"{check.target}:{check.key}",
        extra=extra,
    )


def _record_check(
    catalog: Catalog, aip_id: str | None, outcome: Outcome, agent: Agent, detail: str, subject: str
) -> None:
    """One fixity-check event about a replica as a whole (an inventory, an unreachable replica,
    an unexpected object, a bag-level problem)."""
    catalog.add_events(aip_id, [Event(EventType.FIXITY_CHECK, outcome, agent, detail, subject=subject)])


def _key_event(check: KeyCheck, agent: Agent) -> Event:
    return Event(
        EventType.FIXITY_CHECK,
        Outcome.PASS if check.ok else (Outcome.WARNING if not check.failed else Outcome.FAIL),
        agent,
        f"key object: {check.detail}" if check.ok else f"key object {check.problem}: {check.detail}",
        subject=f"{check.target}:{check.key}",
        extra={"replica": check.target, "key_object": True},
    )


def run_audit(
    settings: Settings,
    catalog: Catalog,
    scope: AuditScope = AuditScope(),
    *,
    now: Callable[[], dt.datetime] = utcnow,
    on_target: Callable[[str], None] | None = None,
    decrypt: bool = False,
) -> AuditReport:
    """One audit run. Never raises for damage or an unreachable store: both are in the report.
    With ``decrypt``, the objects of encrypted targets that are re-read are also decrypted and
    their plaintext checked (each target's identity needed: without it, that target is an
    error in the report and its objects are checked as stored only)."""
    started = now()
    interval = settings.audit.audit_interval_days
    report = AuditReport(started_at=started, interval_days=interval, decrypt=decrypt)
    targets = [t for t in settings.targets if scope.replica in (None, t.name)]
    if scope.replica and not targets:
        raise ConfigError(f"no replica named {scope.replica!r}; known: {[t.name for t in settings.targets]}")
    objects = catalog.objects(aip_id=scope.aip_id)
    if scope.aip_id and not objects and catalog.tombstone(scope.aip_id) is None:
        raise ConfigError(f"no stored objects for AIP {scope.aip_id!r}")
    by_target: dict[str, list[StoredObject]] = {}
    for o in objects:
        by_target.setdefault(o.target, []).append(o)
    rereadable = [o for t in targets if not t.cold for o in by_target.get(t.name, [])]
    budget = int(settings.audit.nightly_byte_budget_gb * GB)
    chosen = {(o.target, o.key) for o in (rereadable if scope.full else select_for_reread(rereadable, budget))}
    agent = _agent()
    stores: dict[str, ObjectStore] = {}
    reachable: set[str] = set()
    try:
        for t in settings.targets:
            stores[t.name] = open_store(settings, t)
        for t in targets:
            if on_target:
                on_target(t.name)
            try:
                _audit_target(
                    settings,
                    catalog,
                    t,
                    stores[t.name],
                    by_target.get(t.name, []),
                    chosen,
                    scope,
                    report,
                    agent,
                    now,
                    decrypt=decrypt,
                )
                reachable.add(t.name)
            except StorageUnavailable as exc:
                report.errors.append(f"{t.name}: unreachable: {exc}")
                _record_check(
                    catalog,
                    None,
                    Outcome.FAIL,
                    agent,
                    f"replica {t.name} unreachable; nothing on it verified: {exc}",
                    t.name,
                )
        _repair_all(
            settings,
            catalog,
            {n: s for n, s in stores.items() if n in reachable or n not in {t.name for t in targets}},
            report,
            objects,
            agent,
            now,
        )
        # deaccessioned AIPs: deletions whose date has come are carried out; what should be gone is looked for
        live = [t for t in targets if t.name in reachable]
        report.deaccession = deaccession.audit_deaccessioned(
            settings, catalog, stores, live, aip_id=scope.aip_id, now=now
        )
        report.errors += [
            f"deaccession: {f.target}:{f.key}: {f.detail}" for f in report.deaccession if f.problem == "failed"
        ]
    finally:
        for s in stores.values():
            s.close()
    # this run's events, beside each AIP audited (and each deaccessioned one looked at) on each replica
    audited = {o.aip_id for o in objects} | {f.aip_id for f in report.deaccession}
    audited |= {d.aip_id for d in catalog.deaccessions(states=CARRIED_OUT) if scope.aip_id in (None, d.aip_id)}
    report.journal = journal.flush(settings, catalog, sorted(audited))
    cold = {t.name for t in settings.targets if t.cold}
    remaining = [o for o in catalog.objects(aip_id=scope.aip_id) if o.target not in cold]
    late = overdue(remaining, now(), interval)
    report.objects_overdue = len(late)
    report.bytes_overdue = sum(o.size for o in late)
    stamps = [o.verified_at for o in remaining if o.verified_at]
    report.oldest_verified = min(stamps) if stamps and len(stamps) == len(remaining) else None
    return report


def _audit_target(
    settings: Settings,
    catalog: Catalog,
    target: TargetSettings,
    store: ObjectStore,
    objects: list[StoredObject],
    chosen: set[tuple[str, str]],
    scope: AuditScope,
    report: AuditReport,
    agent: Agent,
    now: Callable[[], dt.datetime],
    *,
    decrypt: bool = False,
) -> None:
    store.check_reachable()
    aips: dict[str, list[StoredObject]] = {}
    for obj in objects:
        aips.setdefault(obj.aip_id, []).append(obj)
    secrets: dict[str, bytes] = {}
    if isinstance(store, EncryptedStore):
        # the keys first: a key object put back now is what a repair of the objects needs
        _audit_keys(settings, catalog, store, objects, scope, report, agent, now)
        if decrypt:
            secrets = _open_keys(store, sorted({o.aip_id for o in objects if o.encrypted}), report)
    inventory_ok = 0
    for obj in objects:
        check = inventory_check(store, obj)
        if check.ok and (target.name, obj.key) in chosen:
            check = fixity_check(store, obj, secret=secrets.get(obj.aip_id))
        report.checks.append(check)
        if check.ok and not check.reread:
            inventory_ok += 1
            continue
        catalog.record_object_check(
            obj.aip_id,
            obj.target,
            obj.key,
            status=ReplicaStatus.VERIFIED
            if check.ok
            else (ReplicaStatus.MISSING if check.problem == "missing" else ReplicaStatus.DAMAGED),
            verified_at=now() if check.ok and check.reread else None,
            events=[_event(check, agent)],
        )
    if inventory_ok:
        _record_check(
            catalog,
            None,
            Outcome.PASS,
            agent,
            f"inventory: {inventory_ok} objects present with the right size and stored checksum (HEAD)",
            target.name,
        )
    for aip_id, objs in aips.items():
        listed = (
            _unexpected_encrypted(store, aip_id, objs, secrets.get(aip_id), report)
            if isinstance(store, EncryptedStore)
            else _unexpected_plain(store, aip_id, objs)
        )
        for key, size in listed:
            report.unexpected.append((target.name, key))
            _record_check(
                catalog,
                aip_id,
                Outcome.FAIL,
                agent,
                f"unexpected object {key} ({size} bytes) under the AIP's prefix; left in place for a person to examine",
                f"{target.name}:{key}",
            )
        # the tag files of an encrypted target can be read only decrypted: with its AIP's key
        readable = not isinstance(store, EncryptedStore) or aip_id in secrets
        if readable and (scope.full or any((target.name, o.key) in chosen for o in objs)):
            aip = catalog.get_aip(aip_id)
            if aip is not None:
                problems = bag_check(store, aip, objs)
                report.bag_problems += [f"{target.name}: {p}" for p in problems]
                for p in problems:
                    _record_check(catalog, aip_id, Outcome.FAIL, agent, "bag-level check: " + p, target.name)


def _unexpected_plain(store: ObjectStore, aip_id: str, objs: Sequence[StoredObject]) -> list[tuple[str, int]]:
    """Objects under the AIP's prefix that are neither catalog objects nor the journal's."""
    expected = {o.key for o in objs}
    # event records and version inventories are the journal's, not catalog objects
    return [
        (info.key, info.size)
        for info in store.list(f"{aip_id}/")
        if info.key not in expected and not layout.is_journal_key(aip_id, info.key)
    ]


def _unexpected_encrypted(
    store: EncryptedStore, aip_id: str, objs: Sequence[StoredObject], secret: bytes | None, report: AuditReport
) -> list[tuple[str, int]]:
    """The same on an encrypted target, listed as stored: besides the catalog's objects (by their
    opaque keys), the key object and the name index, only opaque names may be there; those not in
    the catalog (the journal's, or not) are told apart with the AIP's key when it was opened
    (``decrypt``), else counted as not classified. Anything else is unexpected."""
    expected = {o.physical_key for o in objs} | {store.key_object_key(aip_id), store.index_key(aip_id)}
    logical = {o.key for o in objs}
    akey = AipKey(secret) if secret is not None else None
    found: list[tuple[str, int]] = []
    for info in store.raw.list(f"{aip_id}/"):
        if info.key in expected:
            continue
        if not names.is_opaque(aip_id, info.key):
            found.append((info.key, info.size))
            continue
        if akey is None:
            report.unclassified += 1
            continue
        try:
            name = names.reveal(akey, aip_id, info.key)
        except DecryptionFailed:
            found.append((info.key, info.size))  # an opaque name this AIP's key did not make
            continue
        if name not in logical and not layout.is_journal_key(aip_id, name):
            found.append((name, info.size))
    return found


def _open_keys(store: EncryptedStore, aip_ids: Sequence[str], report: AuditReport) -> dict[str, bytes]:
    """The keys of the AIPs on the target, opened with its identity, for ``decrypt``; the AIPs
    whose key does not open are an error in the report (grouped by reason), never a crash."""
    var = store.target.identity_env_name()
    if not aip_ids:
        return {}
    if not store.has_identity:
        report.errors.append(
            f"{store.name}: --decrypt: target {store.name!r} is encrypted and no identity is configured for "
            f"it: set {var} to a file holding one of its age identities; its objects were checked as "
            "stored (ciphertext) only"
        )
        return {}
    opened: dict[str, bytes] = {}
    failed: dict[str, list[str]] = {}
    for aip_id in aip_ids:
        try:
            opened[aip_id] = store.key_for(aip_id).secret
        except StorageUnavailable:
            raise
        except StorageError as exc:
            failed.setdefault(str(exc), []).append(aip_id)
    for why, ids in failed.items():
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        report.errors.append(
            f"{store.name}: --decrypt: the key of {len(ids)} AIP(s) ({shown}) does not open with the identity "
            f"in {var}: {why}; their objects were checked as stored (ciphertext) only"
        )
    return opened


def _audit_keys(
    settings: Settings,
    catalog: Catalog,
    store: EncryptedStore,
    objects: Sequence[StoredObject],
    scope: AuditScope,
    report: AuditReport,
    agent: Agent,
    now: Callable[[], dt.datetime],
) -> None:
    """Check the key object of every AIP with encrypted objects on the target (and that every
    destroyed key stays gone); put a missing or damaged one back from the catalog; alert."""
    records = {
        r.aip_id: r for r in catalog.keys(store.name, include_destroyed=True) if scope.aip_id in (None, r.aip_id)
    }
    needed = {o.aip_id for o in objects if o.encrypted} | {a for a, r in records.items() if r.destroyed}
    intact = 0
    for aip_id in sorted(needed):
        rec = records.get(aip_id)
        check = check_key_object(store, rec, aip_id)
        if check.ok:
            report.key_checks.append(check)
            if rec is not None and not rec.destroyed:
                catalog.mark_key_verified(aip_id, store.name, now())
                intact += 1
            continue
        if check.problem == "unrecorded":
            check = _record_found_key(catalog, store, aip_id, check, now)
            report.key_checks.append(check)
            catalog.add_events(aip_id, [_key_event(check, agent)])
            if not check.ok:
                report.warnings.append(f"{store.name}: AIP {aip_id}: {check.detail}")
            continue
        report.key_checks.append(check)
        catalog.add_events(aip_id, [_key_event(check, agent)])
        _key_alert(settings, catalog, check)
        if check.problem == "not destroyed":
            continue  # left for a person (the deaccession's audit deletes what should be gone)
        ok, how = restore_key_object(store, rec) if rec is not None else (False, check.detail)
        repair = Repair(aip_id, store.name, check.key, "catalog" if ok else "", ok, how)
        report.repairs.append(repair)
        catalog.add_events(
            aip_id,
            [
                Event(
                    EventType.REPAIR,
                    Outcome.PASS if repair.ok else Outcome.FAIL,
                    agent,
                    repair.detail,
                    subject=f"{store.name}:{check.key}",
                    extra={"replica": store.name, "source": repair.source, "key_object": True},
                )
            ],
        )
        if repair.ok:
            catalog.mark_key_verified(aip_id, store.name, now())
    if intact:
        _record_check(
            catalog,
            None,
            Outcome.PASS,
            agent,
            f"key objects: {intact} present, each with the SHA-256 the catalog recorded",
            store.name,
        )


def _record_found_key(
    catalog: Catalog, store: EncryptedStore, aip_id: str, check: KeyCheck, now: Callable[[], dt.datetime]
) -> KeyCheck:
    """A key object the catalog has no record of: recorded when the target's identity opens it,
    else a warning (its public half is known only once opened)."""
    if not store.has_identity:
        return dataclasses.replace(
            check,
            detail=f"key not in catalog: the key object is on {store.name} but the catalog has no record of it, "
            f"and no identity is configured to record it (set {store.target.identity_env_name()} and audit again)",
        )
    try:
        store.key_for(aip_id)
        rec = store.key_record(aip_id)
        if rec is None:
            raise KeyUnavailable(f"the key of AIP {aip_id} on {store.name} did not open")
        catalog.record_key(dataclasses.replace(rec, verified_at=now()))
    except StorageUnavailable:
        raise
    except (StorageError, CatalogError) as exc:
        return dataclasses.replace(
            check, detail=f"key not in catalog: the key object is on {store.name} but could not be recorded: {exc}"
        )
    return dataclasses.replace(
        check, problem="", detail=f"key object found on {store.name} without a record; opened and recorded now"
    )


def _key_alert(settings: Settings, catalog: Catalog, check: KeyCheck) -> None:
    """Tell the operators now: losing an AIP's key object is how an encrypted copy is lost."""
    status = {"missing": "missing", "not destroyed": "present although destroyed"}.get(check.problem, "damaged")
    alert = alerts.damage_found(check.aip_id, [{"target": check.target, "key": check.key, "status": status}])
    alerts.send(
        settings,
        catalog,
        dataclasses.replace(
            alert,
            key=f"{alert.key}:key-object",  # once per condition, as for damaged objects
            summary=f"the key object of AIP {check.aip_id} on {check.target} is {status}: {check.detail}",
        ),
    )


def _repair_all(
    settings: Settings,
    catalog: Catalog,
    stores: dict[str, ObjectStore],
    report: AuditReport,
    objects: Sequence[StoredObject],
    agent: Agent,
    now: Callable[[], dt.datetime],
) -> None:
    failed = report.failures
    if not failed:
        return
    by_key: dict[tuple[str, str], list[StoredObject]] = {}
    for o in objects:
        by_key.setdefault((o.aip_id, o.key), []).append(o)
    work = settings.staging_dir / "repair"
    work.mkdir(parents=True, exist_ok=True)
    at_risk: set[str] = set()
    for check in failed:
        copies = by_key[(check.aip_id, check.key)]
        damaged = next(o for o in copies if o.target == check.target)
        try:
            repair = repair_object(settings, stores, damaged, copies, work)
        except StorageUnavailable as exc:  # not a verdict on the AIP: an operational error
            report.errors.append(f"repair of {check.target}:{check.key} interrupted: {exc}")
            continue
        except StorageError as exc:
            repair = Repair(check.aip_id, check.target, check.key, "", False, f"repair failed: {exc}")
        report.repairs.append(repair)
        event = Event(
            EventType.REPAIR,
            Outcome.PASS if repair.ok else Outcome.FAIL,
            agent,
            repair.detail,
            subject=f"{check.target}:{check.key}",
            extra={"replica": check.target, "source": repair.source},
        )
        if repair.ok:
            if repair.stored is not None and repair.stored != StoredForm(
                damaged.physical_key, damaged.physical_size, damaged.physical_sha256
            ):
                _record_stored(catalog, damaged, repair.stored, now())
            catalog.record_object_check(
                check.aip_id, check.target, check.key, status=ReplicaStatus.VERIFIED, verified_at=now(), events=[event]
            )
        else:
            catalog.add_events(check.aip_id, [event])
            at_risk.add(check.aip_id)
    for aip_id in sorted(at_risk):
        catalog.set_aip_status(aip_id, AipStatus.AT_RISK)
        catalog.add_events(
            aip_id,
            [Event(EventType.REPAIR, Outcome.FAIL, agent, "AIP at risk: a file has no verifying copy on any replica")],
        )
    report.at_risk = sorted(at_risk)
    for aip_id in {c.aip_id for c in failed} - at_risk:
        aip = catalog.get_aip(aip_id)
        if aip is not None and aip.status == "at_risk" and all(r.status == "verified" for r in aip.replicas):
            catalog.set_aip_status(aip_id, AipStatus.STORED)


def _record_stored(catalog: Catalog, obj: StoredObject, stored: StoredForm, at: dt.datetime) -> None:
    """The catalog's record of an object repaired on an encrypted target, with what it is stored
    as now (its opaque key, the ciphertext's size and SHA-256): the replica's record is written
    again with that one object changed."""
    aip = catalog.get_aip(obj.aip_id)
    replica = next((r for r in aip.replicas if r.target == obj.target), None) if aip else None
    if replica is None:
        raise CatalogError(f"no replica of AIP {obj.aip_id} on {obj.target} to record the repair in")
    changed = dataclasses.replace(
        obj,
        stored_key=stored.key,
        stored_size=stored.size,
        stored_sha256=stored.sha256,
        status=ReplicaStatus.VERIFIED,
        verified_at=at,
    )
    objects = tuple(changed if o.key == obj.key else o for o in replica.objects)
    catalog.upsert_replica(
        obj.aip_id, ReplicaRecord(replica.target, replica.uri, replica.status, replica.verified_at, objects)
    )


def format_report(report: AuditReport) -> str:
    lines = [f"{k:<44} {v}" for k, v in report.summary_rows()]
    for c in report.failures:
        repaired = next((r for r in report.repairs if (r.target, r.key) == (c.target, c.key)), None)
        state = "repaired from " + repaired.source if repaired and repaired.ok else "NOT repaired"
        lines.append(f"DAMAGE {c.target}:{c.key}: {c.problem} (expected {c.expected}, found {c.found}) — {state}")
    for k in report.key_failures:
        fixed = next((r for r in report.repairs if (r.target, r.key) == (k.target, k.key)), None)
        state = (
            "left in place"
            if k.problem == "not destroyed"
            else ("put back from the catalog" if fixed and fixed.ok else "NOT repaired")
        )
        lines.append(f"KEY {k.target}:{k.key}: {k.problem}: {k.detail} — {state}")
    lines += [f"WARNING {w}" for w in report.warnings]
    lines += [f"UNEXPECTED {t}:{k} (left in place)" for t, k in report.unexpected]
    lines += [f"BAG {p}" for p in report.bag_problems]
    lines += deaccession.format_findings([f for f in report.deaccession if f.problem != "failed"])
    lines += [f"ERROR {e}" for e in report.errors]
    lines += [f"JOURNAL {line}" for line in report.journal.lines()]
    return "\n".join(lines)
