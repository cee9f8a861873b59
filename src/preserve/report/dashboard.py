"""What the operators' dashboard shows about an ingest, as plain values: the markdown ingest report
(title, files, durations, codecs, resolution, sizes, SHA-256, replicas verified, warnings, poster
link). Pure functions; the ingest flow publishes it as a Prefect artifact (the audit flow builds
its own fixity-summary table).

Privacy: the dashboard is for the archive's staff, but runs' artifacts are copied around
(screenshots, exports), so reports carry titles and technical facts only: never directors,
contributors, sidecar notes or media tags. Why an ingest failed is the result's shareable detail
and quarantine event (`preserve.core.redact`), never the local report's full text."""

from __future__ import annotations

from preserve.core.model import Outcome
from preserve.core.units import human_bytes
from preserve.pipeline.result import IngestResult, IngestStatus

#: artifact keys: the Artifacts page keeps the history of each key
INGEST_REPORT_KEY = "ingest-report"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def ingest_report(result: IngestResult) -> str:
    """Markdown for one ingest. The sections after the summary (files, replicas, access copies,
    warnings) appear once the ingest got as far as looking at the submission."""
    lines: list[str] = []
    lines.append(f"# {_cell(result.title or result.submission)}")
    lines.append("")
    lines.append(f"| submission | `{_cell(result.submission)}` |\n|---|---|\n| status | **{result.status.value}** |")
    if result.aip_id:
        lines.append(f"| AIP | `{result.aip_id}` |")
    if result.status is not IngestStatus.STORED and result.detail:
        lines.append(f"| detail | {_cell(result.detail)} |")
    if result.quarantine_dir:
        lines.append(f"| quarantined in | `{_cell(result.quarantine_dir)}` (REPORT.txt inside) |")
    if not (result.events or result.files or result.timings):
        return "\n".join(lines) + "\n"
    if result.timings:
        lines.append("| timings | " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()) + " |")
    lines.append("")
    if result.files:
        lines += [
            "## Files",
            "",
            "| file | size | duration | video | resolution | audio | SHA-256 |",
            "|---|---:|---:|---|---|---|---|",
        ]
        for f in result.files:
            res = f"{f.width}×{f.height}" if f.width and f.height else "-"
            lines.append(
                f"| `{_cell(f.path.removeprefix('data/objects/'))}` | {human_bytes(f.size)} "
                f"| {_duration(f.duration)} | {f.video_codec or '-'} "
                f"| {res} | {f.audio_codec or '-'} | `{f.sha256}` |"
            )
        lines.append("")
        total = sum(f.size for f in result.files)
        lines.append(f"{len(result.files)} file(s), {human_bytes(total)}; payload oxum {result.payload_oxum or '-'}")
        lines.append("")
    if result.replicas:
        lines += ["## Replicas", "", "| target | status | objects | verified at | location |", "|---|---|---:|---|---|"]
        for r in result.replicas:
            lines.append(
                f"| {r.target} | {r.status} | {r.objects} | {r.verified_at:%Y-%m-%d %H:%M:%S} UTC | `{_cell(r.uri)}` |"
                if r.verified_at
                else f"| {r.target} | {r.status} | {r.objects} | - | `{_cell(r.uri)}` |"
            )
        lines.append("")
    if result.access:
        lines += ["## Access copies", ""]
        for a in result.access:
            lines.append(f"- [{a.kind}]({a.uri}) ({human_bytes(a.size)}, SHA-256 `{a.sha256[:16]}…`)")
        lines.append("")
    warnings = [e for e in result.events if e.outcome in (Outcome.WARNING, Outcome.FAIL)]
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
