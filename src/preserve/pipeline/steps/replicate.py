"""Step 7, replicate: upload every file of the bag to every storage target, with SHA-256 checksums,
and verify each object against our own digest. The originals may already be on their way: right
after the duplicate check the ingest starts uploading them (`start_early`) to every target without
Object Lock, while the film is characterised, validated and transcoded; targets with Object Lock
get them only here, after validation, so a refused film never sits locked in a bucket. The
originals are read from where they are (`Staged.path_of`: the ingest folder when the bag is built
in place), and each upload hashes what it sends: the second check of the digests of their first
read. Side effects: uploads; on a later attempt, removes what an interrupted earlier attempt left
unrecorded under this AIP's prefix; after a failure, removes what this attempt stored
(`remove_unrecorded`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from preserve import tools
from preserve.access import policy
from preserve.catalog import ReplicaRecord
from preserve.catalog.records import AipKeyRecord
from preserve.config import TargetSettings
from preserve.core.errors import ObjectLocked, StorageError, VerificationError
from preserve.core.model import EventType, Outcome, ReplicaStatus, utcnow
from preserve.fixity.digest import digest_file
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.package import Packaged
from preserve.pipeline.steps.receive import Staged, changed_error, raise_if_changed
from preserve.storage import ObjectStore, open_store, replication, store_agent
from preserve.storage.base import object_key
from preserve.storage.crypt import EncryptedStore, as_stored

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replicated:
    """The replicas that verified, and how long replication took."""

    replicas: tuple[ReplicaRecord, ...]
    seconds: float
    #: the AIP's key on each encrypted target that verified (recorded with the AIP)
    keys: tuple[AipKeyRecord, ...] = ()


class EarlyUploads:
    """The originals' uploads to the targets without Object Lock, running in the background since
    the duplicate check (`start_early`); ``swept`` names the targets where a later attempt has
    already removed what an earlier one left (before its first upload). A plain object, not a
    dataclass: a step runner (Prefect) walks dataclass arguments, and the upload thread adds to
    ``swept`` meanwhile."""

    def __init__(self, uploads: replication.Background, swept: set[str]) -> None:
        self.uploads = uploads
        self.swept = swept
        #: what `source_changes` found out about each failed original (key -> changed?), so a
        #: file is hashed again at most once
        self.checked: dict[str, bool] = {}

    @property
    def targets(self) -> tuple[str, ...]:
        return self.uploads.targets


def bag_members(bag_dir: Path) -> list[Path]:
    """Every file of a bag (payload and tag files), in a stable order."""
    return sorted(p for p in bag_dir.rglob("*") if p.is_file())


def original_uploads(ctx: IngestContext, staged: Staged) -> list[replication.Upload]:
    """The originals (and sidecar files) under their keys in the bag (``<aip>/data/objects/...``),
    read from where their bytes are, with the digests of their first read."""
    return [
        replication.Upload(object_key(ctx.aip_id, f.path), staged.path_of(f.path), f.digests.sha256, f.size)
        for f in staged.files
    ]


def start_early(ctx: IngestContext, staged: Staged) -> EarlyUploads | None:
    """Start uploading the originals to every target without Object Lock, in the background, with
    progress to the ingest's meter. A later attempt first removes (per target, before its first
    upload) what an earlier one left unrecorded. None when there is no such target, or when the AIP
    id is already recorded (`replicate` refuses that; nothing may be uploaded over it)."""
    targets = [t for t in ctx.settings.targets if not t.object_lock_mode]
    if not targets or ctx.catalog.get_aip(ctx.aip_id) is not None:
        return None
    swept: set[str] = set()

    def sweep(store: ObjectStore, target: TargetSettings) -> None:
        sweep_unrecorded(ctx, store, target.name)
        swept.add(target.name)

    background = replication.Background(
        ctx.settings,
        targets,
        ctx.aip_id,
        original_uploads(ctx, staged),
        prepare=sweep if ctx.attempt > 1 else None,
        on_uploaded=ctx.meter.advance,
    )
    return EarlyUploads(background, swept)


def source_changes(ctx: IngestContext, staged: Staged, early: EarlyUploads | None) -> None:
    """Raise SourceChanged if an upload of an original failed because the file in the ingest folder
    no longer holds the bytes first read (its fingerprint, or else its SHA-256, says so). Called
    between steps while the background uploads run, and by `replicate`."""
    if early is None or not staged.in_place:
        return
    changed = [
        path
        for _, upload, exc in list(early.uploads.failures)
        if (path := _changed_original(staged, early.checked, upload, exc)) is not None
    ]
    if changed:
        raise changed_error(sorted(set(changed)), "its upload found other bytes than were first read")


def _changed_original(
    staged: Staged, checked: dict[str, bool], upload: replication.Upload, exc: StorageError
) -> str | None:
    """The payload path of the original whose upload failed with ``exc``, if the file changed."""
    path = next((f.path for f in staged.files if staged.path_of(f.path) == upload.path), None)
    if path is None or not isinstance(exc, VerificationError) or not staged.in_place:
        return None
    if upload.key not in checked:
        if path in staged.changed():
            checked[upload.key] = True
        else:  # same size and mtime: only its bytes can tell (an extra read, on this failure only)
            checked[upload.key] = digest_file(upload.path, ("sha256",)).values["sha256"] != upload.sha256
    return path if checked[upload.key] else None


def replicate(ctx: IngestContext, staged: Staged, packaged: Packaged, early: EarlyUploads | None = None) -> Replicated:
    """Upload every file of the bag to every target, `replication.parallel_uploads` at a time
    (preserve.storage.replication.upload_all), sending SHA-256 checksums and verifying each object
    against our own digest: the originals from where they are, except those the early uploads have
    stored and verified already (waited for here, and merged per target), then the rest (tag
    files, metadata, masters). Ingest succeeds only when `min_verified_replicas` replicas verify.
    An original that changed since it was first read is SourceChanged, never stored."""
    settings = ctx.settings
    started = time.monotonic()
    if ctx.catalog.get_aip(ctx.aip_id) is not None:  # never overwrite (or sweep) a recorded AIP
        raise StorageError(f"AIP {ctx.aip_id} is already recorded; refusing to upload over it")
    raise_if_changed(staged, "before its upload")  # before a byte of it goes where Object Lock keeps it
    originals = original_uploads(ctx, staged)
    digests = {f.path: f.digests for f in packaged.files}
    uploads = list(originals)
    in_bag = {f.path for f in staged.files}
    for member in bag_members(ctx.bag_dir):
        rel = member.relative_to(ctx.bag_dir).as_posix()
        if rel in in_bag:
            continue  # a staged copy (copy mode): already listed, from staged.path_of
        d = digests.get(rel) or digest_file(member, ("sha256",))  # tag files: written by bagit-python
        uploads.append(replication.Upload(object_key(ctx.aip_id, rel), member, d.values["sha256"], d.size))
    # still to come: what the early uploads have not sent yet, and everything else but their part
    pending = early.uploads.total - early.uploads.sent if early is not None else 0
    theirs = sum(u.size for u in originals) * len(early.targets) if early is not None else 0
    ctx.meter.expect(ctx.meter.done + pending + sum(u.size for u in uploads) * len(settings.targets) - theirs)
    skip: dict[str, set[str]] = {}
    before = {o.target: o for o in early.uploads.wait()} if early is not None else {}
    source_changes(ctx, staged, early)
    for name, out in before.items():
        skip[name] = {o.key for o in out.objects}
        if out.error is not None:
            ctx.log.record(
                EventType.REPLICATION,
                Outcome.WARNING,
                store_agent(out.kind),
                f"the early upload of the originals failed ({out.error}); "
                f"what it did not store and verify is sent again now",
                subject=name,
            )
    swept = early.swept if early is not None else set()

    def sweep(store: ObjectStore, target: TargetSettings) -> None:
        if target.name not in swept:
            sweep_unrecorded(ctx, store, target.name)

    outcomes = replication.upload_all(
        settings,
        settings.targets,
        ctx.aip_id,
        uploads,
        prepare=sweep if ctx.attempt > 1 else None,
        on_uploaded=ctx.meter.advance,
        skip=skip,
    )
    merged = [_merge(before.get(out.target), out) for out in outcomes]
    changed = [
        path
        for out in merged
        if out.failed is not None and out.error is not None
        for path in [_changed_original(staged, early.checked if early else {}, out.failed, out.error)]
        if path is not None
    ]
    if changed:
        raise changed_error(sorted(set(changed)), "its upload found other bytes than were first read")
    replicas: list[ReplicaRecord] = []
    keys: list[AipKeyRecord] = []
    failures: list[str] = []
    for out in merged:
        if not out.ok:
            failures.append(f"{out.target}: {out.error}")
            ctx.log.record(EventType.REPLICATION, Outcome.FAIL, store_agent(out.kind), out.detail(), subject=out.target)
            continue
        replicas.append(
            ReplicaRecord(
                target=out.target,
                uri=out.uri,
                status=ReplicaStatus.VERIFIED,
                verified_at=utcnow(),
                objects=tuple(out.objects),
            )
        )
        if out.key is not None:
            keys.append(out.key)
        ctx.log.record(
            EventType.REPLICATION,
            Outcome.PASS,
            store_agent(out.kind),
            out.detail(),
            subject=out.target,
            parts=out.parts,
            parts_reused=out.parts_reused,
            retries=out.retries,
            **({"early": True} if out.target in before else {}),
        )
    seconds = time.monotonic() - started
    need = settings.replication.min_verified_replicas
    if len(replicas) < need:
        raise StorageError(f"only {len(replicas)} of the {need} required replicas verified: " + "; ".join(failures))
    ctx.log.record(
        EventType.FIXITY_CHECK,
        Outcome.PASS,
        tools.preserve_agent(),
        f"all {len(originals)} original(s) hashed again (SHA-256) as they were read "
        f"{'from the ingest folder' if staged.in_place else 'from staging'} and uploaded to "
        f"{', '.join(r.target for r in replicas)}: each matches the digest of its first read",
    )
    return Replicated(replicas=tuple(replicas), seconds=seconds, keys=tuple(keys))


def _merge(early: replication.TargetOutcome | None, late: replication.TargetOutcome) -> replication.TargetOutcome:
    """One target's outcome from its early uploads (the originals) and the later ones (the rest):
    it failed only if the later uploads, which retried whatever the early ones did not store,
    failed."""
    if early is None:
        return late
    return replication.TargetOutcome(
        target=late.target,
        kind=late.kind,
        uri=late.uri or early.uri,
        objects=sorted([*early.objects, *late.objects], key=lambda o: o.key),
        error=late.error,
        failed=late.failed,
        parts=early.parts + late.parts,
        parts_reused=early.parts_reused + late.parts_reused,
        retries=early.retries + late.retries,
        read_back=early.read_back or late.read_back,
        seconds=early.seconds + late.seconds,
        key=late.key or early.key,
    )


def sweep_unrecorded(ctx: IngestContext, store: ObjectStore, target: str) -> None:
    """Remove what an interrupted earlier attempt (killed, or quarantined mid-upload) left under
    this AIP's prefix. The AIP is not recorded yet, so nothing there is: every object under the
    prefix is an unrecorded orphan, and all its versions go, so the recorded AIP is exactly what
    this attempt uploads. Locked objects cannot go; the event says so."""
    prefix = f"{ctx.aip_id}/"
    raw = as_stored(store)  # on an encrypted target: the opaque objects, key object and index too
    keep = _reusable_key(store, ctx.aip_id)
    stale = [info.key for info in raw.list(prefix) if info.key not in keep]
    if not stale:
        return
    locked: list[str] = []
    for key in stale:
        try:
            raw.delete(key)
        except ObjectLocked:
            locked.append(key)
    if isinstance(store, EncryptedStore) and not keep:
        store.forget(ctx.aip_id)
        if locked:  # ciphertext retention keeps, under a key now gone: a new key may be made beside it
            store.accept_leftovers(ctx.aip_id)
    ctx.log.record(
        EventType.DELETION,
        Outcome.WARNING if locked else Outcome.PASS,
        tools.preserve_agent(),
        f"removed {len(stale) - len(locked)} unrecorded object(s) under {prefix} left by an interrupted "
        f"earlier attempt" + (f"; {len(locked)} are under Object Lock and stay" if locked else ""),
        subject=target,
        keys=stale[:50],
    )


def _reusable_key(store: ObjectStore, aip_id: str) -> set[str]:
    """On an encrypted target, the key object and name index an earlier attempt wrote, when this
    one can open that key (the target's identity is here): kept, so the objects it sends encrypt
    as before and an interrupted multipart upload of a film resumes. Otherwise nothing."""
    if not isinstance(store, EncryptedStore) or not store.has_identity:
        return set()
    try:
        store.key_for(aip_id)
    except StorageError:
        return set()
    return {store.key_object_key(aip_id), store.index_key(aip_id)}


def remove_unrecorded(ctx: IngestContext, early: EarlyUploads | None) -> None:
    """After a failure that ends in quarantine: stop the early uploads (those not begun are not
    begun, the running ones are waited for), then remove every version of every object this
    attempt may have stored under the AIP's prefix on every target and every access location
    (access copies), so a refused film does not stay in storage. Only while the AIP is not recorded (a
    catalog that cannot say leaves everything for the next attempt's sweep). Each target's
    removal is an event; Object Lock keeps what it keeps, and the event says so. Never raises."""
    if early is not None:
        early.uploads.stop()
    try:
        if ctx.catalog.get_aip(ctx.aip_id) is not None:
            return
    except Exception as exc:  # noqa: BLE001 - cannot tell: leave it for the next attempt's sweep
        log.warning("not removing the uploads of %s: the catalog cannot say it is unrecorded: %s", ctx.aip_id, exc)
        return
    prefix = f"{ctx.aip_id}/"
    me = tools.preserve_agent()
    # the replicas, and every access location: a `publish` that failed half-way leaves copies no
    # list names (an open proxy of a film the catalog does not know would stay public)
    places = [*ctx.settings.targets, *policy.access_locations(ctx.settings)]
    for target in places:
        try:
            with open_store(ctx.settings, target) as store:
                # on an encrypted target every opaque object, the key object and the index go
                # (so locked ciphertext that must stay is left with no key to read it)
                raw = as_stored(store)
                keys = sorted({v.key for v in raw.list_versions(prefix)})
                locked: list[str] = []
                for key in keys:
                    try:
                        raw.delete(key)
                    except ObjectLocked:
                        locked.append(key)
                left = sorted({v.key for v in raw.list_versions(prefix)})
                if isinstance(store, EncryptedStore):
                    store.forget(ctx.aip_id)
        except StorageError as exc:
            ctx.log.record(
                EventType.DELETION,
                Outcome.WARNING,
                me,
                f"could not remove what this attempt stored under {prefix} ({exc}); the next attempt removes it",
                subject=target.name,
            )
            continue
        if not keys:
            continue
        ctx.log.record(
            EventType.DELETION,
            Outcome.WARNING if left else Outcome.PASS,
            me,
            f"removed every version of {len(keys) - len(left)} object(s) under {prefix} stored by this attempt, "
            "which was quarantined"
            + (f"; {len(left)} are under Object Lock and stay until their retention ends" if left else ""),
            subject=target.name,
            keys=keys[:50],
        )
