"""Replicas of AIPs on the storage targets: the ingest's parallel, verified upload of a bag to
every target (all at once, or the originals early on a thread of their own, `Background`, and the
rest later), and the back-fill of a target added later from a replica that verifies now
(`preserve replicate`). Side effects: uploads to the targets (through the ObjectStore protocol),
temporary files under var/replicate-work, catalog writes and events (back-fill only; the
ingest records its replicas itself, in one transaction with the AIP)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from preserve.catalog import AipView, Catalog, ReplicaRecord, StoredObject
from preserve.catalog.records import AipKeyRecord
from preserve.config import Settings, TargetSettings
from preserve.core.errors import ConfigError, StorageError, VerificationError
from preserve.core.model import AipStatus, Event, EventType, Outcome, ReplicaStatus, utcnow
from preserve.storage import ObjectInfo, ObjectStore, open_store, store_agent
from preserve.storage.crypt import EncryptedStore, remembering_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """One file to store under ``key`` on every target."""

    key: str
    path: Path
    sha256: str
    size: int


@dataclass
class TargetOutcome:
    """What one target ended up with: every object verified, or the first error."""

    target: str
    kind: str
    uri: str = ""  # the AIP's prefix on this target
    objects: list[StoredObject] = field(default_factory=list)
    error: StorageError | None = None
    #: the upload that failed with ``error`` (None when the target failed before any upload)
    failed: Upload | None = None
    parts: int = 0
    parts_reused: int = 0
    retries: int = 0
    read_back: bool = False
    seconds: float = 0.0
    #: on an encrypted target, the AIP's key there (the catalog records it with the replica)
    key: AipKeyRecord | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def detail(self) -> str:
        """The replication event's detail: what was verified, and how."""
        if self.error is not None:
            return f"{self.error}"
        how = "size and SHA-256 by HEAD with checksum" + (", and read back" if self.read_back else "")
        text = f"{len(self.objects)} objects stored and verified ({how}) in {self.seconds:.1f} s"
        if self.parts_reused:
            text += f"; {self.parts_reused} of {self.parts} parts reused from an interrupted upload"
        if self.retries:
            text += f"; {self.retries} request(s) retried"
        locks = {(o.lock_mode, o.lock_until.date() if o.lock_until else None) for o in self.objects if o.lock_mode}
        if locks:
            mode, until = max(locks, key=lambda m: str(m[1]))
            text += f"; Object Lock {mode} until {until} on every object"
        return text


def replica_uri(store: ObjectStore, aip_id: str) -> str:
    """The AIP's prefix on the store's target (on an encrypted one, its opaque prefix)."""
    if isinstance(store, EncryptedStore):
        return store.prefix_uri(aip_id)
    return store.uri(f"{aip_id}/bagit.txt").removesuffix("bagit.txt")


def stored_object(target: str, key: str, size: int, sha256: str, info: ObjectInfo) -> StoredObject:
    """The catalog's record of an object just stored and verified: the plaintext's key, size and
    digest, and on an encrypted target the opaque key and the ciphertext's size and digest."""
    return StoredObject(
        target=target,
        key=key,
        size=size,
        sha256=sha256,
        verified_at=utcnow(),
        version_id=info.version_id or "",
        lock_mode=info.lock_mode or "",
        lock_until=info.lock_until,
        stored_key=info.stored.key if info.stored else "",
        stored_size=info.stored.size if info.stored else None,
        stored_sha256=info.stored.sha256 if info.stored else "",
    )


def _stored(target: str, upload: Upload, info: ObjectInfo) -> StoredObject:
    return stored_object(target, upload.key, upload.size, upload.sha256, info)


def key_record(store: ObjectStore, aip_id: str) -> AipKeyRecord | None:
    """The record of the AIP's key on an encrypted store once it made or opened it (None for a
    plaintext store): the catalog keeps it beside the key object on the target."""
    return store.key_record(aip_id) if isinstance(store, EncryptedStore) else None


def upload_all(
    settings: Settings,
    targets: Sequence[TargetSettings],
    aip_id: str,
    uploads: Sequence[Upload],
    *,
    prepare: Callable[[ObjectStore, TargetSettings], None] | None = None,
    on_uploaded: Callable[[int], None] | None = None,
    on_failed: Callable[[str, Upload, StorageError], None] | None = None,
    skip: Mapping[str, Collection[str]] | None = None,
    cancel: threading.Event | None = None,
) -> list[TargetOutcome]:
    """Store every file on every target and verify each object, ``replication.parallel_uploads``
    files at a time across all targets (so a slow target does not hold a fast one back). A
    target's first failure stops its remaining uploads; the other targets go on. Never raises a
    StorageError: each outcome carries its own.

    Memory is bounded: each upload holds at most one part (or one file below the multipart
    threshold) in memory, so at most ``parallel_uploads`` x part_size_for(largest file) bytes,
    e.g. 4 x 64 MiB for films up to 640 GB. ``prepare(store, target)`` runs first on the calling
    thread (the ingest sweeps leftovers there); ``on_uploaded(bytes)`` is called on the calling
    thread as each file finishes (progress), ``on_failed(target, upload, error)`` as a target
    fails on an upload. ``skip`` maps a target's name to keys it already holds, verified (they
    are not sent again). Once ``cancel`` is set, uploads not yet begun are not begun; those
    running finish (their outcomes are kept)."""
    outcomes = [TargetOutcome(t.name, t.kind) for t in targets]
    with contextlib.ExitStack() as stack:
        stores: list[ObjectStore | None] = []
        for t, out in zip(targets, outcomes, strict=True):
            try:
                store = stack.enter_context(open_store(settings, t))
                if prepare is not None:
                    prepare(store, t)
                out.uri = replica_uri(store, aip_id)
                stores.append(store)
            except StorageError as exc:
                out.error = exc
                stores.append(None)
        stop = [out.error is not None for out in outcomes]
        started = time.monotonic()

        def one(i: int, upload: Upload) -> ObjectInfo | None:
            if stop[i] or (cancel is not None and cancel.is_set()):
                return None  # this target already failed, or the uploads were stopped: spend nothing on it
            store = stores[i]
            assert store is not None
            return store.put_file(upload.key, upload.path, sha256=upload.sha256, size=upload.size)

        workers = max(1, settings.replication.parallel_uploads)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool:
            jobs: dict[Future[ObjectInfo | None], tuple[int, Upload]] = {}
            have = skip or {}
            for upload in uploads:
                for i, t in enumerate(targets):
                    if not stop[i] and upload.key not in have.get(t.name, ()):
                        # in the caller's context: an ingest's keys made for encrypted targets
                        # (crypt.remembering_keys) are shared by its upload threads
                        jobs[pool.submit(contextvars.copy_context().run, one, i, upload)] = (i, upload)
            try:
                for fut in as_completed(jobs):
                    i, upload = jobs[fut]
                    out = outcomes[i]
                    try:
                        info = fut.result()
                    except StorageError as exc:
                        if out.error is None:
                            out.error, out.failed = exc, upload
                            stop[i] = True
                            log.warning("target %s failed on %s: %s", out.target, upload.key, exc)
                            if on_failed is not None:
                                on_failed(out.target, upload, exc)
                        continue
                    if info is None:
                        continue
                    out.objects.append(_stored(out.target, upload, info))
                    if info.upload is not None:
                        out.parts += info.upload.parts
                        out.parts_reused += info.upload.parts_reused
                        out.retries += info.upload.retries
                        out.read_back = out.read_back or info.upload.read_back
                    if on_uploaded is not None:
                        on_uploaded(upload.size)
            except BaseException:
                for fut in jobs:
                    fut.cancel()
                raise
        for out, opened in zip(outcomes, stores, strict=True):
            out.seconds = time.monotonic() - started
            out.objects.sort(key=lambda o: o.key)
            if opened is not None:
                out.key = key_record(opened, aip_id)
    return outcomes


class Background:
    """`upload_all` on a thread of its own, started at once: the ingest uploads its originals this
    way while the film is characterised, validated and transcoded. `wait` gives the outcomes (or
    raises what upload_all raised); `stop` cancels the uploads not yet begun and waits for the
    running ones. The thread runs in a copy of the starting thread's context, so progress reported
    from it belongs to the same run (a Prefect flow run's artifact). ``failures`` lists, as they
    happen, each target's failure (target, upload, error)."""

    def __init__(
        self,
        settings: Settings,
        targets: Sequence[TargetSettings],
        aip_id: str,
        uploads: Sequence[Upload],
        *,
        prepare: Callable[[ObjectStore, TargetSettings], None] | None = None,
        on_uploaded: Callable[[int], None] | None = None,
    ) -> None:
        self.targets = tuple(t.name for t in targets)
        self.total = sum(u.size for u in uploads) * len(targets)
        self.sent = 0
        self.failures: list[tuple[str, Upload, StorageError]] = []
        self._cancel = threading.Event()
        self._outcomes: list[TargetOutcome] | None = None
        self._error: BaseException | None = None

        def uploaded(n: int) -> None:
            self.sent += n
            if on_uploaded is not None:
                on_uploaded(n)

        def work() -> None:
            try:
                self._outcomes = upload_all(
                    settings,
                    targets,
                    aip_id,
                    uploads,
                    prepare=prepare,
                    on_uploaded=uploaded,
                    on_failed=lambda target, upload, exc: self.failures.append((target, upload, exc)),
                    cancel=self._cancel,
                )
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                self._error = exc

        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(work,), name=f"upload-{aip_id}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self) -> list[TargetOutcome]:
        """Wait for every upload; the outcome of each target, as upload_all returns them."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._outcomes is not None
        return self._outcomes

    def stop(self, *, wait: bool = True) -> None:
        """Begin no further upload; with ``wait``, return once the running ones have ended."""
        self._cancel.set()
        if wait:
            self._thread.join()


# -- back-fill ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backfill:
    """The result of back-filling one AIP onto one target."""

    aip_id: str
    target: str
    status: str  # copied | present | failed
    detail: str
    source: str = ""
    objects: int = 0
    bytes: int = 0


def _sources(settings: Settings, aip: AipView, target: str) -> list[str]:
    """Replicas to copy from, best first: verified ones, in config order."""
    order = [t.name for t in settings.targets]
    reps = [r for r in aip.replicas if r.target != target and r.target in order]
    reps.sort(key=lambda r: (r.status != ReplicaStatus.VERIFIED, order.index(r.target)))
    return [r.target for r in reps]


def backfill(
    settings: Settings,
    catalog: Catalog,
    *,
    aip_id: str | None = None,
    target: str | None = None,
    on_result: Callable[[Backfill], None] | None = None,
) -> list[Backfill]:
    """Give every AIP (or one) a verified replica on every configured target (or one) that has
    none: each object is copied from a replica whose copy verifies now (downloaded to a temporary
    file under var/replicate-work while hashed, compared with the catalog's SHA-256, then uploaded with
    checksums and verified), and the new replica is recorded with its events. A target whose
    replica of the AIP is already verified is left alone; one whose replica is damaged or missing
    is copied again in full. One object is on local disk at a time. Only the catalog's objects are
    copied, not the journal beside the AIP (event records, version inventories): the storage layer
    cannot write it; `preserve.operations.journal.backfill` runs this, then writes the whole journal
    to the new replica (and housekeeping's flush catches up on whatever it could not).

    Raises ConfigError for an unknown AIP or target; a failed copy is a result, not an error."""
    names = [t.name for t in settings.targets]
    if target is not None and target not in names:
        raise ConfigError(f"no storage target named {target!r}; configured: {names}")
    if aip_id is not None:
        one = catalog.get_aip(aip_id)
        if one is None:
            raise ConfigError(f"no AIP {aip_id!r} in the catalog")
        if one.status == AipStatus.DEACCESSIONED:
            raise ConfigError(f"AIP {one.id} was deaccessioned: it must not be copied anywhere again")
        aips = [one]
    else:  # a deaccessioned AIP is never copied again
        aips = [a for a in catalog.list_aips() if a.status != AipStatus.DEACCESSIONED]
    wanted = [t for t in settings.targets if target in (None, t.name)]
    work = settings.var_dir / "replicate-work"  # not under staging/, which crash recovery empties
    results: list[Backfill] = []
    # a back-fill makes the AIP's key on a new encrypted target (remembered while it writes)
    with remembering_keys(), contextlib.ExitStack() as stack:
        stores: dict[str, ObjectStore] = {}

        def store_of(name: str) -> ObjectStore:
            if name not in stores:
                stores[name] = stack.enter_context(open_store(settings, settings.target(name)))
            return stores[name]

        for aip in aips:
            for t in wanted:
                have = next((r for r in aip.replicas if r.target == t.name), None)
                if have is not None and have.status == ReplicaStatus.VERIFIED:
                    result = Backfill(aip.id, t.name, "present", "already has a verified replica here")
                else:
                    result = _backfill_one(settings, catalog, aip, t, store_of, work)
                results.append(result)
                if on_result is not None:
                    on_result(result)
    return results


def _backfill_one(
    settings: Settings,
    catalog: Catalog,
    aip: AipView,
    t: TargetSettings,
    store_of: Callable[[str], ObjectStore],
    work: Path,
) -> Backfill:
    sources = _sources(settings, aip, t.name)
    agent = store_agent(t.kind)
    started = time.monotonic()
    if not sources:
        detail = "no other replica of this AIP is on a configured target to copy from"
        catalog.add_events(
            aip.id,
            [Event(EventType.REPLICATION, Outcome.FAIL, agent, f"back-fill to {t.name}: {detail}", subject=t.name)],
        )
        return Backfill(aip.id, t.name, "failed", detail)
    replicas = {r.target: r for r in aip.replicas}
    objects: list[StoredObject] = []
    used: set[str] = set()
    reused = retries = 0
    work.mkdir(parents=True, exist_ok=True)
    try:
        dest = store_of(t.name)
        dest.check_reachable()
        template = replicas[sources[0]].objects
        with tempfile.TemporaryDirectory(prefix=f"{aip.id}-", dir=work) as scratch:
            for obj in template:
                local = Path(scratch) / "object"
                source = _fetch_verified(obj, sources, replicas, store_of, local)
                used.add(source)
                info = dest.put_file(obj.key, local, sha256=obj.sha256, size=obj.size)
                local.unlink()
                if info.upload is not None:
                    reused += info.upload.parts_reused
                    retries += info.upload.retries
                objects.append(stored_object(t.name, obj.key, obj.size, obj.sha256, info))
            uri = replica_uri(dest, aip.id)
            key = key_record(dest, aip.id)
    except StorageError as exc:
        detail = f"back-fill to {t.name} failed: {exc}"
        catalog.add_events(aip.id, [Event(EventType.REPLICATION, Outcome.FAIL, agent, detail, subject=t.name)])
        return Backfill(
            aip.id, t.name, "failed", f"{exc}", ", ".join(sorted(used)), len(objects), sum(o.size for o in objects)
        )
    size = sum(o.size for o in objects)
    detail = (
        f"back-filled {len(objects)} objects ({size} bytes) from {', '.join(sorted(used))}; each verified "
        f"against the catalog's SHA-256 as downloaded, then stored and verified on {t.name} "
        f"in {time.monotonic() - started:.1f} s"
    )
    if reused:
        detail += f"; {reused} parts reused from an interrupted upload"
    if retries:
        detail += f"; {retries} request(s) retried"
    locked = [o for o in objects if o.lock_mode]
    if locked:
        detail += (
            f"; Object Lock {locked[0].lock_mode} until {max(o.lock_until for o in locked if o.lock_until):%Y-%m-%d}"
        )
    if key is not None:
        catalog.record_key(key)  # before the replica that needs it
        detail += "; encrypted (age), the AIP's key wrapped to the target's recipients beside it"
    catalog.upsert_replica(
        aip.id,
        ReplicaRecord(t.name, uri, ReplicaStatus.VERIFIED, utcnow(), tuple(objects)),
        events=[
            Event(
                EventType.REPLICATION,
                Outcome.PASS,
                agent,
                detail,
                subject=t.name,
                extra={"sources": sorted(used), "objects": len(objects), "bytes": size},
            )
        ],
    )
    return Backfill(aip.id, t.name, "copied", detail, ", ".join(sorted(used)), len(objects), size)


def _fetch_verified(
    obj: StoredObject,
    sources: list[str],
    replicas: dict[str, ReplicaRecord],
    store_of: Callable[[str], ObjectStore],
    local: Path,
) -> str:
    """Download one object from the first replica whose copy hashes to the catalog's SHA-256."""
    problems: list[str] = []
    for name in sources:
        if not any(o.key == obj.key for o in replicas[name].objects):
            continue
        try:
            got = store_of(name).get_file(obj.key, local)
        except StorageError as exc:  # unreachable or damaged: the next replica may do
            problems.append(f"{name}: {exc}")
            continue
        if got == obj.sha256:
            return name
        problems.append(f"{name}: SHA-256 {got} differs from the catalog's {obj.sha256}")
        local.unlink(missing_ok=True)
    raise VerificationError(
        f"{obj.key}: no replica has a copy that verifies now ({'; '.join(problems) or 'none'})",
        advice="Run `preserve audit --aip ID` to see the state of each replica.",
    )
