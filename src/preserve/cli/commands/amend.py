"""`preserve amend`: a new version of an AIP with corrected descriptive metadata (a new sidecar),
written on every replica without uploading the payload again. Exit 0 once the version is recorded
(and the access level asked for, if any, is in place); 1 when the version is recorded but its
access change could not be completed (it stays pending); 2 for a refusal or a failure that
recorded nothing. Side effects: stdout; those of `preserve.operations.amend`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from preserve.cli.invocation import EXIT_ERROR, EXIT_FINDING, EXIT_OK, load_settings, open_catalog, operator
from preserve.core.units import human_bytes

if TYPE_CHECKING:  # imported when the command runs, so `preserve --help` stays fast
    from preserve.operations.amend import AmendResult


def cmd_amend(args: argparse.Namespace) -> int:
    from preserve.operations import amend

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        result = amend.amend(
            settings, catalog, args.aip_id, Path(args.sidecar), reason=args.reason, operator=operator(args)
        )
    for line in amend_lines(result):
        print(line, flush=True)
    return EXIT_OK if result.access_ok else EXIT_FINDING


def amend_lines(r: AmendResult) -> list[str]:
    """What `preserve amend` prints: the new version, each member written and where, the bytes
    uploaded per target, then what happened to the access level and the journal."""
    total = sum(r.uploaded.values())
    lines = [
        f"{r.aip_id}  version {r.version} recorded: {len(r.written)} member(s) written as new objects, "
        f"{len(r.kept)} kept from the previous version (the payload among them, not uploaded again)"
    ]
    lines += [f"  wrote  {member:40}  {human_bytes(r.sizes[member]):>10}  {key}" for member, key in r.written.items()]
    for target, keys in r.reused.items():
        lines.append(f"  kept   {len(keys)} object(s) an interrupted amend had already stored on {target} (same bytes)")
    for target, n in r.uploaded.items():
        lines.append(f"  uploaded to {target:16} {human_bytes(n):>10} ({n} bytes), verified by SHA-256")
    lines.append(f"  total uploaded {human_bytes(total)} ({total} bytes)")
    if r.fields:
        lines.append(f"  sidecar fields changed: {', '.join(r.fields)}")
    if r.title_changed:
        lines.append(
            "  title changed in the catalog (the proxy, poster and tracks carry no title: they are not touched)"
        )
    if r.documents != "unchanged":
        lines.append(f"  IIIF manifest and page: {r.documents}")
    lines.append(f"  access: {r.access}")
    if r.journal is not None and not r.journal.ok:
        lines += [f"  journal: {line} (housekeeping writes it later)" for line in r.journal.lines()]
    return lines


__all__ = ["EXIT_ERROR", "amend_lines", "cmd_amend"]
