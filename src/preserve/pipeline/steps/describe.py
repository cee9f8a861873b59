"""Step 2, describe: technical metadata (MediaInfo JSON and XML, ffprobe JSON) of every original,
written into the bag, and its PRONOM format (fido, cross-checked with MediaInfo and ffprobe).
Side effects: runs ffprobe, MediaInfo and fido on the staged copies; writes
data/metadata/technical/ in the staging bag."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from preserve import tools
from preserve.characterise import identify
from preserve.core.errors import MediaError, PreserveError
from preserve.core.model import Agent, EventType, Outcome, PayloadFile, Role
from preserve.packaging import bag
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.receive import Staged
from preserve.tools import ffprobe, mediainfo

#: roles whose files are never treated as media, whatever ffprobe makes of their bytes
NOT_MEDIA_ROLES = frozenset({Role.DOCUMENT, Role.SUBTITLE, Role.SIDECAR, Role.IMAGE})


@dataclass(frozen=True)
class MediaFacts:
    """What characterisation learned about one payload file, for later steps and reports."""

    path: str
    kind: str  # video | audio | image | subtitle | none
    format_name: str = ""
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    video_codec: str = ""
    audio_codec: str = ""
    decode_ok: bool | None = None
    decode_errors: int = 0
    #: how long the decoded streams really last (s), as the full decode check found; ``duration``
    #: is what the container header claims
    decoded_duration: float | None = None

    def decoded(self, ok: bool, errors: int, duration: float | None = None) -> MediaFacts:
        """These facts with the verdict of the full decode check (and the duration it decoded)."""
        return replace(self, decode_ok=ok, decode_errors=errors, decoded_duration=duration)


@dataclass(frozen=True)
class Described:
    """Per payload path (``data/objects/...``): what the tools found, the reports themselves (for
    validation, normalisation and access copies), the PRONOM format, and the technical-metadata
    files written into the bag."""

    facts: Mapping[str, MediaFacts]
    probes: Mapping[str, ffprobe.ProbeReport]
    infos: Mapping[str, mediainfo.MediaInfoReport]
    formats: Mapping[str, tuple[str, str]]  # path -> (format name, PRONOM PUID)
    metadata_files: tuple[PayloadFile, ...]

    def media(self, files: tuple[PayloadFile, ...]) -> list[PayloadFile]:
        """The files that are video or audio, in payload order."""
        return [f for f in files if f.path in self.facts and self.facts[f.path].kind in ("video", "audio")]

    def main_video(self, files: tuple[PayloadFile, ...]) -> PayloadFile | None:
        """The film: the largest payload file that has real video."""
        videos = [f for f in files if f.path in self.facts and self.facts[f.path].kind == "video"]
        return max(videos, key=lambda f: f.size) if videos else None


def objects_relative(path: str) -> str:
    """A payload path without its ``data/objects/`` prefix: the file's name within the submission."""
    return path.removeprefix(f"data/{bag.OBJECTS_DIR}/")


def characterise(ctx: IngestContext, staged: Staged) -> Described:
    """Technical metadata (MediaInfo JSON+XML, ffprobe JSON) for every file, stored in the bag,
    and its PRONOM format (fido, cross-checked with MediaInfo and ffprobe). A file with a media
    extension that ffprobe cannot read is a MediaError unless an archivist accepted it knowingly
    (`accept_invalid`). The decode check is part of `validate`."""
    timeout = ctx.settings.ingest.tool_timeout_seconds
    facts: dict[str, MediaFacts] = {}
    probes: dict[str, ffprobe.ProbeReport] = {}
    infos: dict[str, mediainfo.MediaInfoReport] = {}
    formats: dict[str, tuple[str, str]] = {}
    written: list[PayloadFile] = []
    for f in staged.files:
        staged_path = staged.path_of(f.path)
        rel = objects_relative(f.path)
        probe = ffprobe.probe(staged_path, timeout=min(timeout, 600))
        info = mediainfo.extract(staged_path)
        probes[f.path] = probe
        infos[f.path] = info
        tech = (bag.METADATA_DIR, "technical")
        local = local_root(staged_path, rel)
        for suffix, content in (
            (".mediainfo.json", as_payload_paths(json.dumps(info.data, ensure_ascii=False, indent=1), local, "json")),
            (".mediainfo.xml", as_payload_paths(info.xml, local, "xml")),
            (".ffprobe.json", as_payload_paths(json.dumps(probe.raw, ensure_ascii=False, indent=1), local, "json")),
        ):
            written.append(
                bag.add_payload_bytes(ctx.bag_dir, bag.payload_path(*tech, *(rel + suffix).split("/")), content)
            )
        ctx.log.record(
            EventType.METADATA_EXTRACTION, Outcome.PASS, mediainfo.agent(), "MediaInfo JSON and XML", subject=f.path
        )
        ctx.log.record(
            EventType.METADATA_EXTRACTION,
            Outcome.PASS if probe.readable else Outcome.WARNING,
            tools.agent("ffprobe"),
            "ffprobe format/streams/chapters" + ("" if probe.readable else f": {probe.error}"),
            subject=f.path,
        )
        formats[f.path] = identify_format(ctx, f.path, staged_path, info, probe)
        kind = probe.kind
        if f.role in NOT_MEDIA_ROLES and kind in ("video", "audio"):
            # ffprobe sniffs some documents and random-looking data as (say) h263 video; the
            # extension is the submitter's word, and a document is preserved, never decoded
            ctx.log.record(
                EventType.FORMAT_IDENTIFICATION,
                Outcome.WARNING,
                tools.agent("ffprobe"),
                f"ffprobe reads this {f.role.value} as {kind} ({probe.format_name}); treated as a "
                f"{f.role.value}, not as media",
                subject=f.path,
            )
            kind = "image" if f.role is Role.IMAGE else "none"
        expects_media = f.role in (Role.VIDEO, Role.AUDIO)
        if expects_media and not probe.readable:
            media_failure(ctx, f.path, f"{rel} has a media file extension but ffprobe cannot read it: {probe.error}")
        facts[f.path] = MediaFacts(
            path=f.path,
            kind=kind,
            format_name=probe.format_name,
            duration=probe.duration,
            width=probe.width,
            height=probe.height,
            video_codec=probe.video_codec or "",
            audio_codec=probe.audio_codec or "",
        )
    return Described(facts=facts, probes=probes, infos=infos, formats=formats, metadata_files=tuple(written))


def local_root(read_at: Path, rel: str) -> str:
    """The local directory that stands for ``data/objects/`` when the file at payload-relative
    ``rel`` is read at ``read_at``: the submission's folder in the ingest folder (in place) or the
    staging bag's (copy mode); the file's own folder when its name on disk differs from ``rel``
    (a name normalised to NFC)."""
    text = str(read_at)
    if text.endswith("/" + rel):
        return text[: -len(rel)]
    return str(read_at.parent) + "/"


def as_payload_paths(report: str, local: str, kind: str) -> bytes:
    """A tool's report with the local directory it read the file in written as ``data/objects/``
    (pure): MediaInfo's CompleteName and FolderName and ffprobe's format.filename would otherwise
    keep the ingest folder's absolute path (with the submission's own folder name) in the bag."""
    forms = {local, local.removesuffix("/")}
    if kind == "json":
        forms |= {json.dumps(f, ensure_ascii=False)[1:-1] for f in list(forms)}
    else:
        forms |= {xml_escape(f) for f in list(forms)}
    for form in sorted(forms, key=len, reverse=True):
        report = report.replace(form + "/" if not form.endswith("/") else form, "data/objects/")
        report = report.replace(form, "data/objects")
    return report.encode("utf-8")


def identify_format(
    ctx: IngestContext, path: str, staged: Path, info: mediainfo.MediaInfoReport, probe: ffprobe.ProbeReport
) -> tuple[str, str]:
    """PRONOM identification of one file, as (format name, PUID); a disagreement between fido and
    the container tools is a warning event, and fido failing is recorded without stopping the ingest."""
    try:
        ident = identify.identify(staged, info, probe)
    except PreserveError as exc:
        ctx.log.record(
            EventType.FORMAT_IDENTIFICATION, Outcome.FAIL, identify.agent(), f"fido failed: {exc}", subject=path
        )
        return (probe.format_name, "")
    ctx.log.record(
        EventType.FORMAT_IDENTIFICATION,
        Outcome.PASS if ident.consistent else Outcome.WARNING,
        identify.agent(),
        ident.describe() + (f"; DISAGREEMENT: {ident.disagreement}" if ident.disagreement else ""),
        subject=path,
        puid=ident.puid,
        format=ident.format_name,
        basis=ident.basis,
    )
    return (ident.format_name or probe.format_name, ident.puid)


def media_failure(ctx: IngestContext, subject: str, message: str) -> None:
    """A media file that cannot be read or decoded stops the ingest, unless an archivist accepted it
    as it is; that decision is then recorded as the archivist's. Beyond the local report the error
    names only the file (tool output can quote paths and text from inside it)."""
    if not ctx.accept_invalid:
        raise MediaError(message, public=f"{objects_relative(subject)} cannot be read or does not decode cleanly")
    ctx.log.record(
        EventType.VALIDATION,
        Outcome.WARNING,
        Agent("archivist", "", "person"),
        "accepted as it is by an archivist (--accept-invalid): " + message,
        subject=subject,
    )
