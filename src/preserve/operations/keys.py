"""The keys of AIPs on encrypted targets, after ingest: each key object checked against the
catalog and put back from it (for the audit), re-wrapped to a target's recipients as its config
now lists them (`preserve keys rewrap`: the small key objects only, never a film), and every
wrapped key written out for offline escrow (`preserve keys export`). Side effects: reads and
writes key objects on the targets, catalog writes (keys and events), the journal beside each AIP
re-wrapped, files under the export folder.

An exported key is the key object as stored (the AIP's key file, age-encrypted to the target's
recipients), so getting a film back from a target with only the stock `age` tool takes the two
steps of the README written beside the keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.catalog import Catalog
from preserve.catalog.records import AipKeyRecord
from preserve.config import Settings, TargetSettings
from preserve.core.errors import CatalogError, ConfigError, StorageError, StorageUnavailable
from preserve.core.fs import atomic_write, fsync_dir, private_dir
from preserve.core.model import Agent, Event, EventType, Outcome, utcnow
from preserve.operations import journal
from preserve.operations.journal import JournalReport
from preserve.storage import layout, open_store
from preserve.storage.base import ObjectStore, Purge, Retained
from preserve.storage.crypt import EncryptedStore
from preserve.storage.crypt.keys import wrap
from preserve.storage.s3 import S3Store
from preserve.storage.s3 import lock as s3lock

EXPORT_FORMAT = "preserve key export 1"
EXPORT_INDEX = "keys.json"
EXPORT_MANIFEST = "manifest-sha256.txt"
EXPORT_README = "README.txt"
KEY_SUFFIX = ".key.age"


# -- one key object against the catalog (the audit's check and repair) -------------------------------
@dataclass(frozen=True)
class KeyCheck:
    """The check of one AIP's key object on one encrypted target against the catalog's record."""

    aip_id: str
    target: str
    key: str  # the key object's key on the target, <aip>/key.age
    #: "" when it is there and intact (or, destroyed, absent); else missing | checksum |
    #: unrecorded (there, no record and no identity to record it: a warning) | not destroyed
    problem: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def failed(self) -> bool:
        """Damage (a key object the catalog only lacks a record of is a warning, not damage)."""
        return self.problem not in ("", "unrecorded")


def check_key_object(store: EncryptedStore, rec: AipKeyRecord | None, aip_id: str) -> KeyCheck:
    """The AIP's key object on the target against the catalog's record: there, with the recorded
    SHA-256 (absent, when the key was destroyed). Reads the target as stored: no identity needed."""
    key = store.key_object_key(aip_id)
    unreadable = ""
    try:
        blob = store.read_key_object(aip_id)
    except StorageUnavailable:
        raise
    except StorageError as exc:  # too large to be a key object, or unreadable: damaged
        blob, unreadable = None, str(exc)
    found = hashlib.sha256(blob).hexdigest() if blob is not None else ""

    def check(problem: str, detail: str) -> KeyCheck:
        return KeyCheck(aip_id, store.name, key, problem, detail)

    if unreadable:
        if rec is not None and rec.destroyed:
            return check(
                "not destroyed",
                f"the key was destroyed on {rec.destroyed_at:%Y-%m-%d} but an object is there again under the key "
                f"object's name ({unreadable}); left in place for a person to examine",
            )
        return check(
            "checksum",
            f"the key object on {store.name} is damaged: it is not a key object ({unreadable})"
            + (
                f"; without an intact copy the AIP cannot be read from {store.name}"
                if rec is not None
                else f"; the catalog has no record of the key: the AIP's copies on {store.name} cannot be read "
                "unless an escrow copy holds it"
            ),
        )
    if rec is not None and rec.destroyed:
        if blob is None:
            return check("", "destroyed, and absent as it should be")
        return check(
            "not destroyed",
            f"the key was destroyed on {rec.destroyed_at:%Y-%m-%d} but a key object is there again (sha256 "
            f"{found}): whoever holds an identity of the target can read the AIP's copies there; left in place "
            "for a person to examine",
        )
    if rec is None:
        if blob is None:
            return check(
                "missing",
                f"the key object is missing on {store.name} and the catalog has no record of the key: the AIP's "
                f"copies on {store.name} cannot be read unless an escrow copy holds it",
            )
        return check("unrecorded", "key object present; the catalog has no record of it")
    if blob is None:
        return check(
            "missing",
            f"the key object is missing on {store.name}: without it (once every copy of it is lost) the AIP "
            f"cannot be read from {store.name}",
        )
    if found != rec.sha256:
        return check(
            "checksum",
            f"the key object on {store.name} is damaged: sha256 {found}, the catalog's is {rec.sha256}; without "
            f"an intact copy the AIP cannot be read from {store.name}",
        )
    return check("", f"present, sha256 {found} as recorded")


def restore_key_object(store: EncryptedStore, rec: AipKeyRecord) -> tuple[bool, str]:
    """Put the key object back from the catalog's copy (without retention) and read it back:
    (whether it is intact there now, what was done)."""
    if not rec.wrapped or hashlib.sha256(rec.wrapped).hexdigest() != rec.sha256:
        return False, (
            "the catalog's copy of the key object is missing or does not match its recorded SHA-256; put it back "
            "from an escrow copy (`preserve keys export`)"
        )
    try:
        store.put_key_object(rec.aip_id, rec.wrapped)
        again = store.read_key_object(rec.aip_id)
    except StorageUnavailable:
        raise
    except StorageError as exc:
        return False, f"the key object could not be written back from the catalog: {exc}"
    if again is None or hashlib.sha256(again).hexdigest() != rec.sha256:
        return False, "the key object was written back from the catalog but does not read back intact"
    return True, f"key object put back from the catalog, verified sha256 {rec.sha256}"


# -- rewrap -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rewrapped:
    """What `rewrap` did to one AIP's key on one target."""

    aip_id: str
    target: str
    status: str  # rewrapped | failed
    detail: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass
class RewrapReport:
    results: list[Rewrapped] = field(default_factory=list)
    #: keys whose recorded recipients already are the target's (nothing to do), per target
    unchanged: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # a target that could not be worked on at all
    warnings: list[str] = field(default_factory=list)
    journal: JournalReport = field(default_factory=JournalReport)

    @property
    def failed(self) -> list[Rewrapped]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 every key is wrapped to its target's recipients; 1 some could not be; 2 a target
        could not be worked on (no identity, unreachable)."""
        return 2 if self.errors else (1 if self.failed else 0)

    def lines(self) -> list[str]:
        out = [f"{r.aip_id:36}  {r.target:12}  {r.status:9}  {r.detail}" for r in self.results]
        out += [
            f"{t}: {n} key(s) already wrapped to the configured recipients" for t, n in sorted(self.unchanged.items())
        ]
        out += [f"WARNING {w}" for w in self.warnings]
        out += [f"ERROR {e}" for e in self.errors]
        out += [f"JOURNAL {line}" for line in self.journal.lines()]
        return out


def _encrypted_targets(settings: Settings, target: str | None) -> list[TargetSettings]:
    if target is not None:
        t = next((t for t in settings.targets if t.name == target), None)
        if t is None:
            raise ConfigError(f"no target named {target!r}; known: {[t.name for t in settings.targets]}")
        if not t.encrypted:
            raise ConfigError(f'target {target!r} is not encrypted (encryption = "age"): it has no keys to re-wrap')
        return [t]
    return [t for t in settings.targets if t.encrypted]


def needs_rewrap(recorded: Sequence[str], want: Sequence[str]) -> bool:
    """Whether a key recorded as wrapped to ``recorded`` must be wrapped again to ``want`` (a
    target's configured recipients): they differ as sets, or ``recorded`` is () (unknown: a key
    object the catalog learnt from a target, where only opening it shows nothing of who it is
    wrapped to)."""
    return not recorded or set(recorded) != set(want)


def rewrap(
    settings: Settings,
    catalog: Catalog,
    *,
    target: str | None = None,
    operator: Agent,
    now: Callable[[], dt.datetime] = utcnow,
) -> RewrapReport:
    """Re-wrap every AIP key (not destroyed) of each encrypted target (or ``target``) whose
    recorded recipients differ from the target's ``age_recipients`` or are not known
    (`needs_rewrap`): the config is the truth (edit it, then rewrap). Each key object is replaced
    on the target and in the catalog (the catalog first, so an interruption leaves a key object
    the next audit puts back from it); when a recipient is removed (or the earlier ones are not
    known), the earlier versions of the key object are then deleted, as far as retention lets,
    never the new one: the target always holds a key object. Needs each target's identity (to
    open the keys). One event per AIP."""
    report = RewrapReport()
    agent = tools.python_agent("pyrage")
    touched: set[str] = set()
    for t in _encrypted_targets(settings, target):
        want = tuple(t.age_recipients)
        recorded = catalog.keys(t.name)
        todo = [r for r in recorded if needs_rewrap(r.recipients, want)]
        report.unchanged[t.name] = len(recorded) - len(todo)
        if not todo:
            continue
        with open_store(settings, t) as store:
            if not isinstance(store, EncryptedStore):  # open_store wraps every encrypted target
                raise ConfigError(f"target {t.name!r} did not open as an encrypted store")
            if not store.has_identity:
                report.errors.append(
                    f"{t.name}: re-wrapping opens each AIP's key, which needs one of the target's identities: set "
                    f"{t.identity_env_name()} to a file holding one; {len(todo)} key(s) not re-wrapped"
                )
                continue
            try:
                store.check_reachable()
                for rec in todo:
                    result, version = _rewrap_one(catalog, store, rec, want, now)
                    report.results.append(result)
                    touched.add(rec.aip_id)
                    if result.status == "rewrapped" and (result.removed or not rec.recipients):
                        report.warnings += _purge_old_versions(store, rec.aip_id, version)
                    catalog.add_events(rec.aip_id, [_rewrap_event(result, agent, operator, want)])
            except StorageUnavailable as exc:
                report.errors.append(f"{t.name}: unreachable: {exc}")
    report.journal = journal.flush(settings, catalog, sorted(touched))
    return report


def _rewrap_one(
    catalog: Catalog, store: EncryptedStore, rec: AipKeyRecord, want: tuple[str, ...], now: Callable[[], dt.datetime]
) -> tuple[Rewrapped, str | None]:
    """Re-wrap one key: (what was done, the version id of the new key object, if the target
    keeps versions)."""
    # recipients () are not known (`needs_rewrap`): nothing can be said added or removed
    added = tuple(r for r in want if r not in rec.recipients) if rec.recipients else ()
    removed = tuple(r for r in rec.recipients if r not in want)

    def failed(why: str) -> tuple[Rewrapped, str | None]:
        return Rewrapped(rec.aip_id, store.name, "failed", why, added, removed), None

    try:
        try:
            there = store.read_key_object(rec.aip_id)
        except StorageUnavailable:
            raise
        except StorageError:  # not a key object (too large, unreadable): damaged
            there = None
        if there is None or hashlib.sha256(there).hexdigest() != rec.sha256:
            ok, how = restore_key_object(store, rec)  # open the key the catalog recorded, nothing else
            if not ok:
                return failed(f"the key object there is missing or damaged and {how}")
        key = store.key_for(rec.aip_id)
        if key.recipient != rec.recipient:
            return failed(
                f"the key object opens to {key.recipient}, not the key the catalog recorded ({rec.recipient})"
            )
        blob = wrap(key, want)
        digest = hashlib.sha256(blob).hexdigest()
        catalog.record_key(dataclasses.replace(rec, wrapped=blob, sha256=digest, recipients=want, verified_at=None))
        info = store.put_key_object(rec.aip_id, blob)
        again = store.read_key_object(rec.aip_id)
        if again is None or hashlib.sha256(again).hexdigest() != digest:
            return failed("the new key object does not read back intact (the next audit puts it back from the catalog)")
        catalog.mark_key_verified(rec.aip_id, store.name, now())
    except StorageUnavailable:
        raise
    except (StorageError, CatalogError, ValueError) as exc:
        return failed(str(exc))
    was = (
        f", removed {', '.join(removed)}"
        if removed
        else ("" if rec.recipients else " (the recipients it was wrapped to before were not recorded)")
    )
    return Rewrapped(
        rec.aip_id,
        store.name,
        "rewrapped",
        f"wrapped to {len(want)} recipient(s)"
        + (f", added {', '.join(added)}" if added else "")
        + was
        + f"; key object sha256 {digest}",
        added,
        removed,
    ), info.version_id


def _purge_old_versions(store: EncryptedStore, aip_id: str, current: str | None) -> list[str]:
    """A removed recipient must not keep the key in an earlier version of the key object (a
    versioned bucket keeps them): delete every version of it but ``current``, the one just
    written (it stays the target's key object throughout). Returns warnings."""
    key = store.key_object_key(aip_id)
    where = f"{store.name}: AIP {aip_id}"
    try:
        versions = [v for v in store.raw.list_versions(key) if v.key == key]
        older = [v for v in versions if v.version_id != current]
        if not older or not current or current == "null":
            return []  # one version only (no versioning, or a directory)
        if not any(v.version_id == current for v in versions):
            return [
                f"{where}: the new key object's version {current} is not among those listed; no earlier version "
                "was deleted (they may still let a removed recipient read the key): run the rewrap again"
            ]
        retained: list[Retained] = []
        unaddressed = 0
        for v in older:
            if not v.version_id or v.version_id == "null":  # from before versioning: not addressable alone
                unaddressed += 1
                continue
            kept = _delete_version(store.raw, key, v.version_id)
            if kept is not None:
                retained.append(kept)
    except StorageUnavailable:
        raise
    except StorageError as exc:
        return [f"{where}: earlier versions of the key object could not be deleted: {exc}"]
    out = []
    if retained:
        until = Purge(key, retained=tuple(retained)).retained_until
        out.append(
            f"{where}: {len(retained)} earlier version(s) of the key object, readable by the removed recipient(s), "
            "are kept by retention" + (f" until {until:%Y-%m-%d}" if until else "")
        )
    if unaddressed:
        out.append(
            f"{where}: {unaddressed} earlier version(s) of the key object from before the bucket kept versions were "
            "not deleted (deleting one would hide the new key object); a removed recipient may still read the key "
            "from it"
        )
    return out


def _delete_version(raw: ObjectStore, key: str, version_id: str) -> Retained | None:
    """Delete one version (or delete marker) of ``key`` on an S3 target, unless retention or a
    legal hold keeps it (then what keeps it). The ObjectStore protocol deletes only every version
    of a key (`purge`), so this goes to the S3 store's own connection.
    TODO(storage): a public ``ObjectStore.purge(key, keep=version_id)`` would replace this."""
    if not isinstance(raw, S3Store):
        raise StorageError(f"target {raw.name!r} keeps versions, but deleting one of them is done on S3 targets only")
    what = f"deletion of an earlier version of {key!r}"
    full = raw._full(key)
    with raw._conn.errors(what):
        found = s3lock.lock_of(raw._conn, full, version_id)
        if found is not None:
            return Retained(version_id, *found)
        raw._conn.retried(what, functools.partial(raw._purge_version, full, version_id, False))
    return None


def _rewrap_event(result: Rewrapped, agent: Agent, operator: Agent, want: tuple[str, ...]) -> Event:
    ok = result.status == "rewrapped"
    return Event(
        EventType.ENCRYPTION,
        Outcome.PASS if ok else Outcome.FAIL,
        agent,
        (
            f"key of the AIP on {result.target} re-wrapped by {operator.name}: {result.detail}; no object re-encrypted"
            if ok
            else f"re-wrapping the key of the AIP on {result.target} (by {operator.name}) failed: {result.detail}"
        ),
        subject=result.target,
        extra={
            "replica": result.target,
            "operator": operator.name,
            "recipients": list(want),
            "added": list(result.added),
            "removed": list(result.removed),
        },
    )


# -- export -------------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    dest: Path
    written: list[Path] = field(default_factory=list)
    #: files of an earlier export whose key was destroyed since (or is no longer recorded): deleted
    removed: list[Path] = field(default_factory=list)
    #: those of ``removed`` whose key the catalog has no record of at all (not destroyed)
    unrecorded: list[Path] = field(default_factory=list)
    #: files of an earlier export of keys that could not be exported now (see ``errors``): kept,
    #: with their entries in the index and manifest
    kept: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def lines(self) -> list[str]:
        out = [f"{len(self.written)} key object(s) written to {self.dest}"]
        out += [
            f"removed {p} ({'no key of it is recorded' if p in self.unrecorded else 'its key was destroyed'})"
            for p in self.removed
        ]
        out += [f"kept {p} from the earlier export (its key could not be exported now)" for p in self.kept]
        out += [f"ERROR {e}" for e in self.errors]
        out.append(f"see {self.dest / EXPORT_README} for how to use them with the stock age tool")
        return out


README = """Keys of the AIPs on encrypted targets, exported by preserve for offline escrow
======================================================================================

<TARGET>/<AIP>.key.age is the key object of AIP <AIP> on target <TARGET>, byte for byte as
the target stores it beside the AIP (<AIP>/key.age there): the AIP's own age key, encrypted
to the target's recipients (its age_recipients). {manifest} holds the SHA-256 of each
(check with `sha256sum -c {manifest}`); {index} says which recipients each was wrapped to
(null where the archive does not know: `preserve keys rewrap` wraps such a key anew).

With only the stock age tool (https://age-encryption.org; Debian: apt install age), a file
of an AIP comes back from a copy of the target in two steps:

  1. age -d -i TARGET-IDENTITY.txt <TARGET>/<AIP>.key.age > aip-key.txt
     (TARGET-IDENTITY.txt: one of the target's age identities, as age-keygen wrote it;
     aip-key.txt is then the AIP's key: keep it as secret as the identity)
  2. age -d -i aip-key.txt <AIP>/<object name> > FILE

The object names on the target are opaque; <AIP>/index.age, opened as in step 2
(age -d -i aip-key.txt <AIP>/index.age), lists each one with the file of the AIP it holds.

Keep this folder offline and as safe as the identities: with an identity, these files open
every AIP listed. When a key is destroyed (a deaccession), delete its file here too: the
next `preserve keys export` into this folder does so, but other copies of it do not change.
A key the catalog cannot give intact when exporting again keeps its earlier file here.
"""


def _is_export(dest: Path) -> bool:
    try:
        doc = json.loads((dest / EXPORT_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == EXPORT_FORMAT


def _earlier_entries(dest: Path) -> dict[str, dict[str, object]]:
    """The index entries of an earlier export in DEST, by file ("<target>/<aip>.key.age")."""
    try:
        doc = json.loads((dest / EXPORT_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    listed = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(listed, list):
        return {}
    return {str(e["file"]): e for e in listed if isinstance(e, dict) and isinstance(e.get("file"), str)}


def _safe_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def export(
    settings: Settings, catalog: Catalog, dest: Path, *, now: Callable[[], dt.datetime] = utcnow
) -> ExportReport:
    """Write every wrapped key the catalog holds (not destroyed) to DEST/<target>/<aip>.key.age
    (files 0600, folders 0700), with a README on using them with the stock age tool, the SHA-256
    manifest and an index of recipients. DEST must be empty, new, or an earlier export (whose
    files of keys destroyed since, or no longer recorded at all, are deleted; the file of a key
    that cannot be exported now is kept, as it was); ConfigError otherwise. ``settings`` names
    the targets (a key of a target no longer configured is exported too). An index entry's
    ``recipients`` is null when they are not known (a key the catalog learnt from its key object
    on the target: `preserve keys rewrap` wraps it to the configured ones)."""
    dest = Path(dest).expanduser().absolute()
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest} is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not _is_export(dest):
        raise ConfigError(f"{dest} is not empty and holds no earlier key export: give an empty or new folder")
    private_dir(dest)
    os.chmod(dest, 0o700)
    report = ExportReport(dest)
    configured = {t.name: t for t in settings.targets}
    earlier = _earlier_entries(dest)
    #: every key recorded, destroyed ones too: only their files, and those of no key at all, go
    recorded = {(r.target, r.aip_id): r for r in catalog.keys(include_destroyed=True)}
    entries: list[dict[str, object]] = []
    keep: set[Path] = set()
    for rec in (r for r in recorded.values() if not r.destroyed):
        if not (_safe_name(rec.target) and layout.AIP_ID_RE.match(rec.aip_id)):
            report.errors.append(f"key of {rec.aip_id!r} on {rec.target!r}: not a name a file can have; not exported")
            continue
        if not rec.wrapped or hashlib.sha256(rec.wrapped).hexdigest() != rec.sha256:
            there = (dest / rec.target / f"{rec.aip_id}{KEY_SUFFIX}").is_file()
            report.errors.append(
                f"key of AIP {rec.aip_id} on {rec.target}: the catalog's copy is empty or does not match its "
                "recorded SHA-256; not exported (`preserve audit` checks the copy on the target)"
                + ("; the earlier export's file of it is kept" if there else "")
            )
            continue  # its earlier file, if any, is kept below
        folder = dest / rec.target
        if not folder.is_dir():
            folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)
        path = folder / f"{rec.aip_id}{KEY_SUFFIX}"
        atomic_write(path, rec.wrapped, mode=0o600)
        keep.add(path)
        report.written.append(path)
        t = configured.get(rec.target)
        entries.append(
            {
                "file": f"{rec.target}/{path.name}",
                "aip_id": rec.aip_id,
                "target": rec.target,
                "sha256": rec.sha256,
                "recipients": list(rec.recipients) if rec.recipients else None,
                "aip_recipient": rec.recipient,
                "custody": t.custody if t is not None else "",
                "created_at": rec.created_at.isoformat(),
            }
        )
    for folder in sorted(p for p in dest.iterdir() if p.is_dir()):
        for old in sorted(folder.glob(f"*{KEY_SUFFIX}")):
            if old in keep:
                continue
            found = recorded.get((folder.name, old.name.removesuffix(KEY_SUFFIX)))
            if found is None or found.destroyed:
                old.unlink()
                report.removed.append(old)
                if found is None:
                    report.unrecorded.append(old)
                continue
            # a live key not exported now: the earlier export's file stays, and stays listed
            name = f"{folder.name}/{old.name}"
            report.kept.append(old)
            entries.append(
                earlier.get(name)
                or {
                    "file": name,
                    "aip_id": found.aip_id,
                    "target": found.target,
                    "sha256": hashlib.sha256(old.read_bytes()).hexdigest(),
                    "recipients": None,
                    "aip_recipient": found.recipient,
                    "custody": t.custody if (t := configured.get(found.target)) is not None else "",
                    "created_at": found.created_at.isoformat(),
                }
            )
        fsync_dir(folder)
    manifest = "".join(f"{e['sha256']}  {e['file']}\n" for e in sorted(entries, key=lambda e: str(e["file"])))
    index = {"format": EXPORT_FORMAT, "exported_at": now().isoformat(), "keys": entries}
    atomic_write(dest / EXPORT_MANIFEST, manifest, mode=0o600)
    atomic_write(dest / EXPORT_INDEX, json.dumps(index, ensure_ascii=False, indent=1) + "\n", mode=0o600)
    atomic_write(dest / EXPORT_README, README.format(manifest=EXPORT_MANIFEST, index=EXPORT_INDEX), mode=0o600)
    fsync_dir(dest)
    return report
