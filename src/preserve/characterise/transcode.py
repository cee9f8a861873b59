"""One decode of an original: a single ffmpeg run that decodes each of its streams once and makes,
as asked, the decode verdict, the framemd5 manifest of every video and audio stream, and the
access copies of the main video (proxy, poster, contact sheet), so that a film is read and decoded
once, not three times. Side effects: `run_pass` runs ffmpeg via tools.run and writes only the
outputs it is asked for, each through a temporary name beside it (renamed into place only when
the run succeeded and wrote something); `pass_argv` and the pieces it is made of are pure.

Every output is made exactly as its own run makes it: the framemd5 part is `framemd5.framemd5_argv`'s
own output options (per-stream PCM formats, fixed audio blocks, bit-exact), and the access copies
use the proxy's, poster's and contact sheet's filters and output options (`preserve.access`). What
differs is how the poster's and the contact sheet's frames are found: not by input seeks, but by a
``select`` filter on the one decoded stream, at the points the duration known before the run gives
(`seek_duration`: the stream's own timestamps, and the header only to shorten them)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from preserve import tools
from preserve.access import contactsheet
from preserve.access import proxy as proxies
from preserve.characterise import decode
from preserve.config import ProxySettings
from preserve.core.fs import atomic_target
from preserve.core.progress import MediaProgress
from preserve.fixity import framemd5
from preserve.tools import ffmpeg
from preserve.tools.ffprobe import ProbeReport
from preserve.tools.ffprogress import ProgressReader

#: seconds between two progress reports (read as they come, never kept)
PROGRESS_PERIOD = decode.PROGRESS_PERIOD
#: a pass may run at least this many times the film's duration (`pass_timeout`): besides decoding
#: every stream it encodes the access proxy, whose cost grows with the film's length (libx264
#: veryfast at 720p costs about 1 CPU second per second of 1080p24 here), and the machine's cores
#: are shared; four times real time leaves room for a slow source codec and a busy machine, where
#: the flat `ingest.tool_timeout_seconds` (6 h by default) would stop a 15-hour film half-way.
PASS_TIMEOUT_FACTOR = 4.0
#: the video is decoded once; its frames go to each access copy through these filter-graph labels
_PROXY, _POSTER, _SHEET = "proxy", "poster", "sheet"


@dataclass(frozen=True)
class AccessRequest:
    """The access copies of the main video one pass is to make, and where their frames are taken:
    the poster `settings.poster_at_fraction` into ``span`` (with the first frame kept, so a seek
    past the end still leaves a poster), the contact sheet's ``sheet_frames`` in the middles of
    equal parts of it (`contactsheet.frame_times`). No contact sheet when ``contact_sheet`` is None."""

    proxy: Path
    poster: Path
    settings: ProxySettings
    #: how long the video lasts (s) as known before the run; None or 0: the first frames only
    span: float | None
    contact_sheet: Path | None = None
    sheet_frames: int = 12
    sheet_columns: int = 4
    sheet_tile_width: int = 320

    @property
    def poster_at(self) -> float:
        return proxies.poster_time(self.span, self.settings)

    @property
    def sheet_times(self) -> list[float]:
        return contactsheet.frame_times(self.span, self.sheet_frames)


def seek_duration(stream: float | None, header: float | None) -> float | None:
    """The duration the seek points of a pass are placed by, before anything is decoded (pure):
    the span of the video stream's own timestamps, shortened to the header's duration when the
    header claims less; never the header alone (None when the stream's span is unknown)."""
    if stream is None or stream <= 0:
        return None
    return min(stream, header) if header is not None and header > 0 else stream


def pass_timeout(flat: float, *durations: float | None) -> float:
    """The timeout of one pass over a film (pure): the flat tool timeout, or PASS_TIMEOUT_FACTOR
    times the longest of its known durations (s: the header's, the stream's span; None or 0 when
    unknown) when that is longer."""
    known = [d for d in durations if d is not None and d > 0]
    return max(flat, PASS_TIMEOUT_FACTOR * max(known)) if known else flat


def _select(expression: str) -> str:
    return f"select='{expression}'"


def poster_select(at: float) -> str:
    """The poster's frames (pure): the first one, and the first at or after ``at`` s (when
    ``at`` > 0 and the first frame is not already there). Written with ``-update 1``, the last
    one is the poster; a seek point past the end leaves the first frame."""
    if at <= 0:
        return _select("eq(n,0)")
    t = f"{at:.3f}"
    return _select(f"eq(n,0)+gte(t,{t})*eq(selected_n,1)*not(gte(prev_selected_t,{t}))")


def sheet_select(times: list[float]) -> str:
    """The contact sheet's frames (pure): for each seek point in order, the first frame at or after
    it that comes after the frame taken for the one before (the first frame when there is only 0)."""
    if not times or times == [0.0]:
        return _select("eq(n,0)")
    return _select("+".join(f"gte(t,{t:.3f})*eq(selected_n,{i})" for i, t in enumerate(times)))


def access_graph(probe: ProbeReport, access: AccessRequest) -> str:
    """The ``-filter_complex`` of the access copies (pure): the main video, deinterlaced once when
    it declares fields, split to the proxy's chain, the poster's (its frame chosen, then the
    proxy's scaling), and the contact sheet's (its frames chosen, tiled as `contactsheet` tiles
    them). Every chain ends by deleting all frame side data."""
    index = ffmpeg.video_index(probe)
    labels = [_PROXY, _POSTER] + ([_SHEET] if access.contact_sheet is not None else [])
    head = ",".join([*proxies.deinterlace_filters(probe), f"split={len(labels)}"])
    chains = [f"[0:{index}]{head}" + "".join(f"[to_{label}]" for label in labels)]
    height = access.settings.max_height
    chains.append(f"[to_{_PROXY}]" + ",".join(proxies.picture_filters(height)) + f"[{_PROXY}]")
    poster = [poster_select(access.poster_at), *proxies.picture_filters(height, proxies.POSTER_FORMAT)]
    chains.append(f"[to_{_POSTER}]" + ",".join(poster) + f"[{_POSTER}]")
    if access.contact_sheet is not None:
        times = access.sheet_times
        sheet = [
            sheet_select(times),
            contactsheet.tile_filters(access.sheet_tile_width),
            contactsheet.grid_filters(len(times), access.sheet_columns),
        ]
        chains.append(f"[to_{_SHEET}]" + ",".join(sheet) + f"[{_SHEET}]")
    return ";".join(chains)


def framemd5_output(src: Path, dst: Path, probe: ProbeReport) -> list[str]:
    """The framemd5 output's options, exactly as `framemd5.framemd5_argv` makes them for its own
    run (what follows its ``-i``), so the manifest is the same byte for byte (pure)."""
    argv = framemd5.framemd5_argv(src, dst, probe)
    at = argv.index("-i")
    if argv[at + 1] != tools.media_path(src):
        raise ValueError("framemd5_argv no longer has one input right before its output options")
    return argv[at + 2 :]


def pass_argv(
    src: Path,
    probe: ProbeReport,
    *,
    framemd5_to: Path | None = None,
    access: AccessRequest | None = None,
    verdict: bool = True,
) -> list[str]:
    """ffmpeg arguments (pure) for one run over ``src`` that decodes each stream once and makes:
    the framemd5 manifest at ``framemd5_to`` (when given), the decode check's own null output of
    every video and audio stream (when ``verdict`` is asked: `decode.decode_argv`'s), and the
    access copies of ``access`` (the proxy with every audio stream, as `proxies.proxy_argv` maps them). The null output is kept beside a framemd5 (which also decodes
    every stream) because only a muxer that takes no timestamps reports a stream's timestamps
    going back: for the others ffmpeg quietly corrects them. It costs no decode (the decoders are
    shared), and it comes after the framemd5 so that ffmpeg's progress counts the real video's
    frames. Progress reports go to stdout (``-progress pipe:1``); stderr holds the errors and
    warnings, each tagged with its level, as the decode check's (`decode.LOG_LEVEL`), and is read
    as the decode check's is (`decode.report_from`)."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-v", decode.LOG_LEVEL, "-y"]
    argv += ["-progress", "pipe:1", "-stats_period", str(PROGRESS_PERIOD), "-i", tools.media_path(src)]
    if access is not None:
        argv += ["-filter_complex", access_graph(probe, access)]
    if framemd5_to is not None:
        argv += framemd5_output(src, framemd5_to, probe)
    if verdict:
        argv += ["-map", "0:v?", "-map", "0:a?", "-f", "null", "-"]
    if framemd5_to is None and not verdict and access is None:
        raise ValueError("a pass needs a verdict, a framemd5 or access copies to make")
    if access is not None:
        argv += ["-map", f"[{_PROXY}]", *proxies.audio_maps(probe)]
        argv += proxies.proxy_output_options(access.proxy, probe, access.settings)
        # passthrough: the frames chosen are encoded as they are, never duplicated to fill a rate
        argv += ["-map", f"[{_POSTER}]", "-fps_mode", "passthrough", *proxies.poster_output_options(access.poster)]
        if access.contact_sheet is not None:
            argv += ["-map", f"[{_SHEET}]", "-fps_mode", "passthrough", "-frames:v", "1"]
            argv += contactsheet.sheet_output_options(access.contact_sheet)
    return argv


@dataclass(frozen=True)
class AccessCopies:
    """The access copies one pass made of the main video (not yet privacy-checked), and the
    duration their poster and contact sheet were placed by. A poster or contact sheet that got no
    frame (its seek points all past the end of what decoded) is None: it is made on its own."""

    proxy: Path
    poster: Path | None
    contact_sheet: Path | None
    span: float | None

    def paths(self) -> list[Path]:
        return [p for p in (self.proxy, self.poster, self.contact_sheet) if p is not None]

    def discard(self) -> None:
        """Delete them (a pass whose decode was not clean: they are made again on their own)."""
        for path in self.paths():
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class PassResult:
    """What one pass found and made. ``report`` is the run's own decode verdict (ffmpeg's exit
    status, its stderr sorted, its last progress report). Outputs are kept only when ffmpeg
    exited 0, each only if it was written (``framemd5`` None otherwise; ``copies`` None without
    a proxy)."""

    report: decode.DecodeReport
    framemd5: framemd5.FrameMd5Result | None
    copies: AccessCopies | None
    seconds: float
    #: what was asked (so a caller tells "not asked" from "not made")
    asked_framemd5: bool = False
    asked_access: bool = False

    @property
    def complete(self) -> bool:
        """ffmpeg exited 0 and wrote the framemd5 and the proxy, when asked for."""
        return (
            self.report.returncode == 0
            and (self.framemd5 is not None or not self.asked_framemd5)
            and (self.copies is not None or not self.asked_access)
        )

    @property
    def clean(self) -> bool:
        """Complete, and no decoder error: its verdict and its outputs stand on their own."""
        return self.complete and self.report.ok


def manifest_end(text: str) -> float | None:
    """How long the streams of a framemd5 manifest last (s): the latest end (pts + duration, in
    each stream's ``#tb``) of a frame or block (pure); None when it holds none. The decoded
    duration of a pass that made a framemd5, exact, where ffmpeg's progress report would count the
    access proxy's AAC padding too."""
    bases: dict[int, tuple[int, int]] = {}
    end: float | None = None
    for line in text.splitlines():
        if line.startswith("#tb "):
            head, _, base = line[4:].partition(":")
            num, _, den = base.strip().partition("/")
            if head.strip().isdigit() and num.isdigit() and den.isdigit() and int(den) > 0:
                bases[int(head)] = (int(num), int(den))
            continue
        if line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 6 or not cells[0].isdigit():
            continue
        num_den = bases.get(int(cells[0]))
        try:
            ticks = int(cells[2]) + int(cells[3])
        except ValueError:
            continue
        if num_den is not None:
            at = ticks * num_den[0] / num_den[1]
            end = at if end is None else max(end, at)
    return end if end is not None and end > 0 else None


class _Discard(Exception):
    """Leaves one temporary output's block so that it is not renamed into place."""


@contextlib.contextmanager
def _staged(dst: Path, keep: dict[Path, bool]) -> Iterator[Path]:
    """A temporary name beside ``dst`` (`atomic_target`) that becomes ``dst`` when the block ends
    normally and ``keep[dst]`` was set True; otherwise it is removed and ``dst`` left alone."""
    try:
        with atomic_target(dst) as tmp:
            yield tmp
            if not keep.get(dst, False):
                raise _Discard
    except _Discard:
        pass


def run_pass(
    src: Path,
    probe: ProbeReport,
    *,
    framemd5_to: Path | None = None,
    access: AccessRequest | None = None,
    verdict: bool = True,
    timeout: float | None = 6 * 3600,
    progress: MediaProgress | None = None,
    duration: float | None = None,
) -> PassResult:
    """Run `pass_argv` with each output written through a temporary name beside it, and ffmpeg's
    progress reports read as they come (passed to ``progress`` with ``duration``, the film's
    expected length), and its stderr sorted as it comes (`decode.StderrClassifier`: memory stays
    bounded whatever ffmpeg prints). Returns the run's verdict and the outputs made: none when ffmpeg did not
    exit 0; otherwise each one it wrote, and no access copy at all without a proxy. Raises
    ToolNotFound, and ToolError when ffmpeg times out or is killed by a signal (nothing is kept)."""
    started = time.monotonic()
    wanted = [framemd5_to] if framemd5_to is not None else []
    if access is not None:
        wanted += [access.proxy, access.poster] + ([access.contact_sheet] if access.contact_sheet else [])
    keep: dict[Path, bool] = {}
    with contextlib.ExitStack() as stack:
        tmp = {dst: stack.enter_context(_staged(dst, keep)) for dst in wanted}
        staged_access = None
        if access is not None:
            sheet = access.contact_sheet
            staged_access = replace(
                access, proxy=tmp[access.proxy], poster=tmp[access.poster], contact_sheet=tmp[sheet] if sheet else None
            )
        argv = pass_argv(
            src, probe, framemd5_to=tmp[framemd5_to] if framemd5_to else None, access=staged_access, verdict=verdict
        )
        reader, classifier = ProgressReader(duration, progress), decode.StderrClassifier()
        result = tools.run(
            argv, timeout=timeout, check=False, on_stdout_line=reader.feed, on_stderr_line=classifier.feed
        )
        reader.finish()
        report = decode.report_from(
            argv, result.returncode, result.stderr, reader.position, reader.frames, findings=classifier.findings()
        )
        if result.returncode == 0:
            keep.update({dst: path.stat().st_size > 0 for dst, path in tmp.items()})
            if access is not None and not keep[access.proxy]:  # without a proxy, no access copy
                keep.update({access.poster: False, **({access.contact_sheet: False} if access.contact_sheet else {})})
    seconds = time.monotonic() - started
    md5 = None
    if framemd5_to is not None and keep.get(framemd5_to):
        text = framemd5_to.read_text(encoding="utf-8")
        md5 = framemd5.FrameMd5Result(framemd5_to, framemd5.parse(text), list(report.errors))
        if access is not None:  # the decoded duration, not the end of the proxy's last AAC frame
            report = replace(report, duration=manifest_end(text) or report.duration)
    copies = None
    if access is not None and keep.get(access.proxy):
        sheet = access.contact_sheet
        copies = AccessCopies(
            access.proxy,
            access.poster if keep.get(access.poster) else None,
            sheet if sheet is not None and keep.get(sheet) else None,
            access.span,
        )
    return PassResult(report, md5, copies, seconds, framemd5_to is not None, access is not None)
