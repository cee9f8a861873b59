"""The benchmark's results: one Row per line of the table (medians, ratios, goal, met or not), the
table as text, and bench/results.json. Side effects: writes the JSON file only."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_JSON = Path(__file__).resolve().parent / "results.json"


@dataclass
class Row:
    """One measured comparison. ``ours`` and ``theirs`` are medians in ``unit`` (the runs are in
    ``runs``); ``ratio`` is what the goal is about, computed from two things measured in the same
    run on the same data."""

    id: str
    what: str
    ours: str  # human summary of our median, e.g. "14.2 s (141 MB/s)"
    compared_with: str  # human summary of the reference(s)
    ratio: float | None
    ratio_label: str  # e.g. "× one-pass hash", "× boto3 throughput"
    goal: str
    met: bool | None
    runs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ratio_format: str = "{:.2f}"  # "{:.2%}" for a share

    def ratio_text(self) -> str:
        if self.ratio is None or math.isnan(self.ratio):
            return "n/a"
        return self.ratio_format.format(self.ratio) + self.ratio_label

    def met_text(self) -> str:
        return {True: "yes", False: "NO", None: "n/a"}[self.met]


def seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def mb_s(nbytes: float, s: float) -> str:
    return f"{nbytes / s / 1e6:.0f} MB/s" if s > 0 else "n/a"


def mib(nbytes: float) -> str:
    return f"{nbytes / (1 << 20):.0f} MiB"


def table(rows: list[Row]) -> str:
    """A fixed-width table for the terminal (and a Markdown one for the README via markdown())."""
    head = ("#", "what", "ours (median)", "compared with (median)", "ratio", "goal", "met")
    body = [(r.id, r.what, r.ours, r.compared_with, r.ratio_text(), r.goal, r.met_text()) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: tuple[str, ...] | list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(b) for b in body)])


def markdown(rows: list[Row], repeat: int = 3) -> str:
    """The README's Benchmarks table: every row with its measured numbers, its goal and whether it
    was met (yes / NO; n/a for a line given for comparison only)."""
    of = f"median of {repeat}" if repeat > 1 else "one run"
    out = [
        f"| # | what | ours ({of}) | compared with ({of}) | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.id} | {r.what} | {r.ours} | {r.compared_with} | {r.ratio_text()} | {r.goal} | {r.met_text()} |"
        )
    return "\n".join(out)


def machine() -> dict[str, Any]:
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    model = ""
    try:
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    except OSError:
        pass
    os_name = ""
    try:
        os_name = next(
            (
                line.split("=", 1)[1].strip().strip('"')
                for line in Path("/etc/os-release").read_text().splitlines()
                if line.startswith("PRETTY_NAME=")
            ),
            "",
        )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": mem,
        "os": os_name,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def write_json(payload: dict[str, Any], rows: list[Row], path: Path = RESULTS_JSON) -> Path:
    data = {**payload, "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return path
