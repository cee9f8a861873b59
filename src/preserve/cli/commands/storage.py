"""`preserve restore`, `replicate` and `audit`: the stored copies themselves. Restore downloads and
validates a bag; replicate back-fills missing replicas; audit re-reads objects (through the Prefect
fixity-audit flow unless --direct) and repairs damage from a good replica. Side effects: storage
reads and writes, catalog records, files under the restore destination, stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from preserve.cli.invocation import EXIT_ERROR, EXIT_FINDING, EXIT_OK, flow_data, load_settings, open_catalog
from preserve.cli.output import progress_bar


def cmd_restore(args: argparse.Namespace) -> int:
    from preserve.operations import restore

    settings = load_settings(args)
    with open_catalog(settings) as catalog, progress_bar(f"restore {args.aip_id[:8]}") as progress:
        result = restore.restore(
            settings,
            catalog,
            args.aip_id,
            Path(args.dest),
            replica=args.replica,
            progress=progress,
            version=getattr(args, "version", None),
        )
    for a in result.attempts:
        print(f"skipped {a}")
    print(
        f"{result.aip_id}  version {result.version} restored from {result.replica} to {result.path}  bag "
        f"{'valid' if result.ok else 'INVALID'} (BagIt {result.report.version})"
    )
    return EXIT_OK if result.ok else EXIT_FINDING


def cmd_replicate(args: argparse.Namespace) -> int:
    """Back-fill replicas (a target added later). Exit 0 all present or copied, 1 a copy failed."""
    from preserve.operations import journal

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        results = journal.backfill(
            settings,
            catalog,
            aip_id=args.aip,
            target=args.target,
            on_result=lambda r: print(f"{r.aip_id:36}  {r.target:12}  {r.status:8}  {r.detail}", flush=True),
        )
    if not results:
        print("no AIPs in the catalog")
    return EXIT_FINDING if any(r.status == "failed" for r in results) else EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    """Exit 0 all good, 1 damage found (repaired or not), 2 a replica was unreachable (or, with
    --decrypt, an encrypted target's keys could not be opened)."""
    settings = load_settings(args)
    if args.direct:
        from preserve.operations import alerts, audit

        with open_catalog(settings) as catalog:
            report = audit.run_audit(
                settings, catalog, audit.AuditScope(args.aip, args.replica, args.full), decrypt=args.decrypt
            )
            alerts.sweep(settings, catalog)  # damage and AIPs at risk reach the operators, once each
        print(audit.format_report(report))
        return report.exit_code
    from flows.audit import fixity_audit_flow

    state = fixity_audit_flow(
        aip=args.aip,
        replica=args.replica,
        full=args.full,
        config=str(settings.source),
        decrypt=args.decrypt,
        return_state=True,
    )
    result = state.result(raise_on_failure=False)
    data = flow_data(result)
    if data is None:
        print(f"preserve: the audit flow crashed: {result}", file=sys.stderr)
        return EXIT_ERROR
    print(data["report"])
    return int(data["exit_code"])
