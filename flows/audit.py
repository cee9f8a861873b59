"""The `fixity-audit` flow: one task per replica (tagged `audit` and the replica's name), each
running the library's audit for that replica (inventory of every object, re-read of the least
recently verified within the budget, repair from another replica), then one table artifact
`fixity-summary`. No task caching: a fixity result must never come from a cache."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from flows.ingest import tag_this_run
from preserve import config as settings_mod
from preserve.catalog import Catalog
from preserve.core.fs import private_umask
from preserve.operations import alerts, audit


@task(name="audit-replica", cache_policy=NO_CACHE, persist_result=False, retries=1, retry_delay_seconds=30)
def audit_replica(
    config: str | None, replica: str, aip: str | None, full: bool, decrypt: bool = False
) -> audit.AuditReport:
    settings = settings_mod.load(config)
    catalog = Catalog(settings.catalog_url)
    try:
        return audit.run_audit(
            settings, catalog, audit.AuditScope(aip_id=aip, replica=replica, full=full), decrypt=decrypt
        )
    finally:
        catalog.close()


def summary_table(reports: list[audit.AuditReport]) -> list[dict[str, Any]]:
    rows = []
    for r in reports:
        replicas = sorted({c.target for c in r.checks}) or ["-"]
        rows.append(
            {
                "replica": ", ".join(replicas),
                "objects checked": len(r.checks),
                "objects re-read": sum(c.reread for c in r.checks),
                "bytes read": r.bytes_read,
                "failures": len(r.failures),
                "repairs": sum(x.ok for x in r.repairs),
                "unrepaired": len(r.unrepaired),
                "unexpected": len(r.unexpected),
                "errors": len(r.errors),
                "oldest verification": r.oldest_verified.isoformat(timespec="seconds")
                if r.oldest_verified
                else "never",
                "bytes overdue": r.bytes_overdue,
            }
        )
    return rows


def _run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    scope = " ".join(x for x in (p.get("aip"), p.get("replica")) if x) or "all replicas"
    return f"fixity-audit · {scope}" + (" · full" if p.get("full") else "") + (" · decrypt" if p.get("decrypt") else "")


@flow(name="fixity-audit", flow_run_name=_run_name, persist_result=False)
def fixity_audit_flow(
    aip: str | None = None,
    replica: str | None = None,
    full: bool = False,
    config: str | None = None,
    decrypt: bool = False,
) -> State:
    """Audit every replica (or one). Ends Failed when damage was found or a replica was
    unreachable, so the dashboard shows what needs a person. ``decrypt``: the objects of
    encrypted targets re-read are also decrypted and their plaintext checked (identity needed)."""
    private_umask()  # what this run and its tools create is for the archive's user only
    settings = settings_mod.load(config)
    names = [t.name for t in settings.targets if replica in (None, t.name)]
    tag_this_run("audit", *names)
    reports = [
        audit_replica.with_options(task_run_name=f"audit · {name}", tags=["audit", name])(
            str(settings.source), name, aip, full, decrypt
        )
        for name in names
    ]
    create_table_artifact(
        key="fixity-summary",
        table=summary_table(reports),
        description="Fixity audit: objects checked, bytes read, failures, repairs, oldest verification",
    )
    catalog = Catalog(settings.catalog_url)
    try:  # damage and AIPs at risk are announced now (webhook, email), once per condition
        alerts.sweep(settings, catalog)
    finally:
        catalog.close()
    code = max((r.exit_code for r in reports), default=0)
    data = {"exit_code": code, "report": "\n\n".join(audit.format_report(r) for r in reports)}
    if code:
        return Failed(message="damage found" if code == 1 else "a replica was unreachable", data=data)
    return Completed(message="all replicas verified", data=data)
