"""`preserve catalog rebuild`: a catalog built from one replica alone. Side effects: stdout,
progress on stderr; reads storage, writes the (empty) catalog and the journal beside each AIP."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from preserve.cli.invocation import load_settings, open_catalog

if TYPE_CHECKING:
    from preserve.core.progress import Progress


@contextlib.contextmanager
def aip_bar(label: str) -> Iterator[Progress | None]:
    """A rich progress bar counting AIPs (done of total, rate, ETA) on stderr when it is a terminal;
    None otherwise, so piped output and logs stay clean. Yields the ``progress(done, total)``."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("AIPs"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total or None)


def cmd_rebuild(args: argparse.Namespace) -> int:
    """Exit 0 when nothing was reported, 1 when something was (foreign objects, damaged records,
    fallbacks to the bag, replicas that disagree, damage), 2 when a target was unreachable or the
    rebuild was refused."""
    from preserve.operations import rebuild

    settings = load_settings(args)
    with open_catalog(settings) as catalog, aip_bar(f"rebuild from {args.source}") as progress:
        report = rebuild.rebuild(settings, catalog, args.source, merge=args.merge, progress=progress)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(rebuild.format_report(report))
    return report.exit_code
