"""`preserve catalog backup DEST`: a consistent online copy of the catalog (SQLite), taken while the
archive keeps working; for a PostgreSQL catalog it says what to run instead (exit 2). Side
effects: reads the catalog, writes the backup file under DEST, prints where it went on stdout."""

from __future__ import annotations

import argparse
from pathlib import Path

from preserve.cli.invocation import EXIT_OK, load_settings


def cmd_backup(args: argparse.Namespace) -> int:
    from preserve.catalog.backup import backup
    from preserve.core.units import human_bytes

    settings = load_settings(args)
    r = backup(settings.catalog_url, Path(args.dest).expanduser())
    revision = f"schema revision {r.revision}" + (
        "" if r.current else " (older than this preserve's: it is upgraded when opened)"
    )
    print(f"catalog backed up to {r.path}")
    print(f"  {human_bytes(r.bytes)}, {r.pages} pages, {r.seconds:.2f} s, integrity ok, {revision}")
    print(f"  sha256 {r.sha256}")
    return EXIT_OK
