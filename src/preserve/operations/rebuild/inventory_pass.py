"""The inventory pass (HEAD: presence, size, stored checksum) over one target, and the rules of what
counts as verified: what each object must be (from an inventory, else from the bag), which
recorded check vouches for it, and the rebuild's own inventory event. On an encrypted target the
HEAD gives the plaintext's size and the ciphertext's key, size and (when the server keeps it)
SHA-256; the ciphertext's digest is otherwise taken from the AIP's recorded state, and only when
that has none, read from the target as stored (no key needed). Side effects: HEADs the objects of
one AIP on one target (and, rarely, reads a ciphertext whole)."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from preserve import tools
from preserve.catalog import StoredObject
from preserve.catalog.records import VersionRecord
from preserve.core.errors import StorageError, StorageUnavailable
from preserve.core.model import Event, EventType, Outcome, ReplicaStatus
from preserve.operations.rebuild.fallback import TAG_RE, Bag
from preserve.operations.rebuild.records import Journal, utc, when
from preserve.operations.rebuild.report import ObjectFinding
from preserve.storage.base import ObjectInfo, ObjectStore, StoredForm, sha256_of
from preserve.storage.crypt import as_stored

#: HEADs in flight per target during the inventory pass
HEAD_WORKERS = 8


@dataclass(frozen=True)
class _Expected:
    """What the rebuilt catalog says one object is: its size and SHA-256; whether they come from an
    inventory (else from the bag or the object itself, never enough to call it verified); the
    version that first has it, and when that version was made."""

    size: int | None  # None: unknown (no inventory, and the source does not hold it)
    sha256: str
    trusted: bool
    version: int
    born: dt.datetime | None


def expected_objects(
    versions: Sequence[VersionRecord], journal: Journal, listed: Mapping[str, ObjectInfo], bags: Mapping[int, Bag]
) -> dict[str, _Expected]:
    """key -> what the object must be, over every version (each key once)."""
    out: dict[str, _Expected] = {}
    for v in versions:
        born = None if v.number == 1 else v.created
        inv = journal.inventories.get(v.number)
        if inv is not None:
            for m in inv.members.values():
                out.setdefault(m.key, _Expected(m.size, m.sha256, True, v.number, born))
            continue
        bag = bags[v.number]
        payload, tags = bag.manifest("sha256"), bag.manifest("sha256", tag=True)
        for member, key in v.members.items():
            if key in out:
                continue
            digest = payload.get(member) or tags.get(member) or ""
            if not digest and TAG_RE.match(member):
                data = bag.read(member)  # a tag manifest names no digest of itself
                digest = hashlib.sha256(data).hexdigest() if data is not None else ""
            info = listed.get(key)
            out[key] = _Expected(info.size if info else None, digest, False, v.number, born)
    return out


# -- which recorded check vouches for an object -----------------------------------------------------
@dataclass(frozen=True)
class Checks:
    """The recorded checks of one AIP: per (target, key) the object's own checks and repairs (a
    fixity check counts only when it re-read the bytes), per target the replications (a whole
    replica stored and verified), per version the amend that stored and verified its new objects,
    and the state's replica verification times as of the state's record."""

    per_object: Mapping[tuple[str, str], Sequence[Event]]
    per_replica: Mapping[str, Sequence[Event]]
    per_version: Mapping[int, dt.datetime]
    replica_verified: Mapping[str, dt.datetime]
    state_at: dt.datetime | None

    @classmethod
    def of(cls, events: Sequence[Event], state: Mapping[str, Any], state_at: dt.datetime | None) -> Checks:
        per_object: dict[tuple[str, str], list[Event]] = {}
        per_replica: dict[str, list[Event]] = {}
        per_version: dict[int, dt.datetime] = {}
        for e in events:
            if e.type in (EventType.FIXITY_CHECK, EventType.REPAIR) and ":" in e.subject:
                if e.type is EventType.FIXITY_CHECK and e.outcome is Outcome.PASS and not e.extra.get("reread"):
                    continue  # a HEAD (inventory) check vouches for no byte
                target, _, key = e.subject.partition(":")
                per_object.setdefault((target, key), []).append(e)
            elif e.type is EventType.REPLICATION and e.outcome is Outcome.PASS and e.subject:
                per_replica.setdefault(e.subject, []).append(e)
            elif e.type is EventType.METADATA_MODIFICATION and e.outcome is Outcome.PASS:
                n = e.extra.get("version")
                if isinstance(n, int) and n >= 2:
                    per_version[n] = max(per_version.get(n, utc(e.at)), utc(e.at))
        verified = {str(r.get("target")): t for r in state.get("replicas") or () if (t := when(r.get("verified_at")))}
        return cls(per_object, per_replica, per_version, verified, state_at)

    def vouch(self, target: str, key: str, exp: _Expected) -> tuple[dt.datetime | None, Event | None]:
        """(when a recorded check last verified the object, a failure recorded after every pass).

        The state's replica verification time stands for the checks its record already reflects
        (so a replica rebuilt from it keeps the very time the catalog had: the oldest of its
        objects' checks); checks recorded after it (in newer records than the newest readable
        state, or in the bag's PREMIS) count one by one. Nothing counts from before the object's
        version was made."""
        state_time = self.replica_verified.get(target)
        covered = state_time is not None and (exp.born is None or exp.born <= state_time)
        candidates = [state_time] if covered and state_time is not None else []
        if exp.version in self.per_version and exp.born is not None:
            candidates.append(self.per_version[exp.version])

        def counts(e: Event) -> bool:
            at = utc(e.at)
            if exp.born is not None and at < exp.born:
                return False
            return not covered or self.state_at is None or at > self.state_at

        own = self.per_object.get((target, key), ())
        replicas = self.per_replica.get(target, ())
        candidates += [utc(e.at) for e in own if e.outcome is Outcome.PASS and counts(e)]
        candidates += [utc(e.at) for e in replicas if counts(e)]
        passes = [utc(e.at) for e in own if e.outcome is Outcome.PASS] + [utc(e.at) for e in replicas]
        passes += [state_time] if state_time is not None else []
        fails = [e for e in own if e.outcome is Outcome.FAIL]
        failure = max(fails, key=lambda e: utc(e.at)) if fails else None
        if failure is not None and passes and max(passes) >= utc(failure.at):
            failure = None
        return max(candidates, default=None), failure


# -- the inventory pass -----------------------------------------------------------------------------
def _heads(store: ObjectStore, keys: Sequence[str]) -> dict[str, ObjectInfo | None]:
    if len(keys) < 4:
        return {k: store.head(k) for k in keys}
    with ThreadPoolExecutor(max_workers=HEAD_WORKERS) as pool:
        return dict(zip(keys, pool.map(store.head, keys), strict=True))


def _cipher_sha256(
    store: ObjectStore, stored: StoredForm, sealed: Mapping[str, Any] | None
) -> tuple[str, tuple[str, str, str]]:
    """The ciphertext's SHA-256 for the catalog, and a problem when the server's checksum differs
    from the recorded one: the server's, else the recorded state's (same opaque key and size),
    else read from the target as stored ("" if that read fails: the next audit finds out)."""
    recorded = ""
    if sealed and str(sealed.get("stored_key") or "") == stored.key and sealed.get("stored_size") == stored.size:
        recorded = str(sealed.get("stored_sha256") or "")
    if stored.sha256:
        if recorded and recorded != stored.sha256:
            return stored.sha256, ("checksum", f"ciphertext sha256 {recorded}", f"stored checksum {stored.sha256}")
        return stored.sha256, ("", "", "")
    if recorded:
        return recorded, ("", "", "")
    try:
        return sha256_of(as_stored(store), stored.key), ("", "", "")
    except StorageUnavailable:
        raise
    except StorageError:
        return "", ("", "", "")


def take_inventory(
    aip_id: str,
    target: str,
    store: ObjectStore | None,
    expected: Mapping[str, _Expected],
    checks: Checks,
    sealed: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[StoredObject], list[ObjectFinding]]:
    """Every expected object on one target by HEAD (``store`` None: the target is down, so every
    object is pending), compared with what it must be. ``sealed``: the recorded state's entries of
    the encrypted objects on this target, by key (their ciphertext's key, size and SHA-256)."""
    keys = sorted(expected)
    found = _heads(store, keys) if store is not None else {}
    objects: list[StoredObject] = []
    findings: list[ObjectFinding] = []
    for key in keys:
        exp, info = expected[key], found.get(key)
        verified_at, failure = checks.vouch(target, key, exp)
        problem = ("", "", "")
        stored = info.stored if info is not None else None
        cipher_sha256, cipher_problem = ("", ("", "", ""))
        if store is not None and stored is not None:
            cipher_sha256, cipher_problem = _cipher_sha256(store, stored, (sealed or {}).get(key))
        if store is None:
            status = ReplicaStatus.PENDING
        elif info is None:
            want = f"{exp.size} bytes" if exp.size is not None else "an object"
            status, problem = ReplicaStatus.MISSING, ("missing", want, "no object")
        elif exp.size is not None and info.size != exp.size:
            status, problem = ReplicaStatus.DAMAGED, ("size", f"{exp.size} bytes", f"{info.size} bytes")
        elif exp.sha256 and info.sha256 is not None and info.sha256 != exp.sha256:
            status, problem = (
                ReplicaStatus.DAMAGED,
                ("checksum", f"sha256 {exp.sha256}", f"stored checksum {info.sha256}"),
            )
        elif cipher_problem[0]:
            status, problem = ReplicaStatus.DAMAGED, cipher_problem
        elif failure is not None:
            status = ReplicaStatus.MISSING if failure.detail.startswith("missing") else ReplicaStatus.DAMAGED
            problem = (
                "recorded",
                "a passing check after the last failure",
                f"{failure.type.value} failed at {utc(failure.at).isoformat()}: {failure.detail[:160]}",
            )
        elif exp.trusted and verified_at is not None:
            status = ReplicaStatus.VERIFIED
        else:
            status = ReplicaStatus.PENDING
        if problem[0]:
            findings.append(ObjectFinding(aip_id, target, key, *problem))
        objects.append(
            StoredObject(
                target=target,
                key=key,
                size=exp.size if exp.size is not None else (info.size if info is not None else 0),
                sha256=exp.sha256 or (info.sha256 if info is not None and info.sha256 else ""),
                verified_at=None if status is ReplicaStatus.PENDING else verified_at,
                version_id=(info.version_id or "") if info is not None else "",
                lock_mode=(info.lock_mode or "") if info is not None else "",
                lock_until=info.lock_until if info is not None else None,
                status=status,
                aip_id=aip_id,
                stored_key=stored.key if stored is not None else "",
                stored_size=stored.size if stored is not None else None,
                stored_sha256=cipher_sha256,
            )
        )
    return objects, findings


def inventory_event(target: str, source: str, objects: Sequence[StoredObject], rebuild_id: int) -> Event:
    n = collections.Counter(o.status.value for o in objects)
    bad = n[ReplicaStatus.MISSING.value] + n[ReplicaStatus.DAMAGED.value]
    return Event(
        EventType.FIXITY_CHECK,
        Outcome.FAIL if bad else Outcome.PASS,
        tools.preserve_agent(),
        f"rebuild inventory (the catalog rebuilt from {source}): {len(objects)} objects looked at by HEAD "
        f"(presence, size, stored checksum; not a re-read): {n['verified']} verified by an earlier recorded "
        f"check, {n['pending']} pending a re-read, {n['missing']} missing, {n['damaged']} damaged",
        subject=target,
        extra={
            "replica": target,
            "reread": False,
            "rebuild": rebuild_id,
            "source": source,
            "objects": len(objects),
            **{k: n[k] for k in ("verified", "pending", "missing", "damaged")},
        },
    )
