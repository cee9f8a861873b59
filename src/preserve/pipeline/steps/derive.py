"""Step 5, derive: the access copies of the film — an H.264/AAC proxy, a poster and a contact
sheet — made with no source metadata and post-checked for anything identifying. Side effects:
runs ffmpeg; writes under the ingest's work directory (access/). Nothing is published here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from preserve import tools
from preserve.access import contactsheet, scrub
from preserve.access import proxy as proxies
from preserve.core.errors import PrivacyError
from preserve.core.model import EventType, Outcome
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.describe import Described
from preserve.pipeline.steps.receive import Staged


@dataclass(frozen=True)
class Derivatives:
    """The access copies made (None where none was), and how long the proxy and poster took."""

    proxy: Path | None = None
    poster: Path | None = None
    contact_sheet: Path | None = None
    seconds: float | None = None

    def made(self) -> list[tuple[str, Path]]:
        """(kind, path) of every access copy that exists, in publication order."""
        kinds = (("proxy", self.proxy), ("poster", self.poster), ("contact sheet", self.contact_sheet))
        return [(kind, path) for kind, path in kinds if path is not None]


def make_access(ctx: IngestContext, staged: Staged, described: Described) -> Derivatives:
    """An H.264/AAC proxy, a poster and a contact sheet of the main video, with no source
    metadata, post-checked for anything identifying. Non-video submissions and dark films get no
    access copy, and an event says so. Where the copies go (published, restricted, held under
    embargo) is decided when they are stored (step `publish`)."""
    film = described.main_video(staged.files)
    level = staged.metadata.access.level
    if film is None:
        ctx.log.record(
            EventType.CREATION,
            Outcome.NOT_PERFORMED,
            tools.preserve_agent(),
            "no access copy: the submission holds no video",
        )
        return Derivatives()
    if level == "dark":
        ctx.log.record(
            EventType.ACCESS_DECISION,
            Outcome.PASS,
            tools.preserve_agent(),
            "access level dark: no access copy at all (no proxy, poster or contact sheet)",
            level="dark",
        )
        return Derivatives()
    src = ctx.bag_dir / film.path
    probe = described.probes[film.path]
    out = ctx.work_dir / "access"
    out.mkdir(exist_ok=True)
    started = time.monotonic()
    timeout = ctx.settings.ingest.tool_timeout_seconds
    proxy = proxies.make_proxy(src, out / "proxy.mp4", probe, ctx.settings.proxy, timeout=timeout)
    poster = proxies.make_poster(src, out / "poster.jpg", probe, ctx.settings.proxy, timeout=timeout)
    seconds = time.monotonic() - started
    sheet = ctx.settings.access
    contact_sheet = None
    if sheet.contact_sheet:
        contact_sheet = contactsheet.make_contact_sheet(
            src,
            out / "contact-sheet.jpg",
            probe,
            frames=sheet.contact_sheet_frames,
            columns=sheet.contact_sheet_columns,
            tile_width=sheet.contact_sheet_tile_width,
            timeout=timeout,
        )
    ffmpeg_agent = tools.agent("ffmpeg")
    ctx.log.record(
        EventType.CREATION,
        Outcome.PASS,
        ffmpeg_agent,
        f"access proxy H.264/AAC MP4, at most {ctx.settings.proxy.max_height} lines, poster JPEG"
        + (f", contact sheet of {sheet.contact_sheet_frames} frames" if contact_sheet else ""),
        subject=film.path,
    )
    meta = staged.metadata
    forbidden = scrub.forbidden_values((meta.title, meta.original_title, *meta.directors), probe.raw)
    derivatives = Derivatives(proxy=proxy, poster=poster, contact_sheet=contact_sheet, seconds=seconds)
    for _kind, made in derivatives.made():
        leak = scrub.check_clean(made, forbidden_values=forbidden)
        if not leak.ok:
            ctx.log.record(
                EventType.METADATA_MODIFICATION,
                Outcome.FAIL,
                ffmpeg_agent,
                "identifying metadata survived: " + "; ".join(leak.findings),
                subject=made.name,
            )
            raise PrivacyError(
                f"the access copy {made.name} still carries identifying metadata: " + "; ".join(leak.findings[:5])
            )
    ctx.log.record(
        EventType.METADATA_MODIFICATION,
        Outcome.PASS,
        ffmpeg_agent,
        "source metadata removed from proxy, poster and contact sheet (no title, location, device, dates, chapters); "
        "verified with ffprobe, MediaInfo and a byte scan",
        subject=film.path,
    )
    return derivatives
