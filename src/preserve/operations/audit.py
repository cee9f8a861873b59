"""Fixity audits: a cheap inventory check of every stored object on every run, a true re-read of
the least recently verified objects within a byte budget, bag-level checks, a report of unexpected
objects, and repair of damaged copies from a replica that verifies now; for deaccessioned AIPs,
the deletions whose date has come, and a look for what should be gone (`deaccession`). Findings
are values; only an unusable configuration raises. Side effects: reads from storage, writes
repaired objects, deletes objects of deaccessioned AIPs, records check results and events in the
catalog, and writes them beside each AIP audited (one event record per AIP and replica per run,
`operations.journal`). The journal's own keys (event records, version inventories) are not catalog
objects: they are never reported unexpected."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.catalog import AipView, Catalog, StoredObject
from preserve.catalog.deaccessions import CARRIED_OUT
from preserve.config import Settings, TargetSettings
from preserve.core.errors import ConfigError, ObjectMissing, StorageError, StorageUnavailable
from preserve.core.model import Agent, AipStatus, Event, EventType, Outcome, ReplicaStatus, utcnow
from preserve.fixity.digest import MultiHasher
from preserve.operations import deaccession, journal
from preserve.operations.deaccession import DeletionFinding
from preserve.operations.journal import JournalReport
from preserve.packaging import bag
from preserve.storage import layout, open_store
from preserve.storage.base import ObjectStore, member_path, read_small

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

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class Repair:
    aip_id: str
    target: str
    key: str
    source: str  # the replica the good bytes came from; "" when none verified
    ok: bool
    detail: str


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

    @property
    def bytes_read(self) -> int:
        return sum(c.bytes_read for c in self.checks)

    @property
    def failures(self) -> list[ObjectCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def damage_found(self) -> bool:
        leftovers = [f for f in self.deaccession if f.problem in ("overdue", "reappeared")]
        return bool(self.failures or self.unexpected or self.bag_problems or leftovers)

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
            ("bytes read", str(self.bytes_read)),
            ("failures", str(len(self.failures))),
            ("repairs", f"{sum(r.ok for r in self.repairs)} ok, {len(self.unrepaired)} impossible"),
            ("unexpected objects", str(len(self.unexpected))),
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
def inventory_check(store: ObjectStore, obj: StoredObject) -> ObjectCheck:
    """HEAD only: exists, right size, and the stored S3 checksum (when the server keeps one for the
    whole object) equals our SHA-256."""
    info = store.head(obj.key)
    if info is None:
        return ObjectCheck(obj.aip_id, obj.target, obj.key, "missing", f"{obj.size} bytes", "no object")
    if info.size != obj.size:
        return ObjectCheck(obj.aip_id, obj.target, obj.key, "size", f"{obj.size} bytes", f"{info.size} bytes")
    if info.sha256 is not None and info.sha256 != obj.sha256:
        return ObjectCheck(
            obj.aip_id, obj.target, obj.key, "checksum", f"sha256 {obj.sha256}", f"stored checksum {info.sha256}"
        )
    return ObjectCheck(obj.aip_id, obj.target, obj.key, "")


def fixity_check(store: ObjectStore, obj: StoredObject) -> ObjectCheck:
    """Re-read every byte, streaming, and compare with the catalog's SHA-256 (never the ETag)."""
    hasher = MultiHasher(("sha256",))
    try:
        for chunk in store.read_chunks(obj.key):
            hasher.update(chunk)
    except StorageUnavailable:
        raise
    except StorageError as exc:
        return ObjectCheck(
            obj.aip_id,
            obj.target,
            obj.key,
            "missing" if isinstance(exc, ObjectMissing) else "unreadable",
            f"sha256 {obj.sha256}",
            str(exc),
            hasher.size,
            True,
        )
    d = hasher.result()
    if d.size != obj.size:
        return ObjectCheck(
            obj.aip_id, obj.target, obj.key, "size", f"{obj.size} bytes", f"{d.size} bytes", d.size, True
        )
    if d.values["sha256"] != obj.sha256:
        return ObjectCheck(
            obj.aip_id,
            obj.target,
            obj.key,
            "checksum",
            f"sha256 {obj.sha256}",
            f"sha256 {d.values['sha256']}",
            d.size,
            True,
        )
    return ObjectCheck(obj.aip_id, obj.target, obj.key, "", bytes_read=d.size, reread=True)


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
    it (hashing as it arrives), upload it to the damaged target (checksummed and verified)."""
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
            got = stores[source.target].get_file(source.key, local)
            if got != obj.sha256:
                tried.append(f"{source.target}: changed while copying")
                continue
            target = stores[obj.target]
            was_locked = bool(obj.lock_mode and obj.lock_until and obj.lock_until > utcnow())
            info = target.put_file(obj.key, local, sha256=obj.sha256, size=obj.size)
        how = (
            f"written as a new version {info.version_id}; the damaged version stays under Object Lock "
            f"({obj.lock_mode}) until {obj.lock_until:%Y-%m-%d}"
            if was_locked and obj.lock_until
            else "overwritten" + (f" (new version {info.version_id})" if info.version_id else "")
        )
        return Repair(
            obj.aip_id,
            obj.target,
            obj.key,
            source.target,
            True,
            f"restored from {source.target}, verified sha256 {obj.sha256}; {how}",
        )
    return Repair(
        obj.aip_id,
        obj.target,
        obj.key,
        "",
        False,
        "no other replica verifies now" + (f" ({'; '.join(tried)})" if tried else ""),
    )


# -- a whole run --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditScope:
    aip_id: str | None = None
    replica: str | None = None
    full: bool = False  # re-read everything in scope, ignoring the budget


def _agent() -> Agent:
    return tools.preserve_agent()


def _event(check: ObjectCheck, agent: Agent) -> Event:
    detail = (
        "verified: " + ("re-read, sha256 matches" if check.reread else "present, size and stored checksum match")
        if check.ok
        else f"{check.problem}: expected {check.expected}, found {check.found}"
    )
    return Event(
        EventType.FIXITY_CHECK,
        Outcome.PASS if check.ok else Outcome.FAIL,
        agent,
        detail,
        subject=f"{check.target}:{check.key}",
        extra={"replica": check.target, "reread": check.reread, "bytes_read": check.bytes_read},
    )


def run_audit(
    settings: Settings,
    catalog: Catalog,
    scope: AuditScope = AuditScope(),
    *,
    now: Callable[[], dt.datetime] = utcnow,
    on_target: Callable[[str], None] | None = None,
) -> AuditReport:
    """One audit run. Never raises for damage or an unreachable store: both are in the report."""
    started = now()
    interval = settings.audit.audit_interval_days
    report = AuditReport(started_at=started, interval_days=interval)
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
                    settings, catalog, t, stores[t.name], by_target.get(t.name, []), chosen, scope, report, agent, now
                )
                reachable.add(t.name)
            except StorageUnavailable as exc:
                report.errors.append(f"{t.name}: unreachable: {exc}")
                catalog.add_events(
                    None,
                    [
                        Event(
                            EventType.FIXITY_CHECK,
                            Outcome.FAIL,
                            agent,
                            f"replica {t.name} unreachable; nothing on it verified: {exc}",
                            subject=t.name,
                        )
                    ],
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
) -> None:
    store.check_reachable()
    aips: dict[str, list[StoredObject]] = {}
    inventory_ok = 0
    for obj in objects:
        aips.setdefault(obj.aip_id, []).append(obj)
        check = inventory_check(store, obj)
        if check.ok and (target.name, obj.key) in chosen:
            check = fixity_check(store, obj)
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
        catalog.add_events(
            None,
            [
                Event(
                    EventType.FIXITY_CHECK,
                    Outcome.PASS,
                    agent,
                    f"inventory: {inventory_ok} objects present with the right size and stored checksum (HEAD)",
                    subject=target.name,
                )
            ],
        )
    for aip_id, objs in aips.items():
        expected = {o.key for o in objs}
        for info in store.list(f"{aip_id}/"):
            # event records and version inventories are the journal's, not catalog objects
            if info.key not in expected and not layout.is_journal_key(aip_id, info.key):
                report.unexpected.append((target.name, info.key))
                catalog.add_events(
                    aip_id,
                    [
                        Event(
                            EventType.FIXITY_CHECK,
                            Outcome.FAIL,
                            agent,
                            f"unexpected object {info.key} ({info.size} bytes) under the AIP's "
                            "prefix; left in place for a person to examine",
                            subject=f"{target.name}:{info.key}",
                        )
                    ],
                )
        if scope.full or any((target.name, o.key) in chosen for o in objs):
            aip = catalog.get_aip(aip_id)
            if aip is not None:
                problems = bag_check(store, aip, objs)
                report.bag_problems += [f"{target.name}: {p}" for p in problems]
                for p in problems:
                    catalog.add_events(
                        aip_id,
                        [
                            Event(
                                EventType.FIXITY_CHECK,
                                Outcome.FAIL,
                                agent,
                                "bag-level check: " + p,
                                subject=target.name,
                            )
                        ],
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


def format_report(report: AuditReport) -> str:
    lines = [f"{k:<44} {v}" for k, v in report.summary_rows()]
    for c in report.failures:
        repaired = next((r for r in report.repairs if (r.target, r.key) == (c.target, c.key)), None)
        state = "repaired from " + repaired.source if repaired and repaired.ok else "NOT repaired"
        lines.append(f"DAMAGE {c.target}:{c.key}: {c.problem} (expected {c.expected}, found {c.found}) — {state}")
    lines += [f"UNEXPECTED {t}:{k} (left in place)" for t, k in report.unexpected]
    lines += [f"BAG {p}" for p in report.bag_problems]
    lines += deaccession.format_findings([f for f in report.deaccession if f.problem != "failed"])
    lines += [f"ERROR {e}" for e in report.errors]
    lines += [f"JOURNAL {line}" for line in report.journal.lines()]
    return "\n".join(lines)
