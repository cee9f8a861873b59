"""The `preserve` command: parses the arguments and dispatches to a command (preserve.cli.commands),
which loads Settings once, calls the library and prints; the command line is the only part of
preserve that exits (main returns the code). `--help`, `list` and `show` never import Prefect, so
they answer fast; commands that run a flow import `flows` lazily (the one link from src/ to
orchestration). Side effects: none of its own beyond stderr for errors.

Exit codes (preserve.cli.invocation): 0 success; 1 a submission was quarantined / damage found /
restore invalid; 2 usage, configuration or operational error (storage unreachable)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from preserve import __version__
from preserve.cli.commands import (
    aips,
    amend,
    backup,
    catalog,
    deaccession,
    ingest,
    keys,
    lifecycle,
    operate,
    storage,
)
from preserve.cli.invocation import EXIT_ERROR, EXIT_FINDING, EXIT_OK

__all__ = ["EXIT_ERROR", "EXIT_FINDING", "EXIT_OK", "build_parser", "main"]


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="preserve", description="Ingest, replicate and audit an archive of films.")
    p.add_argument("--version", action="version", version=f"preserve {__version__}")
    p.add_argument("--config", default=None, help="config file (default: $PRESERVE_CONFIG or config/preserve.toml)")
    p.add_argument(
        "--operator",
        default=None,
        help="who is deciding, for the record (default: $PRESERVE_OPERATOR or the login name)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

    sp = add("ingest", ingest.cmd_ingest, "ingest submissions (files or folders) now")
    sp.add_argument("paths", nargs="+", metavar="PATH")
    sp.add_argument("--direct", action="store_true", help="run the library pipeline without Prefect")
    sp.add_argument(
        "--accept-invalid",
        action="store_true",
        help="preserve media that does not decode cleanly (an archivist's recorded decision)",
    )
    sp = add("watch", ingest.cmd_watch, "watch the ingest folder and ingest each submission once its copy is complete")
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
    sp = add("retry", ingest.cmd_retry, "put a quarantined submission (failed/NAME) back and ingest it again")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument(
        "--accept-invalid",
        action="store_true",
        help="preserve media that does not decode cleanly, as it is (recorded as an archivist's decision)",
    )
    sp.add_argument("--no-ingest", action="store_true", help="only move it back; the watcher takes it from there")
    sp.add_argument("--direct", action="store_true", help="run the library pipeline without Prefect")
    sp = add("audit", storage.cmd_audit, "audit fixity of stored copies now, repairing damage from a good replica")
    sp.add_argument("--aip", default=None, help="only this AIP")
    sp.add_argument("--replica", default=None, help="only this replica (target name)")
    sp.add_argument("--full", action="store_true", help="re-read every object in scope, ignoring the byte budget")
    sp.add_argument(
        "--decrypt",
        action="store_true",
        help="also decrypt what is re-read on encrypted targets and check the plaintext (needs their identities)",
    )
    sp.add_argument("--direct", action="store_true", help="run the library audit without Prefect")
    sp = add("show", aips.cmd_show, "show one AIP: files, replicas, access copies, events")
    sp.add_argument("aip_id")
    sp.add_argument("--json", action="store_true")
    sp = add("list", aips.cmd_list, "list AIPs")
    sp.add_argument("--json", action="store_true")
    sp = add("restore", storage.cmd_restore, "download an AIP's bag into DEST/AIP_ID and validate it")
    sp.add_argument("aip_id")
    sp.add_argument("dest")
    sp.add_argument("--replica", default=None, help="only this replica (default: in order of preference)")
    sp.add_argument(
        "--version", type=int, default=None, metavar="N", help="this version of the AIP (default: the latest)"
    )
    sp = add(
        "amend",
        amend.cmd_amend,
        "write a new version of an AIP with a corrected sidecar (metadata.yaml); the payload is not uploaded again",
    )
    sp.add_argument("aip_id", metavar="AIP_ID")
    sp.add_argument("--sidecar", required=True, metavar="FILE", help="the corrected metadata sidecar (YAML)")
    sp.add_argument("--reason", required=True, help="why (recorded with the new version and the operator)")
    cat = sub.add_parser("catalog", help="rebuild the catalog from storage, or back it up", description="the catalog")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    sp = cat_sub.add_parser("rebuild", help="build the catalog from one replica alone, into an empty database")
    sp.set_defaults(func=catalog.cmd_rebuild)
    sp.add_argument("--from", dest="source", required=True, metavar="TARGET", help="the replica (target name) to read")
    sp.add_argument("--merge", action="store_true", help="add to a catalog that is not empty (AIPs it lacks only)")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")
    sp = cat_sub.add_parser("backup", help="a consistent online copy of the catalog (SQLite) into DEST")
    sp.set_defaults(func=backup.cmd_backup)
    sp.add_argument("dest", metavar="DEST", help="a directory (a timestamped file is written there) or a file name")
    sp = add(
        "replicate",
        storage.cmd_replicate,
        "copy AIPs to targets that lack a verified replica (e.g. a target added later), verified and recorded",
    )
    sp.add_argument("--aip", default=None, metavar="ID", help="only this AIP (default: every AIP)")
    sp.add_argument(
        "--target", default=None, metavar="NAME", help="only this target (default: every configured target)"
    )
    sp = add("access", aips.cmd_access, "write an AIP's access copies (proxy, poster) into DEST")
    sp.add_argument("aip_id")
    sp.add_argument("dest")
    sp = add(
        "premis",
        aips.cmd_premis,
        "print an AIP's full PREMIS 3.0 record (every event so far), validated against the XSD",
    )
    sp.add_argument("aip_id")
    sp.add_argument("--output", "-o", default=None, help="write it to this file instead of standard output")
    sp = add(
        "withdraw",
        lifecycle.cmd_withdraw,
        "make a film dark now: every access copy (every version) removed from every access location, verified",
    )
    sp.add_argument("aip_id", metavar="AIP_ID")
    sp.add_argument("--reason", required=True, help="why (recorded with the decision and the operator)")
    sp.add_argument(
        "--direct", action="store_true", help="skip the dashboard clean-up (left to `preserve serve`'s housekeeping)"
    )
    sp = add(
        "set-access",
        lifecycle.cmd_set_access,
        "change a film's access level: open, restricted, embargoed (--until), dark; copies moved and verified",
    )
    sp.add_argument("aip_id", metavar="AIP_ID")
    sp.add_argument("level", metavar="LEVEL", help="open | restricted | embargoed | dark")
    sp.add_argument("--until", default=None, metavar="YYYY-MM-DD", help="the embargo's end (with embargoed)")
    sp.add_argument("--reason", required=True, help="why (recorded with the decision and the operator)")
    sp.add_argument("--direct", action="store_true", help="with dark: skip the dashboard clean-up")
    sp.add_argument(
        "--remake",
        action="store_true",
        help="make every access copy again from the preserved originals and the current sidecar, at this level "
        "(after an amend naming a subtitle file's language or encoding)",
    )
    sp = add(
        "embargo-release",
        operate.cmd_embargo_release,
        "publish the access copies of embargoed AIPs whose embargo date has come (run daily)",
    )
    sp.add_argument("--today", default=None, help="release as if today were this date (YYYY-MM-DD)")
    deaccession.add_parser(sub)
    keys.add_parser(sub)
    sp = add(
        "services", operate.cmd_services, "start/stop/show the embedded S3-compatible server (SeaweedFS, loopback)"
    )
    sp.add_argument("action", choices=["up", "down", "status"])
    sp = add("status", operate.cmd_status, "holdings, replicas, fixity age, quarantined submissions, AIPs at risk")
    sp.add_argument("--json", action="store_true", help="machine-readable (exit 1 when something needs attention)")
    sp = add("alerts", operate.cmd_alerts, "list alerts, send a test alert, or send what the catalog's state calls for")
    sp.add_argument("action", nargs="?", choices=["list", "test", "sweep"], default="list")
    sp.add_argument("--limit", type=int, default=30)
    sp = add("serve", operate.cmd_serve, "Prefect server + dashboard (127.0.0.1:4200) and the scheduled deployments")
    sp.add_argument("--no-server", action="store_true", help="use the server at $PREFECT_API_URL instead")
    sp.add_argument(
        "--deployments",
        default="",
        metavar="NAMES",
        help="comma-separated subset of ingest-watch,fixity-audit,embargo-release,withdraw",
    )
    sp = add("demo", operate.cmd_demo, "start services, generate sample films, ingest them, print a summary")
    sp.add_argument("--direct", action="store_true", help="run without Prefect")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import os

    from flows import telemetry_off

    telemetry_off(os.environ)  # before any flow module imports Prefect: nothing phones home
    from preserve.core import redact
    from preserve.core.errors import ConfigError, PreserveError, StorageUnavailable
    from preserve.core.fs import private_umask

    private_umask()  # what this run and every tool it starts create is for the archive's user only
    # stderr ends up in logs and mails (cron, systemd): only what preserve.core.redact lets out
    try:
        if args.command == "audit" and not args.direct:  # the audit flow runs here; ingests start theirs lazily
            from preserve.dev.daemon import use_temporary_prefect_api

            use_temporary_prefect_api(os.environ)  # a Prefect server that dies with this process
        return int(args.func(args))
    except (ConfigError, StorageUnavailable) as exc:
        print(f"preserve: {redact.public_text(exc)}\n  what to do: {exc.advice}", file=sys.stderr)
        return EXIT_ERROR
    except PreserveError as exc:
        print(f"preserve: {redact.public_text(exc)}\n  what to do: {exc.advice}", file=sys.stderr)
        return EXIT_FINDING if args.command in ("restore",) else EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
