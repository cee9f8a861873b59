"""Step 7, replicate: upload every file of the bag to every storage target, with SHA-256 checksums,
and verify each object against our own digest. Side effects: uploads (and, on a later attempt,
removes what an interrupted earlier attempt left unrecorded under this AIP's prefix)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from preserve import tools
from preserve.catalog import ReplicaRecord
from preserve.config import TargetSettings
from preserve.core.errors import ObjectLocked, StorageError
from preserve.core.model import EventType, Outcome, ReplicaStatus, utcnow
from preserve.fixity.digest import digest_file
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.package import Packaged
from preserve.storage import ObjectStore, replication, store_agent
from preserve.storage.base import object_key


@dataclass(frozen=True)
class Replicated:
    """The replicas that verified, and how long replication took."""

    replicas: tuple[ReplicaRecord, ...]
    seconds: float


def bag_members(bag_dir: Path) -> list[Path]:
    """Every file of a bag (payload and tag files), in a stable order."""
    return sorted(p for p in bag_dir.rglob("*") if p.is_file())


def replicate(ctx: IngestContext, packaged: Packaged) -> Replicated:
    """Upload every file of the bag to every target, `replication.parallel_uploads` at a time
    (preserve.storage.replication.upload_all), sending SHA-256 checksums and verifying each object
    against our own digest. Ingest succeeds only when `min_verified_replicas` replicas verify."""
    settings = ctx.settings
    members = bag_members(ctx.bag_dir)
    digests = {f.path: f.digests for f in packaged.files}
    replicas: list[ReplicaRecord] = []
    failures: list[str] = []
    started = time.monotonic()
    ctx.meter.expect(ctx.meter.done + sum(m.stat().st_size for m in members) * len(settings.targets))
    if ctx.catalog.get_aip(ctx.aip_id) is not None:  # never overwrite (or sweep) a recorded AIP
        raise StorageError(f"AIP {ctx.aip_id} is already recorded; refusing to upload over it")
    uploads = []
    for member in members:
        rel = member.relative_to(ctx.bag_dir).as_posix()
        d = digests.get(rel) or digest_file(member, ("sha256",))  # tag files: written by bagit-python
        uploads.append(replication.Upload(object_key(ctx.aip_id, rel), member, d.values["sha256"], d.size))

    def sweep(store: ObjectStore, target: TargetSettings) -> None:
        sweep_unrecorded(ctx, store, target.name)

    outcomes = replication.upload_all(
        settings,
        settings.targets,
        ctx.aip_id,
        uploads,
        prepare=sweep if ctx.attempt > 1 else None,
        on_uploaded=ctx.meter.advance,
    )
    for out in outcomes:
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
        ctx.log.record(
            EventType.REPLICATION,
            Outcome.PASS,
            store_agent(out.kind),
            out.detail(),
            subject=out.target,
            parts=out.parts,
            parts_reused=out.parts_reused,
            retries=out.retries,
        )
    seconds = time.monotonic() - started
    need = settings.replication.min_verified_replicas
    if len(replicas) < need:
        raise StorageError(f"only {len(replicas)} of the {need} required replicas verified: " + "; ".join(failures))
    return Replicated(replicas=tuple(replicas), seconds=seconds)


def sweep_unrecorded(ctx: IngestContext, store: ObjectStore, target: str) -> None:
    """Remove what an interrupted earlier attempt (killed, or quarantined mid-upload) left under
    this AIP's prefix. The AIP is not recorded yet, so nothing there is: every object under the
    prefix is an unrecorded orphan, and all its versions go, so the recorded AIP is exactly what
    this attempt uploads. Locked objects cannot go; the event says so."""
    prefix = f"{ctx.aip_id}/"
    stale = [info.key for info in store.list(prefix)]
    if not stale:
        return
    locked: list[str] = []
    for key in stale:
        try:
            store.delete(key)
        except ObjectLocked:
            locked.append(key)
    ctx.log.record(
        EventType.DELETION,
        Outcome.WARNING if locked else Outcome.PASS,
        tools.preserve_agent(),
        f"removed {len(stale) - len(locked)} unrecorded object(s) under {prefix} left by an interrupted "
        f"earlier attempt" + (f"; {len(locked)} are under Object Lock and stay" if locked else ""),
        subject=target,
        keys=stale[:50],
    )
