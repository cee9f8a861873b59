"""`preserve status`, `alerts`, `embargo-release`, `services`, `serve` and `demo`: running the
archive day to day. Side effects: stdout/stderr; alerts send messages, embargo-release publishes
access copies, services starts or stops the embedded object store, serve runs the Prefect server
and deployments until stopped, demo ingests sample films."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from preserve.cli.invocation import EXIT_ERROR, EXIT_FINDING, EXIT_OK, load_settings, open_catalog
from preserve.cli.output import print_status, table

if TYPE_CHECKING:
    from types import FrameType


def cmd_status(args: argparse.Namespace) -> int:
    """What came in, is everything intact, what needs me: from the catalog alone (no Prefect,
    no storage round trips), so it answers in well under a second."""
    settings = load_settings(args)
    from preserve.catalog.views import with_targets

    with open_catalog(settings) as catalog:
        st = catalog.status(
            audit_interval_days=settings.audit.audit_interval_days,
            min_verified_replicas=settings.replication.min_verified_replicas,
        )
    st = with_targets(st, settings.targets)  # whether each target encrypts, its custody: the config's
    alerts_off = not (settings.alerts.webhook_url or (settings.alerts.smtp_host and settings.alerts.smtp_to))
    if args.json:
        from preserve.report.views import status_json

        data = status_json(st)
        data["alerts_configured"] = not alerts_off
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print_status(st, alerts_off)
    return EXIT_FINDING if st.needs_attention else EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    from preserve.operations import alerts

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        if args.action == "test":
            result = alerts.deliver(
                alerts.Alert(alerts.TEST, "test", "test", "a test alert from `preserve alerts test`"),
                settings.alerts,
                settings.archive.organization,
                settings.alerts.smtp_login(),
            )
            if not result:
                print(
                    "preserve: no alert channel configured ([alerts] webhook_url / smtp_host + smtp_to)",
                    file=sys.stderr,
                )
                return EXIT_ERROR
            for d in result:
                print(f"{d.channel:8} {'delivered' if d.ok else 'FAILED: ' + d.error}")
            return EXIT_OK if all(d.ok for d in result) else EXIT_FINDING
        if args.action == "sweep":
            for alert, deliveries in alerts.sweep(settings, catalog):
                print(
                    f"{alert.kind:14} {alert.subject}  "
                    + ", ".join(f"{d.channel} {'ok' if d.ok else 'failed'}" for d in deliveries)
                )
            return EXIT_OK
        rows = catalog.alerts(limit=args.limit)
    print(
        table(
            ["when", "kind", "subject", "delivered", "summary"],
            [
                (
                    a.created.strftime("%Y-%m-%d %H:%M"),
                    a.kind,
                    a.subject,
                    a.delivered.strftime("%H:%M") if a.delivered else f"no ({a.attempts} tries)",
                    a.summary[:90],
                )
                for a in rows
            ],
        )
    )
    return EXIT_OK


def cmd_embargo_release(args: argparse.Namespace) -> int:
    import datetime as dt

    from preserve.core.model import utcnow
    from preserve.operations import embargo

    settings = load_settings(args)
    try:
        today = dt.date.fromisoformat(args.today) if args.today else utcnow().date()
    except ValueError:
        print(f"preserve: --today must be a date (YYYY-MM-DD), got {args.today!r}", file=sys.stderr)
        return EXIT_ERROR
    with open_catalog(settings) as catalog:
        results = embargo.release_due(settings, catalog, today=today)
    for r in results:
        print(f"{r.aip_id:36}  {r.status:9}  {r.detail}")
    if not results:
        print(f"no embargoed AIPs (as of {today})")
    return EXIT_ERROR if any(r.status == "failed" for r in results) else EXIT_OK


def cmd_services(args: argparse.Namespace) -> int:
    from preserve.dev import services

    settings = load_settings(args)
    if args.action == "up":
        st = services.up(settings)
    elif args.action == "down":
        services.down(settings)
        st = services.status(settings)
    else:
        st = services.status(settings)
    print(st)
    return EXIT_OK if (st.running or args.action == "down") else EXIT_ERROR


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo ingests through the CLI's own runner (the Prefect flow, or the library with
    --direct), handed in, so the demo module itself never reaches the flows."""
    from preserve.cli.commands.ingest import ingest_paths
    from preserve.dev import demo

    settings = load_settings(args)
    return demo.run(settings, lambda paths: ingest_paths(settings, paths, direct=args.direct), print_=print)


def cmd_serve(args: argparse.Namespace) -> int:
    """The Prefect server with the dashboard and the served deployments (flows/serve.py)."""
    import signal

    settings = load_settings(args)
    if args.no_server:
        if not os.environ.get("PREFECT_API_URL"):
            print("preserve: --no-server needs PREFECT_API_URL (e.g. http://prefect:4200/api)", file=sys.stderr)
            return EXIT_ERROR
    else:
        os.environ["PREFECT_API_URL"] = f"http://{settings.serve.host}:{settings.serve.port}/api"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

    def terminate(
        _signum: int, _frame: FrameType | None
    ) -> None:  # docker stop / systemd: the same clean stop as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from flows.serve import serve

    only = set(args.deployments.split(",")) if args.deployments else None
    if not args.no_server:
        print(
            f"preserve: dashboard at http://{settings.serve.host}:{settings.serve.port} (starting the server); "
            "Ctrl-C stops everything",
            file=sys.stderr,
        )
    return serve(settings, str(settings.source), start=not args.no_server, only=only)
