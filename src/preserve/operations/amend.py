"""Amending an AIP's descriptive metadata (`preserve amend`): a new version of the AIP with a
corrected sidecar, written on every replica beside what is stored, never over it. Only the bag
members whose bytes change are written, as new objects under ``<aip>/versions/v<N>/``: the sidecar,
``data/metadata/premis.xml`` (regenerated, with the `metadata modification` event), the payload
manifests, bag-info.txt and the tag manifests. The payload (the films) is neither read nor uploaded
again: its digests come from the catalog, checked against the current manifests. The version is
recorded in one transaction once every replica holds it, verified; then the access copies follow a
changed access level (`access_change.set_access`; never undoing a withdrawal) and the journal is
flushed. Side effects: downloads of the current tag files and sidecar, and the new members, under
var/amend-work/<AIP id>.<random>/ (private, removed afterwards); uploads to every replica's target (removed
again when one fails); catalog writes; whatever `set_access` and `journal.flush` do."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.access import policy
from preserve.catalog import AccessChangeRecord, AipView, Catalog, FileView, ReplicaRecord, StoredObject
from preserve.catalog.records import NewVersion, VersionRecord
from preserve.config import Settings, TargetSettings
from preserve.core import redact
from preserve.core.errors import (
    LOCAL_REPORT_HINT,
    CatalogError,
    ConfigError,
    ObjectLocked,
    PreserveError,
    SidecarError,
    StorageError,
    VerificationError,
)
from preserve.core.fs import private_dir
from preserve.core.model import (
    AccessLevel,
    Agent,
    AipStatus,
    Digests,
    Event,
    EventType,
    Outcome,
    PayloadFile,
    ReplicaStatus,
    Role,
    utcnow,
)
from preserve.fixity.digest import BAG_ALGORITHMS
from preserve.intake import sidecar
from preserve.operations import access_change, journal, presenting
from preserve.operations.embargo import embargo_until
from preserve.packaging import bag, premis
from preserve.storage import ObjectInfo, ObjectStore, layout, open_store
from preserve.storage.base import member_path, sha256_of
from preserve.storage.crypt import as_stored
from preserve.storage.replication import TargetOutcome, Upload, stored_object, upload_all

log = logging.getLogger(__name__)

#: where an amend builds the new members (under the var directory, private, removed afterwards)
WORK_DIR = "amend-work"
PREMIS_MEMBER = bag.payload_path(bag.METADATA_DIR, "premis.xml")
#: the sidecar of an AIP that had none (a folder submission's name for it)
DEFAULT_SIDECAR = bag.payload_path(bag.OBJECTS_DIR, "metadata.yaml")
#: the sidecar's fields as the YAML names them, for saying which changed (never their values)
_FIELD_NAMES = {"directors": "director"}


@dataclass(frozen=True)
class AmendResult:
    """What `amend` wrote: the new version's number and members (member path -> object key), the
    members it wrote as new objects (the rest keep the previous version's objects), the bytes
    uploaded per target, the sidecar fields that changed (names only), and what became of the
    access level (``access``, in words; ``access_report`` when a change was requested)."""

    aip_id: str
    version: int
    members: Mapping[str, str]
    #: member -> new key, for the members this version wrote
    written: Mapping[str, str]
    #: member -> size in bytes, for the members this version wrote
    sizes: Mapping[str, int]
    #: target -> bytes this amend uploaded there
    uploaded: Mapping[str, int]
    sidecar: str
    fields: tuple[str, ...] = ()
    title_changed: bool = False
    #: False when the requested access change could not be carried out (it may be pending)
    access_ok: bool = True
    access: str = "unchanged"
    access_report: access_change.AccessChangeReport | None = None
    #: what became of the IIIF manifest and the page (written again when what they show changed)
    documents: str = "unchanged"
    events: tuple[Event, ...] = ()
    journal: journal.JournalReport | None = None
    #: keys left on a target by an earlier, interrupted amend with these very bytes (not uploaded again)
    reused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def kept(self) -> tuple[str, ...]:
        """The members whose objects are the previous version's (the payload among them)."""
        return tuple(m for m in sorted(self.members) if m not in self.written)


@dataclass(frozen=True)
class _AccessPlan:
    """The access level the new sidecar asks for, when it differs from the AIP's and an amend may
    request it (``level`` None: nothing to request; ``note`` says why)."""

    level: AccessLevel | None
    until: dt.date | None
    note: str


def amend(
    settings: Settings,
    catalog: Catalog,
    aip_id: str,
    sidecar_file: Path,
    *,
    reason: str,
    operator: Agent,
    today: dt.date | None = None,
) -> AmendResult:
    """Write version N+1 of the AIP with ``sidecar_file`` as its sidecar, on every replica, and
    record it. Refused with ConfigError, before anything is written, for an empty reason, an
    unknown, deaccessioned or approved-for-deaccession AIP, a sidecar the ingest would refuse (the
    error names lines and fields, never values), one byte-identical to the current sidecar, or an
    embargo date that is not after today. StorageError when no replica's current tag files verify or
    a target fails (what this amend uploaded is removed again; nothing is recorded)."""
    reason = reason.strip()
    if not reason:
        raise ConfigError("an amend needs a reason (--reason TEXT): it is recorded with the new version")
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise ConfigError(f"no AIP {aip_id!r} in the catalog", advice="Check the id with `preserve list`.")
    _refuse_if_removed(catalog, aip)
    rules = sidecar.Rules.of(settings.ingest)
    data = _read_limited(Path(sidecar_file), rules.max_bytes)
    meta = _parse(data, Path(sidecar_file).name, settings, rules)
    member = sidecar_member(aip)
    files = {f.path: f for f in aip.files}
    old_file = files.get(member)
    digest = hashlib.sha256(data).hexdigest()
    if old_file is not None and old_file.sha256 == digest and old_file.size == len(data):
        raise ConfigError(
            f"{Path(sidecar_file).name} is byte for byte the sidecar of version {aip.version} of {aip.id} "
            f"({member}): there is nothing to amend",
            advice="Edit the sidecar first; `preserve restore AIP_ID DEST` gives you the current one.",
        )
    today = today or utcnow().date()
    plan = _access_plan(settings, catalog, aip, meta, today)
    current = _current_version(aip)
    number = current.number + 1
    targets = _replica_targets(settings, aip)
    now = utcnow()
    # a folder of this amend's own: two amends of one AIP at once must not share (or delete) it
    scratch = Path(tempfile.mkdtemp(prefix=f"{aip.id}.", dir=private_dir(settings.var_dir / WORK_DIR)))
    try:
        fetched, source = _download_current(settings, aip, current, member if old_file else None, scratch / "current")
        _check_manifests(aip, fetched)
        old_meta = _old_sidecar(fetched.get(member), member, settings, rules)
        changed_fields = _changed_fields(old_meta, meta)
        title = meta.title or meta.original_title or aip.submission_name
        event = Event(
            EventType.METADATA_MODIFICATION,
            Outcome.PASS,
            tools.preserve_agent(),
            f"version {number} of the AIP written by `preserve amend`, asked by {operator.name}: the sidecar "
            f"{member} {'replaced' if old_file else 'added'}"
            + (f" (fields changed: {', '.join(changed_fields)})" if changed_fields else "")
            + f"; {PREMIS_MEMBER}, the payload manifests, bag-info.txt and the tag manifests written again; "
            f"the payload is unchanged and was not uploaded again; reason: {reason}",
            at=now,
            subject=member,
            extra={
                "version": number,
                "previous_version": current.number,
                "reason": reason,
                "operator": operator.name,
                "authorized_by": [operator.name],  # the person, linked in PREMIS as the authorizer
                "sidecar": member,
                "fields": list(changed_fields),
            },
        )
        new_sidecar = FileView(
            member,
            len(data),
            digest,
            hashlib.sha512(data).hexdigest(),
            Role.SIDECAR.value,
            old_file.format_name if old_file else "",
            old_file.format_registry_key if old_file else "",
        )
        work = scratch / "bag"
        built = _build(settings, aip, fetched, work, data, new_sidecar, meta, event, now)
        written, sizes = _changed_members(aip, current, number, built, source)
        members = {m: written.get(m, k) for m, k in current.members.items()}
        members.update({m: k for m, k in written.items() if m not in members})
        _never_the_payload(aip, written)
        uploads = [Upload(key, work / m, built[m][0], sizes[m]) for m, key in sorted(written.items())]
        objects, uploaded, reused = _upload(settings, aip, targets, uploads, number)
        premis_file = dataclasses.replace(
            files.get(PREMIS_MEMBER) or FileView(PREMIS_MEMBER, 0, "", "", Role.SIDECAR.value),
            size=built[PREMIS_MEMBER][2],
            sha256=built[PREMIS_MEMBER][0],
            sha512=built[PREMIS_MEMBER][1],
        )
        record = NewVersion(
            aip_id=aip.id,
            version=VersionRecord(number, now, reason, operator.name, members),
            files=[new_sidecar, premis_file],
            objects=objects,
            events=[event],
            title=title if title != aip.title else None,
        )
        try:
            catalog.add_version(record)
        except PreserveError:
            _forget_unrecorded(settings, catalog, aip, targets, objects, number, reused)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    documents = _refresh_documents(settings, catalog, aip, meta, changed_fields, operator)
    access_ok, access_note, access_report = _follow_access(settings, catalog, aip, plan, number, reason, operator)
    flushed = journal.flush_quietly(settings, catalog, [aip.id])  # the version inventory and the event
    return AmendResult(
        aip_id=aip.id,
        version=number,
        members=members,
        written=written,
        sizes=sizes,
        uploaded=uploaded,
        sidecar=member,
        fields=changed_fields,
        title_changed=title != aip.title,
        access_ok=access_ok,
        access=access_note,
        access_report=access_report,
        documents=documents,
        events=(event,),
        journal=flushed,
        reused=reused,
    )


# -- refusals --------------------------------------------------------------------------------------
def _refuse_if_removed(catalog: Catalog, aip: AipView) -> None:
    tomb = catalog.tombstone(aip.id)
    if aip.status is AipStatus.DEACCESSIONED or tomb is not None:
        when = f" on {tomb.approved_at:%Y-%m-%d}" if tomb is not None and tomb.approved_at else ""
        raise ConfigError(
            f"AIP {aip.id} is deaccessioned (approved{when}): it is being or has been removed from every "
            "replica, so it has no new versions",
            advice=f"`preserve show {aip.id}` shows its tombstone. A film that must stay needs a new ingest.",
        )


def _read_limited(path: Path, max_bytes: int) -> bytes:
    """The sidecar's bytes, at most ``max_bytes`` + 1 of them (more is refused by the parser)."""
    try:
        with path.open("rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the sidecar {path.name}: [Errno {exc.errno}] {exc.strerror}") from None


def _parse(data: bytes, name: str, settings: Settings, rules: sidecar.Rules) -> sidecar.Sidecar:
    """The sidecar as the ingest reads it (its limits, the archive's default access level). A
    refusal says what the intake's public text says (lines and field names, never a value: this
    output can reach logs and mails)."""
    try:
        return sidecar.read(data, name, default_level=settings.access.default_level, rules=rules)
    except SidecarError as exc:
        told = exc.public.removesuffix(f"; {LOCAL_REPORT_HINT}")
        raise ConfigError(
            f"the sidecar is refused, as an ingest would refuse it: {told}",
            advice="Correct the lines and fields named (their values are not repeated here), then run the amend "
            "again; the README's Sidecar section shows the fields and the form of contributor_id.",
        ) from None


def sidecar_member(aip: AipView) -> str:
    """The bag member path of the AIP's sidecar: a folder's ``data/objects/metadata.yaml``, or the
    ``<file>.yaml`` / ``<file>.yml`` beside a single file; ``data/objects/metadata.yaml`` when the
    AIP has none (ConfigError if a file that is not a sidecar already has that path)."""
    prefix = f"data/{bag.OBJECTS_DIR}/"
    paths = {f.path: f for f in aip.files}
    found = [
        f.path
        for f in aip.files
        if f.role == Role.SIDECAR.value
        and f.path.startswith(prefix)
        and "/" not in f.path.removeprefix(prefix)
        and f.path.endswith((".yaml", ".yml"))
    ]
    if DEFAULT_SIDECAR in found:
        return DEFAULT_SIDECAR
    beside = [p for p in found if p.rsplit(".", 1)[0] in paths]  # film.mov.yaml beside film.mov
    if beside:
        return sorted(beside, key=lambda p: (not p.endswith(".yaml"), p))[0]
    if found:
        return sorted(found)[0]
    if DEFAULT_SIDECAR in paths:
        raise ConfigError(
            f"AIP {aip.id} has no sidecar, and its file {DEFAULT_SIDECAR} is not one: a sidecar cannot be added "
            "under that name"
        )
    return DEFAULT_SIDECAR


def _withdrawal(catalog: Catalog, aip: AipView) -> AccessChangeRecord | None:
    """The withdrawal that is the AIP's latest access decision still in force (done or pending)."""
    changes = [c for c in catalog.access_changes(aip.id) if c.state != "superseded"]
    return changes[-1] if changes and changes[-1].is_withdrawal else None


def _access_plan(
    settings: Settings, catalog: Catalog, aip: AipView, meta: sidecar.Sidecar, today: dt.date
) -> _AccessPlan:
    """What the new sidecar's access decision asks of the access copies. A sidecar that makes none
    (no `access:` field) changes nothing; a withdrawal is an operator's decision an amend does not
    undo. Raises ConfigError (before anything is written) for what `set_access` would refuse: an
    embargo date not after today, another access change still being carried out."""
    level = AccessLevel(meta.access.level)
    until = meta.access.until if level is AccessLevel.EMBARGOED else None
    current_until = embargo_until(list(aip.events)) if aip.access_level is AccessLevel.EMBARGOED else None
    if level is aip.access_level and (level is not AccessLevel.EMBARGOED or until == current_until):
        return _AccessPlan(None, None, f"unchanged ({aip.access_level}" + (f" until {until})" if until else ")"))
    if not meta.access.decided:
        return _AccessPlan(
            None, None, f"unchanged ({aip.access_level}): the new sidecar makes no access decision (no `access:` field)"
        )
    withdrawn = _withdrawal(catalog, aip)
    if withdrawn is not None:
        return _AccessPlan(
            None,
            None,
            f"NOT changed to {level}: the film was withdrawn by {withdrawn.operator} on "
            f"{withdrawn.requested_at:%Y-%m-%d}, an operator's decision an amend does not undo; it stays dark "
            f"(`preserve set-access {aip.id} {level} --reason TEXT` would make it {level})",
        )
    if level is AccessLevel.EMBARGOED and until is not None and until <= today:
        raise ConfigError(
            f"the sidecar's embargo date {until} is not after today ({today}): the access copies cannot be held "
            "until then",
            advice="Give a date in the future, or `access: open` for a film whose embargo has ended.",
        )
    if level is not AccessLevel.DARK and policy.access_location(settings, level) is None:
        return _AccessPlan(
            None, None, f"NOT changed to {level}: no access target is configured ([access_target]) for the copies"
        )
    pending = catalog.access_changes(aip.id, pending_only=True)
    if pending and level is not AccessLevel.DARK:
        other = pending[-1]
        raise ConfigError(
            f"AIP {aip.id}: a change of access to {other.to_level} asked by {other.operator} is still being carried "
            f"out, and the new sidecar asks for {level}",
            advice="Wait until it is done (`preserve status` lists it), then run the amend again.",
        )
    return _AccessPlan(level, until, "")


# -- the current version -------------------------------------------------------------------------
def _current_version(aip: AipView) -> VersionRecord:
    """The AIP's newest version (version 1 from its objects when the catalog records none)."""
    if aip.versions:
        return aip.versions[-1]
    keys = sorted({o.key for r in aip.replicas for o in r.objects})
    return VersionRecord(1, aip.created, "ingest", "", {member_path(aip.id, k): k for k in keys})


def _replica_targets(settings: Settings, aip: AipView) -> list[TargetSettings]:
    """The configured target of every replica: the new version goes to each of them, or nowhere."""
    configured = {t.name: t for t in settings.targets}
    missing = [r.target for r in aip.replicas if r.target not in configured]
    if missing:
        raise ConfigError(
            f"AIP {aip.id} has replicas on {', '.join(missing)}, which the configuration no longer names: a new "
            "version must be written on every replica",
            advice="Configure the target again (the same bucket or path) and run the amend.",
        )
    if not aip.replicas:
        raise ConfigError(f"AIP {aip.id} has no replica to write a new version on")
    return [configured[r.target] for r in aip.replicas]


def _ordered(settings: Settings, aip: AipView) -> list[ReplicaRecord]:
    order = [t.name for t in settings.targets]
    reps = [r for r in aip.replicas if r.target in order]
    return sorted(reps, key=lambda r: (r.status != ReplicaStatus.VERIFIED, order.index(r.target)))


def _download_current(
    settings: Settings, aip: AipView, current: VersionRecord, sidecar_path: str | None, dest: Path
) -> tuple[dict[str, bytes], dict[str, StoredObject]]:
    """The current version's tag files (bagit.txt, bag-info.txt, the manifests) and its sidecar,
    from the first replica whose copies all match the catalog's SHA-256 for their keys. Returns
    their bytes and the catalog's objects of every member on that replica (the digests the new
    members are compared with)."""
    wanted = sorted(m for m in current.members if "/" not in m and not m.startswith("tagmanifest-"))
    if sidecar_path is not None:
        wanted.append(sidecar_path)
    problems: list[str] = []
    for rep in _ordered(settings, aip):
        held = {o.key: o for o in rep.objects}
        objects = {m: held[k] for m, k in current.members.items() if k in held}
        absent = [m for m in current.members if m not in objects]
        if absent:
            problems.append(f"{rep.target}: no recorded object for {', '.join(sorted(absent)[:3])}")
            continue
        got: dict[str, bytes] = {}
        try:
            with open_store(settings, settings.target(rep.target)) as store:
                for m in wanted:
                    local = dest / rep.target / m
                    local.parent.mkdir(parents=True, exist_ok=True)
                    if store.get_file(objects[m].key, local) != objects[m].sha256:
                        raise VerificationError(f"{objects[m].key}: SHA-256 differs from the catalog's")
                    got[m] = local.read_bytes()
        except StorageError as exc:
            problems.append(f"{rep.target}: {exc}")
            continue
        return got, objects
    raise StorageError(
        f"no replica of {aip.id} has current tag files that match the catalog: " + "; ".join(problems or ["none"]),
        advice="Run `preserve audit --aip ID` (it repairs damaged copies from a good one), then amend again.",
    )


def _check_manifests(aip: AipView, fetched: Mapping[str, bytes]) -> None:
    """The catalog's payload digests, which the new manifests are written from (no film is read
    again), must be exactly what the current manifests say. PreserveError otherwise."""
    catalog_digests = {"sha256": {f.path: f.sha256 for f in aip.files}, "sha512": {f.path: f.sha512 for f in aip.files}}
    for alg in BAG_ALGORITHMS:
        raw = fetched.get(f"manifest-{alg}.txt")
        if raw is None:
            raise PreserveError(f"the current version of {aip.id} has no manifest-{alg}.txt")
        listed = bag.parse_manifest(raw.decode("utf-8"))
        if listed != catalog_digests[alg]:
            differ = sorted(set(listed.items()) ^ set(catalog_digests[alg].items()))
            raise PreserveError(
                f"the catalog's {alg} digests of {aip.id} differ from its bag's manifest-{alg}.txt "
                f"({len(differ)} line(s), e.g. {differ[0][0]}): no new version is written from them",
                advice="Run `preserve audit --aip ID --full`; the catalog and the replicas must agree first.",
            )


def _old_sidecar(raw: bytes | None, member: str, settings: Settings, rules: sidecar.Rules) -> sidecar.Sidecar | None:
    if raw is None:
        return None
    try:
        return sidecar.read(raw, member.rsplit("/", 1)[-1], default_level=settings.access.default_level, rules=rules)
    except SidecarError:
        return None  # preserved as it came; its fields cannot be compared


def _changed_fields(old: sidecar.Sidecar | None, new: sidecar.Sidecar) -> tuple[str, ...]:
    """The names (never the values) of the sidecar fields that differ."""
    names = [f.name for f in dataclasses.fields(sidecar.Sidecar)]
    if old is None:
        empty = sidecar.Sidecar(access=sidecar.Access(new.access.level))
        return tuple(_FIELD_NAMES.get(n, n) for n in names if getattr(new, n) != getattr(empty, n))
    return tuple(_FIELD_NAMES.get(n, n) for n in names if getattr(new, n) != getattr(old, n))


# -- the new members -------------------------------------------------------------------------------


def _build(
    settings: Settings,
    aip: AipView,
    fetched: Mapping[str, bytes],
    work: Path,
    data: bytes,
    new_sidecar: FileView,
    meta: sidecar.Sidecar,
    event: Event,
    now: dt.datetime,
) -> dict[str, tuple[str, str, int]]:
    """Write the new version's sidecar, premis.xml and tag files under ``work`` (every other
    payload file stays where it is stored, declared with the catalog's digests), and check the bag
    without reading the payload. Returns member -> (sha256, sha512, size) of what was written."""
    private_dir(work)
    files = [f for f in aip.files if f.path != new_sidecar.path]
    record_files = [*files, new_sidecar]
    view = dataclasses.replace(aip, files=tuple(record_files), events=(*aip.events, event))
    document = premis.from_catalog(view)
    problems = premis.validate(document)
    if problems:
        raise PreserveError(f"the new PREMIS record does not validate against the PREMIS 3.0 schema: {problems[:3]}")
    written: dict[str, bytes] = {new_sidecar.path: data, PREMIS_MEMBER: document}
    payload: list[PayloadFile] = []
    for f in [*files, new_sidecar]:
        if f.path == PREMIS_MEMBER:
            continue
        payload.append(_payload(f))
    premis_digests = {alg: hashlib.new(alg, document).hexdigest() for alg in BAG_ALGORITHMS}
    payload.append(PayloadFile(PREMIS_MEMBER, Digests(len(document), premis_digests), Role.SIDECAR))
    for m, content in written.items():
        path = work / m
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    old = bag.parse_bag_info((fetched.get("bag-info.txt") or b"").decode("utf-8"))
    info = {
        "Source-Organization": old.get("Source-Organization") or settings.archive.organization,
        "External-Identifier": old.get("External-Identifier") or aip.id,
        "Bagging-Date": now.date().isoformat(),
        "Bag-Software-Agent": f"preserve {tools.preserve_agent().version} "
        f"(bagit-python {tools.python_agent('bagit').version})",
        "Title": meta.title or meta.original_title,
        "Contributor-Identifier": meta.contributor_id,  # a pseudonym only: tag files travel everywhere
        "Access-Level": meta.access.level,
    }
    elsewhere = {p.path for p in payload} - set(written)
    bag.finalize(work, payload, info, elsewhere=elsewhere)
    report = bag.check(work, payload, elsewhere=elsewhere)
    if not report.valid:
        raise PreserveError(f"the new version's bag does not validate: {'; '.join(report.errors[:5])}")
    out: dict[str, tuple[str, str, int]] = {}
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        content = path.read_bytes()
        out[path.relative_to(work).as_posix()] = (
            hashlib.sha256(content).hexdigest(),
            hashlib.sha512(content).hexdigest(),
            len(content),
        )
    return out


def _payload(f: FileView) -> PayloadFile:
    return PayloadFile(
        f.path, Digests(f.size, {"sha256": f.sha256, "sha512": f.sha512}), Role(f.role) if f.role else Role.OTHER
    )


def _changed_members(
    aip: AipView,
    current: VersionRecord,
    number: int,
    built: Mapping[str, tuple[str, str, int]],
    objects: Mapping[str, StoredObject],
) -> tuple[dict[str, str], dict[str, int]]:
    """The members whose bytes differ from the current version's (or are new), with their new
    keys, and their sizes. The rest keep the current version's objects."""
    written: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for m, (sha256, _sha512, size) in built.items():
        old = objects.get(m) if m in current.members else None
        if old is not None and old.sha256 == sha256 and old.size == size:
            continue
        written[m] = layout.version_member_key(aip.id, number, m)
        sizes[m] = size
    return written, sizes


def _never_the_payload(aip: AipView, written: Mapping[str, str]) -> None:
    """Only tag files, the sidecar and premis.xml may be written by an amend: never a film."""
    allowed = {PREMIS_MEMBER, sidecar_member(aip)}
    wrong = [m for m in written if "/" in m and m not in allowed]
    if wrong:
        raise PreserveError(f"an amend may not write payload files other than the sidecar and premis.xml: {wrong[:3]}")


# -- storage ---------------------------------------------------------------------------------------
def _upload(
    settings: Settings, aip: AipView, targets: Sequence[TargetSettings], uploads: Sequence[Upload], number: int
) -> tuple[list[StoredObject], dict[str, int], dict[str, tuple[str, ...]]]:
    """Store the new members on every target, verified: targets without Object Lock first, those
    with it only once the others hold the version (a failure then leaves nothing locked). A key that
    already exists (an earlier amend of this version, interrupted) is kept when it holds these very
    bytes and refused when it holds others: nothing stored is overwritten. On any failure what this
    amend uploaded is removed where it can be, and StorageError names the target."""
    reused: dict[str, list[ObjectInfo]] = {}
    conflicts: list[str] = []
    for t in targets:
        try:
            with open_store(settings, t) as store:
                reused[t.name], clash = _existing(store, uploads)
        except StorageError as exc:
            raise StorageError(
                f"the amend of {aip.id} cannot start: target {t.name} does not answer ({redact.public_text(exc)}); "
                "nothing was written or recorded",
                advice="Run the amend again once the target answers (`preserve status`, `preserve services status`).",
            ) from None
        conflicts += [f"{t.name}:{key}" for key in clash]
    if conflicts:
        raise StorageError(
            f"{', '.join(conflicts[:5])} already exist(s) with other bytes, left by an earlier amend of {aip.id} to "
            f"version {number} that did not finish: an amend never overwrites what is stored, so nothing was "
            "written or recorded",
            advice=f"Those objects are not in the catalog. Check them and remove everything under {aip.id}/versions/"
            f"v{number}/ on that target (it is unrecorded) before amending again; under Object Lock it stays until its "
            "retention ends.",
        )
    objects: list[StoredObject] = []
    uploaded: dict[str, int] = {}
    done: list[TargetOutcome] = []
    by_key = {u.key: u for u in uploads}
    phases = [[t for t in targets if not t.object_lock_mode], [t for t in targets if t.object_lock_mode]]
    for phase in phases:
        if not phase:
            continue
        skip = {t.name: {i.key for i in reused[t.name]} for t in phase}
        outcomes = upload_all(settings, phase, aip.id, uploads, skip=skip)
        done += outcomes
        failed = [o for o in outcomes if not o.ok]
        if failed:
            removed = _remove(settings, targets, done)
            what = "; ".join(f"{o.target}: {redact.public_text(o.error) if o.error else 'failed'}" for o in failed)
            raise StorageError(
                f"the amend of {aip.id} failed on {', '.join(o.target for o in failed)} ({what}); nothing was "
                f"recorded; {removed}",
                advice="Run the amend again once the target answers (`preserve status`, `preserve services status`).",
            )
        for o in outcomes:
            objects += o.objects
            uploaded[o.target] = sum(x.size for x in o.objects)
            for info in reused[o.target]:
                u = by_key[info.key]
                objects.append(stored_object(o.target, u.key, u.size, u.sha256, info))
    return objects, uploaded, {t: tuple(sorted(i.key for i in infos)) for t, infos in reused.items() if infos}


def _existing(store: ObjectStore, uploads: Sequence[Upload]) -> tuple[list[ObjectInfo], list[str]]:
    """The new keys already on the store with these very bytes (kept, not sent again), and those
    holding other bytes (an earlier amend of this version, interrupted: never overwritten)."""
    same: list[ObjectInfo] = []
    other: list[str] = []
    for u in uploads:
        info = store.head(u.key)
        if info is None:
            continue
        digest = info.sha256
        if digest is None and info.size == u.size:
            digest = sha256_of(store, u.key)
        if info.size == u.size and digest == u.sha256:
            if info.stored is not None and not info.stored.sha256:  # encrypted: the ciphertext's too
                raw = as_stored(store)
                info = dataclasses.replace(
                    info, stored=dataclasses.replace(info.stored, sha256=sha256_of(raw, info.stored.key))
                )
            same.append(info)
        else:
            other.append(u.key)
    return same, other


def _remove(settings: Settings, targets: Sequence[TargetSettings], outcomes: Sequence[TargetOutcome]) -> str:
    """Delete every object these outcomes stored (new keys of this amend); what could not go is said."""
    by_name = {t.name: t for t in targets}
    gone: list[str] = []
    left: list[str] = []
    for o in outcomes:
        if not o.objects:
            continue
        try:
            with open_store(settings, by_name[o.target]) as store:
                for obj in o.objects:
                    try:
                        store.delete(obj.key)
                        gone.append(f"{o.target}:{obj.key}")
                    except ObjectLocked as exc:
                        left.append(f"{o.target}:{obj.key} ({redact.public_text(exc)})")
        except StorageError as exc:
            left += [f"{o.target}:{obj.key} ({redact.public_text(exc)})" for obj in o.objects]
    text = f"{len(gone)} object(s) it had uploaded were removed again" if gone else "it had uploaded nothing"
    if left:
        text += "; NOT removed (unrecorded, under versions/): " + ", ".join(left[:10])
    return text


def _forget_unrecorded(
    settings: Settings,
    catalog: Catalog,
    aip: AipView,
    targets: Sequence[TargetSettings],
    objects: Sequence[StoredObject],
    number: int,
    reused: Mapping[str, tuple[str, ...]],
) -> None:
    """The catalog refused the version: remove what this amend uploaded, unless another amend has
    recorded this very version meanwhile (its keys are the same: they are its objects now)."""
    try:
        if any(v.number >= number for v in catalog.versions(aip.id)):
            return
    except CatalogError:
        return  # cannot tell: leave them (unrecorded objects, removed by a person or the next amend's check)
    ours = [o for o in objects if o.key not in reused.get(o.target, ())]
    by_target: dict[str, list[StoredObject]] = {}
    for o in ours:
        by_target.setdefault(o.target, []).append(o)
    outcomes = [TargetOutcome(t, "", objects=objs) for t, objs in by_target.items()]
    with contextlib.suppress(PreserveError):
        log.warning("amend of %s not recorded: %s", aip.id, _remove(settings, targets, outcomes))


# -- afterwards --------------------------------------------------------------------------------------
#: the sidecar fields the public documents show (the manifest's label and metadata, the page)
PRESENTED_FIELDS = frozenset({"title", "original_title", "year", "director", "credits_public", "language"})


def _refresh_documents(
    settings: Settings,
    catalog: Catalog,
    aip: AipView,
    meta: sidecar.Sidecar,
    changed: Sequence[str],
    operator: Agent,
) -> str:
    """The manifest and the page written again when a field they show changed (before any access
    change, which moves them as they are then); a failure is told, never raised: the version is
    recorded, and a later `set-access` writes them again."""
    if not PRESENTED_FIELDS & set(changed):
        return "unchanged"
    try:
        return presenting.refresh(settings, catalog, aip.id, meta, operator=operator)
    except PreserveError as exc:
        return f"NOT written again: {redact.describe(exc)}; the old ones stay until the next `preserve set-access`"


def _follow_access(
    settings: Settings,
    catalog: Catalog,
    aip: AipView,
    plan: _AccessPlan,
    number: int,
    reason: str,
    operator: Agent,
) -> tuple[bool, str, access_change.AccessChangeReport | None]:
    """Request the access level the new sidecar asks for (the version is recorded by now: a change
    that cannot finish stays pending and is retried, as any `set-access`)."""
    if plan.level is None:
        return True, plan.note, None
    try:
        report = access_change.set_access(
            settings,
            catalog,
            aip.id,
            plan.level,
            until=plan.until,
            reason=f"version {number} (amend): {reason}",
            operator=operator,
        )
    except PreserveError as exc:
        return (
            False,
            f"NOT changed to {plan.level}: {redact.describe(exc)}; the version is recorded, run "
            f"`preserve set-access {aip.id} {plan.level} --reason TEXT`",
            None,
        )
    until = f" until {plan.until}" if plan.until else ""
    if report.ok:
        return True, f"changed {report.from_level} -> {report.to_level}{until} (access copies verified)", report
    lines = "; ".join(report.remaining_lines()[:3])
    return (
        False,
        f"change {report.from_level} -> {report.to_level}{until} requested, NOT complete (pending, retried by "
        f"housekeeping): {lines}",
        report,
    )
