"""`preserve ingest`, `watch` and `retry`: submissions into the archive, through the Prefect ingest
flow or, with --direct, the library pipeline in this process. Side effects: those of an ingest
(the source moves to done/ or failed/, AIPs are stored and catalogued) and lines on stdout."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from preserve.cli.invocation import EXIT_ERROR, EXIT_FINDING, EXIT_OK, flow_data, load_settings, open_catalog, operator
from preserve.cli.output import ingest_bars, outcome_line, waiting_line

if TYPE_CHECKING:
    from preserve.catalog import Catalog
    from preserve.config import Settings
    from preserve.intake.watch import Handled

#: what became of a submission that `ingest`, `watch` and `retry` count as done
DONE = ("stored", "duplicate")


def ingest_one(
    settings: Settings, path: Path, *, catalog: Catalog | None, accept_invalid: bool = False, show_progress: bool = True
) -> Handled:
    """Ingest one path and say what became of it. With a ``catalog`` (--direct) the library
    pipeline runs here on it; without one, the Prefect ingest flow runs (in this process, opening
    its own catalog). The one place the CLI meets the pipeline's outcome and the flow's result."""
    from preserve.intake.watch import Handled

    bars = ingest_bars(f"ingest {path.name}") if show_progress else contextlib.nullcontext((None, None))
    if catalog is not None:
        from preserve.pipeline import ingest_submission

        with bars as (progress, media):
            o = ingest_submission(
                settings, catalog, path, accept_invalid=accept_invalid, progress=progress, media_progress=media
            )
        return Handled(o.submission, o.status.value, o.aip_id, o.detail)
    from preserve.dev.daemon import use_temporary_prefect_api

    use_temporary_prefect_api(os.environ)  # before Prefect loads: its server then dies with this process
    from flows.ingest import ingest_flow, progress_listener

    with bars as (progress, media), progress_listener(progress, media):
        state = ingest_flow(
            path=str(path.absolute()), config=str(settings.source), accept_invalid=accept_invalid, return_state=True
        )
    result = state.result(raise_on_failure=False)
    data = flow_data(result)
    from preserve.pipeline import IngestResult

    if data is None:  # the flow crashed: an exception is told as preserve.core.redact lets it out
        o = IngestResult.crashed(path.name, result if isinstance(result, BaseException) else str(result))
    else:
        o = IngestResult.from_dict(data)
    return Handled(o.submission, o.status.value, o.aip_id, o.detail)


def ingest_paths(
    settings: Settings, paths: Sequence[Path], *, direct: bool = False, accept_invalid: bool = False
) -> list[Handled]:
    """Ingest each path in turn, through the Prefect flow unless ``direct``, with a progress bar
    on a terminal; what became of each (also the demo's ingest)."""
    if not direct:
        return [ingest_one(settings, p, catalog=None, accept_invalid=accept_invalid) for p in paths]
    with open_catalog(settings) as catalog:
        return [ingest_one(settings, p, catalog=catalog, accept_invalid=accept_invalid) for p in paths]


def _ingest_fn(
    settings: Settings, catalog: Catalog, args: argparse.Namespace, accept_invalid: bool = False
) -> Callable[[Path], Handled]:
    """Ingest one path through the ingest flow, or the library on ``catalog`` with --direct."""
    if args.direct:
        return lambda p: ingest_one(settings, p, catalog=catalog, accept_invalid=accept_invalid, show_progress=False)
    return lambda p: ingest_one(settings, p, catalog=None, accept_invalid=accept_invalid)


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        print(f"preserve: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return EXIT_ERROR
    outcomes = ingest_paths(settings, paths, direct=args.direct, accept_invalid=args.accept_invalid)
    for o in outcomes:
        print(outcome_line(o))
    return EXIT_OK if all(o.status in DONE for o in outcomes) else EXIT_FINDING


def cmd_watch(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from preserve.intake import watch

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        ingest_fn = _ingest_fn(settings, catalog, args)
        if args.once:
            report = watch.watch_once(settings, catalog, ingest_fn, timeout=args.timeout)
            for h in report.handled:
                print(outcome_line(h))
            for w in report.waiting:
                print(waiting_line(w))
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
            settings, catalog, ingest_fn, stop=stop, on_handled=lambda h: print(outcome_line(h), flush=True)
        )
        return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from preserve.intake import release as retry

    settings = load_settings(args)
    with open_catalog(settings) as catalog:
        if args.no_ingest and args.accept_invalid:
            print("preserve: --accept-invalid needs the ingest to run now (drop --no-ingest)", file=sys.stderr)
            return EXIT_ERROR
        released = retry.release(
            settings, catalog, args.name, accept_invalid=args.accept_invalid, operator=operator(args)
        )
        print(f"put back {released.source} (it was quarantined for {released.previous_problem.splitlines()[0]})")
        if args.no_ingest:
            return EXIT_OK
        outcome = _ingest_fn(settings, catalog, args, accept_invalid=args.accept_invalid)(released.source)
        print(outcome_line(outcome))
        return EXIT_OK if outcome.status in DONE else EXIT_FINDING
