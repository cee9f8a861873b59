"""Getting a film back: download an AIP's bag from a replica, check every object against the
catalog's SHA-256 as it arrives, validate the bag, and fall back to the next replica on any
mismatch. Also fetches access copies. Side effects: downloads into the destination, records a
dissemination event."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.access import policy
from preserve.catalog import AipView, Catalog
from preserve.config import Settings
from preserve.core.errors import ConfigError, PreserveError, StorageError, VerificationError
from preserve.core.model import AipStatus, Event, EventType, Outcome
from preserve.core.progress import Meter, Progress
from preserve.packaging import bag
from preserve.storage import open_store
from preserve.storage.base import member_path


@dataclass(frozen=True)
class RestoreResult:
    aip_id: str
    path: Path
    replica: str
    report: bag.BagReport
    attempts: tuple[str, ...] = field(default_factory=tuple)  # "target: why it was not used"

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


def restore(
    settings: Settings,
    catalog: Catalog,
    aip_id: str,
    dest: Path,
    *,
    replica: str | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore into ``dest/<aip_id>``. Raises PreserveError when no replica yields a valid bag.
    ``progress(done, total)`` hears about bytes downloaded."""
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
    meter = Meter(progress, interval=0.2)
    out = Path(dest) / aip.id
    attempts: list[str] = []
    for name in _ordered_replicas(settings, aip, replica):
        rep = next(r for r in aip.replicas if r.target == name)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        meter.expect(meter.done + sum(o.size for o in rep.objects))
        try:
            with open_store(settings, settings.target(name)) as store:
                for obj in rep.objects:
                    rel = member_path(aip.id, obj.key)
                    target_path = out / rel
                    target_path.parent.mkdir(parents=True, exist_ok=True)
                    got = store.get_file(obj.key, target_path)
                    meter.advance(obj.size)
                    if got != obj.sha256:
                        raise VerificationError(f"{obj.key}: SHA-256 {got} differs from the catalog's {obj.sha256}")
        except StorageError as exc:
            attempts.append(f"{name}: {exc}")
            catalog.add_events(
                aip.id,
                [
                    Event(
                        EventType.RESTORE,
                        Outcome.FAIL,
                        tools.preserve_agent(),
                        f"restore from {name} failed, trying the next replica: {exc}",
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
                    f"restored from {name} to {out}{fell_back}; every object matched the catalog's SHA-256; bag valid",
                    subject=name,
                )
            ],
        )
        return RestoreResult(aip.id, out, name, report, tuple(attempts))
    raise PreserveError(
        f"no replica of {aip.id} gave a valid bag: " + " | ".join(attempts or ["no replicas"]),
        advice="Run `preserve audit --aip ID` to see the state of each replica.",
    )


def fetch_access(settings: Settings, catalog: Catalog, aip_id: str, dest: Path) -> list[Path]:
    """Write the access copies (proxy, poster) of an AIP into ``dest``, wherever they are stored."""
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
        written.append(path)
    return written
