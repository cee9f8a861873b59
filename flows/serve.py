"""`preserve serve`: a Prefect server with the dashboard (http://127.0.0.1:4200 by default, SQLite
under var/prefect unless [serve] prefect_database_url or PREFECT_API_DATABASE_CONNECTION_URL
says otherwise) and the served deployments:

    ingest-watch     every [serve] watch_interval_seconds   flows/watch.py
    fixity-audit     [audit] cron                           flows/audit.py
    embargo-release  daily, [serve] embargo_cron            flows/embargo.py
    withdraw         on demand, from the dashboard           flows/withdraw.py
                     (parameters: aip_id, reason, operator)

plus a housekeeping thread (alert sweep, reconciling runs left Running by dead workers, finishing
withdrawals and access changes left pending, removing withdrawn films' runs from the dashboard,
writing the journal records beside the AIPs that an operation could not write, and the scheduled
catalog backup into [catalog] backup_dir with its pruning).
Ctrl-C (or SIGTERM) stops the served deployments first and the server last: the other way round,
serve hangs on shutdown (FACTS.md). The server runs in its own session, so the terminal's Ctrl-C
reaches only this process, which then stops it (start, health check and stop through
`preserve.dev.daemon`, as for the embedded SeaweedFS). Side effects: a server process, its
database, its log var/prefect/server.log, Prefect deployments and schedules."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import sys
import threading
from typing import Any

from preserve.catalog import Catalog
from preserve.catalog import backup as catalog_backup
from preserve.config import Settings
from preserve.core import redact
from preserve.core.units import human_bytes
from preserve.dev import daemon
from preserve.operations import alerts, journal

log = logging.getLogger("preserve.serve")

#: (module, flow name, deployment name): a flow that is not there yet is skipped with a warning,
#: so a deployment is added by adding its module
DEPLOYMENTS = (
    ("flows.watch", "ingest-watch", "ingest-watch"),
    ("flows.audit", "fixity-audit", "fixity-audit"),
    ("flows.embargo", "embargo-release", "embargo-release"),
    ("flows.withdraw", "withdraw", "withdraw"),
)
HEALTH_TIMEOUT = 240.0


def api_url(settings: Settings) -> str:
    return f"http://{settings.serve.host}:{settings.serve.port}/api"


def server_env(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """The environment of the Prefect server process: no telemetry, its files under var/prefect,
    our database URL (an explicit PREFECT_API_DATABASE_CONNECTION_URL wins)."""
    home = settings.var_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(base)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.setdefault("PREFECT_HOME", str(home))
    if not env.get("PREFECT_API_DATABASE_CONNECTION_URL"):
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
            settings.serve.prefect_database_url or f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        )
    env["PREFECT_UI_API_URL"] = api_url(settings)
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another server
    return env


def healthy(url: str, timeout: float = 2.0) -> bool:
    return daemon.answers(f"{url}/health", timeout)


def start_server(settings: Settings, env: dict[str, str]) -> daemon.Started:
    """Start `prefect server start` in a new session (Ctrl-C on the terminal does not reach it) and
    wait until /api/health answers. Its output goes to var/prefect/server.log."""
    argv = [sys.executable, "-m", "prefect", "server", "start"]
    argv += ["--host", settings.serve.host, "--port", str(settings.serve.port)]
    server = daemon.start(argv, log_path=settings.var_dir / "prefect" / "server.log", env=server_env(settings, env))
    url = api_url(settings)
    if daemon.wait_healthy(server.pid, lambda: healthy(url), HEALTH_TIMEOUT, interval=0.5):
        return server
    if server.returncode is not None:
        raise RuntimeError(f"the Prefect server exited with status {server.returncode}; see {server.log}")
    stop_server(server)
    raise RuntimeError(f"the Prefect server did not answer within {HEALTH_TIMEOUT:.0f} s")


def stop_server(server: daemon.Started, timeout: float = 30.0) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it lingers."""
    daemon.stop(server.pid, name="Prefect server", timeout=timeout, kill_timeout=10.0, group=True)


def _find_flow(module_name: str, flow_name: str) -> Any | None:
    from prefect import Flow

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return next((v for v in vars(module).values() if isinstance(v, Flow) and v.name == flow_name), None)


def deployments(settings: Settings, config: str, only: set[str] | None = None) -> list[Any]:
    """The RunnerDeployments to serve, each with ``config`` as its parameter and tags for the
    dashboard's filters."""
    schedules: dict[str, dict[str, Any]] = {
        "ingest-watch": {"interval": dt.timedelta(seconds=settings.serve.watch_interval_seconds)},
        "fixity-audit": {"cron": settings.audit.cron},
        "embargo-release": {"cron": settings.serve.embargo_cron},
        "withdraw": {},  # run by a person, from the dashboard
    }
    tags = {
        "ingest-watch": ["ingest"],
        "fixity-audit": ["audit"],
        "embargo-release": ["access"],
        "withdraw": ["access"],
    }
    out = []
    for module, flow_name, name in DEPLOYMENTS:
        if only is not None and name not in only:
            continue
        fl = _find_flow(module, flow_name)
        if fl is None:
            log.warning("deployment %s not served: %s has no flow %r yet", name, module, flow_name)
            continue
        params = {"config": config}
        out.append(
            fl.to_deployment(
                name=name,
                parameters=params,
                tags=tags[name],
                description=(fl.description or "").strip().splitlines()[0] if fl.description else None,
                **schedules[name],
            )
        )
    return out


def journal_catch_up(settings: Settings, catalog: Catalog) -> list[tuple[int, str]]:
    """Write the journal (event records, version inventories) beside every AIP that has some still
    pending on a target (an operation's own flush failed, or a target was down): (log level, line)
    pairs. A target that fails is in the report, not raised; the next round tries it again."""
    report = journal.flush(settings, catalog)
    out = [(logging.WARNING, line) for line in report.lines()]
    if report.records or any(w.inventories for w in report.entries):
        inventories = sum(len(w.inventories) for w in report.entries)
        line = f"journal: {report.records} event record(s) with {report.events} event(s), {inventories} inventories"
        out.insert(0, (logging.INFO, f"{line} written in {report.seconds:.1f} s"))
    return out


def scheduled_backup(settings: Settings, now: dt.datetime | None = None) -> list[str]:
    """The catalog backup every [catalog] backup_every_hours into [catalog] backup_dir (nothing when
    it is not set), then the oldest beyond backup_keep removed. When the last one was made is read
    from the newest backup's name, so a restart does not back up again at once. Raises on failure."""
    directory = settings.catalog_backup_dir
    if directory is None:
        return []
    c = settings.catalog
    result, removed = catalog_backup.scheduled(
        settings.catalog_url, directory, every_hours=c.backup_every_hours, keep=c.backup_keep, now=now
    )
    if result is None:
        return []
    lines = [f"catalog backed up to {result.path} ({human_bytes(result.bytes)}, {result.seconds:.1f} s, integrity ok)"]
    return lines + [f"old catalog backup removed: {p.name}" for p in removed]


def housekeeping(settings: Settings, stop: threading.Event, first_delay: float = 5.0) -> None:
    """Every [serve] housekeeping_minutes: finish withdrawals and access changes left pending (and
    clean withdrawn films' runs off the dashboard), send the alerts the catalog calls for (and retry
    undelivered ones), set ingest runs of dead workers to Crashed, write the journal records still
    pending, and back the catalog up when that is due. Each part fails on its own: logged, redacted."""
    from flows.reconcile import reconcile_ingest_runs
    from flows.withdraw import housekeeping as access_housekeeping

    if stop.wait(first_delay):
        return
    while True:
        try:
            catalog = Catalog(settings.catalog_url)
            try:
                for line in access_housekeeping(settings, catalog):  # first: a film being withdrawn is urgent
                    log.info("%s", line)
                for alert, _ in alerts.sweep(settings, catalog):
                    log.info("alert sent: %s", alert.title)
                for r in reconcile_ingest_runs(catalog):
                    log.warning("run %s set to Crashed: %s", r["run"], r["reason"])
            finally:
                catalog.close()
        except Exception as exc:  # noqa: BLE001 - housekeeping must not stop serving
            log.error("housekeeping failed: %s", redact.describe(exc))
        try:  # on its own: a Prefect server that does not answer must not hold the journal up
            with Catalog(settings.catalog_url) as catalog:
                for level, line in journal_catch_up(settings, catalog):
                    log.log(level, "%s", line)
        except Exception as exc:  # noqa: BLE001 - housekeeping must not stop serving
            log.error("journal catch-up failed: %s", redact.describe(exc))
        try:  # last: the backup then holds what this round recorded
            for line in scheduled_backup(settings):
                log.info("%s", line)
        except Exception as exc:  # noqa: BLE001 - housekeeping must not stop serving
            log.error("catalog backup failed: %s", redact.describe(exc))
        if stop.wait(settings.serve.housekeeping_minutes * 60):
            return


def serve(settings: Settings, config: str, *, start: bool = True, only: set[str] | None = None) -> int:
    """Run until Ctrl-C/SIGTERM. ``start``: also run the Prefect server (else PREFECT_API_URL must
    point at one). Returns 0 after a clean stop."""
    from prefect import serve as prefect_serve

    server = start_server(settings, dict(os.environ)) if start else None
    stop = threading.Event()
    keeper = threading.Thread(target=housekeeping, args=(settings, stop), name="housekeeping", daemon=True)
    try:
        deps = deployments(settings, config, only)
        keeper.start()
        prefect_serve(*deps, print_starting_message=True)  # returns on Ctrl-C / SIGTERM
    finally:
        stop.set()  # 1. the deployments have stopped (serve returned); 2. housekeeping; 3. the server
        if keeper.is_alive():
            keeper.join(timeout=30)
        if server is not None:
            stop_server(server)
    return 0
