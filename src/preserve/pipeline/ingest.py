"""The ingest pipeline for one submission, as an ordered list of steps over one IngestJob:

    stage → characterise → make_access → package → replicate → record → accession

Each step is a plain function (job -> job). `ingest_submission` runs them in order and decides
what happens on failure (quarantine, with the source intact); the Prefect flow passes a
`step_runner` that wraps each step as a task, so the library holds the only copy of the logic.
Side effects: staging under var/staging, uploads, catalog writes, and the final rename of the
source into done/ or failed/."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from preserve import tools
from preserve.access import contactsheet, scrub
from preserve.access import proxy as proxies
from preserve.catalog import AccessCopy, Catalog, NewAip, ReplicaRecord, content_key
from preserve.characterise import decode, identify
from preserve.characterise import normalise as normalization
from preserve.config import Settings
from preserve.core.errors import (
    MediaError,
    ObjectLocked,
    PreserveError,
    PrivacyError,
    SidecarError,
    StorageError,
    SuppliedChecksumMismatch,
)
from preserve.core.model import Agent, Digests, Event, EventType, Outcome, PayloadFile, Role, utcnow
from preserve.fixity import framemd5
from preserve.intake import claims, disposition, sidecar, supplied
from preserve.intake import submission as submissions
from preserve.packaging import bag, premis
from preserve.report.progress import Meter, Progress
from preserve.storage import ObjectStore, open_store
from preserve.storage.base import object_key
from preserve.tools import clamav as virus
from preserve.tools import ffprobe, mediaconch, mediainfo

OBJECTS_DIR = "objects"
METADATA_DIR = "metadata"


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


@dataclass
class IngestJob:
    """Everything one ingest knows as it goes; steps fill it in."""

    settings: Settings
    catalog: Catalog
    source: Path
    aip_id: str
    worker: str
    accept_invalid: bool = False
    #: the claim's attempt number under this AIP id; from 2 on, an earlier attempt may have left
    #: unrecorded objects behind (see _sweep_unrecorded)
    attempt: int = 1
    submission: submissions.Submission | None = None
    metadata: sidecar.Sidecar = field(default_factory=sidecar.Sidecar)
    files: list[PayloadFile] = field(default_factory=list)  # originals, in data/objects/
    metadata_files: list[PayloadFile] = field(default_factory=list)  # generated, in data/metadata/
    facts: dict[str, MediaFacts] = field(default_factory=dict)
    probes: dict[str, ffprobe.ProbeReport] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    proxy: Path | None = None
    poster: Path | None = None
    payload_oxum: str = ""
    replicas: list[ReplicaRecord] = field(default_factory=list)
    access: list[AccessCopy] = field(default_factory=list)
    duplicate_of: str | None = None
    destination: Path | None = None  # where the source went (done/...)
    timings: dict[str, float] = field(default_factory=dict)
    #: bytes copied into staging and uploaded to the targets, for progress bars and artifacts
    meter: Meter = field(default_factory=Meter)
    infos: dict[str, mediainfo.MediaInfoReport] = field(default_factory=dict)
    formats: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (format name, PRONOM PUID)
    masters: list[PayloadFile] = field(default_factory=list)  # preservation masters, beside their originals
    master_of: dict[str, str] = field(default_factory=dict)  # master path -> original path
    contact_sheet: Path | None = None

    @property
    def name(self) -> str:
        return submissions.key_for(self.source)

    @property
    def work_dir(self) -> Path:
        return self.settings.staging_dir / self.aip_id

    @property
    def bag_dir(self) -> Path:
        return self.work_dir / "bag"

    def event(
        self, type: EventType, outcome: Outcome, agent: Agent, detail: str = "", subject: str = "", **extra: object
    ) -> Event:
        e = Event(type=type, outcome=outcome, agent=agent, detail=detail, subject=subject, extra=dict(extra))
        self.events.append(e)
        return e


@dataclass(frozen=True)
class IngestOutcome:
    submission: str
    status: str  # stored | duplicate | quarantined | skipped
    aip_id: str = ""
    detail: str = ""
    quarantine_dir: Path | None = None
    job: IngestJob | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("stored", "duplicate")


Step = Callable[[IngestJob], IngestJob]


class StepRunner(Protocol):
    def __call__(self, step: Step, job: IngestJob) -> IngestJob: ...


def run_directly(step: Step, job: IngestJob) -> IngestJob:
    return step(job)


# -- steps -----------------------------------------------------------------------------------------
def stage(job: IngestJob) -> IngestJob:
    """Scan the submission, read its sidecar, and copy every original into the staging bag while
    computing SHA-256 and SHA-512 in the same read. The source is opened read-only. Checksums the
    submitter supplied are verified on receipt: their algorithms are computed in that same read
    (a submitted BagIt bag is also fully validated first), and a mismatch stops the ingest here."""
    sub = submissions.scan(job.source)
    job.submission = sub
    expected = supplied.find(sub)  # parsed and path-checked before a byte is copied
    job.metadata = sidecar.load(sub.sidecar)
    if job.work_dir.exists():  # a crashed or retried attempt: redo from scratch
        shutil.rmtree(job.work_dir)
    job.bag_dir.mkdir(parents=True)
    me = tools.preserve_agent()
    for ignored in sub.ignored:
        job.event(
            EventType.VALIDATION, Outcome.WARNING, me, f"ignored system/partial file {ignored!r}", subject=ignored
        )
    if expected.is_bag:
        bag_event, bag_valid, bag_errors = supplied.validate_bag(sub.path)
        job.events.append(bag_event)
        if not bag_valid:
            raise SuppliedChecksumMismatch(f"the submitted BagIt bag does not validate: {bag_errors}")
    job.files = []
    job.meter.expect(sum(sf.size for sf in sub.files) * (1 + len(job.settings.targets)))
    received: dict[str, Digests] = {}
    extra_files = [(c, c.name) for c in sub.sidecar_files]
    for f in [*((sf.path, sf) for sf in sub.files), *extra_files]:
        src, meta = f
        if isinstance(meta, submissions.SourceFile):
            rel, role, orig = meta.rel, meta.role, meta.original_name_bytes
        else:
            rel, _ = submissions.safe_name(os.fsencode(meta), meta)
            role, orig = Role.SIDECAR, None
        payload = bag.add_payload_file(
            job.bag_dir,
            bag.payload_path(OBJECTS_DIR, *rel.split("/")),
            src,
            role,
            orig,
            extra_algorithms=expected.algorithms_for(rel),
        )
        job.files.append(payload)
        job.meter.advance(payload.size)
        received[rel] = payload.digests
        job.event(
            EventType.MESSAGE_DIGEST_CALCULATION,
            Outcome.PASS,
            me,
            f"sha256={payload.digests.sha256} size={payload.size}",
            subject=payload.path,
        )
        if orig is not None:
            job.event(
                EventType.FILENAME_CHANGE,
                Outcome.PASS,
                me,
                f"name normalised to NFC; original bytes (hex) {orig.hex()}",
                subject=payload.path,
            )
    report = supplied.verify(expected, received)
    job.events.extend(supplied.events(expected, report))
    supplied.raise_on_mismatch(report)
    return job


def characterise(job: IngestJob) -> IngestJob:
    """Technical metadata (MediaInfo JSON+XML, ffprobe JSON) for every file, stored in the bag,
    and its PRONOM format (fido, cross-checked with MediaInfo and ffprobe). A file with a media
    extension that ffprobe cannot read is a MediaError unless an archivist accepted it knowingly
    (`accept_invalid`). The decode check is part of `validate`."""
    timeout = job.settings.ingest.tool_timeout_seconds
    for f in job.files:
        staged = job.bag_dir / f.path
        rel = f.path.removeprefix(f"data/{OBJECTS_DIR}/")
        probe = ffprobe.probe(staged, timeout=min(timeout, 600))
        info = mediainfo.extract(staged)
        job.probes[f.path] = probe
        job.infos[f.path] = info
        tech = (METADATA_DIR, "technical")
        for suffix, content in (
            (".mediainfo.json", json.dumps(info.data, ensure_ascii=False, indent=1).encode()),
            (".mediainfo.xml", info.xml.encode("utf-8")),
            (".ffprobe.json", json.dumps(probe.raw, ensure_ascii=False, indent=1).encode()),
        ):
            job.metadata_files.append(
                bag.add_payload_bytes(job.bag_dir, bag.payload_path(*tech, *(rel + suffix).split("/")), content)
            )
        job.event(
            EventType.METADATA_EXTRACTION, Outcome.PASS, mediainfo.agent(), "MediaInfo JSON and XML", subject=f.path
        )
        job.event(
            EventType.METADATA_EXTRACTION,
            Outcome.PASS if probe.readable else Outcome.WARNING,
            tools.agent("ffprobe"),
            "ffprobe format/streams/chapters" + ("" if probe.readable else f": {probe.error}"),
            subject=f.path,
        )
        _identify_format(job, f.path, staged, info, probe)
        kind = probe.kind
        if f.role in NOT_MEDIA_ROLES and kind in ("video", "audio"):
            # ffprobe sniffs some documents and random-looking data as (say) h263 video; the
            # extension is the submitter's word, and a document is preserved, never decoded
            job.event(
                EventType.FORMAT_IDENTIFICATION,
                Outcome.WARNING,
                tools.agent("ffprobe"),
                f"ffprobe reads this {f.role.value} as {kind} ({probe.format_name}); treated as a "
                f"{f.role.value}, not as media",
                subject=f.path,
            )
            kind = "image" if f.role is Role.IMAGE else "none"
        facts = MediaFacts(
            path=f.path,
            kind=kind,
            format_name=probe.format_name,
            duration=probe.duration,
            width=probe.width,
            height=probe.height,
            video_codec=probe.video_codec or "",
            audio_codec=probe.audio_codec or "",
        )
        expects_media = f.role in (Role.VIDEO, Role.AUDIO)
        if expects_media and not probe.readable:
            _media_failure(job, f.path, f"{rel} has a media file extension but ffprobe cannot read it: {probe.error}")
        job.facts[f.path] = facts
    return job


def _identify_format(
    job: IngestJob, path: str, staged: Path, info: mediainfo.MediaInfoReport, probe: ffprobe.ProbeReport
) -> None:
    """PRONOM identification of one file; a disagreement between fido and the container tools is
    a warning event, and fido failing is recorded without stopping the ingest."""
    try:
        ident = identify.identify(staged, info, probe)
    except PreserveError as exc:
        job.formats[path] = (probe.format_name, "")
        job.event(EventType.FORMAT_IDENTIFICATION, Outcome.FAIL, identify.agent(), f"fido failed: {exc}", subject=path)
        return
    job.formats[path] = (ident.format_name or probe.format_name, ident.puid)
    job.event(
        EventType.FORMAT_IDENTIFICATION,
        Outcome.PASS if ident.consistent else Outcome.WARNING,
        identify.agent(),
        ident.describe() + (f"; DISAGREEMENT: {ident.disagreement}" if ident.disagreement else ""),
        subject=path,
        puid=ident.puid,
        format=ident.format_name,
        basis=ident.basis,
    )


def validate(job: IngestJob) -> IngestJob:
    """Validate every original with each tool on its own, so one tool's failure is recorded and
    does not stop the others: the full decode check (errors counted), MediaConch's implementation
    checks for Matroska/FFV1, a virus check (its real outcome, "not performed" included), and a
    framemd5 sidecar of every video and audio stream (data/metadata/framemd5/). Only then does a
    file that does not decode stop the ingest (MediaError, unless `accept_invalid`); a virus
    found stops it too."""
    settings, timeout = job.settings, job.settings.ingest.tool_timeout_seconds
    undecodable: list[tuple[str, str]] = []
    media = [f for f in job.files if job.facts.get(f.path) and job.facts[f.path].kind in ("video", "audio")]
    for f in media:
        staged, probe = job.bag_dir / f.path, job.probes[f.path]
        if settings.ingest.decode_check:
            try:
                report = decode.decode_check(staged, timeout=timeout)
            except PreserveError as exc:
                job.event(
                    EventType.VALIDATION,
                    Outcome.FAIL,
                    tools.agent("ffmpeg"),
                    f"decode check could not run: {exc}",
                    subject=f.path,
                )
                undecodable.append((f.path, f"{f.path}: decode check could not run: {exc}"))
            else:
                job.facts[f.path] = MediaFacts(
                    **{**job.facts[f.path].__dict__, "decode_ok": report.ok, "decode_errors": report.error_count}
                )
                detail = (
                    "full decode: no errors"
                    if report.ok
                    else (f"full decode: {report.error_count} decode error(s): " + "; ".join(report.errors[:5]))
                )
                job.event(
                    EventType.VALIDATION,
                    Outcome.PASS if report.ok else Outcome.FAIL,
                    tools.agent("ffmpeg"),
                    detail,
                    subject=f.path,
                    error_count=report.error_count,
                )
                if not report.ok:
                    undecodable.append(
                        (f.path, f"{f.path.removeprefix('data/objects/')} does not decode cleanly: {detail}")
                    )
        if settings.validation.mediaconch and mediaconch.applies_to(probe):
            try:
                conch = mediaconch.check_implementation(staged, timeout=timeout)
                job.event(
                    EventType.VALIDATION,
                    Outcome.PASS if conch.ok else Outcome.FAIL,
                    mediaconch.agent(),
                    conch.describe(),
                    subject=f.path,
                    checks_run=conch.checks_run,
                )
            except PreserveError as exc:
                job.event(
                    EventType.VALIDATION,
                    Outcome.NOT_PERFORMED,
                    mediaconch.agent(),
                    f"MediaConch implementation checks could not run: {exc}",
                    subject=f.path,
                )
        if settings.validation.framemd5:
            _write_framemd5(job, f, staged, probe, timeout)
    _virus_check(job)
    for subject, message in undecodable:
        _media_failure(job, subject, message)
    return job


def _write_framemd5(job: IngestJob, f: PayloadFile, staged: Path, probe: ffprobe.ProbeReport, timeout: float) -> None:
    if not (probe.video_streams or probe.audio_streams):
        return
    rel = bag.payload_path(
        METADATA_DIR, "framemd5", *(f.path.removeprefix(f"data/{OBJECTS_DIR}/") + ".framemd5").split("/")
    )
    dest = job.bag_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = framemd5.write(staged, dest, probe, timeout=timeout)
    except PreserveError as exc:
        dest.unlink(missing_ok=True)
        job.event(
            EventType.MESSAGE_DIGEST_CALCULATION,
            Outcome.FAIL,
            tools.agent("ffmpeg"),
            f"framemd5 could not be made: {exc}",
            subject=f.path,
        )
        return
    from preserve.fixity.digest import digest_file

    job.metadata_files.append(PayloadFile(path=rel, digests=digest_file(dest), role=Role.SIDECAR))
    job.event(
        EventType.MESSAGE_DIGEST_CALCULATION,
        Outcome.PASS,
        tools.agent("ffmpeg"),
        f"framemd5 of every video and audio stream ({framemd5.stream_summary(result.manifest)}; audio in "
        f"blocks of {framemd5.AUDIO_BLOCK_SAMPLES} samples at full precision) in {rel}",
        subject=f.path,
        sidecar=rel,
    )


def _virus_check(job: IngestJob) -> None:
    """ClamAV over every original (and sidecar) in one run; each file gets its real outcome."""
    cfg = job.settings.validation
    if not cfg.virus_check:
        for f in job.files:
            job.event(
                EventType.VIRUS_CHECK,
                Outcome.NOT_PERFORMED,
                tools.preserve_agent(),
                "virus check switched off (validation.virus_check = false)",
                subject=f.path,
            )
        return
    database = job.settings.resolve(cfg.clamav_database) if cfg.clamav_database else None
    try:
        results = virus.scan(
            [job.bag_dir / f.path for f in job.files],
            database=database,
            max_bytes=cfg.virus_scan_max_mb * 1024 * 1024,
            timeout=job.settings.ingest.tool_timeout_seconds,
        )
    except PreserveError as exc:
        for f in job.files:
            job.event(
                EventType.VIRUS_CHECK, Outcome.NOT_PERFORMED, virus.agent(), f"clamscan failed: {exc}", subject=f.path
            )
        return
    found = []
    for f, r in zip(job.files, results, strict=True):
        job.event(EventType.VIRUS_CHECK, r.outcome, virus.agent(), r.detail, subject=f.path)
        if r.outcome is Outcome.FAIL:
            found.append(f"{f.path}: {r.detail}")
    if found:
        from preserve.core.errors import SubmissionError

        raise SubmissionError(
            "virus check: " + "; ".join(found),
            advice="ClamAV matched a signature. Do not open the file; ask the operator to "
            "examine it in isolation before anything else is done with it.",
        )


def normalise(job: IngestJob) -> IngestJob:
    """Preservation masters under the normalization policy: an uncompressed or lossless-intended
    video gets an FFV1 level 3 / Matroska master beside its original (which is always kept), kept
    only if framemd5 proves it lossless on every video and audio stream and it passes the shipped
    MediaConch policy. Every decision is an event; a master that fails is not kept, and says why."""
    settings, timeout = job.settings, job.settings.ingest.tool_timeout_seconds
    ffmpeg_agent = tools.agent("ffmpeg")
    taken = {f.path for f in job.files}
    for f in list(job.files):
        probe = job.probes.get(f.path)
        if probe is None or not probe.has_video:
            continue
        decision = normalization.decide(probe, job.infos.get(f.path), settings.normalization)
        if not decision.normalise:
            job.event(
                EventType.NORMALIZATION,
                Outcome.NOT_PERFORMED,
                tools.preserve_agent(),
                f"no preservation master: {decision.reason} (policy {settings.normalization.policy})",
                subject=f.path,
            )
            continue
        rel = f"{f.path}.ffv1.mkv"
        n = 2
        while rel in taken:
            rel, n = f"{f.path}.{n}.ffv1.mkv", n + 1
        work = job.work_dir / "normalise"
        work.mkdir(exist_ok=True)
        made = work / "master.mkv"
        why_not = ""
        try:
            normalization.make_master(job.bag_dir / f.path, made, probe, settings.normalization, timeout=timeout)
            master_probe = ffprobe.probe(made, timeout=min(timeout, 600))
            source_manifest = _source_manifest(job, f.path, probe, work, timeout)
            proof = normalization.prove_lossless(
                source_manifest, probe, made, master_probe, timeout=timeout, scratch=work / "master.framemd5"
            )
            if not proof.lossless:
                why_not = proof.detail
            else:
                policy = mediaconch.check_policy(made, timeout=timeout)
                job.event(
                    EventType.VALIDATION,
                    Outcome.PASS if policy.ok else Outcome.FAIL,
                    mediaconch.agent(),
                    policy.describe(),
                    subject=rel,
                )
                if not policy.ok:
                    why_not = f"the master fails the preservation-master policy: {'; '.join(policy.failures[:5])}"
        except PreserveError as exc:
            why_not, proof = f"the master could not be made or checked: {exc}", None
        if why_not:
            made.unlink(missing_ok=True)
            job.event(
                EventType.NORMALIZATION,
                Outcome.FAIL,
                ffmpeg_agent,
                f"FFV1/Matroska master NOT kept: {why_not}; the original is preserved as it is",
                subject=f.path,
            )
            continue
        from preserve.fixity.digest import digest_file

        digests = digest_file(made)
        (job.bag_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(made, job.bag_dir / rel)
        master = PayloadFile(path=rel, digests=digests, role=f.role)
        job.masters.append(master)
        job.master_of[rel] = f.path
        taken.add(rel)
        job.probes[rel] = master_probe
        skipped = normalization.left_out(probe)
        job.event(
            EventType.NORMALIZATION,
            Outcome.PASS,
            ffmpeg_agent,
            f"FFV1 level 3 / Matroska master {rel} ({decision.reason}; -slicecrc 1, GOP 1, every audio track "
            f"at its own bit depth); {proof.detail if proof else ''}"
            + (f"; not carried (kept in the original): {', '.join(skipped)}" if skipped else ""),
            subject=f.path,
            master=rel,
        )
        job.event(
            EventType.MESSAGE_DIGEST_CALCULATION,
            Outcome.PASS,
            tools.preserve_agent(),
            f"sha256={digests.sha256} size={digests.size}",
            subject=rel,
        )
        _identify_format(job, rel, job.bag_dir / rel, mediainfo.extract(job.bag_dir / rel), master_probe)
    return job


def _source_manifest(
    job: IngestJob, path: str, probe: ffprobe.ProbeReport, work: Path, timeout: float
) -> framemd5.Manifest:
    """The original's framemd5: the sidecar `validate` wrote, or a fresh one."""
    sidecar_rel = bag.payload_path(
        METADATA_DIR, "framemd5", *(path.removeprefix(f"data/{OBJECTS_DIR}/") + ".framemd5").split("/")
    )
    written = job.bag_dir / sidecar_rel
    if written.exists():
        return framemd5.parse(written.read_text(encoding="utf-8"))
    return framemd5.manifest(job.bag_dir / path, probe, timeout=timeout, scratch=work / "source.framemd5")


#: roles whose files are never treated as media, whatever ffprobe makes of their bytes
NOT_MEDIA_ROLES = frozenset({Role.DOCUMENT, Role.SUBTITLE, Role.SIDECAR, Role.IMAGE})


def _media_failure(job: IngestJob, subject: str, message: str) -> None:
    if not job.accept_invalid:
        raise MediaError(message)
    job.event(
        EventType.VALIDATION,
        Outcome.WARNING,
        Agent("archivist", "", "person"),
        "accepted as it is by an archivist (--accept-invalid): " + message,
        subject=subject,
    )


def main_video(job: IngestJob) -> PayloadFile | None:
    """The film: the largest payload file that has real video."""
    videos = [f for f in job.files if job.facts.get(f.path) and job.facts[f.path].kind == "video"]
    return max(videos, key=lambda f: f.size) if videos else None


def make_access(job: IngestJob) -> IngestJob:
    """An H.264/AAC proxy, a poster and a contact sheet of the main video, with no source
    metadata, post-checked for anything identifying. Non-video submissions and dark films get no
    access copy, and an event says so. Where the copies go (published, restricted, held under
    embargo) is decided when they are stored (`_publish_access`)."""
    film = main_video(job)
    level = job.metadata.access.level
    if film is None:
        job.event(
            EventType.CREATION,
            Outcome.NOT_PERFORMED,
            tools.preserve_agent(),
            "no access copy: the submission holds no video",
        )
        return job
    if level == "dark":
        job.event(
            EventType.ACCESS_DECISION,
            Outcome.PASS,
            tools.preserve_agent(),
            "access level dark: no access copy at all (no proxy, poster or contact sheet)",
            level="dark",
        )
        return job
    src = job.bag_dir / film.path
    probe = job.probes[film.path]
    out = job.work_dir / "access"
    out.mkdir(exist_ok=True)
    started = time.monotonic()
    timeout = job.settings.ingest.tool_timeout_seconds
    job.proxy = proxies.make_proxy(src, out / "proxy.mp4", probe, job.settings.proxy, timeout=timeout)
    job.poster = proxies.make_poster(src, out / "poster.jpg", probe, job.settings.proxy, timeout=timeout)
    job.timings["proxy"] = time.monotonic() - started
    sheet = job.settings.access
    if sheet.contact_sheet:
        job.contact_sheet = contactsheet.make_contact_sheet(
            src,
            out / "contact-sheet.jpg",
            probe,
            frames=sheet.contact_sheet_frames,
            columns=sheet.contact_sheet_columns,
            tile_width=sheet.contact_sheet_tile_width,
            timeout=timeout,
        )
    ffmpeg_agent = tools.agent("ffmpeg")
    job.event(
        EventType.CREATION,
        Outcome.PASS,
        ffmpeg_agent,
        f"access proxy H.264/AAC MP4, at most {job.settings.proxy.max_height} lines, poster JPEG"
        + (f", contact sheet of {sheet.contact_sheet_frames} frames" if job.contact_sheet else ""),
        subject=film.path,
    )
    forbidden = [
        v
        for v in (
            job.metadata.title,
            job.metadata.original_title,
            *job.metadata.directors,
            *_identifying_tags(probe.raw),
        )
        if v and len(v) >= 4
    ]
    for made in (p for p in (job.proxy, job.poster, job.contact_sheet) if p is not None):
        leak = scrub.check_clean(made, forbidden_values=forbidden)
        if not leak.ok:
            job.event(
                EventType.METADATA_MODIFICATION,
                Outcome.FAIL,
                ffmpeg_agent,
                "identifying metadata survived: " + "; ".join(leak.findings),
                subject=made.name,
            )
            raise PrivacyError(
                f"the access copy {made.name} still carries identifying metadata: " + "; ".join(leak.findings[:5])
            )
    job.event(
        EventType.METADATA_MODIFICATION,
        Outcome.PASS,
        ffmpeg_agent,
        "source metadata removed from proxy, poster and contact sheet (no title, location, device, dates, chapters); "
        "verified with ffprobe, MediaInfo and a byte scan",
        subject=film.path,
    )
    return job


_IDENTIFYING_KEYS = (
    "title",
    "location",
    "xyz",
    "make",
    "model",
    "artist",
    "author",
    "comment",
    "description",
    "copyright",
    "serial",
    "iso6709",
    "com.apple.quicktime.location.iso6709",
    "com.apple.quicktime.make",
    "com.apple.quicktime.model",
    "com.apple.quicktime.author",
)


def _identifying_tags(raw: dict) -> list[str]:
    """Values of the source's identifying tags: the proxy must not contain any of them."""
    values: list[str] = []
    tag_sets = [raw.get("format", {}).get("tags", {})] + [s.get("tags", {}) for s in raw.get("streams", [])]
    for tags in tag_sets:
        for k, v in (tags or {}).items():
            if any(key in k.lower() for key in _IDENTIFYING_KEYS) and isinstance(v, str):
                values.append(v.strip())
    return values


def package(job: IngestJob) -> IngestJob:
    """Write the events so far into the bag, then bagit.txt (1.0), manifests, bag-info.txt and tag
    manifests, and validate the result (fast: our digests are from the copy)."""
    assert job.submission is not None
    info = {
        "Source-Organization": job.settings.archive.organization,
        "External-Identifier": job.aip_id,
        "Bagging-Date": utcnow().date().isoformat(),
        "Bag-Software-Agent": f"preserve {tools.preserve_agent().version} (bagit-python {tools.python_agent('bagit').version})",
        "Title": job.metadata.title or job.metadata.original_title,
        "Contributor-Identifier": job.metadata.contributor_id,  # a pseudonym only: tag files travel everywhere
        "Access-Level": job.metadata.access.level,
    }
    _recheck_fixity(job)
    document = premis.document(job.aip_id, premis_files(job), job.events)
    problems = premis.validate(document)
    if problems:
        raise PreserveError(f"the PREMIS record does not validate against the PREMIS 3.0 schema: {problems[:3]}")
    job.metadata_files.append(
        bag.add_payload_bytes(job.bag_dir, bag.payload_path(METADATA_DIR, "premis.xml"), document)
    )
    job.payload_oxum = bag.finalize(job.bag_dir, [*job.files, *job.masters, *job.metadata_files], info)
    report = bag.validate(job.bag_dir, fast=True)
    if not report.valid:
        raise PreserveError(f"the bag does not validate: {'; '.join(report.errors[:5])}")
    job.event(
        EventType.PACKING,
        Outcome.PASS,
        tools.python_agent("bagit"),
        f"BagIt {report.version} bag, Payload-Oxum {job.payload_oxum}",
    )
    return job


def premis_files(job: IngestJob) -> list[premis.PremisFile]:
    """The originals and preservation masters of the job, as PREMIS file objects."""
    out = []
    for f in [*job.files, *job.masters]:
        name, puid = job.formats.get(f.path, ("", ""))
        out.append(
            premis.PremisFile(
                f.path, f.size, f.digests.sha256, f.digests.sha512, name, puid, job.master_of.get(f.path, "")
            )
        )
    return out


def _recheck_fixity(job: IngestJob) -> None:
    """Re-read every original in the staging bag and compare it with the digest taken as it was
    copied in: proof that no tool run since (ffprobe, MediaInfo, decoding, normalization) changed
    a byte. A mismatch stops the ingest."""
    from preserve.fixity.digest import digest_file

    changed = [
        f.path for f in job.files if digest_file(job.bag_dir / f.path, ("sha256",)).values["sha256"] != f.digests.sha256
    ]
    job.event(
        EventType.FIXITY_CHECK,
        Outcome.FAIL if changed else Outcome.PASS,
        tools.preserve_agent(),
        (
            f"changed in staging: {', '.join(changed)}"
            if changed
            else f"all {len(job.files)} original(s) re-read before packing; SHA-256 unchanged since they were copied in"
        ),
    )
    if changed:
        raise PreserveError(f"originals changed in staging: {changed[:5]}")


def bag_members(bag_dir: Path) -> list[Path]:
    return sorted(p for p in bag_dir.rglob("*") if p.is_file())


def replicate(job: IngestJob) -> IngestJob:
    """Upload every file of the bag to every target, `replication.parallel_uploads` at a time
    (preserve.storage.replication.upload_all), sending SHA-256 checksums and verifying each object
    against our own digest; publish the access copies. Ingest succeeds only when
    `min_verified_replicas` replicas verify."""
    from preserve.fixity.digest import digest_file
    from preserve.storage import replication

    settings = job.settings
    members = bag_members(job.bag_dir)
    digests = {f.path: f.digests for f in [*job.files, *job.metadata_files]}
    job.replicas = []
    failures: list[str] = []
    started = time.monotonic()
    job.meter.expect(job.meter.done + sum(m.stat().st_size for m in members) * len(settings.targets))
    if job.catalog.get_aip(job.aip_id) is not None:  # never overwrite (or sweep) a recorded AIP
        raise StorageError(f"AIP {job.aip_id} is already recorded; refusing to upload over it")
    uploads = []
    for member in members:
        rel = member.relative_to(job.bag_dir).as_posix()
        d = digests.get(rel) or digest_file(member, ("sha256",))
        uploads.append(replication.Upload(object_key(job.aip_id, rel), member, d.values["sha256"], d.size))
    outcomes = replication.upload_all(
        settings,
        settings.targets,
        job.aip_id,
        uploads,
        prepare=(lambda store, target: _sweep_unrecorded(job, store, target.name)) if job.attempt > 1 else None,
        on_uploaded=job.meter.advance,
    )
    for out in outcomes:
        if not out.ok:
            failures.append(f"{out.target}: {out.error}")
            job.event(EventType.REPLICATION, Outcome.FAIL, _store_agent(out.kind), out.detail(), subject=out.target)
            continue
        job.replicas.append(
            ReplicaRecord(
                target=out.target, uri=out.uri, status="verified", verified_at=utcnow(), objects=tuple(out.objects)
            )
        )
        job.event(
            EventType.REPLICATION,
            Outcome.PASS,
            _store_agent(out.kind),
            out.detail(),
            subject=out.target,
            parts=out.parts,
            parts_reused=out.parts_reused,
            retries=out.retries,
        )
    job.timings["replicate"] = time.monotonic() - started
    need = settings.replication.min_verified_replicas
    if len(job.replicas) < need:
        raise StorageError(f"only {len(job.replicas)} of the {need} required replicas verified: " + "; ".join(failures))
    _publish_access(job)
    return job


def _store_agent(kind: str) -> Agent:
    return tools.python_agent("boto3") if kind == "s3" else tools.preserve_agent()


def _sweep_unrecorded(job: IngestJob, store: ObjectStore, target: str) -> None:
    """Remove what an interrupted earlier attempt (killed, or quarantined mid-upload) left under
    this AIP's prefix. The AIP is not recorded yet, so nothing there is: every object under the
    prefix is an unrecorded orphan, and all its versions go, so the recorded AIP is exactly what
    this attempt uploads. Locked objects cannot go; the event says so."""
    prefix = f"{job.aip_id}/"
    stale = [info.key for info in store.list(prefix)]
    if not stale:
        return
    locked: list[str] = []
    for key in stale:
        try:
            store.delete(key)
        except ObjectLocked:
            locked.append(key)
    job.event(
        EventType.DELETION,
        Outcome.WARNING if locked else Outcome.PASS,
        tools.preserve_agent(),
        f"removed {len(stale) - len(locked)} unrecorded object(s) under {prefix} left by an interrupted "
        f"earlier attempt" + (f"; {len(locked)} are under Object Lock and stay" if locked else ""),
        subject=target,
        keys=stale[:50],
    )


def _publish_access(job: IngestJob) -> None:
    target = job.settings.access_target
    if target is None:
        if job.proxy is not None:
            job.event(
                EventType.ACCESS_DECISION,
                Outcome.NOT_PERFORMED,
                tools.preserve_agent(),
                "no access target is configured: the access copies were made and checked but not stored",
            )
        return
    from preserve.fixity.digest import digest_file

    if job.attempt > 1:  # a first attempt has a fresh AIP id: nothing can be there yet
        with open_store(job.settings, target) as store:  # stores hold keep-alive connections: close them
            _sweep_unrecorded(job, store, target.name)  # e.g. a proxy from an attempt before the film went dark
        for private in (job.settings.access_location("restricted"), job.settings.access_location("embargoed")):
            if private is not None:
                with open_store(job.settings, private) as store:
                    _sweep_unrecorded(job, store, private.name)
    if job.proxy is None:
        return
    level, until, note = effective_access(job.metadata.access.level, job.metadata.access.until, utcnow().date())
    location = job.settings.access_location(level)
    assert location is not None
    with open_store(job.settings, location) as store:
        for kind, path in (("proxy", job.proxy), ("poster", job.poster), ("contact sheet", job.contact_sheet)):
            if path is None:
                continue
            d = digest_file(path, ("sha256",))
            key = f"{job.aip_id}/{path.name}"
            store.put_file(key, path, sha256=d.values["sha256"], size=d.size)
            job.access.append(
                AccessCopy(
                    kind=kind, target=location.name, key=key, uri=store.uri(key), size=d.size, sha256=d.values["sha256"]
                )
            )
    where = f"{location.name} ({job.access[-1].uri.rsplit('/', 1)[0]}/)" if job.access else location.name
    detail = {
        "open": f"access level open: access copies published to {where}",
        "restricted": f"access level restricted: access copies stored at the restricted location {where}, not published",
        "embargoed": f"access level embargoed until {until}: access copies held at {where} and NOT published; "
        "`preserve embargo-release` publishes them on or after that date",
    }[level]
    job.event(
        EventType.ACCESS_DECISION,
        Outcome.PASS,
        tools.preserve_agent(),
        detail + note,
        level=level,
        location=location.name,
        **({"embargo_until": until.isoformat()} if until else {}),
    )


def effective_access(level: str, until: dt.date | None, today: dt.date) -> tuple[str, dt.date | None, str]:
    """The access level that applies today: an embargo whose date has come is open (pure)."""
    if level == "embargoed" and until is not None and until <= today:
        return "open", until, f" (the embargo until {until} has already ended)"
    return level, until, ""


def record(job: IngestJob) -> IngestJob:
    """Write the record of truth, last and in one transaction."""
    assert job.submission is not None
    job.event(
        EventType.INGESTION,
        Outcome.PASS,
        tools.preserve_agent(),
        f"stored with {len(job.replicas)} verified replica(s)",
    )
    job.catalog.record_aip(
        NewAip(
            id=job.aip_id,
            title=job.metadata.title or job.metadata.original_title or job.submission.name,
            submission_name=job.name,
            access_level=_access_level_now(job),
            payload_oxum=job.payload_oxum,
            files=[*job.files, *job.masters, *job.metadata_files],
            replicas=job.replicas,
            access=job.access,
            events=job.events,
            formats={**{p: (f.format_name, "") for p, f in job.facts.items()}, **job.formats},
            content_key=content_key(job.files),
        ),
        claimed_by=job.worker,
    )
    return job


def _access_level_now(job: IngestJob) -> str:
    """The level the access decision applied (an embargo already over is open)."""
    applied = [e.extra["level"] for e in job.events if e.type is EventType.ACCESS_DECISION and "level" in e.extra]
    return str(applied[-1]) if applied else job.metadata.access.level


def accession(job: IngestJob) -> IngestJob:
    """Only now, with every replica verified and recorded, does the source leave the ingest folder."""
    assert job.submission is not None
    job.destination = disposition.move_to_done(job.source, job.submission.companions)
    job.catalog.add_events(
        job.aip_id,
        [Event(EventType.ACCESSION, Outcome.PASS, tools.preserve_agent(), f"source moved to {job.destination}")],
    )
    job.catalog.finish_submission(job.name)
    shutil.rmtree(job.work_dir, ignore_errors=True)
    return job


STEPS: tuple[Step, ...] = (stage, characterise, validate, normalise, make_access, package, replicate, record, accession)


def ingest_submission(
    settings: Settings,
    catalog: Catalog,
    source: Path,
    *,
    runner: StepRunner = run_directly,
    worker: str | None = None,
    accept_invalid: bool = False,
    progress: Progress | None = None,
) -> IngestOutcome:
    """Ingest one submission end to end. ``progress(done, total)`` hears about bytes staged and
    uploaded. Never raises for a bad submission or a storage outage:
    the source goes to failed/ with a report and the outcome says so. Raises only for faults of
    the archive itself that make quarantining impossible (e.g. the catalog is down)."""
    source = Path(source)
    worker = worker or claims.worker_id()
    key = submissions.key_for(source)
    if not os.path.lexists(source):
        return IngestOutcome(key, "skipped", "", "no longer in the ingest folder")
    claim = catalog.claim_submission(key, worker, settings.ingest.lease_seconds, holder_is_dead=claims.holder_is_dead)
    if claim is not None and not os.path.lexists(source):
        # another worker finished it between our look and our claim: undo the claim we just made
        _release_vanished(catalog, source, key, claim.aip_id)
        return IngestOutcome(key, "skipped", "", "no longer in the ingest folder (taken by another worker)")
    if claim is None:
        state = catalog.submission(key)
        # a worker killed after the catalog commit (stored, or recorded as a duplicate) left the
        # source behind: finish its move to done/, but only once that worker is known dead (it
        # may be moving it right now)
        orphaned = state is not None and os.path.lexists(source) and claims.holder_is_dead(state.claimed_by)
        if orphaned and state.status == "stored":
            job = IngestJob(settings, catalog, source, state.aip_id, worker)
            job.submission = submissions.scan(source)
            accession(job)
            return IngestOutcome(key, "stored", state.aip_id, "completed an interrupted accession", job=job)
        if orphaned and state.status == "duplicate":
            disposition.move_to_done(source, submissions.companions_of(source))
            catalog.finish_submission(key)
            return IngestOutcome(key, "duplicate", state.aip_id, "completed an interrupted duplicate disposal")
        return IngestOutcome(
            key, "skipped", state.aip_id if state else "", "another worker holds this submission" if state else ""
        )
    job = IngestJob(
        settings,
        catalog,
        source,
        claim.aip_id,
        worker,
        accept_invalid=accept_invalid,
        attempt=claim.attempts,
        meter=Meter(progress, interval=0.5),
    )
    step_name = "start"
    try:
        with claims.LeaseHeartbeat(catalog, key, worker, settings.ingest.lease_seconds):
            for step in STEPS:
                step_name = step.__name__
                job = runner(step, job)
                if step is stage:
                    existing = catalog.find_by_content(content_key(job.files))
                    if existing:
                        return _duplicate(job, existing)
                catalog.renew_lease(key, worker, settings.ingest.lease_seconds)
    except Exception as exc:  # noqa: BLE001 - every failure ends in quarantine, never in a lost source
        return _quarantine(job, exc, step_name)
    return IngestOutcome(job.name, "stored", job.aip_id, f"{len(job.replicas)} replica(s) verified", job=job)


def _release_vanished(catalog: Catalog, source: Path, key: str, aip_id: str) -> None:
    """A claimed source that is gone went to done/ (its row was finished) or, if its worker died
    while quarantining it, to failed/: record that, never an ingest of nothing."""
    if os.path.lexists(source.parent / "failed" / source.name):
        catalog.mark_quarantined(key, "the worker stopped while quarantining it; see failed/", [], aip_id=aip_id)
    else:
        catalog.finish_submission(key)


def _duplicate(job: IngestJob, existing: str) -> IngestOutcome:
    assert job.submission is not None
    event = Event(
        EventType.DUPLICATE,
        Outcome.PASS,
        tools.preserve_agent(),
        f"same files and checksums as AIP {existing}; not stored twice",
        subject=job.submission.name,
    )
    job.catalog.mark_duplicate(job.name, existing, [*job.events, event])
    job.destination = disposition.move_to_done(job.source, job.submission.companions)
    job.catalog.finish_submission(job.name)
    shutil.rmtree(job.work_dir, ignore_errors=True)
    return IngestOutcome(job.name, "duplicate", existing, f"duplicate of {existing}", job=job)


def _quarantine(job: IngestJob, exc: BaseException, step: str) -> IngestOutcome:
    agent = tools.preserve_agent()
    reason = submissions.printable(f"{step}: {exc}")  # a non-UTF-8 name must not make it unrecordable
    job.event(EventType.QUARANTINE, Outcome.FAIL, agent, reason)
    companions = job.submission.companions if job.submission else submissions.companions_of(job.source)
    files = [f.rel for f in job.submission.files] if job.submission else []
    folder = disposition.quarantine(job.source, exc, step=step, events=job.events, companions=companions, files=files)
    job.catalog.mark_quarantined(job.name, reason, job.events, aip_id=job.aip_id)
    shutil.rmtree(job.work_dir, ignore_errors=True)
    _alert_quarantine(job, exc, step, folder)
    return IngestOutcome(
        job.name,
        "quarantined",
        job.aip_id,
        submissions.printable(f"{type(exc).__name__}: {shareable_message(exc)}"),
        folder,
        job=job,
    )


def shareable_message(exc: BaseException) -> str:
    """The failure as it may be shown beyond the quarantine folder (alerts, dashboard, logs). A
    sidecar error quotes the offending values (a path with a user's name, a free-text place):
    those stay in the local REPORT.txt only."""
    if isinstance(exc, SidecarError):
        return f"the metadata sidecar is invalid; {disposition.REPORT_TXT} in the quarantine folder gives the lines"
    return str(exc)


def _alert_quarantine(job: IngestJob, exc: BaseException, step: str, folder: Path | None) -> None:
    """Tell the operators, after the quarantine is on disk and in the catalog; alerts.send never
    raises, so a broken webhook or mail server cannot mask the failure it reports."""
    from preserve.operations import alerts

    try:
        state = job.catalog.submission(job.name)
        advice = exc.advice if isinstance(exc, PreserveError) else PreserveError.advice
        message = shareable_message(exc)
        alerts.send(
            job.settings,
            job.catalog,
            alerts.ingest_failed(
                job.name,
                step=step,
                error_code=type(exc).__name__,
                message=message,
                advice=advice,
                quarantine_dir=str(folder or ""),
                attempt=state.attempts if state else 0,
            ),
        )
    except Exception:  # noqa: BLE001 - logged; the quarantine itself is already complete
        alerts.log.exception("could not send the alert for %s", job.name)
