"""The `withdraw` flow (served by `preserve serve` as the `withdraw` deployment, run from the
dashboard with an AIP id and a reason) and the Prefect side of every withdrawal: the film's
ingest runs (their names carry the submission's file name; their task runs, states and logs go
with them) and their artifacts (the `ingest-report` with title and poster link, the progress
bars) are deleted from the Prefect database, then looked for again. The library
(preserve.operations.withdraw) does the withdrawal itself, with or without Prefect; this module
only cleans the dashboard, and `housekeeping` finishes what a killed run or an unreachable access
location left pending. The withdraw run leaves a `withdraw-report` artifact listing what was
removed (never the title), and its own `reason` parameter is replaced by a note once the catalog
holds it. Prefect's event feed keeps the old run names until its retention period ends
(PREFECT_EVENTS_RETENTION_PERIOD, 7 days by default): it has no API to delete them.
Side effects: those of the library; Prefect API deletes and updates; an artifact."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from preserve import config as settings_mod
from preserve import tools
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.fs import private_umask
from preserve.core.model import Agent, Event, EventType, Outcome
from preserve.operations import access_change
from preserve.operations import withdraw as withdrawals
from preserve.report import dashboard

WITHDRAW_REPORT_KEY = "withdraw-report"
#: the AIP line of an ingest report (preserve.report.dashboard)
_AIP_LINE = re.compile(r"^\| AIP \| `([^`]+)` \|$", re.MULTILINE)
#: what the withdraw run's own `reason` parameter says once the catalog holds the reason
REASON_KEPT = "(recorded in the catalog with the decision)"


@dataclass(frozen=True)
class DashboardCleanup:
    """What was removed from the Prefect dashboard for one AIP, and what was still found after."""

    aip_id: str
    runs: int = 0
    artifacts: int = 0
    left: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.left

    def summary(self) -> str:
        done = f"{self.runs} ingest run(s) and {self.artifacts} artifact(s) removed from the Prefect dashboard"
        return done if self.ok else f"{done}; still there: {', '.join(self.left)}"


def _pages(read: Any, **kwargs: Any) -> Iterable[Any]:
    """Every item of a Prefect ``read_*`` call, 200 at a time."""
    offset = 0
    while True:
        page = read(limit=200, offset=offset, **kwargs)
        yield from page
        if len(page) < 200:
            return
        offset += len(page)


def _report_aip(artifact: Any) -> str | None:
    found = _AIP_LINE.search(str(artifact.data or ""))
    return found.group(1) if found else None


def ingest_runs_of(client: Any, aip_id: str, names: Iterable[str]) -> set[UUID]:
    """The ingest flow runs of an AIP: those whose ingest report names it, and those named after
    one of its submissions (``ingest · NAME``) whose report, if any, names no other AIP."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterName,
    )

    key = ArtifactFilter(key=ArtifactFilterKey(any_=[dashboard.INGEST_REPORT_KEY]))
    runs = {a.flow_run_id for a in _pages(client.read_artifacts, artifact_filter=key) if _report_aip(a) == aip_id}
    wanted = sorted({f"ingest · {n}" for n in names if n})
    if wanted:
        named = {
            r.id
            for r in _pages(
                client.read_flow_runs,
                flow_filter=FlowFilter(name=FlowFilterName(any_=["ingest"])),
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=wanted)),
            )
        }
        if named:
            reports = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[dashboard.INGEST_REPORT_KEY]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=sorted(named)),
                )
            )
            others = {a.flow_run_id for a in reports if _report_aip(a) not in (None, aip_id)}
            runs |= named - others
    return {r for r in runs if r is not None}


def clean_dashboard(settings: Settings, catalog: Catalog, aip_id: str, *, final: bool = True) -> DashboardCleanup:
    """Delete the AIP's ingest runs and their artifacts from the Prefect API this process uses
    (PREFECT_API_URL), look for them again, and record it in the catalog: an event, and, when
    ``final`` (this is the archive's dashboard, not a temporary API) and nothing was left, the
    withdrawal's dashboard marked clean. Raises what the Prefect client raises when the API does
    not answer."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId
    from prefect.exceptions import ObjectNotFound

    aip = catalog.get_aip(aip_id)
    if aip is None:
        return DashboardCleanup(aip_id, left=("the AIP is not in the catalog",))
    names = {aip.submission_name, *(e.subject for e in aip.events if e.type is EventType.DUPLICATE)}
    names |= {unicodedata.normalize("NFD", n) for n in names}  # a run is named after the name on disk
    with get_client(sync_client=True) as client:
        runs = ingest_runs_of(client, aip.id, names)
        ids = sorted(runs)
        artifacts = 0
        if ids:
            for a in _pages(
                client.read_artifacts, artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
            ):
                client.delete_artifact(a.id)
                artifacts += 1
        for run_id in ids:
            try:
                client.delete_flow_run(run_id)
            except ObjectNotFound:
                pass
        left: list[str] = []
        if ids and client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))):
            left.append("ingest runs")
        if ids and client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))):
            left.append("artifacts of its runs")
        if ingest_runs_of(client, aip.id, names):
            left.append("ingest runs found again")
    done = DashboardCleanup(aip.id, len(ids), artifacts, tuple(left))
    event = Event(
        EventType.DELETION,
        Outcome.PASS if done.ok else Outcome.WARNING,
        tools.python_agent("prefect"),
        f"withdrawal: {done.summary()} (run names and the ingest report carried the file name and title)",
        subject="prefect dashboard",
    )
    due = [c for c in catalog.dashboard_cleanup_due() if c.aip_id == aip.id]
    if final and done.ok and due:
        for change in due:
            catalog.dashboard_cleaned(change.id, [event] if change is due[-1] else [])
    elif ids or not done.ok:
        catalog.add_events(aip.id, [event])
    return done


def housekeeping(settings: Settings, catalog: Catalog) -> list[str]:
    """Finish pending access changes (withdrawals first among them, as they were written), then
    clean the dashboard of withdrawn AIPs not cleaned yet. One line per thing done; never raises
    for one AIP's failure."""
    lines = [
        f"access change {c.id} of {c.aip_id}: {outcome}"
        for c, outcome in access_change.finish_pending(settings, catalog)
    ]
    for change in catalog.dashboard_cleanup_due():
        try:
            done = clean_dashboard(settings, catalog, change.aip_id)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            lines.append(f"dashboard of {change.aip_id} not cleaned: {type(exc).__name__}")
            continue
        lines.append(f"dashboard of {change.aip_id}: {done.summary()}")
    return lines


# -- the flow --------------------------------------------------------------------------------------
@task(name="withdraw access copies", cache_policy=NO_CACHE, persist_result=False)
def withdraw_task(config: str | None, aip_id: str, reason: str, operator: str) -> dict[str, Any]:
    """The library's withdrawal (no task retries: a run that does not finish stays pending and is
    finished by housekeeping, or by running the deployment again)."""
    settings = settings_mod.load(config)
    who = Agent(operator.strip() or "unnamed operator (Prefect dashboard)", kind="person")
    with Catalog(settings.catalog_url) as catalog:
        r = withdrawals.withdraw(settings, catalog, aip_id, reason=reason, operator=who)
    return {
        "aip_id": r.aip_id,
        "ok": r.ok,
        "previous_level": r.previous_level.value,
        "removed": {k: list(v) for k, v in r.removed.items()},
        "remaining": r.remaining_lines(),
        "versions_removed": r.versions_removed,
        "local_removed": list(r.local_removed),
        "seconds": r.seconds,
    }


@task(name="clean the dashboard", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=10)
def clean_dashboard_task(config: str | None, aip_id: str) -> str:
    settings = settings_mod.load(config)
    with Catalog(settings.catalog_url) as catalog:
        return clean_dashboard(settings, catalog, aip_id).summary()


def withdraw_report(data: dict[str, Any], dashboard_summary: str) -> str:
    """The markdown of the withdraw run's artifact: what was removed where, what remains. No title."""
    lines = [f"# Withdrawal of AIP `{data['aip_id']}`", ""]
    verdict = "**dark**: every access copy verified gone" if data["ok"] else "**NOT complete**: something remains"
    lines += [
        f"| result | {verdict} |",
        "|---|---|",
        f"| level before | {data['previous_level']} |",
        f"| versions removed | {data['versions_removed']} |",
        f"| seconds | {data['seconds']:.1f} |",
        f"| dashboard | {dashboard_summary} |",
        "",
        "## Removed (every version)",
        "",
        "| location | key |",
        "|---|---|",
    ]
    rows = [f"| {loc} | `{key}` |" for loc, keys in data["removed"].items() for key in keys]
    rows += [f"| local | `<var>/{rel}` |" for rel in data["local_removed"]]
    lines += rows or ["| - | nothing was public |"]
    if data["remaining"]:
        lines += ["", "## Still there (retried by housekeeping)", ""]
        lines += [f"- {line}" for line in data["remaining"]]
    return "\n".join(lines) + "\n"


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"withdraw · {str(flow_run.parameters.get('aip_id', '?'))[:8]}"


def _forget_reason() -> None:
    """The run's parameters keep only a note in place of the reason (the catalog holds it once the
    intent is written), whether the withdrawal went through or not."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, parameters={**ctx.flow_run.parameters, "reason": REASON_KEPT})
    except Exception as exc:  # noqa: BLE001 - the withdrawal is done; say so, and go on
        get_run_logger().warning("the reason could not be removed from this run's parameters: %s", type(exc).__name__)


@flow(name="withdraw", flow_run_name=_run_name, log_prints=False, persist_result=False)
def withdraw_flow(aip_id: str, reason: str, operator: str = "", config: str | None = None) -> State:
    """Withdraw a film now: every access copy, every version, removed from every access location
    and verified gone; its ingest runs removed from the dashboard. ``aip_id``: the AIP; ``reason``:
    why (kept in the catalog); ``operator``: who decides (recorded on the events)."""
    private_umask()  # whatever this run writes locally is for the archive's user only
    try:
        data = withdraw_task(config, aip_id, reason, operator)
    finally:
        _forget_reason()  # also when the run fails: the reason must not stay in its parameters
    try:
        summary = clean_dashboard_task(config, data["aip_id"])
    except Exception as exc:  # noqa: BLE001 - housekeeping cleans it later
        summary = f"not cleaned yet ({type(exc).__name__}); housekeeping tries again"
    create_markdown_artifact(
        markdown=withdraw_report(data, summary),
        key=WITHDRAW_REPORT_KEY,
        description=f"withdrawal of {data['aip_id']}: {'done' if data['ok'] else 'NOT complete'}",
    )
    if not data["ok"]:
        return Failed(
            message=f"withdrawal of {data['aip_id']} not complete: {len(data['remaining'])} thing(s) remain", data=data
        )
    return Completed(message=f"{data['aip_id']} withdrawn: {data['versions_removed']} version(s) removed", data=data)
