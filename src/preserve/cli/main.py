"""The `preserve` command: parses arguments, loads Settings once, calls the library, prints, and is
the only place that exits. `--help`, `list` and `show` never import Prefect, so they answer fast;
commands that run a flow import `flows` lazily (the one link from src/ to orchestration).

Exit codes: 0 success; 1 a submission was quarantined / damage found / restore invalid;
2 usage, configuration or operational error (storage unreachable)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from preserve import __version__
from preserve.core.units import human_bytes

EXIT_OK, EXIT_FINDING, EXIT_ERROR = 0, 1, 2


def _settings(args: argparse.Namespace) -> Any:
    from preserve import config as settings

    return settings.load(args.config)


def _catalog(settings: Any) -> Any:
    from preserve.catalog import Catalog

    return Catalog(settings.catalog_url)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (no dependencies, fast)."""
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells[1:])])


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar (bytes, speed, ETA) on stderr when it is a terminal; None otherwise,
    so piped output and logs stay clean. Yields the ``progress(done, total)`` callback."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total or None)


# -- commands ------------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    settings = _settings(args)
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        print(f"preserve: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return EXIT_ERROR
    outcomes = run_ingest(settings, paths, direct=args.direct, accept_invalid=args.accept_invalid, config=args.config)
    for o in outcomes:
        print(
            f"{o['aip_id'] or '-':36}  {o['status']:11}  {o['submission']}"
            + (f"  ({o['detail']})" if o["status"] != "stored" and o["detail"] else "")
        )
    return EXIT_OK if all(o["status"] in ("stored", "duplicate") for o in outcomes) else EXIT_FINDING


def run_ingest(
    settings: Any,
    paths: Sequence[Path],
    *,
    direct: bool = False,
    accept_invalid: bool = False,
    config: str | None = None,
) -> list[dict[str, Any]]:
    """Ingest each path, through the Prefect flow unless ``direct``; one result dict per path."""
    results = []
    if direct:
        from preserve.pipeline import ingest

        catalog = _catalog(settings)
        for p in paths:
            with progress_bar(f"ingest {p.name}") as progress:
                o = ingest.ingest_submission(settings, catalog, p, accept_invalid=accept_invalid, progress=progress)
            results.append({"submission": o.submission, "status": o.status, "aip_id": o.aip_id, "detail": o.detail})
        catalog.close()
        return results
    from flows.ingest import ingest_flow, progress_listener

    for p in paths:
        with progress_bar(f"ingest {p.name}") as progress, progress_listener(progress):
            state = ingest_flow(
                path=str(p.absolute()), config=str(settings.source), accept_invalid=accept_invalid, return_state=True
            )
        data = state.result(raise_on_failure=False)
        if not isinstance(data, dict):  # the flow itself crashed (not a quarantine)
            data = {"submission": p.name, "status": "error", "aip_id": "", "detail": str(data)}
        results.append(data)
    return results


def _outcome_line(o: Any) -> str:
    """`preserve ingest`'s line for one submission (o: a dict or anything with those fields)."""
    get = o.get if isinstance(o, dict) else (lambda k: getattr(o, k, ""))
    return f"{get('aip_id') or '-':36}  {get('status'):11}  {get('submission')}" + (
        f"  ({get('detail')})" if get("status") != "stored" and get("detail") else ""
    )


def _ingest_fn(settings: Any, catalog: Any, args: argparse.Namespace, accept_invalid: bool = False) -> Any:
    """Ingest one path through the ingest flow, or the library with --direct."""
    if args.direct:
        from preserve.pipeline import ingest

        return lambda p: ingest.ingest_submission(settings, catalog, p, accept_invalid=accept_invalid)
    return lambda p: run_ingest(settings, [p], accept_invalid=accept_invalid, config=args.config)[0]


def cmd_watch(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from preserve.intake import watch

    settings = _settings(args)
    catalog = _catalog(settings)
    ingest_fn = _ingest_fn(settings, catalog, args)
    try:
        if args.once:
            report = watch.watch_once(settings, catalog, ingest_fn, timeout=args.timeout)
            for h in report.handled:
                print(_outcome_line(h))
            for w in report.waiting:
                print(f"{'-':36}  {'waiting':11}  {w.name}  ({w.reason})")
            return EXIT_OK if report.ok else EXIT_FINDING
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(
            f"preserve: watching {settings.ingest_dir} every {settings.ingest.poll_seconds:g} s "
            f"(stable after {settings.ingest.stable_seconds:g} s); Ctrl-C stops",
            file=sys.stderr,
        )
        watch.watch_forever(
            settings, catalog, ingest_fn, stop=stop, on_handled=lambda h: print(_outcome_line(h), flush=True)
        )
        return EXIT_OK
    finally:
        catalog.close()


def cmd_retry(args: argparse.Namespace) -> int:
    from preserve.intake import release as retry

    settings = _settings(args)
    catalog = _catalog(settings)
    try:
        if args.no_ingest and args.accept_invalid:
            print("preserve: --accept-invalid needs the ingest to run now (drop --no-ingest)", file=sys.stderr)
            return EXIT_ERROR
        released = retry.release(settings, catalog, args.name, accept_invalid=args.accept_invalid)
        print(f"put back {released.source} (it was quarantined for {released.previous_problem.splitlines()[0]})")
        if args.no_ingest:
            return EXIT_OK
        outcome = _ingest_fn(settings, catalog, args, accept_invalid=args.accept_invalid)(released.source)
        print(_outcome_line(outcome))
        status = outcome.get("status") if isinstance(outcome, dict) else outcome.status
        return EXIT_OK if status in ("stored", "duplicate") else EXIT_FINDING
    finally:
        catalog.close()


def cmd_audit(args: argparse.Namespace) -> int:
    """Exit 0 all good, 1 damage found (repaired or not), 2 a replica was unreachable."""
    settings = _settings(args)
    if args.direct:
        from preserve.operations import alerts, audit

        catalog = _catalog(settings)
        try:
            report = audit.run_audit(settings, catalog, audit.AuditScope(args.aip, args.replica, args.full))
            alerts.sweep(settings, catalog)  # damage and AIPs at risk reach the operators, once each
        finally:
            catalog.close()
        print(audit.format_report(report))
        return report.exit_code
    from flows.audit import fixity_audit_flow

    state = fixity_audit_flow(
        aip=args.aip, replica=args.replica, full=args.full, config=str(settings.source), return_state=True
    )
    data = state.result(raise_on_failure=False)
    if not isinstance(data, dict):
        print(f"preserve: the audit flow crashed: {data}", file=sys.stderr)
        return EXIT_ERROR
    print(data["report"])
    return int(data["exit_code"])


def cmd_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    aip = _catalog(settings).get_aip(args.aip_id)
    if aip is None:
        print(f"preserve: no AIP {args.aip_id!r}", file=sys.stderr)
        return EXIT_ERROR
    data = aip.to_json()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(
        f"AIP      {aip.id}\nTitle    {aip.title}\nCreated  {aip.created:%Y-%m-%d %H:%M:%S %Z}\n"
        f"Status   {aip.status}\nAccess   {aip.access_level}\nSize     {human_bytes(aip.size)} in {len(aip.files)} files\n"
    )
    print(table(["path", "size", "sha256"], [(f.path, human_bytes(f.size), f.sha256) for f in aip.files]))
    print()
    print(
        table(
            ["replica", "status", "verified", "uri"],
            [
                (r.target, r.status, r.verified_at.isoformat(timespec="seconds") if r.verified_at else "-", r.uri)
                for r in aip.replicas
            ],
        )
    )
    if aip.access:
        print()
        print(table(["access", "uri"], [(a.kind, a.uri) for a in aip.access]))
    print()
    print(
        table(
            ["when", "event", "outcome", "agent", "detail"],
            [
                (
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.type.value,
                    e.outcome.value,
                    str(e.agent),
                    (e.subject + ": " if e.subject else "") + e.detail[:100],
                )
                for e in aip.events
            ],
        )
    )
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    aips = _catalog(settings).list_aips()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": a.id,
                        "title": a.title,
                        "created": a.created.isoformat(),
                        "size": a.size,
                        "files": len(a.files),
                        "status": a.status,
                        "replicas_verified": sum(r.status == "verified" for r in a.replicas),
                    }
                    for a in aips
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return EXIT_OK
    print(
        table(
            ["AIP", "title", "size", "files", "replicas", "status", "created"],
            [
                (
                    a.id,
                    a.title,
                    human_bytes(a.size),
                    len(a.files),
                    f"{sum(r.status == 'verified' for r in a.replicas)}/{len(a.replicas)}",
                    a.status,
                    a.created.strftime("%Y-%m-%d %H:%M"),
                )
                for a in aips
            ],
        )
    )
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from preserve.operations import restore

    settings = _settings(args)
    with progress_bar(f"restore {args.aip_id[:8]}") as progress:
        result = restore.restore(
            settings, _catalog(settings), args.aip_id, Path(args.dest), replica=args.replica, progress=progress
        )
    for a in result.attempts:
        print(f"skipped {a}")
    print(
        f"{result.aip_id}  restored from {result.replica} to {result.path}  bag "
        f"{'valid' if result.ok else 'INVALID'} (BagIt {result.report.version})"
    )
    return EXIT_OK if result.ok else EXIT_FINDING


def cmd_replicate(args: argparse.Namespace) -> int:
    """Back-fill replicas (a target added later). Exit 0 all present or copied, 1 a copy failed."""
    from preserve.storage import replication

    settings = _settings(args)
    catalog = _catalog(settings)
    try:
        results = replication.backfill(
            settings,
            catalog,
            aip_id=args.aip,
            target=args.target,
            on_result=lambda r: print(f"{r.aip_id:36}  {r.target:12}  {r.status:8}  {r.detail}", flush=True),
        )
    finally:
        catalog.close()
    if not results:
        print("no AIPs in the catalog")
    return EXIT_FINDING if any(r.status == "failed" for r in results) else EXIT_OK


def cmd_access(args: argparse.Namespace) -> int:
    from preserve.operations import restore

    settings = _settings(args)
    written = restore.fetch_access(settings, _catalog(settings), args.aip_id, Path(args.dest))
    if not written:
        print(f"{args.aip_id} has no access copies (not a video, or its access level withholds them)")
        return EXIT_FINDING
    for p in written:
        print(p)
    return EXIT_OK


def cmd_premis(args: argparse.Namespace) -> int:
    from preserve.packaging import premis

    settings = _settings(args)
    aip = _catalog(settings).get_aip(args.aip_id)
    if aip is None:
        print(f"preserve: no AIP {args.aip_id!r}", file=sys.stderr)
        return EXIT_ERROR
    document = premis.from_catalog(aip)
    problems = premis.validate(document)
    if args.output:
        Path(args.output).write_bytes(document)
    else:
        sys.stdout.write(document.decode("utf-8"))
    for problem in problems:
        print(f"preserve: PREMIS schema error: {problem}", file=sys.stderr)
    return EXIT_FINDING if problems else EXIT_OK


def cmd_embargo_release(args: argparse.Namespace) -> int:
    import datetime as dt

    from preserve.core.model import utcnow
    from preserve.operations import embargo

    settings = _settings(args)
    try:
        today = dt.date.fromisoformat(args.today) if args.today else utcnow().date()
    except ValueError:
        print(f"preserve: --today must be a date (YYYY-MM-DD), got {args.today!r}", file=sys.stderr)
        return EXIT_ERROR
    results = embargo.release_due(settings, _catalog(settings), today=today)
    for r in results:
        print(f"{r.aip_id:36}  {r.status:9}  {r.detail}")
    if not results:
        print(f"no embargoed AIPs (as of {today})")
    return EXIT_ERROR if any(r.status == "failed" for r in results) else EXIT_OK


def cmd_services(args: argparse.Namespace) -> int:
    from preserve.dev import services

    settings = _settings(args)
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
    from preserve.dev import demo

    settings = _settings(args)
    return demo.run(settings, direct=args.direct, print_=print)


def cmd_status(args: argparse.Namespace) -> int:
    """What came in, is everything intact, what needs me: from the catalog alone (no Prefect,
    no storage round trips), so it answers in well under a second."""
    settings = _settings(args)
    catalog = _catalog(settings)
    try:
        st = catalog.status(
            audit_interval_days=settings.audit.audit_interval_days,
            min_verified_replicas=settings.replication.min_verified_replicas,
        )
        alerts_off = not (settings.alerts.webhook_url or (settings.alerts.smtp_host and settings.alerts.smtp_to))
    finally:
        catalog.close()
    if args.json:
        data = st.to_json()
        data["alerts_configured"] = not alerts_off
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        _print_status(st, alerts_off)
    return EXIT_FINDING if st.needs_attention else EXIT_OK


def _print_status(st: Any, alerts_off: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    ok, warn = "[green]", "[bold red]"
    head = Table(title=f"preserve status · {st.at:%Y-%m-%d %H:%M} UTC", show_header=False, title_justify="left")
    head.add_row("AIPs", f"{st.aips}", f"{human_bytes(st.bytes)} in {st.files} files")
    head.add_row("being ingested", str(st.ingesting), "")
    oldest = st.oldest_verification.strftime("%Y-%m-%d %H:%M") if st.oldest_verification else "-"
    head.add_row(
        "oldest fixity check",
        oldest,
        f"{st.objects_never_verified} of {st.objects} objects never verified" if st.objects_never_verified else "",
    )
    head.add_row(
        f"overdue (> {st.audit_interval_days} days)",
        (warn if st.objects_overdue else ok) + f"{human_bytes(st.bytes_overdue)}",
        f"{st.objects_overdue} objects",
    )
    head.add_row("quarantined", (warn if st.quarantined else ok) + str(len(st.quarantined)), "")
    head.add_row("AIPs at risk", (warn if st.at_risk else ok) + str(len(st.at_risk)), "")
    head.add_row(
        "alerts not delivered",
        (warn if st.undelivered_alerts else ok) + str(st.undelivered_alerts),
        "no webhook or SMTP configured" if alerts_off else "",
    )
    con.print(head)
    if st.targets:
        t = Table(title="replicas per target", title_justify="left")
        for col in ("target", "replicas", "verified", "damaged", "missing", "objects", "bytes"):
            t.add_column(col, justify="left" if col == "target" else "right")
        for r in st.targets:
            t.add_row(
                r.target,
                str(r.replicas),
                ok + str(r.verified),
                (warn if r.damaged else "") + str(r.damaged),
                (warn if r.missing else "") + str(r.missing),
                str(r.objects),
                human_bytes(r.bytes),
            )
        con.print(t)
    if st.formats:
        t = Table(title="files by format", title_justify="left")
        for col in ("format", "files", "bytes"):
            t.add_column(col, justify="left" if col == "format" else "right")
        for f in st.formats:
            t.add_row(f.format, str(f.files), human_bytes(f.bytes))
        con.print(t)
    if st.quarantined:
        t = Table(
            title="quarantined submissions (ingest/failed/NAME/REPORT.txt; `preserve retry NAME`)", title_justify="left"
        )
        for col in ("submission", "since", "attempts", "reason"):
            t.add_column(col)
        for q in st.quarantined:
            t.add_row(q.name, f"{q.since:%Y-%m-%d %H:%M}", str(q.attempts), q.reason[:160])
        con.print(t)
    if st.at_risk:
        t = Table(title="AIPs at risk", title_justify="left")
        for col in ("AIP", "title", "verified replicas", "why"):
            t.add_column(col)
        for a in st.at_risk:
            t.add_row(a.aip_id, a.title, str(a.verified_replicas), "; ".join(a.reasons))
        con.print(t)


def cmd_alerts(args: argparse.Namespace) -> int:
    from preserve.operations import alerts

    settings = _settings(args)
    catalog = _catalog(settings)
    try:
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
    finally:
        catalog.close()


def cmd_serve(args: argparse.Namespace) -> int:
    """The Prefect server with the dashboard and the served deployments (flows/serve.py)."""
    import signal

    settings = _settings(args)
    if args.no_server:
        if not os.environ.get("PREFECT_API_URL"):
            print("preserve: --no-server needs PREFECT_API_URL (e.g. http://prefect:4200/api)", file=sys.stderr)
            return EXIT_ERROR
    else:
        os.environ["PREFECT_API_URL"] = f"http://{settings.serve.host}:{settings.serve.port}/api"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

    def terminate(*_: Any) -> None:  # docker stop / systemd: the same clean stop as Ctrl-C
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


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="preserve", description="Ingest, replicate and audit an archive of films.")
    p.add_argument("--version", action="version", version=f"preserve {__version__}")
    p.add_argument("--config", default=None, help="config file (default: $PRESERVE_CONFIG or config/preserve.toml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

    sp = add("ingest", cmd_ingest, "ingest submissions (files or folders) now")
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--direct", action="store_true", help="run the library pipeline without Prefect")
    sp.add_argument(
        "--accept-invalid",
        action="store_true",
        help="preserve media that does not decode cleanly (an archivist's recorded decision)",
    )
    sp = add("watch", cmd_watch, "watch the ingest folder and ingest each submission once its copy is complete")
    sp.add_argument(
        "--once",
        action="store_true",
        help="one pass: wait until what is there has settled (at most --timeout), ingest what is ready, exit",
    )
    sp.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --once: how long to wait for entries to settle (default 2 x stable_seconds + poll)",
    )
    sp.add_argument("--direct", action="store_true", help="run the library pipeline without Prefect")
    sp = add("retry", cmd_retry, "put a quarantined submission (failed/NAME) back and ingest it again")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument(
        "--accept-invalid",
        action="store_true",
        help="preserve media that does not decode cleanly, as it is (recorded as an archivist's decision)",
    )
    sp.add_argument("--no-ingest", action="store_true", help="only move it back; the watcher takes it from there")
    sp.add_argument("--direct", action="store_true", help="run the library pipeline without Prefect")
    sp = add("audit", cmd_audit, "audit fixity of stored copies now, repairing damage from a good replica")
    sp.add_argument("--aip", default=None, help="only this AIP")
    sp.add_argument("--replica", default=None, help="only this replica (target name)")
    sp.add_argument("--full", action="store_true", help="re-read every object in scope, ignoring the byte budget")
    sp.add_argument("--direct", action="store_true", help="run the library audit without Prefect")
    sp = add("show", cmd_show, "show one AIP: files, replicas, access copies, events")
    sp.add_argument("aip_id")
    sp.add_argument("--json", action="store_true")
    sp = add("list", cmd_list, "list AIPs")
    sp.add_argument("--json", action="store_true")
    sp = add("restore", cmd_restore, "download an AIP's bag into DEST/AIP_ID and validate it")
    sp.add_argument("aip_id")
    sp.add_argument("dest")
    sp.add_argument("--replica", default=None, help="only this replica (default: in order of preference)")
    sp = add(
        "replicate",
        cmd_replicate,
        "copy AIPs to targets that lack a verified replica (e.g. a target added later), verified and recorded",
    )
    sp.add_argument("--aip", default=None, metavar="ID", help="only this AIP (default: every AIP)")
    sp.add_argument(
        "--target", default=None, metavar="NAME", help="only this target (default: every configured target)"
    )
    sp = add("access", cmd_access, "write an AIP's access copies (proxy, poster) into DEST")
    sp.add_argument("aip_id")
    sp.add_argument("dest")
    sp = add(
        "premis", cmd_premis, "print an AIP's full PREMIS 3.0 record (every event so far), validated against the XSD"
    )
    sp.add_argument("aip_id")
    sp.add_argument("--output", "-o", default=None, help="write it to this file instead of standard output")
    sp = add(
        "embargo-release",
        cmd_embargo_release,
        "publish the access copies of embargoed AIPs whose embargo date has come (run daily)",
    )
    sp.add_argument("--today", default=None, help="release as if today were this date (YYYY-MM-DD)")
    sp = add("services", cmd_services, "start/stop/show the embedded S3-compatible server (SeaweedFS, loopback)")
    sp.add_argument("action", choices=["up", "down", "status"])
    sp = add("status", cmd_status, "holdings, replicas, fixity age, quarantined submissions, AIPs at risk")
    sp.add_argument("--json", action="store_true", help="machine-readable (exit 1 when something needs attention)")
    sp = add("alerts", cmd_alerts, "list alerts, send a test alert, or send what the catalog's state calls for")
    sp.add_argument("action", nargs="?", choices=["list", "test", "sweep"], default="list")
    sp.add_argument("--limit", type=int, default=30)
    sp = add("serve", cmd_serve, "Prefect server + dashboard (127.0.0.1:4200) and the scheduled deployments")
    sp.add_argument("--no-server", action="store_true", help="use the server at $PREFECT_API_URL instead")
    sp.add_argument(
        "--deployments",
        default="",
        metavar="NAMES",
        help="comma-separated subset of ingest-watch,fixity-audit,embargo-release",
    )
    sp = add("demo", cmd_demo, "start services, generate sample films, ingest them, print a summary")
    sp.add_argument("--direct", action="store_true", help="run without Prefect")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from preserve.core.errors import ConfigError, PreserveError, StorageUnavailable

    try:
        return int(args.func(args))
    except (ConfigError, StorageUnavailable) as exc:
        print(f"preserve: {exc}\n  what to do: {exc.advice}", file=sys.stderr)
        return EXIT_ERROR
    except PreserveError as exc:
        print(f"preserve: {exc}\n  what to do: {exc.advice}", file=sys.stderr)
        return EXIT_FINDING if args.command in ("restore",) else EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
