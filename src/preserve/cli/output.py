"""What the commands print to a terminal: the plain table, progress bars (bytes, and an ingest's
transcode), one line per ingested submission, and the `status` overview. Side effects: writes to
stdout and stderr; rich is imported only when something is drawn with it, so `preserve --help`
stays fast."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from preserve.core.units import human_bytes
from preserve.report.tables import table

if TYPE_CHECKING:
    from preserve.catalog.views import CatalogStatus, DeaccessionInProgress
    from preserve.core.progress import MediaProgress, Progress
    from preserve.intake.watch import Handled, Waiting

__all__ = ["ingest_bars", "outcome_line", "print_status", "progress_bar", "table", "waiting_line"]


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Progress | None]:
    """A rich progress bar (bytes, speed, ETA) on stderr when it is a terminal; None otherwise,
    so piped output and logs stay clean. Yields the ``progress(done, total)`` callback."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total or None)


@contextlib.contextmanager
def ingest_bars(label: str) -> Iterator[tuple[Progress | None, MediaProgress | None]]:
    """An ingest's two rich bars on stderr when it is a terminal, (None, None) otherwise: the bytes
    staged and uploaded (as `progress_bar`), and below it, from the first report on, the transcode
    (percent of the film's duration, position, ffmpeg's speed, and the time left at that speed).
    Yields the ``progress(done, total)`` and ``media_progress(position, duration, speed)`` callbacks."""
    if not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console, Group
    from rich.live import Live
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from preserve.core.progress import remaining_seconds

    console = Console(stderr=True)
    byte_bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    media_bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[where]}  {task.fields[speed]}  {task.fields[eta]}"),
        console=console,
    )
    byte_task = byte_bar.add_task(label, total=None)
    media_task: list[Any] = []
    lock = threading.Lock()

    def on_bytes(done: int, total: int) -> None:
        byte_bar.update(byte_task, completed=done, total=total or None)

    def on_media(position: float, duration: float, speed: float | None) -> None:
        left = remaining_seconds(position, duration, speed)
        where = f"{_clock(position)} / {_clock(duration)}" if duration > 0 else _clock(position)
        pace = f"{speed:.1f}x" if speed is not None else ""
        eta = f"ETA {_clock(left)}" if left is not None else ""
        with lock:  # the first report adds the bar, once even if two transcodes report at once
            if not media_task:
                media_task.append(media_bar.add_task("transcode", total=None, where="", speed="", eta=""))
        media_bar.update(media_task[0], completed=position, total=duration or None, where=where, speed=pace, eta=eta)

    with Live(Group(byte_bar, media_bar), console=console, transient=True, refresh_per_second=4):
        yield on_bytes, on_media


def _clock(seconds: float) -> str:
    """h:mm:ss of a duration (films run for hours)."""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def outcome_line(h: Handled) -> str:
    """`preserve ingest`'s line for one submission: AIP id, status, name, and why when not stored."""
    return f"{h.aip_id or '-':36}  {h.status:11}  {h.submission}" + (
        f"  ({h.detail})" if h.status != "stored" and h.detail else ""
    )


def waiting_line(w: Waiting) -> str:
    """`preserve watch --once`'s line for an entry not ready yet (still being copied, or stranded)."""
    return f"{'-':36}  {'waiting':11}  {w.name}  ({w.reason})"


def print_status(st: CatalogStatus, alerts_off: bool) -> None:
    """`preserve status` for a person: holdings, fixity age and what needs attention, in red."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console()
    ok, warn = "[green]", "[bold red]"
    head = Table(title=f"preserve status · {st.at:%Y-%m-%d %H:%M} UTC", show_header=False, title_justify="left")
    head.add_row("AIPs", f"{st.aips}", f"{human_bytes(st.bytes)} in {st.files} files")
    head.add_row("being ingested", str(st.ingesting), "")
    oldest = st.oldest_verification.strftime("%Y-%m-%d %H:%M") if st.oldest_verification else "-"
    head.add_row(
        "oldest fixity check",
        oldest,
        f"{st.objects_never_verified} of {st.objects} objects never verified" if st.objects_never_verified else "",
    )
    head.add_row(
        f"overdue (> {st.audit_interval_days} days)",
        (warn if st.objects_overdue else ok) + f"{human_bytes(st.bytes_overdue)}",
        f"{st.objects_overdue} objects",
    )
    head.add_row("quarantined", (warn if st.quarantined else ok) + str(len(st.quarantined)), "")
    head.add_row("AIPs at risk", (warn if st.at_risk else ok) + str(len(st.at_risk)), "")
    withdrawing = sum(c.to_level == "dark" for c in st.access_changes)
    head.add_row(
        "withdrawals in progress",
        (warn if withdrawing else ok) + str(withdrawing),
        f"and {len(st.access_changes) - withdrawing} other access change(s)"
        if len(st.access_changes) > withdrawing
        else "",
    )
    carrying_out = sum(d.approved for d in st.deaccessions)
    head.add_row(
        "deaccessions in progress",
        (warn if carrying_out else ok) + str(carrying_out),
        f"and {len(st.deaccessions) - carrying_out} request(s) waiting for a second person"
        if len(st.deaccessions) > carrying_out
        else "",
    )
    head.add_row(
        "journal not yet on every replica",
        (warn if st.journal_pending else ok) + str(st.journal_pending),
        "AIPs whose latest events are only in the catalog; `preserve serve` writes them" if st.journal_pending else "",
    )
    head.add_row(
        "alerts not delivered",
        (warn if st.undelivered_alerts else ok) + str(st.undelivered_alerts),
        "no webhook or SMTP configured" if alerts_off else "",
    )
    con.print(head)
    if st.targets:
        t = Table(title="replicas per target", title_justify="left")
        for col in ("target", "replicas", "verified", "damaged", "missing", "objects", "bytes"):
            t.add_column(col, justify="left" if col == "target" else "right")
        for r in st.targets:
            t.add_row(
                r.target,
                str(r.replicas),
                ok + str(r.verified),
                (warn if r.damaged else "") + str(r.damaged),
                (warn if r.missing else "") + str(r.missing),
                str(r.objects),
                human_bytes(r.bytes),
            )
        con.print(t)
        t = Table(
            title=f"copies per target (key objects verified: found intact within {st.audit_interval_days} days)",
            title_justify="left",
        )
        for col in ("target", "custody", "copies", "AIPs lacking a verified key object"):
            t.add_column(col, justify="right" if col.startswith("AIPs") else "left")
        for r in st.targets:
            encrypted = r.encrypted or r.encrypted_objects > 0
            if not encrypted:
                copies = "plaintext"
            elif r.encrypted_objects < r.objects:
                copies = f"encrypted ({r.objects - r.encrypted_objects} objects in plaintext)"
            else:
                copies = "encrypted"
            t.add_row(
                r.target,
                r.custody or "-",
                (warn if r.custody == "third-party" and not encrypted else "") + copies,
                ((warn if r.keys_unverified else ok) + str(r.keys_unverified)) if encrypted else "-",
            )
        con.print(t)
    if st.formats:
        t = Table(title="files by format", title_justify="left")
        for col in ("format", "files", "bytes"):
            t.add_column(col, justify="left" if col == "format" else "right")
        for f in st.formats:
            t.add_row(f.format, str(f.files), human_bytes(f.bytes))
        con.print(t)
    if st.quarantined:
        t = Table(
            title="quarantined submissions (ingest/failed/NAME/REPORT.txt; `preserve retry NAME`)", title_justify="left"
        )
        for col in ("submission", "since", "attempts", "reason"):
            t.add_column(col)
        for q in st.quarantined:
            t.add_row(q.name, f"{q.since:%Y-%m-%d %H:%M}", str(q.attempts), q.reason[:160])
        con.print(t)
    if st.access_changes:
        t = Table(
            title="access changes in progress (copies may still be where they must not be; retried by "
            "`preserve serve`, or run the command again)",
            title_justify="left",
        )
        for col in ("AIP", "change", "by", "since", "attempts", "what remains"):
            t.add_column(col)
        for c in st.access_changes:
            t.add_row(
                c.aip_id,
                "withdrawal" if c.to_level == "dark" else f"{c.from_level} -> {c.to_level}",
                c.operator,
                f"{c.since:%Y-%m-%d %H:%M}",
                str(c.attempts),
                c.last_error[:160] or "(not tried yet, or killed half-way)",
            )
        con.print(t)
    if st.deaccessions:
        t = Table(
            title="deaccessions in progress (`preserve deaccession list`; approving again, or the scheduled audit, "
            "carries out what is left)",
            title_justify="left",
        )
        for col in ("request", "AIP", "state", "by", "access", "objects"):
            t.add_column(col)
        for d in st.deaccessions:
            t.add_row(
                d.request,
                d.aip_id,
                d.state if d.approved else "waiting for approval",
                escape(f"{d.requested_by} {d.requested_at:%Y-%m-%d}")
                + (escape(f", approved by {d.approved_by} {d.approved_at:%Y-%m-%d}") if d.approved_at else ""),
                ("withdrawn" if d.access_withdrawn else warn + "not yet withdrawn[/]") if d.approved else "-",
                _deletions(d, warn) if d.approved else "-",
            )
        con.print(t)
    if st.at_risk:
        t = Table(title="AIPs at risk", title_justify="left")
        for col in ("AIP", "title", "verified replicas", "why"):
            t.add_column(col)
        for a in st.at_risk:
            t.add_row(a.aip_id, a.title, str(a.verified_replicas), "; ".join(a.reasons))
        con.print(t)


def _deletions(d: DeaccessionInProgress, warn: str) -> str:
    """The objects of a deaccession in progress, by where their deletion is."""
    parts = [f"{d.deleted} deleted"]
    if d.scheduled:
        parts.append(f"{d.scheduled} scheduled" + (f" (first {d.next_due:%Y-%m-%d %H:%M} UTC)" if d.next_due else ""))
    waiting = ((d.pending, "to delete"), (d.failed, "failed"), (d.reappeared, "found again"))
    parts += [f"{warn}{n} {what}[/]" for n, what in waiting if n]
    return ", ".join(parts)
