"""An AIP's access package beyond the proxy, poster and contact sheet: its text tracks (every
subtitle file of the submission and every text subtitle stream of the film, as UTF-8 WebVTT), the
`Presentation` they and the copies make, and the two documents written from it at an access
location, the IIIF Presentation 3 manifest and the page that plays. One recipe for the ingest
(pipeline steps `derive` and `publish`) and for copies made again later (`operations.access_change`).
Side effects: ffmpeg and ffprobe runs (via `preserve.tools`), and files written under the ``out``
directory it is given; nothing is stored or published here.

Every document is checked before it is offered: the manifest against the IIIF Presentation 3 model,
both against an allow-list of what they may say (`iiif.check_clean`, `page.check_clean`); a track
by its own check (`subtitles.check_track`). People's names appear only where the sidecar marks the
credits public."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preserve.access import iiif, page, scrub, subtitles
from preserve.access.presentation import (
    MANIFEST_NAME,
    PAGE_NAME,
    UNDETERMINED,
    Presentation,
    TextTrack,
    TrackFinding,
    TrackOutcome,
    TrackRef,
    normal_language,
    track_name,
)
from preserve.config import AccessSettings
from preserve.core.errors import PackagingError, PrivacyError, ToolError, ToolNotFound
from preserve.core.fs import atomic_target
from preserve.core.model import Outcome
from preserve.tools import ffprobe
from preserve.tools.ffprobe import ProbeReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubtitleSource:
    """One subtitle file of an AIP: its payload path (for the events), where its bytes can be read
    (never written), and what the sidecar says of it ("" when nothing)."""

    source: str
    path: Path
    language: str = ""
    encoding: str = ""


def track_language(source: SubtitleSource) -> tuple[str, str]:
    """A subtitle file's language and where it came from: the sidecar's note, else the file's
    name (``film.zh-Hans.srt``), else undetermined (pure)."""
    if source.language and normal_language(source.language):
        return normal_language(source.language) or UNDETERMINED, "sidecar"
    named = subtitles.language_from_name(source.source.rsplit("/", 1)[-1])
    if named is not None:
        return named, "file name"
    return UNDETERMINED, "none"


def make_tracks(
    sources: Sequence[SubtitleSource],
    out: Path,
    *,
    settings: AccessSettings,
    film: Path | None = None,
    film_source: str = "",
    probe: ProbeReport | None = None,
    forbidden: Sequence[str] = (),
    timeout: float | None = 600,
) -> list[TrackFinding]:
    """A WebVTT access track in ``out`` for every subtitle file in ``sources`` (in payload order)
    and then every subtitle stream of the film (in stream order), numbered from 1 in that order;
    one finding per source, converted or not (an undecidable encoding, a bitmap stream, a file
    that is not a subtitle file, a track the privacy check withheld). None when
    ``settings.subtitle_tracks`` is off. Raises ToolNotFound only; another tool failure is the
    finding of that stream."""
    if not settings.subtitle_tracks:
        return []
    findings: list[TrackFinding] = []
    number = 1
    for source in sorted(sources, key=lambda s: s.source):
        language, language_from = track_language(source)
        try:
            finding = subtitles.convert_file(
                source.path,
                out / track_name(number, language),
                source=source.source,
                language=language,
                language_from=language_from,
                encoding=source.encoding or None,
                max_bytes=settings.subtitle_max_bytes,
                forbidden=forbidden,
            )
        except Exception as exc:  # noqa: BLE001 - a subtitle file is never a reason to lose the film
            finding = _unconverted(source.source, exc, language_from)
        findings.append(finding)
        number += finding.track is not None
    if film is not None and probe is not None:
        for stream in probe.subtitle_streams:
            tagged = subtitles.language_of_stream(stream)
            language, language_from = (tagged, "stream tag") if tagged else (UNDETERMINED, "none")
            where = f"{film_source}#{stream.get('index')}"
            try:
                finding = subtitles.convert_stream(
                    film,
                    stream,
                    out / track_name(number, language),
                    source=where,
                    language=language,
                    language_from=language_from,
                    forbidden=forbidden,
                    timeout=timeout,
                )
            except ToolNotFound:
                raise
            except Exception as exc:  # noqa: BLE001 - ffmpeg failed, or a stream no reader expects
                finding = _unconverted(where, exc, language_from)
            findings.append(finding)
            number += finding.track is not None
    return findings


def _unconverted(source: str, exc: BaseException, language_from: str) -> TrackFinding:
    """The finding of a subtitle source whose conversion failed unexpectedly (the kind of error
    only: its message could quote the file); the original stays in the bag, the film goes on."""
    log.warning("subtitle source not converted: %s", type(exc).__name__)
    return TrackFinding(
        source,
        TrackOutcome.UNREADABLE,
        f"the subtitles could not be converted ({type(exc).__name__}); they stay in the preserved original",
        language_from=language_from,
    )


#: a value shorter than this is not searched for: it turns up in dialogue or a title by chance
#: (the same bound as the copies' byte scan)
MIN_FORBIDDEN = scrub.MIN_FORBIDDEN_LENGTH


def forbidden_values(values: Sequence[str], *, shown: Sequence[str] = ()) -> list[str]:
    """What a text track or a public document must not contain (pure): ``values`` (the source's
    identifying tags, a contributor's pseudonym, directors not credited publicly), stripped, each
    at least `MIN_FORBIDDEN` characters and once, except those the film's public texts
    (``shown``: its title, original title, credits made public) contain: a container whose title
    tag is the film's title must not withhold its subtitles or its page."""
    public = [t for t in shown if t]
    stripped = (v.strip() for v in values if v)
    return list(dict.fromkeys(v for v in stripped if len(v) >= MIN_FORBIDDEN and not any(v in t for t in public)))


def tracks_of(findings: Sequence[TrackFinding]) -> tuple[TextTrack, ...]:
    """The tracks that were made, in their order."""
    return tuple(f.track for f in findings if f.track is not None)


def presentation(
    aip_id: str,
    proxy: Path,
    *,
    title: str = "",
    original_title: str = "",
    original_language: str = "",
    year: int | None = None,
    credits: Sequence[str] = (),
    poster: Path | None = None,
    contact_sheet: bool = False,
    tracks: Sequence[TextTrack] = (),
    timeout: float | None = 600,
) -> Presentation:
    """The presentation of an AIP's access copies: the proxy's duration and picture size and the
    poster's, as ffprobe reads the copies made (never the original's header), the descriptive
    values given (``credits`` only when the sidecar marks them public: the caller decides), and
    the tracks. Raises ToolError when the proxy cannot be read."""
    limit = 600.0 if timeout is None else timeout
    made = ffprobe.probe(proxy, timeout=limit)
    if not made.readable or made.width is None or made.height is None:
        raise ToolError(f"the access proxy cannot be read back by ffprobe: {made.error or 'no video stream'}")
    duration = made.duration or 0.0
    if duration <= 0:
        raise ToolError("the access proxy has no duration ffprobe can read")
    poster_size = None
    if poster is not None:
        still = ffprobe.probe(poster, timeout=limit)
        if still.width is not None and still.height is not None:
            poster_size = (still.width, still.height)
    lang = normal_language(original_language) if original_language else None
    return Presentation(
        aip_id=aip_id,
        title=title,
        duration=round(duration, 3),
        width=made.width,
        height=made.height,
        original_title=original_title,
        original_language=lang or "zh",
        year=year,
        credits=tuple(c for c in credits if c),
        poster=poster_size,
        contact_sheet=contact_sheet,
        tracks=tuple(TrackRef(t.path.name, t.language, t.label) for t in tracks),
    )


def write_documents(p: Presentation, base: str, out: Path, *, forbidden: Sequence[str] = ()) -> tuple[Path, Path]:
    """The IIIF manifest (ids under ``base``, the AIP's folder at its access location) and the
    page, written into ``out`` (each through a temporary name), after both were checked: the
    manifest against the IIIF Presentation 3 model, both against what they may say. Raises
    PrivacyError (naming the check's findings, never a value), or PackagingError when the
    manifest cannot be written for that base, and writes nothing then."""
    try:
        document = iiif.manifest(p, base)
    except ValueError as exc:  # a base the IIIF model would rewrite, a size it cannot hold
        raise PackagingError(f"the IIIF manifest cannot be written: {exc}") from None
    html = page.render(p)
    problems = [f"manifest: {x}" for x in iiif.validate(document)]
    problems += [f"manifest: {x}" for x in iiif.check_clean(document, p, base, forbidden)]
    problems += [f"page: {x}" for x in page.check_clean(html, p, forbidden)]
    if problems:
        raise PrivacyError(
            "the IIIF manifest or the page failed its check: " + "; ".join(problems[:10]),
            public=f"the IIIF manifest or the page failed its check ({len(problems)} finding(s)); nothing was published",
        )
    written = []
    for name, data in ((MANIFEST_NAME, document), (PAGE_NAME, html)):
        dst = out / name
        with atomic_target(dst) as tmp:
            tmp.write_bytes(data)
        written.append(dst)
    return written[0], written[1]


def event_outcome(finding: TrackFinding) -> Outcome:
    """The outcome of a subtitle source's event: pass (a track made), not performed (a bitmap
    stream: recorded, not converted), fail (the privacy check withheld it), else warning."""
    return {
        TrackOutcome.CONVERTED: Outcome.PASS,
        TrackOutcome.BITMAP: Outcome.NOT_PERFORMED,
        TrackOutcome.WITHHELD: Outcome.FAIL,
    }.get(finding.outcome, Outcome.WARNING)


def event_detail(finding: TrackFinding) -> tuple[str, dict[str, Any]]:
    """The preservation event's sentence and extra fields for one subtitle source: the encoding
    and how it was decided, the candidates, the language and where it came from, what was
    dropped (names only), or why nothing was made (pure)."""
    extra: dict[str, Any] = {"track_outcome": finding.outcome.value, "language_from": finding.language_from}
    if finding.encoding:
        extra["encoding"] = finding.encoding
    if finding.how:
        extra["encoding_detected_by"] = finding.how
    if finding.candidates:
        extra["encoding_candidates"] = list(finding.candidates)
    if finding.dropped:
        extra["dropped"] = list(finding.dropped)
    if finding.track is not None:
        t = finding.track
        extra.update(track=t.path.name, language=t.language, cues=t.cues)
        encoding = f"read as {finding.encoding} ({finding.how})" if finding.encoding else "read"
        dropped = f"; dropped from it: {', '.join(finding.dropped)}" if finding.dropped else ""
        text = (
            f"WebVTT access track {t.path.name} made ({t.cues} cues, UTF-8): the subtitles were {encoding}; "
            f"language {t.language} (from the {finding.language_from})" + dropped
        )
        if finding.language_from == "none":
            text = text.replace("(from the none)", "(nothing says which: say it in the sidecar, `subtitles:`)")
        return text, extra
    return f"no access track: {finding.detail}", extra
