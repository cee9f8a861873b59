"""One measured ingest in a process of its own, so its memory and I/O can be read for the whole
process tree: `python -m bench.child SPEC.json`. The spec names the settings overrides, the
submission and where to write the result (JSON). Mode "ingest" runs `ingest_submission` once with
a step runner that times each step and reads /proc/self/io around it; mode "prefect" starts
Prefect once, then runs the listed ingests alternately through the flow and the library call.
Side effects: those of the ingests; writes the result file."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from bench.environment import lent
from bench.measure import proc_io
from preserve import config as settings_mod
from preserve.catalog import Catalog
from preserve.pipeline import IngestContext, IngestResult, ingest_submission

P = ParamSpec("P")
R = TypeVar("R")


class StepMeter:
    """A StepRunner (see preserve.pipeline.runner) that records each step's wall time and the bytes read
    by this process and the tools it ran (and waited for) during the step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def __call__(
        self, step: Callable[Concatenate[IngestContext, P], R], ctx: IngestContext, /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        io0, t0 = proc_io(), time.monotonic()
        try:
            return step(ctx, *args, **kwargs)
        finally:
            io1 = proc_io()
            self.steps.append(
                {
                    "step": step.__name__,
                    "seconds": time.monotonic() - t0,
                    "rchar": io1["rchar"] - io0["rchar"],
                    "read_bytes": io1["read_bytes"] - io0["read_bytes"],
                    "wchar": io1["wchar"] - io0["wchar"],
                }
            )


def _outcome_dict(outcome: IngestResult) -> dict[str, Any]:
    return {
        "status": outcome.status.value,
        "aip_id": outcome.aip_id,
        "detail": outcome.detail,
        "payload_bytes": sum(f.size for f in outcome.files),
        "payload_files": len(outcome.files),
        "events": len(outcome.events),
    }


def run_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    settings = settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides=spec["overrides"])
    catalog = Catalog(settings.catalog_url)
    meter = StepMeter()
    try:
        with lent(Path(spec["source"]), settings.ingest_dir) as path:
            io0, t0 = proc_io(), time.monotonic()
            outcome = ingest_submission(settings, catalog, path, runner=meter)
            wall = time.monotonic() - t0
            io1 = proc_io()
    finally:
        catalog.close()
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        **_outcome_dict(outcome),
        "seconds": wall,
        "steps": meter.steps,
        "rchar": io1["rchar"] - io0["rchar"],
        "read_bytes": io1["read_bytes"] - io0["read_bytes"],
        "wchar": io1["wchar"] - io0["wchar"],
        # ru_maxrss is in KiB on Linux; for children it is the largest single child (and its own
        # descendants), not a sum
        "maxrss_self_bytes": me.ru_maxrss * 1024,
        "maxrss_children_bytes": children.ru_maxrss * 1024,
    }


def run_prefect(spec: dict[str, Any]) -> dict[str, Any]:
    """Prefect's start-up (the ephemeral API server, on the first flow run of a process) is timed
    on its own with an empty flow, then excluded: it happens once per worker, not per ingest."""
    t0 = time.monotonic()
    from prefect import flow

    from flows.ingest import ingest_flow

    imported = time.monotonic() - t0

    @flow(name="bench-warm-up", persist_result=False)
    def warm_up() -> int:
        return 1

    t0 = time.monotonic()
    warm_up()
    startup = time.monotonic() - t0
    runs: list[dict[str, Any]] = []
    for r in spec["runs"]:
        settings = settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides=r["overrides"])
        with lent(Path(r["source"]), settings.ingest_dir) as path:
            if r["mode"] == "flow":
                t0 = time.monotonic()
                state = ingest_flow(str(path), config=r["config"], return_state=True)
                seconds = time.monotonic() - t0
                data = state.result(raise_on_failure=False) if state.is_completed() else None
                status = (data or {}).get("status", "") if isinstance(data, dict) else ""
                runs.append(
                    {
                        "mode": "flow",
                        "seconds": seconds,
                        "status": status or state.type.value,
                        "detail": state.message or "",
                    }
                )
            else:
                catalog = Catalog(settings.catalog_url)
                try:
                    t0 = time.monotonic()
                    outcome = ingest_submission(settings, catalog, path)
                    seconds = time.monotonic() - t0
                finally:
                    catalog.close()
                runs.append({"mode": "library", "seconds": seconds, **_outcome_dict(outcome)})
    return {"import_seconds": imported, "startup_seconds": startup, "runs": runs}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result = run_prefect(spec) if spec.get("mode") == "prefect" else run_ingest(spec)
    Path(spec["result"]).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
