"""The ingest pipeline for one submission, as an ordered list of steps over one IngestJob:

    stage → characterise → make_access → package → replicate → record → accession

Each step is a plain function (job -> job). `ingest_submission` runs them in order and decides
what happens on failure (quarantine, with the source intact); the Prefect flow passes a
`step_runner` that wraps each step as a task, so the library holds the only copy of the logic.
Side effects: staging under var/staging, uploads, catalog writes, and the final rename of the
source into done/ or failed/."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from preserve import disposition, sidecar, submission as submissions, tools
from preserve.access import proxy as proxies, scrub
from preserve.catalog import AccessCopy, Catalog, NewAip, ReplicaRecord, StoredObject, content_key
from preserve.errors import MediaError, PreserveError, PrivacyError, StorageError
from preserve.metadata import decode, ffprobe, mediainfo
from preserve.model import Agent, Event, EventType, Outcome, PayloadFile, Role, utcnow
from preserve.packaging import bag
from preserve.progress import Meter, Progress
from preserve.settings import Settings
from preserve.storage import open_store

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

    @property
    def name(self) -> str:
        return submissions.key_for(self.source)

    @property
    def work_dir(self) -> Path:
        return self.settings.staging_dir / self.aip_id

    @property
    def bag_dir(self) -> Path:
        return self.work_dir / "bag"

    def event(self, type: EventType, outcome: Outcome, agent: Agent, detail: str = "", subject: str = "",
              **extra: object) -> Event:
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
    computing SHA-256 and SHA-512 in the same read. The source is opened read-only."""
    sub = submissions.scan(job.source)
    job.submission = sub
    job.metadata = sidecar.load(sub.sidecar)
    if job.work_dir.exists():  # a crashed or retried attempt: redo from scratch
        shutil.rmtree(job.work_dir)
    job.bag_dir.mkdir(parents=True)
    me = tools.preserve_agent()
    for ignored in sub.ignored:
        job.event(EventType.VALIDATION, Outcome.WARNING, me, f"ignored system/partial file {ignored!r}", subject=ignored)
    job.files = []
    job.meter.expect(sum(sf.size for sf in sub.files) * (1 + len(job.settings.targets)))
    extra_files = [(c, c.name) for c in sub.companions]
    for f in [*((sf.path, sf) for sf in sub.files), *extra_files]:
        src, meta = f
        if isinstance(meta, submissions.SourceFile):
            rel, role, orig = meta.rel, meta.role, meta.original_name_bytes
        else:
            rel, _ = submissions.safe_name(os.fsencode(meta), meta)
            role, orig = Role.SIDECAR, None
        payload = bag.add_payload_file(job.bag_dir, bag.payload_path(OBJECTS_DIR, *rel.split("/")), src, role, orig)
        job.files.append(payload)
        job.meter.advance(payload.size)
        job.event(EventType.MESSAGE_DIGEST_CALCULATION, Outcome.PASS, me,
                  f"sha256={payload.digests.sha256} size={payload.size}", subject=payload.path)
        if orig is not None:
            job.event(EventType.FILENAME_CHANGE, Outcome.PASS, me,
                      f"name normalised to NFC; original bytes (hex) {orig.hex()}", subject=payload.path)
    return job


def characterise(job: IngestJob) -> IngestJob:
    """Technical metadata (MediaInfo JSON+XML, ffprobe JSON) for every file, stored in the bag,
    and a full decode check of every audio/video file. A video that does not decode is a
    MediaError unless an archivist accepted it knowingly (`accept_invalid`)."""
    timeout = job.settings.ingest.tool_timeout_seconds
    for f in job.files:
        staged = job.bag_dir / f.path
        rel = f.path.removeprefix(f"data/{OBJECTS_DIR}/")
        probe = ffprobe.probe(staged, timeout=min(timeout, 600))
        info = mediainfo.extract(staged)
        job.probes[f.path] = probe
        tech = (METADATA_DIR, "technical")
        for suffix, content in ((".mediainfo.json", json.dumps(info.data, ensure_ascii=False, indent=1).encode()),
                                (".mediainfo.xml", info.xml.encode("utf-8")),
                                (".ffprobe.json", json.dumps(probe.raw, ensure_ascii=False, indent=1).encode())):
            job.metadata_files.append(bag.add_payload_bytes(job.bag_dir, bag.payload_path(*tech, *(rel + suffix).split("/")), content))
        job.event(EventType.METADATA_EXTRACTION, Outcome.PASS, mediainfo.agent(), "MediaInfo JSON and XML", subject=f.path)
        job.event(EventType.METADATA_EXTRACTION, Outcome.PASS if probe.readable else Outcome.WARNING,
                  tools.agent("ffprobe"), "ffprobe format/streams/chapters" + ("" if probe.readable else f": {probe.error}"),
                  subject=f.path)
        facts = MediaFacts(path=f.path, kind=probe.kind, format_name=probe.format_name, duration=probe.duration,
                           width=probe.width, height=probe.height, video_codec=probe.video_codec or "",
                           audio_codec=probe.audio_codec or "")
        expects_media = f.role in (Role.VIDEO, Role.AUDIO)
        if expects_media and not probe.readable:
            _media_failure(job, f.path, f"{rel} has a media file extension but ffprobe cannot read it: {probe.error}")
        if probe.kind in ("video", "audio") and job.settings.ingest.decode_check:
            report = decode.decode_check(staged, timeout=timeout)
            facts = MediaFacts(**{**facts.__dict__, "decode_ok": report.ok, "decode_errors": report.error_count})
            detail = "decoded without errors" if report.ok else (
                f"{report.error_count} decode error(s): " + "; ".join(report.errors[:5]))
            job.event(EventType.VALIDATION, Outcome.PASS if report.ok else Outcome.FAIL, tools.agent("ffmpeg"),
                      detail, subject=f.path, error_count=report.error_count)
            if not report.ok:
                _media_failure(job, f.path, f"{rel} does not decode cleanly: {detail}")
        job.facts[f.path] = facts
    return job


def _media_failure(job: IngestJob, subject: str, message: str) -> None:
    if not job.accept_invalid:
        raise MediaError(message)
    job.event(EventType.VALIDATION, Outcome.WARNING, Agent("archivist", "", "person"),
              "accepted as it is by an archivist (--accept-invalid): " + message, subject=subject)


def main_video(job: IngestJob) -> PayloadFile | None:
    """The film: the largest payload file that has real video."""
    videos = [f for f in job.files if job.facts.get(f.path) and job.facts[f.path].kind == "video"]
    return max(videos, key=lambda f: f.size) if videos else None


def make_access(job: IngestJob) -> IngestJob:
    """An H.264/AAC proxy and a poster of the main video, with no source metadata, post-checked
    for anything identifying. Non-video submissions get no access copy, and an event says so."""
    film = main_video(job)
    level = job.metadata.access.level
    if film is None:
        job.event(EventType.CREATION, Outcome.NOT_PERFORMED, tools.preserve_agent(),
                  "no access copy: the submission holds no video")
        return job
    if level == "dark":
        job.event(EventType.ACCESS_DECISION, Outcome.PASS, tools.preserve_agent(), "access level dark: no access copy made")
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
    ffmpeg_agent = tools.agent("ffmpeg")
    job.event(EventType.CREATION, Outcome.PASS, ffmpeg_agent,
              f"access proxy H.264/AAC MP4, at most {job.settings.proxy.max_height} lines, and poster JPEG", subject=film.path)
    forbidden = [v for v in (job.metadata.title, job.metadata.original_title, *job.metadata.directors,
                             *_identifying_tags(probe.raw)) if v and len(v) >= 4]
    for made in (job.proxy, job.poster):
        leak = scrub.check_clean(made, forbidden_values=forbidden)
        if not leak.ok:
            job.event(EventType.METADATA_MODIFICATION, Outcome.FAIL, ffmpeg_agent,
                      "identifying metadata survived: " + "; ".join(leak.findings), subject=made.name)
            raise PrivacyError(f"the access copy {made.name} still carries identifying metadata: "
                               + "; ".join(leak.findings[:5]))
    job.event(EventType.METADATA_MODIFICATION, Outcome.PASS, ffmpeg_agent,
              "source metadata removed from proxy and poster (no title, location, device, dates, chapters); "
              "verified with ffprobe, MediaInfo and a byte scan", subject=film.path)
    return job


_IDENTIFYING_KEYS = ("title", "location", "xyz", "make", "model", "artist", "author", "comment", "description",
                     "copyright", "serial", "iso6709", "com.apple.quicktime.location.iso6709",
                     "com.apple.quicktime.make", "com.apple.quicktime.model", "com.apple.quicktime.author")


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
    events = [{"type": e.type.value, "outcome": e.outcome.value, "at": e.at.isoformat(), "agent": str(e.agent),
               "subject": e.subject, "detail": e.detail} for e in job.events]
    job.metadata_files.append(bag.add_payload_bytes(
        job.bag_dir, bag.payload_path(METADATA_DIR, "events.json"),
        json.dumps(events, ensure_ascii=False, indent=1).encode()))
    job.payload_oxum = bag.finalize(job.bag_dir, [*job.files, *job.metadata_files], info)
    report = bag.validate(job.bag_dir, fast=True)
    if not report.valid:
        raise PreserveError(f"the bag does not validate: {'; '.join(report.errors[:5])}")
    job.event(EventType.PACKING, Outcome.PASS, tools.python_agent("bagit"),
              f"BagIt {report.version} bag, Payload-Oxum {job.payload_oxum}")
    return job


def bag_members(bag_dir: Path) -> list[Path]:
    return sorted(p for p in bag_dir.rglob("*") if p.is_file())


def replicate(job: IngestJob) -> IngestJob:
    """Upload every file of the bag to every target, sending SHA-256 checksums and verifying each
    object against our own digest; publish the access copies. Ingest succeeds only when
    `min_verified_replicas` replicas verify."""
    from preserve.fixity.digest import digest_file

    settings = job.settings
    members = bag_members(job.bag_dir)
    digests = {f.path: f.digests for f in [*job.files, *job.metadata_files]}
    job.replicas = []
    failures: list[str] = []
    started = time.monotonic()
    job.meter.expect(job.meter.done + sum(m.stat().st_size for m in members) * len(settings.targets))
    for target in settings.targets:
        store = open_store(settings, target)
        objects: list[StoredObject] = []
        try:
            for member in members:
                rel = member.relative_to(job.bag_dir).as_posix()
                d = digests.get(rel) or digest_file(member, ("sha256",))
                key = f"{job.aip_id}/{rel}"
                info = store.put_file(key, member, sha256=d.values["sha256"], size=d.size)
                job.meter.advance(d.size)
                objects.append(StoredObject(target=target.name, key=key, size=d.size, sha256=d.values["sha256"],
                                            verified_at=utcnow(), version_id=info.version_id or "",
                                            lock_mode=info.lock_mode or "", lock_until=info.lock_until))
        except StorageError as exc:
            failures.append(f"{target.name}: {exc}")
            job.event(EventType.REPLICATION, Outcome.FAIL, _store_agent(target.kind), str(exc), subject=target.name)
            continue
        job.replicas.append(ReplicaRecord(target=target.name, uri=store.uri(f"{job.aip_id}/bagit.txt").removesuffix("bagit.txt"),
                                          status="verified",
                                          verified_at=utcnow(), objects=tuple(objects)))
        job.event(EventType.REPLICATION, Outcome.PASS, _store_agent(target.kind),
                  f"{len(objects)} objects stored and verified (size and SHA-256)", subject=target.name)
    job.timings["replicate"] = time.monotonic() - started
    need = settings.replication.min_verified_replicas
    if len(job.replicas) < need:
        raise StorageError(f"only {len(job.replicas)} of the {need} required replicas verified: " + "; ".join(failures))
    _publish_access(job)
    return job


def _store_agent(kind: str) -> Agent:
    return tools.python_agent("boto3") if kind == "s3" else tools.preserve_agent()


def _publish_access(job: IngestJob) -> None:
    target = job.settings.access_target
    if target is None or job.proxy is None:
        return
    from preserve.fixity.digest import digest_file

    store = open_store(job.settings, target)
    for kind, path in (("proxy", job.proxy), ("poster", job.poster)):
        if path is None:
            continue
        d = digest_file(path, ("sha256",))
        key = f"{job.aip_id}/{path.name}"
        store.put_file(key, path, sha256=d.values["sha256"], size=d.size)
        job.access.append(AccessCopy(kind=kind, target=target.name, key=key, uri=store.uri(key), size=d.size,
                                     sha256=d.values["sha256"]))
    job.event(EventType.ACCESS_DECISION, Outcome.PASS, tools.preserve_agent(),
              f"access copies published to {target.name} (access level {job.metadata.access.level})")


def record(job: IngestJob) -> IngestJob:
    """Write the record of truth, last and in one transaction."""
    assert job.submission is not None
    job.event(EventType.INGESTION, Outcome.PASS, tools.preserve_agent(),
              f"stored with {len(job.replicas)} verified replica(s)")
    job.catalog.record_aip(NewAip(
        id=job.aip_id, title=job.metadata.title or job.metadata.original_title or job.submission.name,
        submission_name=job.name, access_level=job.metadata.access.level,
        payload_oxum=job.payload_oxum, files=[*job.files, *job.metadata_files], replicas=job.replicas,
        access=job.access, events=job.events,
        formats={p: (f.format_name, "") for p, f in job.facts.items()}, content_key=content_key(job.files)))
    return job


def accession(job: IngestJob) -> IngestJob:
    """Only now, with every replica verified and recorded, does the source leave the ingest folder."""
    assert job.submission is not None
    job.destination = disposition.move_to_done(job.source, job.submission.companions)
    job.catalog.add_events(job.aip_id, [Event(EventType.ACCESSION, Outcome.PASS, tools.preserve_agent(),
                                              f"source moved to {job.destination}")])
    job.catalog.finish_submission(job.name)
    shutil.rmtree(job.work_dir, ignore_errors=True)
    return job


STEPS: tuple[Step, ...] = (stage, characterise, make_access, package, replicate, record, accession)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True when a claim's holder is a process on this host that no longer exists (killed -9)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def ingest_submission(settings: Settings, catalog: Catalog, source: Path, *, runner: StepRunner = run_directly,
                      worker: str | None = None, accept_invalid: bool = False,
                      progress: Progress | None = None) -> IngestOutcome:
    """Ingest one submission end to end. ``progress(done, total)`` hears about bytes staged and
    uploaded. Never raises for a bad submission or a storage outage:
    the source goes to failed/ with a report and the outcome says so. Raises only for faults of
    the archive itself that make quarantining impossible (e.g. the catalog is down)."""
    source = Path(source)
    worker = worker or worker_id()
    key = submissions.key_for(source)
    claim = catalog.claim_submission(key, worker, settings.ingest.lease_seconds,
                                     holder_is_dead=holder_is_dead)
    if claim is None:
        state = catalog.submission(key)
        if state is not None and state.status == "stored" and source.exists():
            # a crash after the catalog commit: finish the accession
            job = IngestJob(settings, catalog, source, state.aip_id, worker)
            job.submission = submissions.scan(source)
            accession(job)
            return IngestOutcome(key, "stored", state.aip_id, "completed an interrupted accession", job=job)
        return IngestOutcome(key, "skipped", state.aip_id if state else "",
                             "another worker holds this submission" if state else "")
    job = IngestJob(settings, catalog, source, claim.aip_id, worker, accept_invalid=accept_invalid,
                    meter=Meter(progress, interval=0.5))
    step_name = "start"
    try:
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


def _duplicate(job: IngestJob, existing: str) -> IngestOutcome:
    assert job.submission is not None
    event = Event(EventType.DUPLICATE, Outcome.PASS, tools.preserve_agent(),
                  f"same files and checksums as AIP {existing}; not stored twice", subject=job.submission.name)
    job.catalog.mark_duplicate(job.name, existing, [*job.events, event])
    job.destination = disposition.move_to_done(job.source, job.submission.companions)
    job.catalog.finish_submission(job.name)
    shutil.rmtree(job.work_dir, ignore_errors=True)
    return IngestOutcome(job.name, "duplicate", existing, f"duplicate of {existing}", job=job)


def _quarantine(job: IngestJob, exc: BaseException, step: str) -> IngestOutcome:
    agent = tools.preserve_agent()
    job.event(EventType.QUARANTINE, Outcome.FAIL, agent, f"{step}: {exc}")
    companions = job.submission.companions if job.submission else tuple(
        p for p in submissions.sibling_sidecars(job.source) if p.exists())
    files = [f.rel for f in job.submission.files] if job.submission else []
    folder = disposition.quarantine(job.source, exc, step=step, events=job.events, companions=companions, files=files)
    job.catalog.mark_quarantined(job.name, f"{step}: {exc}", job.events, aip_id=job.aip_id)
    shutil.rmtree(job.work_dir, ignore_errors=True)
    _alert_quarantine(job, exc, step, folder)
    return IngestOutcome(job.name, "quarantined", job.aip_id, f"{type(exc).__name__}: {exc}", folder, job=job)


def _alert_quarantine(job: IngestJob, exc: BaseException, step: str, folder: Path | None) -> None:
    """Tell the operators, after the quarantine is on disk and in the catalog; alerts.send never
    raises, so a broken webhook or mail server cannot mask the failure it reports."""
    from preserve import alerts

    try:
        state = job.catalog.submission(job.name)
        advice = exc.advice if isinstance(exc, PreserveError) else PreserveError.advice
        alerts.send(job.settings, job.catalog, alerts.ingest_failed(
            job.name, step=step, error_code=type(exc).__name__, message=str(exc), advice=advice,
            quarantine_dir=str(folder or ""), attempt=state.attempts if state else 0))
    except Exception:  # noqa: BLE001 - logged; the quarantine itself is already complete
        alerts.log.exception("could not send the alert for %s", job.name)
