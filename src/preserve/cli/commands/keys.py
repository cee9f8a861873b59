"""`preserve keys rewrap` and `preserve keys export`: the per-AIP keys of encrypted targets.
Rewrap re-wraps each AIP's key to the recipients a target's config lists now (the key objects
only, never a film); export writes every wrapped key into a folder for offline escrow. Side
effects: key objects on the targets, catalog records, files under DEST, stdout.

Exit codes: 0 done; 1 some key could not be re-wrapped or exported; 2 usage or configuration
error, or a target that could not be worked on (no identity, unreachable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from preserve.cli.invocation import load_settings, open_catalog, operator


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `keys` command and its two actions, on the top-level subparsers."""
    help_ = "the keys of AIPs on encrypted targets: re-wrap them to a target's recipients, export them for escrow"
    p = sub.add_parser("keys", help=help_, description=help_)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ap = actions.add_parser(
        "rewrap",
        help="re-wrap every AIP key whose recipients differ from its target's age_recipients (edit the config first)",
        description="re-wrap every AIP key whose recipients differ from its target's age_recipients: the small key "
        "objects are replaced, no film is re-encrypted; needs each target's identity",
    )
    ap.add_argument("--target", default=None, metavar="NAME", help="only this encrypted target")
    # also accepted after the action; the top-level --operator otherwise (SUPPRESS keeps it)
    ap.add_argument("--operator", default=argparse.SUPPRESS, help="who is deciding, for the record")
    ap.set_defaults(func=cmd_rewrap)
    ap = actions.add_parser(
        "export",
        help="write every wrapped AIP key into DEST for offline escrow (with how to use them with age)",
        description="write every wrapped AIP key the catalog holds to DEST/<target>/<aip>.key.age, with a README "
        "(getting a film back with the stock age tool), a SHA-256 manifest and an index of recipients; DEST "
        "must be new, empty, or an earlier export",
    )
    ap.add_argument("dest", metavar="DEST")
    ap.set_defaults(func=cmd_export)


def cmd_rewrap(args: argparse.Namespace) -> int:
    from preserve.operations import keys

    who = operator(args)
    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        report = keys.rewrap(settings, catalog, target=args.target, operator=who)
    for line in report.lines():
        print(line)
    if not report.results and not report.errors:
        print("nothing to re-wrap" if report.unchanged else "no encrypted target with recorded keys")
    return report.exit_code


def cmd_export(args: argparse.Namespace) -> int:
    from preserve.operations import keys

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        report = keys.export(settings, catalog, Path(args.dest))
    for line in report.lines():
        print(line)
    return report.exit_code
