"""Deaccession with two people: one person requests that an AIP leave the archive, a second person
approves, and preserve carries it out: access is withdrawn first (`operations.withdraw`), then every
version of every object of the AIP is deleted from every replica, as far as Object Lock allows. A
GOVERNANCE-locked object is deleted with a governance bypass only where the target allows it
(``allow_governance_bypass``); under COMPLIANCE (or GOVERNANCE without the bypass) its deletion is
scheduled for the moment its retention ends and carried out then by the scheduled audit
(`audit_deaccessioned`), which also reports any object still there after its date, or found again
after it was deleted. A tombstone stays in the catalog (reason, people, dates, file digests, what
was deleted where and when), with a `deletion` event for every object. An object is recorded as
deleted only once a listing of its versions shows none. Beside the AIP on each replica, its
journal (`operations.journal`) is treated so: the version inventories are deleted with the rest
(they name the files and the title), the event records are never deleted, nor looked for as
leftovers (they carry the decision and the tombstone, so a catalog rebuilt from a replica still
knows the AIP was deaccessioned, by whom and why); each step ends by writing its events there.
Side effects: object deletions and listings on the replicas; catalog writes; event records
written beside the AIP; whatever `withdraw` does (access copies, an alert).

On an encrypted replica everything is done on the target as it is stored (`as_stored`: opaque
names, ciphertext; no identity is needed): each object is purged by its opaque key, and every
other object under the AIP's prefix goes with them (its journal's event records included: they
are encrypted to the AIP's key, so they could not outlive it readably). Then the AIP's key is
destroyed there: every version of its key object and name index (written without retention)
deleted, verified by listing their versions, and the catalog's record of the key marked destroyed.
A ciphertext that retention keeps (COMPLIANCE, GOVERNANCE without the bypass, a legal hold) is
then recorded as deleted with `DeletionMethod.KEY_DESTROYED`: it stays until its retention ends
but nobody can decrypt it; the scheduled audit deletes it then, and never reports it as left
over. Until its key object has no version left, such an object is a failed deletion (retried by
the audit), and the deaccession is not complete. The journal writes nothing more beside the AIP
on a replica whose key is destroyed."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from preserve.catalog import Catalog
from preserve.catalog.access_changes import DONE, SUPERSEDED
from preserve.catalog.deaccessions import (
    Deaccession,
    DeaccessionState,
    DeletionState,
    ObjectDeletion,
    same_person,
)
from preserve.config import Settings, TargetSettings
from preserve.core import model
from preserve.core.errors import ConfigError, StorageError
from preserve.core.model import Agent, Event, EventType, Outcome
from preserve.operations import journal
from preserve.operations import withdraw as withdrawal
from preserve.storage import ObjectStore, layout, open_store, store_agent
from preserve.storage.base import ObjectInfo, Purge, member_path
from preserve.storage.crypt import EncryptedStore, as_stored
from preserve.storage.crypt import names as crypt_names


class DeletionMethod(enum.StrEnum):
    """How an object stopped existing (the `method` of its deletion record and event)."""

    VERSIONS_DELETED = "every version deleted"
    GOVERNANCE_BYPASSED = "every version deleted, GOVERNANCE retention bypassed (allowed by the target)"
    #: the seam for encrypted replicas: destroying the replica's key counts as deleting its objects
    KEY_DESTROYED = "encryption key destroyed (counts as deletion)"


def _now() -> dt.datetime:
    return model.utcnow()  # looked up at each call, so tests can move the clock


@dataclass(frozen=True)
class DeletionOutcome:
    """What happened to one object on one replica in this run."""

    target: str
    key: str
    state: DeletionState
    detail: str
    versions_deleted: int = 0
    due_at: dt.datetime | None = None
    method: str = ""  # a DeletionMethod, for a deletion


@dataclass(frozen=True)
class DeaccessionReport:
    """What carrying out (or resuming) an approved deaccession did."""

    deaccession: Deaccession  # as recorded afterwards
    withdrawn: bool
    #: what the withdrawal could not remove or check, and replicas that could not be searched
    problems: tuple[str, ...] = ()
    outcomes: tuple[DeletionOutcome, ...] = ()
    resumed: bool = False

    def _in(self, state: DeletionState) -> list[DeletionOutcome]:
        return [o for o in self.outcomes if o.state is state]

    @property
    def failed(self) -> list[DeletionOutcome]:
        return self._in(DeletionState.FAILED)

    @property
    def scheduled(self) -> list[DeletionOutcome]:
        return self._in(DeletionState.SCHEDULED)

    @property
    def ok(self) -> bool:
        """Access is withdrawn and every object is deleted or scheduled (nothing failed)."""
        return self.withdrawn and not self.failed and not self.deaccession.objects_in(DeletionState.FAILED)

    @property
    def complete(self) -> bool:
        return self.deaccession.state is DeaccessionState.COMPLETED


@dataclass(frozen=True)
class DeletionFinding:
    """What an audit found about one object of a deaccessioned AIP: deleted now (its date came),
    still scheduled, or a problem: ``overdue`` (still there after its deletion date), ``reappeared``
    (found again after it was deleted), ``failed`` (could not be deleted or checked)."""

    aip_id: str
    target: str
    key: str
    problem: str  # "" | overdue | reappeared | failed
    detail: str

    @property
    def ok(self) -> bool:
        return not self.problem


# -- the decisions ---------------------------------------------------------------------------------
def _decision(aip_id: str, outcome: Outcome, operator: Agent, detail: str, step: str, request_id: str) -> Event:
    return Event(
        EventType.DEACCESSION,
        outcome,
        operator,
        detail,
        extra={"step": step, "request": request_id, "operator": operator.name},
    )


def request(
    catalog: Catalog, aip_id: str, *, reason: str, operator: Agent, settings: Settings | None = None
) -> Deaccession:
    """Record one person's request to deaccession an AIP; nothing is deleted until a second person
    approves it. ConfigError for an empty reason, an unknown or already deaccessioned AIP, or an
    AIP that already has an open request. With ``settings``, the request is written beside the
    AIP on its replicas at once (else by the next flush: housekeeping)."""
    if not reason.strip():
        raise ConfigError("a deaccession needs a reason (--reason TEXT): it stays in the AIP's tombstone")
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise ConfigError(f"no AIP {aip_id!r} in the catalog", advice="Check the id with `preserve list`.")
    request_id = str(uuid.uuid4())
    event = _decision(
        aip.id,
        Outcome.NOT_PERFORMED,
        operator,
        f"deaccession requested by {operator.name} (request {request_id}); reason: {reason.strip()}; "
        "nothing is deleted until a second person approves it",
        "requested",
        request_id,
    )
    made = catalog.request_deaccession(
        request_id, aip.id, reason=reason.strip(), requested_by=operator.name, events=[event]
    )
    if settings is not None:
        journal.flush(settings, catalog, [aip.id])
    return made


def _find(catalog: Catalog, request_id: str) -> Deaccession:
    found = catalog.deaccession(request_id)
    if found is None:
        raise ConfigError(
            f"no deaccession request {request_id!r}", advice="See `preserve deaccession list` for the ids."
        )
    return found


def cancel(
    catalog: Catalog, request_id: str, *, operator: Agent, reason: str = "", settings: Settings | None = None
) -> Deaccession:
    """Cancel a request that is still waiting for approval (nothing was deleted). ConfigError for an
    unknown id, or a request already cancelled, approved or completed. With ``settings``, the
    cancellation is written beside the AIP on its replicas at once (else by housekeeping)."""
    found = _find(catalog, request_id)
    why = f"; reason: {reason.strip()}" if reason.strip() else ""
    event = _decision(
        found.aip_id,
        Outcome.NOT_PERFORMED,
        operator,
        f"deaccession request {found.id} (by {found.requested_by}) cancelled by {operator.name}{why}; nothing was deleted",
        "cancelled",
        found.id,
    )
    cancelled = catalog.cancel_deaccession(found.id, cancelled_by=operator.name, events=[event])
    if settings is not None:
        journal.flush(settings, catalog, [found.aip_id])
    return cancelled


def approve(
    settings: Settings,
    catalog: Catalog,
    request_id: str,
    *,
    operator: Agent,
    now: Callable[[], dt.datetime] = _now,
) -> DeaccessionReport:
    """The second person's approval, then carrying it out (`carry_out`). The approver must not be
    the requester: ConfigError, recorded as a refused approval, nothing changed. A request already
    approved is resumed (what is left of it carried out again), whoever runs it; a cancelled one is
    refused."""
    found = _find(catalog, request_id)
    if found.state is DeaccessionState.CANCELLED:
        raise ConfigError(
            f"deaccession request {found.id} was cancelled by {found.cancelled_by} on "
            f"{found.cancelled_at or found.requested_at:%Y-%m-%d %H:%M} UTC; nothing was deleted",
            advice="If the AIP must still leave the archive, make a new request: "
            f"`preserve deaccession request {found.aip_id} --reason TEXT`.",
        )
    if found.state is DeaccessionState.REQUESTED:
        if same_person(found.requested_by, operator.name):
            catalog.add_events(
                found.aip_id,
                [
                    _decision(
                        found.aip_id,
                        Outcome.FAIL,
                        operator,
                        f"approval of deaccession request {found.id} refused: {operator.name} requested it, "
                        "and a second person must approve it; nothing was changed",
                        "approval refused",
                        found.id,
                    )
                ],
            )
            journal.flush(settings, catalog, [found.aip_id])
            raise ConfigError(
                f"refused: {operator.name} requested deaccession {found.id}, so {operator.name} cannot approve it; "
                "a second person must",
                advice="The approval must come from another operator: `preserve --operator NAME deaccession approve "
                f"{found.id}` (or PRESERVE_OPERATOR). Nothing was changed.",
            )
        approval = _decision(
            found.aip_id,
            Outcome.PASS,
            operator,
            f"deaccession {found.id} approved by {operator.name} (requested by {found.requested_by} on "
            f"{found.requested_at:%Y-%m-%d %H:%M} UTC; reason: {found.reason}); access is withdrawn, then every "
            "object on every replica deleted",
            "approved",
            found.id,
        )
        approval.extra["requested_by"] = found.requested_by
        approved = catalog.approve_deaccession(found.id, approved_by=operator.name, events=[approval])
        return carry_out(settings, catalog, approved, operator=operator, now=now)
    return carry_out(settings, catalog, found, operator=operator, now=now, resumed=True)


# -- carrying it out -----------------------------------------------------------------------------
def carry_out(
    settings: Settings,
    catalog: Catalog,
    deaccession: Deaccession,
    *,
    operator: Agent,
    now: Callable[[], dt.datetime] = _now,
    resumed: bool = False,
) -> DeaccessionReport:
    """Withdraw access (until verified; while it is not, stop there: nothing is deleted, the
    request stays approved), find every object of the AIP on every replica (the recorded ones and
    any other under its prefix), delete what may be deleted now, schedule the rest, and mark the
    deaccession completed once nothing is left. Safe to run again: what is done stays done. Never
    raises for a storage failure: it is in the report and the record."""
    problems: tuple[str, ...] = ()
    withdrawn = _withdrawn(catalog, deaccession)
    if not withdrawn:
        report = withdrawal.withdraw(
            settings,
            catalog,
            deaccession.aip_id,
            reason=f"deaccession {deaccession.id} approved by {deaccession.approved_by}: {deaccession.reason}",
            operator=operator,
        )
        withdrawn = report.ok
        problems = tuple(report.remaining_lines())
        if withdrawn:
            catalog.mark_withdrawn(deaccession.id, at=now())
    if not withdrawn:  # access first: nothing is deleted from a replica while an access copy may be reachable
        waiting = (
            f"nothing was deleted from the replicas: deaccession {deaccession.id} deletes them only once every "
            "access copy is verified gone; housekeeping (`preserve serve`) retries the withdrawal, then the "
            f"scheduled audit or `preserve deaccession approve {deaccession.id}` carries out the deletions"
        )
        final = catalog.deaccession(deaccession.id) or deaccession
        journal.flush(settings, catalog, [deaccession.aip_id])
        return DeaccessionReport(final, False, (waiting, *problems), (), resumed)
    errors = _discover(settings, catalog, deaccession)
    current = catalog.deaccession(deaccession.id) or deaccession
    to_do = [
        o
        for o in current.objects
        if o.state in (DeletionState.PENDING, DeletionState.FAILED, DeletionState.REAPPEARED)
        or (o.state is DeletionState.SCHEDULED and o.due_at is not None and o.due_at <= now())
    ]
    outcomes = delete_objects(settings, catalog, current, to_do, now=now, operator=operator)
    _complete(catalog, current, now())
    final = catalog.deaccession(deaccession.id) or current
    # the decision, the deletions and the tombstone, beside the AIP on every replica that held it
    journal.flush(settings, catalog, [deaccession.aip_id])
    return DeaccessionReport(final, withdrawn, problems + tuple(errors), tuple(outcomes), resumed)


def _discover(settings: Settings, catalog: Catalog, deaccession: Deaccession) -> list[str]:
    """Record objects under the AIP's prefix on each replica that the catalog never had (a crashed
    upload's leftovers, a copy made by hand, the journal's version inventories): they are the AIP's
    too, and are deleted with it. Its event records are not: they stay (but on an encrypted
    replica, where they are ciphertext like the rest, and its key object and name index: found by
    their keys as stored). Returns what could not be looked at (a target unreachable: its recorded
    objects still fail visibly)."""
    known = {(o.target, o.key) for o in deaccession.objects} | {(o.target, o.physical_key) for o in deaccession.objects}
    found: list[tuple[str, str, int]] = []
    errors: list[str] = []
    for t in settings.targets:
        try:
            with open_store(settings, t) as store:
                # an encrypted target as stored: its opaque keys, its key object and name index too
                for v in as_stored(store).list_versions(f"{deaccession.aip_id}/"):
                    if not t.encrypted and _kept(deaccession.aip_id, v.key):
                        continue
                    if (t.name, v.key) not in known and not v.delete_marker:
                        known.add((t.name, v.key))
                        found.append((t.name, v.key, v.size))
        except StorageError as exc:
            errors.append(f"{t.name}: not searched for other objects of the AIP: {exc}")
    catalog.add_deletions(deaccession.id, found, state=DeletionState.PENDING)
    return errors


def _kept(aip_id: str, key: str) -> bool:
    """An event record of the journal: it outlives the AIP (its tombstone and the decision are in
    it), so deaccession never deletes it. Version inventories are not kept."""
    return layout.classify(aip_id, key) == "event-record"


def delete_objects(
    settings: Settings,
    catalog: Catalog,
    deaccession: Deaccession,
    objects: Sequence[ObjectDeletion],
    *,
    now: Callable[[], dt.datetime] = _now,
    operator: Agent | None = None,
    stores: Mapping[str, ObjectStore] | None = None,
) -> list[DeletionOutcome]:
    """Delete each object (every version) that may be deleted now, verify by listing its versions,
    and record the outcome with a `deletion` event; under retention, schedule it for the end of the
    retention. ``stores``: already open stores by target name (the audit's), else each target is
    opened here."""
    by_target: dict[str, list[ObjectDeletion]] = {}
    for o in objects:
        by_target.setdefault(o.target, []).append(o)
    outcomes: list[DeletionOutcome] = []
    configured = {t.name: t for t in settings.targets}
    for name, objs in by_target.items():
        target = configured.get(name)
        if target is None:
            for o in objs:
                outcomes.append(
                    _record(
                        catalog,
                        deaccession,
                        o,
                        DeletionOutcome(
                            name,
                            o.key,
                            DeletionState.FAILED,
                            f"target {name!r} is no longer configured, so its copy cannot be deleted from here",
                        ),
                        now(),
                        "s3",
                        operator,
                    )
                )
            continue
        try:
            if stores is not None and name in stores:
                outcomes += _delete_on(catalog, deaccession, target, stores[name], objs, now, operator)
            else:
                with open_store(settings, target) as store:
                    outcomes += _delete_on(catalog, deaccession, target, store, objs, now, operator)
        except StorageError as exc:  # the store could not even be opened
            for o in objs:
                outcomes.append(
                    _record(
                        catalog,
                        deaccession,
                        o,
                        DeletionOutcome(name, o.key, DeletionState.FAILED, f"{type(exc).__name__}: {exc}"),
                        now(),
                        target.kind,
                        operator,
                    )
                )
    return outcomes


def _delete_on(
    catalog: Catalog,
    deaccession: Deaccession,
    target: TargetSettings,
    store: ObjectStore,
    objects: Sequence[ObjectDeletion],
    now: Callable[[], dt.datetime],
    operator: Agent | None,
) -> list[DeletionOutcome]:
    if target.encrypted:
        return _delete_encrypted(catalog, deaccession, target, store, objects, now, operator)
    outcomes = []
    for o in objects:
        outcome = _delete_one(target, store, o)
        outcomes.append(_record(catalog, deaccession, o, outcome, now(), target.kind, operator))
    return outcomes


def key_objects(aip_id: str) -> tuple[str, str]:
    """The keys of an AIP's key object and name index on an encrypted target (as stored)."""
    return f"{aip_id}/{crypt_names.KEY_OBJECT}", f"{aip_id}/{crypt_names.INDEX_OBJECT}"


def _delete_encrypted(
    catalog: Catalog,
    deaccession: Deaccession,
    target: TargetSettings,
    store: ObjectStore,
    objects: Sequence[ObjectDeletion],
    now: Callable[[], dt.datetime],
    operator: Agent | None,
) -> list[DeletionOutcome]:
    """On an encrypted target: purge each ciphertext by its opaque key, then destroy the AIP's key
    (`_destroy_key`); what retention keeps then counts as deleted (KEY_DESTROYED), or, while the
    key object is still there, as a failure the audit retries."""
    raw = as_stored(store)
    keyed = set(key_objects(deaccession.aip_id))
    attempts = [(o, *_attempt(target, raw, o)) for o in objects if o.physical_key not in keyed]
    purges, why = _destroy_key(catalog, deaccession.aip_id, target, store, now())
    outcomes = []
    for o, outcome, purge, left in attempts:
        if purge is not None and purge.retained and left:
            outcome = _key_kept(target, o, outcome, why) if why else _key_destroyed(target, o, purge, left)
        outcomes.append(_record(catalog, deaccession, o, outcome, now(), target.kind, operator))
    for o in objects:
        if o.physical_key in keyed:
            outcome = _key_object_outcome(target, o, purges.get(o.physical_key), why)
            outcomes.append(_record(catalog, deaccession, o, outcome, now(), target.kind, operator))
    return outcomes


def _destroy_key(
    catalog: Catalog, aip_id: str, target: TargetSettings, store: ObjectStore, at: dt.datetime
) -> tuple[dict[str, tuple[Purge, int]], str]:
    """Delete every version of the AIP's key object and name index on an encrypted target, verify
    by listing their versions (as stored), and once its key object has none left record the key
    destroyed in the catalog. Returns, by key, each purge and how many versions are still listed,
    and why the key is not destroyed ("" once it is)."""
    raw = as_stored(store)
    key_object, index = key_objects(aip_id)
    try:
        if isinstance(store, EncryptedStore):
            done = store.destroy_key(aip_id, bypass_governance=target.allow_governance_bypass)
        else:
            done = [raw.purge(k, bypass_governance=target.allow_governance_bypass) for k in (key_object, index)]
        by_key = {p.key: p for p in done}
        found = {k: (by_key.get(k, Purge(k)), sum(1 for v in raw.list_versions(k) if v.key == k)) for k in by_key}
    except StorageError as exc:
        return {}, f"{type(exc).__name__}: {exc}"
    purge, left = found.get(key_object, (Purge(key_object), 0))
    if left:
        held = f" ({', '.join(sorted({r.mode for r in purge.retained}))})" if purge.retained else ""
        return found, f"{left} version(s) of its key object still listed afterwards{held}"
    catalog.destroy_key(aip_id, target.name, at)
    return found, ""


def _key_destroyed(target: TargetSettings, o: ObjectDeletion, purge: Purge, left: int) -> DeletionOutcome:
    modes = ", ".join(sorted({r.mode for r in purge.retained}))
    due = purge.retained_until
    until = f"until {due:%Y-%m-%d %H:%M:%S} UTC" if due is not None else "until the legal hold is lifted"
    n = len(purge.deleted)
    return DeletionOutcome(
        target.name,
        o.key,
        DeletionState.DELETED,
        f"{DeletionMethod.KEY_DESTROYED}: {modes} retention keeps {left} version(s) of the ciphertext {until}, "
        f"but the AIP's key on {target.name} is destroyed (its key object has no version left), so nobody can "
        f"decrypt it any more; {n} version(s) deleted now; the scheduled audit deletes the rest once the "
        "retention ends",
        n,
        method=DeletionMethod.KEY_DESTROYED.value,
    )


def _key_kept(target: TargetSettings, o: ObjectDeletion, retained: DeletionOutcome, why: str) -> DeletionOutcome:
    return DeletionOutcome(
        target.name,
        o.key,
        DeletionState.FAILED,
        f"{retained.detail}; and the AIP's key on {target.name} could not be destroyed ({why}), so the ciphertext "
        "can still be decrypted: the audit tries again every run",
        retained.versions_deleted,
    )


def _key_object_outcome(
    target: TargetSettings, o: ObjectDeletion, done: tuple[Purge, int] | None, why: str
) -> DeletionOutcome:
    """The outcome for the AIP's key object or name index itself (both purged by `_destroy_key`)."""
    what = "name index" if o.physical_key.endswith(f"/{crypt_names.INDEX_OBJECT}") else "key object"
    if done is None:
        return DeletionOutcome(
            target.name, o.key, DeletionState.FAILED, f"the AIP's {what} is not deleted: {why}; retried by the audit"
        )
    purge, left = done
    n = len(purge.deleted)
    if left:
        return DeletionOutcome(
            target.name,
            o.key,
            DeletionState.FAILED,
            f"the AIP's {what}: {n} version(s) deleted, {left} still listed afterwards"
            + (f" ({why})" if why else "")
            + "; retried by the audit",
            n,
        )
    return DeletionOutcome(
        target.name,
        o.key,
        DeletionState.DELETED,
        f"{DeletionMethod.VERSIONS_DELETED}: the AIP's {what} on {target.name}, {n} version(s) deleted; none "
        "listed afterwards" + ("" if why else " (the AIP's key is destroyed there)"),
        n,
        method=DeletionMethod.VERSIONS_DELETED.value,
    )


def _delete_one(target: TargetSettings, store: ObjectStore, o: ObjectDeletion) -> DeletionOutcome:
    """Purge one key, then list its versions: deleted only when none is listed."""
    return _attempt(target, store, o)[0]


def _attempt(
    target: TargetSettings, store: ObjectStore, o: ObjectDeletion
) -> tuple[DeletionOutcome, Purge | None, int]:
    """`_delete_one`, with the purge (None when it failed) and how many versions are left. The key
    purged is the one the target holds (``physical_key``: the opaque one on an encrypted target,
    whose ``store`` is then the target as stored)."""
    key = o.physical_key
    try:
        purge = store.purge(key, bypass_governance=target.allow_governance_bypass)
        left = [v for v in store.list_versions(key) if v.key == key]
    except StorageError as exc:
        advice = f" ({exc.advice})" if "may not delete" in str(exc) else ""  # the permission it needs
        return (
            DeletionOutcome(target.name, o.key, DeletionState.FAILED, f"{type(exc).__name__}: {exc}{advice}"),
            None,
            0,
        )
    return _outcome(target, o, purge, left), purge, len(left)


def _outcome(target: TargetSettings, o: ObjectDeletion, purge: Purge, left: Sequence[ObjectInfo]) -> DeletionOutcome:
    n = len(purge.deleted)
    if not left:
        how = DeletionMethod.GOVERNANCE_BYPASSED if purge.bypassed else DeletionMethod.VERSIONS_DELETED
        return DeletionOutcome(
            target.name,
            o.key,
            DeletionState.DELETED,
            f"{how}: {n} version(s) and delete marker(s) deleted; none listed afterwards",
            n,
            method=how.value,
        )
    if purge.retained:
        return _retained(target, o, purge, n, len(left))
    return DeletionOutcome(
        target.name,
        o.key,
        DeletionState.FAILED,
        f"{n} version(s) deleted, but {len(left)} still listed afterwards (written again meanwhile?)",
        n,
    )


def _retained(target: TargetSettings, o: ObjectDeletion, purge: Purge, n: int, left: int) -> DeletionOutcome:
    modes = ", ".join(sorted({r.mode for r in purge.retained}))
    due = purge.retained_until
    if due is None:  # a legal hold has no end date: only its removal (by a person) allows the deletion
        return DeletionOutcome(
            target.name,
            o.key,
            DeletionState.FAILED,
            f"under a legal hold ({modes}); {left} version(s) kept: it is deleted once the hold is lifted "
            "(the audit tries again every run)",
            n,
        )
    why = (
        "GOVERNANCE retention, and this target does not allow a governance bypass (allow_governance_bypass = false)"
        if modes == "GOVERNANCE"
        else f"{modes} retention, which nobody can shorten"
    )
    return DeletionOutcome(
        target.name,
        o.key,
        DeletionState.SCHEDULED,
        f"scheduled for {due:%Y-%m-%d %H:%M:%S} UTC: {why}; {left} version(s) kept until then, {n} deleted now; "
        "the scheduled audit deletes it then",
        n,
        due,
    )


def _record(
    catalog: Catalog,
    deaccession: Deaccession,
    o: ObjectDeletion,
    outcome: DeletionOutcome,
    at: dt.datetime,
    kind: str,
    operator: Agent | None,
    *,
    attempted: bool = True,
) -> DeletionOutcome:
    """Write the outcome of one attempt (or, not ``attempted``, of an audit's look), with its
    `deletion` event; an outcome repeated as it was (a failure, a reappearance) adds no second one."""
    repeated = o.state is outcome.state and o.detail == outcome.detail
    events = [] if repeated else [_deletion_event(deaccession, o, outcome, at, kind, operator)]
    catalog.record_deletion(
        deaccession.id,
        o.target,
        o.key,
        state=outcome.state,
        detail=outcome.detail,
        at=at,
        attempted=attempted,
        due_at=outcome.due_at,
        versions_deleted=outcome.versions_deleted,
        method=outcome.method,
        events=events,
    )
    return outcome


def _authority(deaccession: Deaccession) -> dict[str, object]:
    return {
        "request": deaccession.id,
        "requested_by": deaccession.requested_by,
        "approved_by": deaccession.approved_by,
        "authorized_by": [deaccession.requested_by, deaccession.approved_by],
    }


def _deletion_event(
    deaccession: Deaccession,
    o: ObjectDeletion,
    outcome: DeletionOutcome,
    at: dt.datetime,
    kind: str,
    operator: Agent | None,
) -> Event:
    outcome_word = {
        DeletionState.DELETED: Outcome.PASS,
        DeletionState.SCHEDULED: Outcome.NOT_PERFORMED,
    }.get(outcome.state, Outcome.FAIL)
    extra: dict[str, object] = {
        **_authority(deaccession),
        "replica": o.target,
        "key": o.key,
        "state": outcome.state.value,
        "versions_deleted": outcome.versions_deleted,
        "sha256": o.sha256,
        "size": o.size,
    }
    member = member_path(deaccession.aip_id, o.key)
    if member.startswith("data/"):
        extra["file"] = member
    if outcome.due_at is not None:
        extra["due"] = outcome.due_at.isoformat()
    if operator is not None:
        extra["operator"] = operator.name
    return Event(
        EventType.DELETION,
        outcome_word,
        store_agent(kind),
        f"deaccession {deaccession.id}: {o.target}:{o.key}: {outcome.detail}",
        at=at,
        subject=f"{o.target}:{o.key}",
        extra=extra,
    )


def withdrawal_done_at(catalog: Catalog, deaccession: Deaccession) -> dt.datetime | None:
    """When access was verified withdrawn for this deaccession: its own record, else (the
    withdrawal finished later, by housekeeping or a `preserve withdraw`) the completion of a change
    to dark made after the approval that is still the AIP's latest decision. None while a copy may
    still be reachable."""
    if deaccession.withdrawn_at is not None:
        return deaccession.withdrawn_at
    if deaccession.approved_at is None:
        return None
    counting = [c for c in catalog.access_changes(deaccession.aip_id) if c.state != SUPERSEDED]
    if not counting:
        return None
    latest = counting[-1]
    if latest.is_withdrawal and latest.state == DONE and latest.completed_at is not None:
        return latest.completed_at if latest.completed_at >= deaccession.approved_at else None
    return None


def _withdrawn(catalog: Catalog, deaccession: Deaccession) -> bool:
    """Access is verified withdrawn for the deaccession; a withdrawal finished elsewhere is recorded
    on it now."""
    at = withdrawal_done_at(catalog, deaccession)
    if at is not None and deaccession.withdrawn_at is None:
        catalog.mark_withdrawn(deaccession.id, at=at)
    return at is not None


def _complete(catalog: Catalog, deaccession: Deaccession, at: dt.datetime) -> bool:
    current = catalog.deaccession(deaccession.id) or deaccession
    if current.state is not DeaccessionState.APPROVED or not _withdrawn(catalog, current):
        return False
    if any(o.state is not DeletionState.DELETED for o in current.objects):
        return False
    targets = sorted({o.target for o in current.objects})
    for t in targets:  # an encrypted replica is done once its key is destroyed, too
        key = catalog.key_of(current.aip_id, t)
        if key is not None and not key.destroyed:
            return False
    shredded = [o for o in current.objects if o.method == DeletionMethod.KEY_DESTROYED.value]
    unreadable = (
        f"; {len(shredded)} of them ciphertext that retention keeps on "
        f"{', '.join(sorted({o.target for o in shredded}))}, unreadable since the AIP's key there is destroyed "
        "(deleted by the scheduled audit when the retention ends)"
        if shredded
        else ""
    )
    event = Event(
        EventType.DEACCESSION,
        Outcome.PASS,
        Agent(current.approved_by, kind="person"),
        f"deaccession {current.id} complete: access withdrawn; {len(current.objects)} object(s) deleted"
        f"{'' if shredded else ', every version,'} on {', '.join(targets) or 'no replica'}{unreadable}; "
        f"requested by {current.requested_by} on {current.requested_at:%Y-%m-%d}, approved by {current.approved_by} on "
        f"{(current.approved_at or at):%Y-%m-%d}; the tombstone keeps the digests of its {len(current.files)} file(s)",
        at=at,
        extra={**_authority(current), "step": "completed"},
    )
    return catalog.complete_deaccession(current.id, at=at, events=[event])


# -- the scheduled audit ---------------------------------------------------------------------------
def audit_deaccessioned(
    settings: Settings,
    catalog: Catalog,
    stores: Mapping[str, ObjectStore],
    targets: Sequence[TargetSettings],
    *,
    aip_id: str | None = None,
    now: Callable[[], dt.datetime] = _now,
) -> list[DeletionFinding]:
    """The audit's part: carry out the deletions that are due (scheduled ones whose retention has
    ended, and pending or failed ones), then look on each replica in ``targets`` under the prefix
    of every deaccessioned AIP for what should be gone. Quiet about what is deleted and stays gone
    and about what is scheduled and not due; loud (findings) about an object still there after its
    deletion date, one found again after its deletion, and a deletion that failed."""
    names = {t.name for t in targets}
    findings: list[DeletionFinding] = []
    due = [o for o in catalog.deletions_to_do(now()) if o.target in names and aip_id in (None, o.aip_id)]
    handled = {(o.target, o.key) for o in due}
    by_request: dict[str, list[ObjectDeletion]] = {}
    for o in due:
        by_request.setdefault(o.deaccession_id, []).append(o)
    for request_id, objs in by_request.items():
        d = catalog.deaccession(request_id)
        if d is None:
            continue
        if not _withdrawn(catalog, d):  # access first: its deletions wait until the withdrawal is verified
            findings.append(
                DeletionFinding(
                    d.aip_id,
                    "access",
                    "",
                    "failed",
                    f"deaccession {d.id}: nothing deleted yet, because access is not verified withdrawn; "
                    "housekeeping (`preserve serve`) retries the withdrawal, and the audit then deletes",
                )
            )
            continue
        for out in delete_objects(settings, catalog, d, objs, now=now, stores=stores):
            problem = {DeletionState.DELETED: "", DeletionState.SCHEDULED: "overdue"}.get(out.state, "failed")
            findings.append(DeletionFinding(d.aip_id, out.target, out.key, problem, out.detail))
        # the journal's version inventories, if the carry-out stopped before it could find them: deleted
        # now, or scheduled like any object under retention (not overdue: their date was never due)
        plain = {t.name for t in targets if not t.encrypted}  # an encrypted one's: found by their keys as stored
        inventories = _inventories(catalog, d, {n: s for n, s in stores.items() if n in plain})
        handled |= {(o.target, o.key) for o in inventories}
        for out in delete_objects(settings, catalog, d, inventories, now=now, stores=stores):
            if out.state is not DeletionState.SCHEDULED:
                problem = "" if out.state is DeletionState.DELETED else "failed"
                findings.append(DeletionFinding(d.aip_id, out.target, out.key, problem, out.detail))
        _complete(catalog, d, now())
    for d in catalog.deaccessions(states=(DeaccessionState.APPROVED, DeaccessionState.COMPLETED)):
        if aip_id not in (None, d.aip_id):
            continue
        for t in targets:
            if t.name in stores:
                findings += _look_for_leftovers(catalog, d, t, stores[t.name], now, handled)
    return findings


def _inventories(catalog: Catalog, d: Deaccession, stores: Mapping[str, ObjectStore]) -> list[ObjectDeletion]:
    """The journal's version inventories of the AIP that the deaccession has no deletion record of
    (written beside the AIP before the approval; the carry-out finds them when it lists the
    replicas, but it may have stopped before, waiting for the withdrawal): recorded now, to be
    deleted with the rest (they name the files and the title). Returns them."""
    known = {(o.target, o.key) for o in d.objects}
    found: list[tuple[str, str, int]] = []
    for target, kind, key, _ in catalog.journal_records(d.aip_id):
        if kind != "version" or (target, key) in known or target not in stores:
            continue
        try:
            info = stores[target].head(key)
        except StorageError:  # not looked at now: the next audit, or a listing, finds it
            continue
        if info is not None:
            known.add((target, key))
            found.append((target, key, info.size))
    if not found:
        return []
    catalog.add_deletions(d.id, found, state=DeletionState.PENDING)
    new = {(t, k) for t, k, _ in found}
    return [o for o in (catalog.deaccession(d.id) or d).objects if (o.target, o.key) in new]


def _look_for_leftovers(
    catalog: Catalog,
    d: Deaccession,
    target: TargetSettings,
    store: ObjectStore,
    now: Callable[[], dt.datetime],
    handled: set[tuple[str, str]],
) -> list[DeletionFinding]:
    """List every version under the AIP's prefix on one replica (as stored: an encrypted one by
    its opaque keys) and compare with its deletion records: a deleted key listed again, or a key
    never recorded, has reappeared (left in place for a person, recorded, reported at every audit
    until it is gone); a version inventory of the journal not found before (on an encrypted
    replica: anything not found before) is recorded to be deleted with the rest while the
    deaccession is being carried out. The event records are meant to stay, and are not looked at
    (on a plaintext replica). Ciphertext kept by retention after the AIP's key was destroyed is no
    leftover: it is deleted here once its retention has ended. ``handled``: (target, key) this
    audit has just tried to delete, already reported."""
    raw = as_stored(store)
    encrypted = target.encrypted
    skip: set[str] = set()
    if encrypted:
        key = catalog.key_of(d.aip_id, target.name)
        if key is not None and not key.destroyed:  # the AIP's until the key is destroyed, not leftovers
            skip = set(key_objects(d.aip_id))
    try:
        listed: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for v in raw.list_versions(f"{d.aip_id}/"):
            if (encrypted and v.key in skip) or (not encrypted and _kept(d.aip_id, v.key)):
                continue
            listed[v.key] = listed.get(v.key, 0) + (0 if v.delete_marker else 1)
            sizes.setdefault(v.key, v.size)
    except StorageError as exc:
        return [DeletionFinding(d.aip_id, target.name, "", "failed", f"not checked: {type(exc).__name__}: {exc}")]
    at = now()
    records = {o.physical_key: o for o in d.objects if o.target == target.name}
    new = [(target.name, key, sizes[key]) for key, n in listed.items() if key not in records and n]
    # a version inventory of the journal, written before the approval and not found yet (the
    # carry-out stopped before it listed the replicas): the AIP's, deleted with the rest; on an
    # encrypted replica, whose keys say nothing, whatever is under the AIP's prefix then
    inventories = [
        x
        for x in new
        if d.state is DeaccessionState.APPROVED
        and (encrypted or layout.classify(d.aip_id, x[1]) == "version-inventory")
    ]
    new = [x for x in new if x not in inventories]
    if inventories:
        catalog.add_deletions(d.id, inventories, state=DeletionState.PENDING)
    if new:
        catalog.add_deletions(d.id, new, state=DeletionState.REAPPEARED)
    if new or inventories:
        d = catalog.deaccession(d.id) or d
        records = {o.physical_key: o for o in d.objects if o.target == target.name}
    findings = []
    for stored, o in records.items():
        present = listed.get(stored, 0)
        if (target.name, o.key) in handled:
            continue
        if o.method == DeletionMethod.KEY_DESTROYED.value and o.state is DeletionState.DELETED:
            if present and (o.lock_until is None or o.lock_until <= at):
                _purge_unreadable(catalog, d, target, raw, o, at)
            continue
        if o.state in (DeletionState.DELETED, DeletionState.REAPPEARED) and present:
            detail = (
                f"{present} version(s) of an object of deaccessioned AIP {d.aip_id} found on {target.name}"
                + (f" after its deletion on {o.deleted_at:%Y-%m-%d %H:%M} UTC" if o.deleted_at else "")
                + f"; left in place for a person: `preserve deaccession approve {d.id}` deletes it again"
            )
            findings.append(DeletionFinding(d.aip_id, target.name, o.key, "reappeared", detail))
            _record(
                catalog,
                d,
                o,
                DeletionOutcome(target.name, o.key, DeletionState.REAPPEARED, detail),
                at,
                target.kind,
                None,
                attempted=False,
            )
        elif o.state is DeletionState.SCHEDULED and present and o.due_at is not None and o.due_at <= at:
            findings.append(
                DeletionFinding(
                    d.aip_id,
                    target.name,
                    o.key,
                    "overdue",
                    f"still there after its deletion date {o.due_at:%Y-%m-%d %H:%M:%S} UTC: {o.detail}",
                )
            )
        elif o.state is DeletionState.REAPPEARED and not present:
            _record(
                catalog,
                d,
                o,
                DeletionOutcome(target.name, o.key, DeletionState.DELETED, "gone again; no version listed"),
                at,
                target.kind,
                None,
                attempted=False,
            )
    return findings


def _purge_unreadable(
    catalog: Catalog, d: Deaccession, target: TargetSettings, raw: ObjectStore, o: ObjectDeletion, at: dt.datetime
) -> None:
    """Delete ciphertext that retention kept after the AIP's key was destroyed (it already counts as
    deleted), once retention allows: quiet while it does not; a `deletion` event once it is gone."""
    _, purge, left = _attempt(target, raw, o)
    if purge is None or left or not purge.deleted:
        return
    done = DeletionOutcome(
        target.name,
        o.key,
        DeletionState.DELETED,
        f"{len(purge.deleted)} version(s) of ciphertext kept by retention after the AIP's key was destroyed "
        "deleted now that the retention has ended; none listed afterwards",
        len(purge.deleted),
        method=DeletionMethod.KEY_DESTROYED.value,
    )
    catalog.add_events(d.aip_id, [_deletion_event(d, o, done, at, target.kind, None)])


def format_findings(findings: Sequence[DeletionFinding]) -> list[str]:
    """Lines for the audit's report."""
    out = []
    for f in findings:
        word = {"": "DEACCESSION deleted", "overdue": "DEACCESSION OVERDUE", "reappeared": "DEACCESSION REAPPEARED"}
        out.append(f"{word.get(f.problem, 'DEACCESSION FAILED')} {f.target}:{f.key} ({f.aip_id}): {f.detail}")
    return out
