"""Withdrawal: a film becomes dark now. The intent is written to the catalog first (from then on
nothing publishes it: the ingest's publish step, embargo release and set-access check it), then
every version of every object under the AIP's prefix is removed from every access location
(open, restricted, embargoed), the locations are listed again, version by version, to verify that
nothing remains, and the local access copies under the var directory are removed. Only then does
the catalog record the level "dark", with an `access decision` event naming the operator, the
reason and the old level; an alert says it is done, or what is still there. A withdrawal killed
half-way stays pending and is finished by the next run or by `preserve serve`'s housekeeping.
Its events are then written beside the AIP on its replicas (`operations.journal`).
Side effects: object store listings and deletes; local directory removal; catalog writes; event
records on the replicas; an alert (webhook, e-mail)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from preserve import tools
from preserve.access import policy
from preserve.catalog import AccessChangeRecord, AipView, Catalog
from preserve.catalog.access_changes import DONE
from preserve.config import Settings
from preserve.core.errors import CatalogError, ConfigError, PreserveError
from preserve.core.model import AccessLevel, Agent, Event, EventType, Outcome
from preserve.operations import alerts, journal
from preserve.storage import open_store, store_agent

#: where preserve itself keeps local access copies of an AIP, under the var directory:
#: `preserve demo`'s fetched copies, an ingest's work directory, set-access's scratch space
LOCAL_ACCESS_DIRS = ("access/{aip}", "staging/{aip}/access", "access-work/{aip}")

ADVICE = (
    "Nothing is lost and the film stays withdrawn (nothing will publish it). Bring the access location "
    "back (or fix its credentials), then run `preserve withdraw AIP_ID` again; `preserve serve` also "
    "retries it at every housekeeping round."
)


@dataclass(frozen=True)
class LocationSweep:
    """One access location after its objects of an AIP were removed and listed again."""

    location: str
    #: keys of which every version (and delete marker) was deleted
    removed: tuple[str, ...] = ()
    #: how many versions and delete markers were deleted
    versions: int = 0
    #: what is still listed, or could not be checked (key: why)
    remaining: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.remaining


@dataclass(frozen=True)
class WithdrawalReport:
    """What a withdrawal did: keys removed per access location (every version), what remains per
    location (empty when the film is dark everywhere), the local copies removed, and whether
    anything was public at all."""

    aip_id: str
    change_id: int
    previous_level: AccessLevel
    removed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    remaining: dict[str, tuple[str, ...]] = field(default_factory=dict)
    versions_removed: int = 0
    local_removed: tuple[str, ...] = ()
    #: this run finished a withdrawal an earlier run (or housekeeping) had started
    resumed: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every access copy is verified gone (no version listed at any access location)."""
        return not any(self.remaining.values())

    @property
    def nothing_was_public(self) -> bool:
        return self.versions_removed == 0 and not self.local_removed

    def remaining_lines(self) -> list[str]:
        return [f"{where}: {what}" for where, items in self.remaining.items() for what in items]


def withdraw(settings: Settings, catalog: Catalog, aip_id: str, *, reason: str, operator: Agent) -> WithdrawalReport:
    """Make the AIP dark: write the intent, remove every version of every access copy from every
    access location, verify by listing versions, remove local copies, then record it. Raises
    ConfigError for an unknown AIP or an empty reason; a copy that cannot be removed is reported in
    the result (``ok`` False, the change stays pending), never raised."""
    if not reason.strip():
        raise ConfigError("a withdrawal needs a reason (--reason TEXT): it is recorded with the decision")
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise ConfigError(f"no AIP {aip_id!r} in the catalog", advice="Check the id with `preserve list`.")
    change, resumed = catalog.begin_access_change(
        aip.id,
        from_level=aip.access_level,
        to_level=AccessLevel.DARK,
        until=None,
        reason=reason.strip(),
        operator=operator,
        supersede=True,
    )
    report = carry_out(settings, catalog, aip, change, resumed=resumed)
    journal.flush(settings, catalog, [aip.id])
    return report


def carry_out(
    settings: Settings, catalog: Catalog, aip: AipView, change: AccessChangeRecord, *, resumed: bool = False
) -> WithdrawalReport:
    """Carry out a pending withdrawal (``change``, written before): the sweep, its verification,
    the local copies, then the catalog record and the alert."""
    started = time.monotonic()
    sweeps = sweep_access(settings, aip)
    local, local_left = remove_local_copies(settings, aip.id)
    removed = {s.location: s.removed for s in sweeps}
    remaining = {s.location: s.remaining for s in sweeps if s.remaining}
    if local_left:
        remaining["local"] = tuple(local_left)
    report = WithdrawalReport(
        aip_id=aip.id,
        change_id=change.id,
        previous_level=change.from_level,
        removed=removed,
        remaining=remaining,
        versions_removed=sum(s.versions for s in sweeps),
        local_removed=tuple(local),
        resumed=resumed or change.attempts > 0,
        seconds=time.monotonic() - started,
    )
    detail = _detail(report)
    if not report.ok:
        _record_incomplete(settings, catalog, change, report, detail)
        return report
    try:
        catalog.complete_access_change(
            change.id, copies=[], events=_events(settings, change, report, sweeps), detail=detail
        )
    except CatalogError:
        now = catalog.access_change(change.id)
        if now is None or now.state != DONE:
            raise
        # another finisher (the command line, housekeeping) recorded this withdrawal meanwhile, and
        # this run's own sweep found nothing left: it is done; the alert is keyed on the change
    alerts.send(
        settings,
        catalog,
        alerts.withdrawn(aip.id, change.id, report.versions_removed, [s.location for s in sweeps]),
    )
    return report


def reopen(settings: Settings, catalog: Catalog, aip_id: str, sweeps: Sequence[LocationSweep]) -> AccessChangeRecord:
    """A sweep after the AIP's withdrawal was recorded did not verify every location empty (a copy
    placed by a change the withdrawal replaced, a location down): a pending withdrawal is written
    again (the latest withdrawal's reason and operator; an AIP already dark stays dark in the
    catalog), the attempt recorded, and the `withdrawal-incomplete` alert sent. Housekeeping and
    the next `preserve withdraw` finish it. Raises CatalogError for an unknown AIP."""
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise CatalogError(f"no AIP {aip_id}")
    last = next((c for c in reversed(catalog.access_changes(aip.id)) if c.is_withdrawal), None)
    change, _ = catalog.begin_access_change(
        aip.id,
        from_level=aip.access_level,
        to_level=AccessLevel.DARK,
        until=None,
        reason=last.reason if last is not None else "a copy was found after the film was made dark",
        operator=Agent(last.operator, kind="person") if last is not None else tools.preserve_agent(),
        supersede=True,
    )
    report = WithdrawalReport(
        aip_id=aip.id,
        change_id=change.id,
        previous_level=change.from_level,
        removed={s.location: s.removed for s in sweeps},
        remaining={s.location: s.remaining for s in sweeps if s.remaining},
        versions_removed=sum(s.versions for s in sweeps),
    )
    _record_incomplete(settings, catalog, change, report, _detail(report))
    return change


def sweep_access(settings: Settings, aip: AipView, *, keep: str | None = None) -> list[LocationSweep]:
    """Remove every version of every object under ``<aip id>/`` from every access location but
    ``keep`` (the one the copies now belong at, for a change of level), then list the versions
    again: what is still listed, or could not be checked, is reported as remaining. Copies the
    catalog records at a place the configuration no longer names cannot be checked, and are
    reported as remaining too (never as removed)."""
    locations = [t for t in policy.access_locations(settings) if t.name != keep]
    out: list[LocationSweep] = []
    prefix = f"{aip.id}/"
    for location in locations:
        removed: list[str] = []
        left: list[str] = []
        failed: set[str] = set()
        versions = 0
        try:
            with open_store(settings, location) as store:
                counts: dict[str, int] = {}
                for v in store.list_versions(prefix):
                    counts[v.key] = counts.get(v.key, 0) + 1
                for key, n in counts.items():
                    try:
                        store.delete(key)
                    except PreserveError as exc:  # locked, refused, unreachable: never reported as deleted
                        failed.add(key)
                        left.append(f"{key}: {type(exc).__name__}: {exc}")
                        continue
                    removed.append(key)
                    versions += n
                still = sorted({v.key for v in store.list_versions(prefix)})
                moved = [
                    f"{c.uri}: recorded here, but {location.name} now points at {store.uri(c.key)}"
                    for c in aip.access
                    if c.target == location.name and c.uri != store.uri(c.key)
                ]
        except PreserveError as exc:  # unreachable, no credentials, or the listing was refused
            left.append(f"not checked: {type(exc).__name__}: {exc}")
            out.append(LocationSweep(location.name, tuple(removed), versions, tuple(left)))
            continue
        left += [f"{key}: still listed after its deletion" for key in still if key not in failed]
        left += moved
        out.append(LocationSweep(location.name, tuple(k for k in removed if k not in still), versions, tuple(left)))
    known = {t.name for t in policy.access_locations(settings)}
    unknown: dict[str, list[str]] = {}
    for copy in aip.access:
        if copy.target != keep and copy.target not in known:
            unknown.setdefault(copy.target, []).append(
                f"{copy.uri}: recorded at {copy.target!r}, which the configuration no longer names"
            )
    out += [LocationSweep(name, remaining=tuple(items)) for name, items in unknown.items()]
    return out


def remove_local_copies(settings: Settings, aip_id: str) -> tuple[list[str], list[str]]:
    """Remove preserve's own local access copies of the AIP under the var directory. Returns the
    directories removed and those that could not be (path: why), relative to the var directory."""
    removed: list[str] = []
    left: list[str] = []
    for pattern in LOCAL_ACCESS_DIRS:
        rel = pattern.format(aip=aip_id)
        path = settings.var_dir / rel
        if not path.exists() and not path.is_symlink():
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            left.append(f"{rel}: {exc.strerror or exc}")
            continue
        removed.append(rel)
    return removed, left


def _detail(report: WithdrawalReport) -> dict[str, Any]:
    return {
        "removed": {k: list(v) for k, v in report.removed.items()},
        "remaining": {k: list(v) for k, v in report.remaining.items()},
        "versions_removed": report.versions_removed,
        "local_removed": list(report.local_removed),
        "seconds": round(report.seconds, 3),
    }


def _events(
    settings: Settings, change: AccessChangeRecord, report: WithdrawalReport, sweeps: Sequence[LocationSweep]
) -> list[Event]:
    operator = Agent(change.operator, kind="person")
    where = ", ".join(s.location for s in sweeps) or "no access location is configured"
    if report.nothing_was_public:
        what = f"nothing was public: no access copy or version of one at {where}, and no local copy"
    else:
        what = (
            f"{report.versions_removed} object version(s) removed from "
            + ", ".join(f"{s.location} ({len(s.removed)} key(s))" for s in sweeps if s.removed)
            + (f"; local copies removed: {', '.join(report.local_removed)}" if report.local_removed else "")
            + f"; verified by listing every version: none remains at {where}"
        )
    events = [
        Event(
            EventType.ACCESS_DECISION,
            Outcome.PASS,
            operator,
            f"withdrawn by {change.operator}: access level {change.from_level} -> dark; reason: {change.reason}; {what}",
            extra={
                "level": AccessLevel.DARK.value,
                "from_level": change.from_level.value,
                "to_level": AccessLevel.DARK.value,
                "reason": change.reason,
                "operator": change.operator,
                "change_id": change.id,
                "withdrawal": True,
                "nothing_public": report.nothing_was_public,
            },
        )
    ]
    kinds = {t.name: t.kind for t in policy.access_locations(settings)}
    for s in sweeps:
        if s.removed:
            events.append(
                Event(
                    EventType.DELETION,
                    Outcome.PASS,
                    store_agent(kinds.get(s.location, "s3")),
                    f"withdrawal: every version of {len(s.removed)} access object(s) deleted from {s.location} "
                    f"({s.versions} version(s) and delete marker(s)); none listed afterwards",
                    subject=s.location,
                    extra={"keys": list(s.removed), "versions": s.versions, "change_id": change.id},
                )
            )
    return events


def _record_incomplete(
    settings: Settings, catalog: Catalog, change: AccessChangeRecord, report: WithdrawalReport, detail: dict[str, Any]
) -> None:
    """The change stays pending (the catalog keeps the old level: a copy may still be reachable);
    an event when what remains changed since the last attempt, and an alert keyed on it."""
    lines = report.remaining_lines()
    events = []
    if change.detail.get("remaining") != detail["remaining"]:
        events.append(
            Event(
                EventType.DELETION,
                Outcome.FAIL,
                tools.preserve_agent(),
                f"withdrawal asked by {change.operator} NOT complete; still there or not checked: "
                + "; ".join(lines[:20])
                + f"; {report.versions_removed} version(s) removed in this attempt. It stays pending and is retried.",
                extra={"change_id": change.id, "remaining": lines[:200]},
            )
        )
    catalog.access_change_attempted(change.id, error="; ".join(lines)[:4000], detail=detail, events=events)
    alerts.send(settings, catalog, alerts.withdrawal_incomplete(report.aip_id, change.id, lines, ADVICE))
