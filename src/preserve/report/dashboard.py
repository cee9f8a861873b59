"""What the operators' dashboard shows about a run, as plain values: the markdown ingest report
(title, files, durations, codecs, resolution, sizes, SHA-256, replicas verified, warnings, poster
link) and the fixity-summary table. Pure functions; the flows publish them as Prefect artifacts.

Privacy: the dashboard is for the archive's staff, but runs' artifacts are copied around
(screenshots, exports), so reports carry titles and technical facts only: never directors,
contributors, sidecar notes or media tags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from preserve.core.model import Outcome
from preserve.core.units import human_bytes

#: artifact keys: the Artifacts page keeps the history of each key
INGEST_REPORT_KEY = "ingest-report"
FIXITY_SUMMARY_KEY = "fixity-summary"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def ingest_report(outcome: Any) -> str:
    """Markdown for one ingest (``outcome``: preserve.pipeline.ingest.IngestOutcome, with its job)."""
    job = outcome.job
    lines: list[str] = []
    title = ""
    if job is not None:
        title = job.metadata.title or job.metadata.original_title or ""
    lines.append(f"# {_cell(title or outcome.submission)}")
    lines.append("")
    lines.append(f"| submission | `{_cell(outcome.submission)}` |\n|---|---|\n| status | **{outcome.status}** |")
    if outcome.aip_id:
        lines.append(f"| AIP | `{outcome.aip_id}` |")
    if outcome.status != "stored" and outcome.detail:
        lines.append(f"| detail | {_cell(outcome.detail)} |")
    if outcome.quarantine_dir:
        lines.append(f"| quarantined in | `{_cell(outcome.quarantine_dir)}` (REPORT.txt inside) |")
    if job is None:
        return "\n".join(lines) + "\n"
    if job.timings:
        lines.append("| timings | " + ", ".join(f"{k} {v:.1f} s" for k, v in job.timings.items()) + " |")
    lines.append("")
    if job.files:
        lines += [
            "## Files",
            "",
            "| file | size | duration | video | resolution | audio | SHA-256 |",
            "|---|---:|---:|---|---|---|---|",
        ]
        for f in job.files:
            facts = job.facts.get(f.path)
            res = f"{facts.width}×{facts.height}" if facts and facts.width and facts.height else "-"
            lines.append(
                f"| `{_cell(f.path.removeprefix('data/objects/'))}` | {human_bytes(f.size)} "
                f"| {_duration(facts.duration) if facts else '-'} | {(facts.video_codec if facts else '') or '-'} "
                f"| {res} | {(facts.audio_codec if facts else '') or '-'} | `{f.digests.sha256}` |"
            )
        lines.append("")
        total = sum(f.size for f in job.files)
        lines.append(f"{len(job.files)} file(s), {human_bytes(total)}; payload oxum {job.payload_oxum or '-'}")
        lines.append("")
    if job.replicas:
        lines += ["## Replicas", "", "| target | status | objects | verified at | location |", "|---|---|---:|---|---|"]
        for r in job.replicas:
            lines.append(
                f"| {r.target} | {r.status} | {len(r.objects)} "
                f"| {r.verified_at:%Y-%m-%d %H:%M:%S} UTC | `{_cell(r.uri)}` |"
                if r.verified_at
                else f"| {r.target} | {r.status} | {len(r.objects)} | - | `{_cell(r.uri)}` |"
            )
        lines.append("")
    if job.access:
        lines += ["## Access copies", ""]
        for a in job.access:
            label = "poster" if a.kind == "poster" else a.kind
            lines.append(f"- [{label}]({a.uri}) ({human_bytes(a.size)}, SHA-256 `{a.sha256[:16]}…`)")
        lines.append("")
    warnings = [e for e in job.events if e.outcome in (Outcome.WARNING, Outcome.FAIL)]
    lines += ["## Warnings", ""]
    if warnings:
        for e in warnings:
            lines.append(
                f"- **{e.type.value}** ({e.outcome.value}){' · `' + _cell(e.subject) + '`' if e.subject else ''}: "
                f"{_cell(e.detail[:300])}"
            )
    else:
        lines.append("none")
    return "\n".join(lines) + "\n"


def fixity_summary_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `fixity-summary` table: one row per target (or per object checked), columns in a
    stable order. ``rows`` are dicts with any of target, checked, bytes, ok, damaged, missing,
    seconds; missing columns are shown empty."""
    columns = ("target", "checked", "bytes", "ok", "damaged", "missing", "seconds")
    return [{c: r.get(c, "") for c in columns} | {k: v for k, v in r.items() if k not in columns} for r in rows]
