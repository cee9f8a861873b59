"""`preserve withdraw` and `preserve set-access`: life after ingest, an operator's decisions about
who may see a film. Both run the library first (the copies are removed or moved, and verified,
without waiting for Prefect), then the Prefect side of a withdrawal: the film's ingest runs and
their artifacts are removed from the dashboard (flows/withdraw.py; skipped with --direct, and
left to `preserve serve`'s housekeeping when no Prefect API answers). Exit 0 once every copy is
verified where the decision wants it (a withdrawal: gone everywhere); 1 if anything remains (the
output says what; the change stays pending and is retried); 2 on usage errors (unknown AIP, bad
level or date). Side effects: those of preserve.operations.withdraw / access_change, stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING

from preserve.cli.invocation import EXIT_ERROR, EXIT_FINDING, EXIT_OK, load_settings, open_catalog, operator

if TYPE_CHECKING:
    from preserve.config import Settings
    from preserve.operations.access_change import AccessChangeReport
    from preserve.operations.withdraw import WithdrawalReport


def cmd_withdraw(args: argparse.Namespace) -> int:
    """Make a film dark now, everywhere, verified."""
    from preserve.operations import withdraw

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        report = withdraw.withdraw(settings, catalog, args.aip_id, reason=args.reason, operator=operator(args))
    for line in withdrawal_lines(report):
        print(line, flush=True)
    if not args.direct:
        _clean_dashboard(settings, report.aip_id)
    return EXIT_OK if report.ok else EXIT_FINDING


def cmd_set_access(args: argparse.Namespace) -> int:
    """Change a film's access level (open, restricted, embargoed --until DATE, dark)."""
    from preserve.operations import access_change

    settings = load_settings(args)
    try:
        until = dt.date.fromisoformat(args.until) if args.until else None
    except ValueError:
        print(f"preserve: --until must be a date (YYYY-MM-DD), got {args.until!r}", file=sys.stderr)
        return EXIT_ERROR
    with open_catalog(settings) as catalog:
        report = access_change.set_access(
            settings,
            catalog,
            args.aip_id,
            args.level,
            until=until,
            reason=args.reason,
            operator=operator(args),
            remake=getattr(args, "remake", False),
        )
    for line in change_lines(report):
        print(line, flush=True)
    if report.withdrawal is not None and not args.direct:
        _clean_dashboard(settings, report.aip_id)
    return EXIT_OK if report.ok else EXIT_FINDING


def withdrawal_lines(r: WithdrawalReport) -> list[str]:
    """What `preserve withdraw` prints: the verdict first, then what was removed and what remains."""
    where = ", ".join(r.removed) or "no access location"
    lines: list[str] = []
    if r.ok and r.nothing_was_public:
        lines.append(f"{r.aip_id}  dark  nothing was public: no access copy at {where} (verified), no local copy")
    elif r.ok:
        lines.append(
            f"{r.aip_id}  dark  withdrawn: {r.versions_removed} object version(s) removed; verified by listing every "
            f"version that none remains at {where} ({r.seconds:.1f} s)"
        )
    else:
        lines.append(f"{r.aip_id}  NOT dark yet  withdrawal not complete; still there or not checked:")
    for location, keys in r.removed.items():
        lines += [f"  removed  {location:20}  {key}" for key in keys]
    lines += [f"  removed  {'local':20}  <var>/{rel}" for rel in r.local_removed]
    if not r.ok:
        lines += [f"  REMAINS  {line}" for line in r.remaining_lines()]
        lines.append(
            "  the film stays withdrawn (nothing will publish it); run this command again once the location "
            "answers, or let `preserve serve` retry it"
        )
    return lines


def change_lines(r: AccessChangeReport) -> list[str]:
    """What `preserve set-access` prints."""
    if r.withdrawal is not None:
        return withdrawal_lines(r.withdrawal)
    if r.change_id == 0:
        return [f"{r.aip_id}  {r.to_level}  {r.note}"]
    lines: list[str] = []
    if r.ok:
        until = f" until {r.until}" if r.until else ""
        lines.append(
            f"{r.aip_id}  {r.to_level}{until}  changed from {r.from_level}" + (f" ({r.note})" if r.note else "")
        )
    else:
        lines.append(f"{r.aip_id}  still {r.from_level}  change to {r.to_level} NOT complete; still there or failed:")
    for c in r.copies:
        lines.append(f"  {c.kind:14} {c.uri}  {r.how.get(c.kind, '')}")
    for location, keys in r.removed.items():
        lines += [f"  removed  {location:20}  {key}" for key in keys]
    if not r.ok:
        lines += [f"  REMAINS  {line}" for line in r.remaining_lines()]
        lines.append("  the change stays pending; run this command again, or let `preserve serve` retry it")
    return lines


def _clean_dashboard(settings: Settings, aip_id: str) -> None:
    """The Prefect side of a withdrawal: never decides the exit code (the copies do). Against
    $PREFECT_API_URL, else the dashboard of a running `preserve serve`, else a temporary API on
    Prefect's own database (runs of `preserve ingest` without a server); only the first two mark
    the dashboard clean, so a `preserve serve` started later still cleans its own."""
    import os

    from preserve.catalog import Catalog

    try:
        from flows.serve import api_url, healthy

        final = bool(os.environ.get("PREFECT_API_URL"))
        if not final and healthy(api_url(settings)):
            os.environ["PREFECT_API_URL"], final = api_url(settings), True
        if not final:
            from preserve.dev.daemon import use_temporary_prefect_api

            use_temporary_prefect_api(os.environ)  # before Prefect is imported
        from flows.withdraw import clean_dashboard

        with Catalog(settings.catalog_url) as catalog:
            done = clean_dashboard(settings, catalog, aip_id, final=final)
    except Exception as exc:  # noqa: BLE001 - the film is withdrawn; the dashboard can be cleaned later
        print(
            f"  dashboard  not cleaned yet ({type(exc).__name__}); `preserve serve` removes its runs at the next "
            "housekeeping round, or run this command again",
            file=sys.stderr,
        )
        return
    print(f"  dashboard  {done.summary()}")
