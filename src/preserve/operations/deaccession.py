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

Encrypted replicas (the issue "Encrypted replicas") do not exist yet. When they do, the seam is
`DeletionMethod.KEY_DESTROYED`: a replica whose objects are encrypted with a key of their own is
deleted by destroying that key, recorded as a `deletion` event whose method says so (the
ciphertext left behind then counts as deleted)."""

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
from preserve.storage.base import Purge, member_path


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
    too, and are deleted with it. Its event records are not: they stay. Returns what could not be
    looked at (a target unreachable: its recorded objects still fail visibly)."""
    known = {(o.target, o.key) for o in deaccession.objects}
    found: list[tuple[str, str, int]] = []
    errors: list[str] = []
    for t in settings.targets:
        try:
            with open_store(settings, t) as store:
                for v in store.list_versions(f"{deaccession.aip_id}/"):
                    if _kept(deaccession.aip_id, v.key):
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
    outcomes = []
    for o in objects:
        outcome = _delete_one(target, store, o)
        outcomes.append(_record(catalog, deaccession, o, outcome, now(), target.kind, operator))
    return outcomes


def _delete_one(target: TargetSettings, store: ObjectStore, o: ObjectDeletion) -> DeletionOutcome:
    """Purge one key, then list its versions: deleted only when none is listed."""
    try:
        purge = store.purge(o.key, bypass_governance=target.allow_governance_bypass)
        left = [v for v in store.list_versions(o.key) if v.key == o.key]
    except StorageError as exc:
        advice = f" ({exc.advice})" if "may not delete" in str(exc) else ""  # the permission it needs
        return DeletionOutcome(target.name, o.key, DeletionState.FAILED, f"{type(exc).__name__}: {exc}{advice}")
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
    event = Event(
        EventType.DEACCESSION,
        Outcome.PASS,
        Agent(current.approved_by, kind="person"),
        f"deaccession {current.id} complete: access withdrawn; {len(current.objects)} object(s) deleted, every "
        f"version, on {', '.join(targets) or 'no replica'}; requested by {current.requested_by} on "
        f"{current.requested_at:%Y-%m-%d}, approved by {current.approved_by} on "
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
        inventories = _inventories(catalog, d, {n: s for n, s in stores.items() if n in names})
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
    """List every version under the AIP's prefix on one replica and compare with its deletion
    records: a deleted key listed again, or a key never recorded, has reappeared (left in place for
    a person, recorded, reported at every audit until it is gone); a version inventory of the
    journal not found before is recorded to be deleted with the rest while the deaccession is being
    carried out. The event records are meant to stay, and are not looked at. ``handled``: (target, key) this audit has just tried to delete,
    already reported."""
    try:
        listed: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for v in store.list_versions(f"{d.aip_id}/"):
            if _kept(d.aip_id, v.key):
                continue
            listed[v.key] = listed.get(v.key, 0) + (0 if v.delete_marker else 1)
            sizes.setdefault(v.key, v.size)
    except StorageError as exc:
        return [DeletionFinding(d.aip_id, target.name, "", "failed", f"not checked: {type(exc).__name__}: {exc}")]
    at = now()
    records = {o.key: o for o in d.objects if o.target == target.name}
    new = [(target.name, key, sizes[key]) for key, n in listed.items() if key not in records and n]
    # a version inventory of the journal, written before the approval and not found yet (the
    # carry-out stopped before it listed the replicas): the AIP's, deleted with the rest
    inventories = [
        x
        for x in new
        if d.state is DeaccessionState.APPROVED and layout.classify(d.aip_id, x[1]) == "version-inventory"
    ]
    new = [x for x in new if x not in inventories]
    if inventories:
        catalog.add_deletions(d.id, inventories, state=DeletionState.PENDING)
    if new:
        catalog.add_deletions(d.id, new, state=DeletionState.REAPPEARED)
    if new or inventories:
        d = catalog.deaccession(d.id) or d
        records = {o.key: o for o in d.objects if o.target == target.name}
    findings = []
    for key, o in records.items():
        present = listed.get(key, 0)
        if (target.name, key) in handled:
            continue
        if o.state in (DeletionState.DELETED, DeletionState.REAPPEARED) and present:
            detail = (
                f"{present} version(s) of an object of deaccessioned AIP {d.aip_id} found on {target.name}"
                + (f" after its deletion on {o.deleted_at:%Y-%m-%d %H:%M} UTC" if o.deleted_at else "")
                + f"; left in place for a person: `preserve deaccession approve {d.id}` deletes it again"
            )
            findings.append(DeletionFinding(d.aip_id, target.name, key, "reappeared", detail))
            _record(
                catalog,
                d,
                o,
                DeletionOutcome(target.name, key, DeletionState.REAPPEARED, detail),
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
                    key,
                    "overdue",
                    f"still there after its deletion date {o.due_at:%Y-%m-%d %H:%M:%S} UTC: {o.detail}",
                )
            )
        elif o.state is DeletionState.REAPPEARED and not present:
            _record(
                catalog,
                d,
                o,
                DeletionOutcome(target.name, key, DeletionState.DELETED, "gone again; no version listed"),
                at,
                target.kind,
                None,
                attempted=False,
            )
    return findings


def format_findings(findings: Sequence[DeletionFinding]) -> list[str]:
    """Lines for the audit's report."""
    out = []
    for f in findings:
        word = {"": "DEACCESSION deleted", "overdue": "DEACCESSION OVERDUE", "reappeared": "DEACCESSION REAPPEARED"}
        out.append(f"{word.get(f.problem, 'DEACCESSION FAILED')} {f.target}:{f.key} ({f.aip_id}): {f.detail}")
    return out
