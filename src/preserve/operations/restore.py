"""Getting a film back: download one version of an AIP's bag (the latest by default: exactly the
members the catalog records for it, each from the object that holds it) from a replica, check every
object against the catalog's SHA-256 as it arrives, validate the bag, and fall back to the next
replica on any mismatch. From an encrypted replica the objects are decrypted as they arrive (the
target's identity opens the AIP's key; names come back from its opaque keys), and what is checked
is the plaintext; a replica whose key cannot be opened (no identity, or not one of its recipients)
or whose ciphertext fails to decrypt is reported, naming the variable its identity is read from,
and the next replica is tried. Also fetches access copies. Side effects: downloads into the
destination, records a dissemination event."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from preserve import tools
from preserve.access import iiif, policy
from preserve.access.presentation import KIND_MANIFEST
from preserve.catalog import AipView, Catalog, ReplicaRecord, StoredObject
from preserve.catalog.records import VersionRecord
from preserve.config import Settings, TargetSettings
from preserve.core import redact
from preserve.core.errors import (
    ConfigError,
    DecryptionFailed,
    KeyUnavailable,
    PreserveError,
    StorageError,
    VerificationError,
)
from preserve.core.fs import atomic_target
from preserve.core.model import AipStatus, Event, EventType, Outcome
from preserve.core.progress import Meter, Progress
from preserve.operations import journal
from preserve.packaging import bag
from preserve.storage import open_store
from preserve.storage.base import member_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreResult:
    aip_id: str
    path: Path
    replica: str
    report: bag.BagReport
    attempts: tuple[str, ...] = field(default_factory=tuple)  # "target: why it was not used"
    version: int = 1

    @property
    def ok(self) -> bool:
        return self.report.valid


def _ordered_replicas(settings: Settings, aip: AipView, only: str | None) -> list[str]:
    configured = [t.name for t in settings.targets]
    names = [r.target for r in aip.replicas]
    if only:
        if only not in names:
            raise ConfigError(f"AIP {aip.id} has no replica on {only!r}; it has {names}")
        return [only]
    # preference: config order, verified replicas first
    status = {r.target: r.status for r in aip.replicas}
    ordered = sorted(names, key=lambda n: (status[n] != "verified", configured.index(n) if n in configured else 99))
    return [n for n in ordered if n in configured]


def _version(aip: AipView, number: int | None) -> VersionRecord | None:
    """The version to restore: ``number``, or the latest (None for an AIP the catalog records no
    version of: its replica's objects are the bag). ConfigError for a version it does not have."""
    if not aip.versions:
        if number not in (None, 1):
            raise ConfigError(f"AIP {aip.id} has no version {number}; it has only version 1 (as ingested)")
        return None
    if number is None:
        return aip.versions[-1]
    found = next((v for v in aip.versions if v.number == number), None)
    if found is None:
        listed = ", ".join(str(v.number) for v in aip.versions)
        raise ConfigError(
            f"AIP {aip.id} has no version {number}; its versions are {listed}",
            advice=f"`preserve show {aip.id}` lists them with their dates and reasons.",
        )
    return found


def _why(target: TargetSettings, exc: StorageError) -> str:
    """Why a replica gave nothing: the error, and on an encrypted target whose key could not be
    opened or whose ciphertext did not decrypt, which identity it needs (the variable naming it)."""
    text = str(exc)
    var = target.identity_env_name()
    if isinstance(exc, KeyUnavailable) and var not in text:
        text += f" (restoring from {target.name} needs one of its age identities, in the file {var} names)"
    elif isinstance(exc, DecryptionFailed):
        text = f"decryption failed: {text} (its ciphertext is damaged; the identity in {var} was accepted)"
    return text


def _members(aip: AipView, rep: ReplicaRecord, version: VersionRecord | None) -> list[tuple[str, StoredObject]]:
    """(bag member path, the object holding it on this replica) for every member of the version.
    StorageError when the replica does not record one of them (the next replica may)."""
    if version is None:
        return [(member_path(aip.id, o.key), o) for o in rep.objects]
    unsafe = [m for m in version.members if m.startswith("/") or ".." in PurePosixPath(m).parts or not m.strip("/")]
    if unsafe:  # never written outside the destination, whatever the record says
        raise ConfigError(f"version {version.number} of {aip.id} names members outside the bag: {unsafe[:3]}")
    held = {o.key: o for o in rep.objects}
    missing = sorted(m for m, key in version.members.items() if key not in held)
    if missing:
        raise StorageError(
            f"the replica holds no recorded object for {len(missing)} member(s) of version {version.number} "
            f"({', '.join(missing[:3])})"
        )
    return [(m, held[key]) for m, key in sorted(version.members.items())]


def restore(
    settings: Settings,
    catalog: Catalog,
    aip_id: str,
    dest: Path,
    *,
    replica: str | None = None,
    progress: Progress | None = None,
    version: int | None = None,
) -> RestoreResult:
    """Restore version ``version`` (the latest by default) into ``dest/<aip_id>``: exactly the
    members of that version, each at its member path from the object that holds it. Raises
    ConfigError for a version the AIP does not have, PreserveError when no replica yields a valid
    bag. ``progress(done, total)`` hears about bytes downloaded."""
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise ConfigError(f"no AIP {aip_id!r} in the catalog")
    if aip.status is AipStatus.DEACCESSIONED:
        tomb = catalog.tombstone(aip.id)
        when = f" on {tomb.approved_at:%Y-%m-%d}" if tomb and tomb.approved_at else ""
        raise PreserveError(
            f"AIP {aip.id} was deaccessioned{when}: its copies were deleted from every replica, so there is "
            "nothing to restore",
            advice=f"`preserve show {aip.id}` shows its tombstone: the reason, who decided, the digests of its files "
            "and what was deleted where and when.",
        )
    chosen = _version(aip, version)
    number = chosen.number if chosen is not None else 1
    meter = Meter(progress, interval=0.2)
    out = Path(dest) / aip.id
    attempts: list[str] = []
    for name in _ordered_replicas(settings, aip, replica):
        rep = next(r for r in aip.replicas if r.target == name)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        try:
            members = _members(aip, rep, chosen)
            meter.expect(meter.done + sum(o.size for _, o in members))
            with open_store(settings, settings.target(name)) as store:
                for rel, obj in members:
                    target_path = out / rel
                    target_path.parent.mkdir(parents=True, exist_ok=True)
                    got = store.get_file(obj.key, target_path)
                    meter.advance(obj.size)
                    if got != obj.sha256:
                        raise VerificationError(f"{obj.key}: SHA-256 {got} differs from the catalog's {obj.sha256}")
        except StorageError as exc:
            why = _why(settings.target(name), exc)
            attempts.append(f"{name}: {why}")
            catalog.add_events(
                aip.id,
                [
                    Event(
                        EventType.RESTORE,
                        Outcome.FAIL,
                        tools.preserve_agent(),
                        f"restore from {name} failed, trying the next replica: {why}",
                        subject=name,
                    )
                ],
            )
            continue
        report = bag.validate(out)
        if not report.valid:
            attempts.append(f"{name}: bag invalid: {'; '.join(report.errors[:3])}")
            catalog.add_events(
                aip.id,
                [
                    Event(
                        EventType.RESTORE,
                        Outcome.FAIL,
                        tools.python_agent("bagit"),
                        f"restore from {name}: bag invalid ({'; '.join(report.errors[:3])}), trying the next replica",
                        subject=name,
                    )
                ],
            )
            continue
        fell_back = f" after {len(attempts)} replica(s) failed" if attempts else ""
        catalog.add_events(
            aip.id,
            [
                Event(
                    EventType.RESTORE,
                    Outcome.PASS,
                    tools.python_agent("bagit"),
                    f"version {number} restored from {name} to {out}{fell_back}; every object matched the "
                    "catalog's SHA-256; bag valid",
                    subject=name,
                    extra={"version": number},
                )
            ],
        )
        journal.flush_quietly(settings, catalog, [aip.id])  # the dissemination, beside the AIP on its replicas
        return RestoreResult(aip.id, out, name, report, tuple(attempts), number)
    journal.flush_quietly(settings, catalog, [aip.id])
    raise PreserveError(
        f"no replica of {aip.id} gave a valid bag: " + " | ".join(attempts or ["no replicas"]),
        advice="Run `preserve audit --aip ID` to see the state of each replica.",
    )


def fetch_access(settings: Settings, catalog: Catalog, aip_id: str, dest: Path) -> list[Path]:
    """Write every stored access copy of an AIP into ``dest``, wherever it is stored, each checked
    against its recorded SHA-256: the proxy, poster, contact sheet, text tracks, IIIF manifest and
    page. The page names its files relatively, so the folder plays as it is; the manifest is
    written with the ids of the files in ``dest`` (``file://``), so a viewer loads it from there."""
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise ConfigError(f"no AIP {aip_id!r} in the catalog")
    Path(dest).mkdir(parents=True, exist_ok=True)
    written = []
    for copy in aip.access:
        path = Path(dest) / Path(copy.key).name
        with open_store(settings, policy.target(settings, copy.target)) as store:
            got = store.get_file(copy.key, path)
        if got != copy.sha256:
            raise VerificationError(f"access copy {copy.key} does not match its recorded SHA-256")
        if copy.kind == KIND_MANIFEST:  # its ids name where it was stored: name the files here instead
            try:
                rebased = iiif.rebase(path.read_bytes(), Path(dest).resolve().as_uri() + "/")
            except (PreserveError, ValueError) as exc:
                log.warning("manifest of %s kept with the ids of its location: %s", aip.id, redact.describe(exc))
            else:
                with atomic_target(path) as tmp:
                    tmp.write_bytes(rebased)
        written.append(path)
    return written
