"""`python -m bench [--quick] [--only IDS]`: prepare (or reuse) the data, start a private SeaweedFS, measure
every row, print the table and write bench/results.json. Exit status 1 when a row could not be
measured (its error is in the table and the JSON); goals not met do not change the exit status."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import data as datasets
from bench.access_rows import ingest_cost, subtitles_to_webvtt
from bench.catalog_rows import amends, rebuilds
from bench.crypt_rows import encrypted_memory, encrypted_replicas
from bench.environment import HAS_STAGING_SETTING, BenchArchive
from bench.report import RESULTS_JSON, Row, machine, markdown, table, write_json
from bench.rows import (
    Context,
    film_reads,
    fixity_and_storage,
    long_films,
    media,
    memory_flatness,
    prefect_overhead,
)

#: (section, the rows it produces): a section that fails still leaves its rows, marked failed.
#: B1c (copy mode) exists only where the tree has the [ingest] staging setting.
SECTIONS: list[tuple[Callable[[Context], None], tuple[str, ...]]] = [
    (memory_flatness, ("B6b",)),  # first: it needs the most free disk, before S3 data accumulates
    (encrypted_memory, ("B18",)),  # issue 16: next, for the same reason (20 GB of ciphertext on the server)
    (
        fixity_and_storage,
        ("B1", *(("B1c",) if HAS_STAGING_SETTING else ()), "B2", "B3", "B4", "B6a", "B7b", "disk"),
    ),
    (film_reads, ("B7",)),
    (media, ("B5", "peer")),
    (long_films, ("B10",)),
    (prefect_overhead, ("B8",)),
    (rebuilds, ("B11", "B12")),  # issue 14: the catalog rebuilt from a replica, and amend
    (amends, ("B13",)),
    (subtitles_to_webvtt, ("B14",)),  # issue 15: subtitles to WebVTT, and the text tracks' cost in an ingest
    (ingest_cost, ("B15",)),
    (encrypted_replicas, ("B16", "B17")),  # issue 16: age-encrypted replicas against plaintext ones
]
ROW_ORDER = (
    *("B1", "B1c", "B2", "B3", "B4", "B5", "peer", "B6a", "B6b", "B7", "B7b", "B8", "B10", "disk"),
    *("B11", "B12", "B13", "B14", "B15", "B16", "B17", "B18"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 MB file, 5 s clip, 1 GB sparse file, 20 tiny files, 60 s and 180 s tiny films, one run each: "
        "checks that the benchmark works (CI); its figures mean little",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per measurement, whose median is reported (default 3; 1 with --quick; B10 at most 2, "
        "B6b and B7 one: they count bytes)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=datasets.DATA_DIR,
        help=f"where the cached inputs (cache/) and the scratch archive (work-*/) live (default {datasets.DATA_DIR})",
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="IDS",
        help="comma-separated row ids (e.g. B14,B15): run only the sections that make them (a section makes all "
        "its rows); default: every row",
    )
    parser.add_argument("--results", type=Path, default=RESULTS_JSON, help=f"the JSON written (default {RESULTS_JSON})")
    args = parser.parse_args(argv)
    only = {r.strip() for r in args.only.split(",") if r.strip()}
    if only - set(ROW_ORDER):
        parser.error(f"--only: no such row {', '.join(sorted(only - set(ROW_ORDER)))} (rows: {', '.join(ROW_ORDER)})")
    sections = [(s, ids) for s, ids in SECTIONS if not only or only & set(ids)]
    sizes = datasets.QUICK if args.quick else datasets.FULL
    args.repeat = args.repeat or (1 if args.quick else 3)
    started = time.monotonic()

    def log(msg: str) -> None:
        print(
            f"[bench {time.monotonic() - started:5.0f} s, load {os.getloadavg()[0]:4.1f}] {msg}",
            file=sys.stderr,
            flush=True,
        )

    cache = args.data / "cache"
    log(f"preparing data ({sizes.name}) in {cache}")
    ds = datasets.prepare(sizes, cache)
    log(f"data ready ({ds.prepared_seconds:.0f} s spent generating)")
    archive = BenchArchive(args.data / f"work-{sizes.name}")
    ctx = Context(archive, ds, args.repeat, log)
    load_before = os.getloadavg()
    timings: dict[str, float] = {}
    failed = False
    with archive.running():
        log(f"SeaweedFS up on 127.0.0.1:{archive.port_base}")
        for section, row_ids in sections:
            t0 = time.monotonic()
            try:
                section(ctx)
            except Exception as exc:  # noqa: BLE001 - report the row as failed, measure the rest
                failed = True
                log(f"{section.__name__} FAILED: {exc}")
                traceback.print_exc()
                present = {r.id for r in ctx.rows}
                for rid in row_ids:
                    if rid not in present:
                        ctx.rows.append(
                            Row(rid, "FAILED", "-", "-", None, "", "-", None, notes=[f"{type(exc).__name__}: {exc}"])
                        )
            timings[section.__name__] = time.monotonic() - t0
    rows = sorted(ctx.rows, key=lambda r: ROW_ORDER.index(r.id) if r.id in ROW_ORDER else 99)
    total = time.monotonic() - started
    print(table(rows))
    for r in rows:
        for note in r.notes:
            print(f"  {r.id}: {note}")
    print(
        f"\n{sizes.name} run, {args.repeat} runs per measurement, {total:.0f} s in all "
        f"(data generation {ds.prepared_seconds:.0f} s); load average {load_before[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print("\nThe README's table:\n" + markdown(rows, args.repeat))
    path = write_json(
        {
            "mode": sizes.name,
            "repeat": args.repeat,
            "only": sorted(only),
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine(),
            "sizes": sizes.__dict__,
            "total_seconds": total,
            "data_generation_seconds": ds.prepared_seconds,
            "section_seconds": timings,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "markdown": markdown(rows, args.repeat),
        },
        rows,
        args.results,
    )
    print(f"results: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
