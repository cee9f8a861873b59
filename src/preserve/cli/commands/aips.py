"""`preserve show`, `list`, `premis` and `access`: what the archive holds, read from the catalog
(and, for `access`, the access copies fetched from storage). `show` and `list` never import
Prefect, so they answer fast. Side effects: stdout; `premis -o` and `access` write files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from preserve.cli.invocation import EXIT_ERROR, EXIT_FINDING, EXIT_OK, load_settings, open_catalog
from preserve.cli.output import table
from preserve.core.units import human_bytes


def cmd_show(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        aip = catalog.get_aip(args.aip_id)
        tombstone = catalog.tombstone(aip.id) if aip is not None else None
    if aip is None:
        print(f"preserve: no AIP {args.aip_id!r}", file=sys.stderr)
        return EXIT_ERROR
    from preserve.report.views import aip_json

    data = aip_json(aip, tombstone)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(
        f"AIP      {aip.id}\nTitle    {aip.title}\nCreated  {aip.created:%Y-%m-%d %H:%M:%S %Z}\n"
        f"Status   {aip.status}\nAccess   {aip.access_level}\nSize     {human_bytes(aip.size)} in {len(aip.files)} files\n"
    )
    print(table(["path", "size", "sha256"], [(f.path, human_bytes(f.size), f.sha256) for f in aip.files]))
    print()
    if aip.versions:
        print(
            table(
                ["version", "date", "reason", "operator", "members"],
                [
                    (
                        str(v.number) + (" (current)" if v.number == aip.version else ""),
                        v.created.strftime("%Y-%m-%d %H:%M:%S"),
                        v.reason,
                        v.operator or "-",
                        str(len(v.members)),
                    )
                    for v in aip.versions
                ],
            )
        )
        print()
    if tombstone is not None:
        from preserve.cli.commands.deaccession import print_tombstone

        print_tombstone(tombstone)
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
    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        aips = catalog.list_aips()
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


def cmd_premis(args: argparse.Namespace) -> int:
    from preserve.packaging import premis

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        aip = catalog.get_aip(args.aip_id)
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


def cmd_access(args: argparse.Namespace) -> int:
    from preserve.operations import restore

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        written = restore.fetch_access(settings, catalog, args.aip_id, Path(args.dest))
    if not written:
        print(f"{args.aip_id} has no access copies (not a video, or its access level withholds them)")
        return EXIT_FINDING
    for p in written:
        print(p)
    return EXIT_OK
