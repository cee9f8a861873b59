"""AIPs in the catalog, with what belongs to each: payload files, replicas and their stored objects
(what audits re-read), access copies and access levels, events, and the content key that
recognises a re-submission. Side effects: database reads and writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from preserve.catalog.access_changes import withheld
from preserve.catalog.engine import aware
from preserve.catalog.events import EventLog, event_from_row, event_row
from preserve.catalog.models import (
    AccessRow,
    AipRow,
    AipVersionRow,
    EventRow,
    FileRow,
    ObjectRow,
    ReplicaRow,
    SubmissionRow,
)
from preserve.catalog.records import (
    AccessCopy,
    AipView,
    FileView,
    NewAip,
    ReplicaRecord,
    StoredObject,
    VersionRecord,
)
from preserve.core.errors import CatalogError
from preserve.core.model import (
    AccessLevel,
    AipStatus,
    Event,
    PayloadFile,
    ReplicaStatus,
    SubmissionStatus,
    utcnow,
)


def content_key(files: Sequence[PayloadFile]) -> str:
    """Identity of a submission's content: the same files (names and bytes) give the same key."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.digests.sha256}\n".encode())
    return h.hexdigest()


class AipRepository(EventLog):
    """AIPs and their files, replicas, objects, access copies and events."""

    def record_aip(self, aip: NewAip, *, claimed_by: str | None = None) -> None:
        """Write a stored AIP, its files, verified replicas, access copies and events, and mark its
        submission stored, all in one transaction: the record of truth is written last and whole.
        With ``claimed_by``, the write happens only while that worker still holds the claim: a
        worker whose lease was taken over (it lost the catalog for a whole lease) must not record
        objects the new holder may already have swept."""
        for r in aip.replicas:
            if r.status == ReplicaStatus.VERIFIED and r.verified_at is None:
                raise CatalogError(f"replica {r.target} marked verified without a verification time")
        now = utcnow()
        with self._tx() as s:
            if s.get(AipRow, aip.id) is not None:
                raise CatalogError(f"AIP {aip.id} is already recorded")
            row = AipRow(
                id=aip.id,
                title=aip.title,
                submission_name=aip.submission_name,
                created_at=now,
                status=AipStatus.STORED.value,
                access_level=AccessLevel(aip.access_level).value,
                payload_oxum=aip.payload_oxum,
                content_key=aip.content_key or content_key(aip.files),
            )
            for f in aip.files:
                fmt, puid = aip.formats.get(f.path, ("", ""))
                row.files.append(
                    FileRow(
                        path=f.path,
                        size=f.size,
                        sha256=f.digests.sha256,
                        sha512=f.digests.sha512,
                        role=f.role.value,
                        format_name=fmt,
                        format_registry_key=puid,
                        original_name_hex=(f.original_name_bytes or b"").hex(),
                    )
                )
            for r in aip.replicas:
                row.replicas.append(_replica_row(r))
                for o in r.objects:
                    row.objects.append(_object_row(o, r.target))
            for a in aip.access:
                row.access.append(_access_row(a))
            keys = sorted({o.key for r in aip.replicas for o in r.objects})
            row.versions.append(
                AipVersionRow(
                    number=1,
                    created_at=now,
                    reason="ingest",
                    operator="",
                    members={member_of(aip.id, k): k for k in keys},
                )
            )
            s.add(row)
            s.add_all(event_row(e, aip.id, aip.submission_name) for e in aip.events)
            sub = s.get(SubmissionRow, aip.submission_name, with_for_update=True)
            if claimed_by is not None and (sub is None or sub.claimed_by != claimed_by):
                raise CatalogError(
                    f"{aip.submission_name}: this worker no longer holds the claim "
                    f"(now {sub.claimed_by if sub else 'nobody'}); not recording AIP {aip.id}"
                )
            if sub is None:
                sub = SubmissionRow(name=aip.submission_name, updated_at=now, attempts=1)
                s.add(sub)
            sub.status, sub.aip_id, sub.reason = SubmissionStatus.STORED.value, aip.id, ""
            sub.updated_at, sub.lease_until = now, None

    def get_aip(self, aip_id: str) -> AipView | None:
        """One AIP by id or unique id prefix, with its events and its submission's own events."""
        with self._session() as s:
            row = s.get(AipRow, aip_id)
            if row is None:
                matches = list(s.scalars(select(AipRow).where(AipRow.id.startswith(aip_id)).limit(2)))
                row = matches[0] if len(matches) == 1 else None
            if row is None:
                return None
            events = s.scalars(
                select(EventRow)
                .where(
                    or_(
                        EventRow.aip_id == row.id,
                        (EventRow.submission == row.submission_name) & (EventRow.aip_id.is_(None)),
                    )
                )
                .order_by(EventRow.at, EventRow.id)
            )
            return _aip_view(row, [event_from_row(e) for e in events])

    def list_aips(self) -> list[AipView]:
        with self._session() as s:
            rows = s.scalars(select(AipRow).order_by(AipRow.created_at))
            return [_aip_view(r, []) for r in rows]

    def sharing_media(self, sha256s: Sequence[str], *, exclude: str = "") -> list[tuple[str, str, str]]:
        """(AIP id, access level, status) of every AIP other than ``exclude`` that holds a video or
        audio file with one of these SHA-256s."""
        if not sha256s:
            return []
        with self._session() as s:
            rows = s.execute(
                select(AipRow.id, AipRow.access_level, AipRow.status)
                .join(FileRow, FileRow.aip_id == AipRow.id)
                .where(FileRow.sha256.in_(sorted(set(sha256s))), FileRow.role.in_(("video", "audio")))
                .where(AipRow.id != exclude)
                .distinct()
                .order_by(AipRow.id)
            ).all()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def find_by_content(self, key: str) -> str | None:
        """The AIP that holds this content (see content_key), if any. A deaccessioned AIP holds
        nothing any more: the same content submitted again is not a duplicate of it."""
        with self._session() as s:
            return s.scalar(
                select(AipRow.id)
                .where(AipRow.content_key == key, AipRow.status != AipStatus.DEACCESSIONED.value)
                .limit(1)
            )

    def stats(self) -> dict[str, int]:
        """How many AIPs, payload bytes and files the catalog holds."""
        with self._session() as s:
            return {
                "aips": s.scalar(select(func.count()).select_from(AipRow)) or 0,
                "bytes": s.scalar(select(func.coalesce(func.sum(FileRow.size), 0))) or 0,
                "files": s.scalar(select(func.count()).select_from(FileRow)) or 0,
            }

    def set_aip_status(self, aip_id: str, status: AipStatus) -> None:
        with self._tx() as s:
            row = s.get(AipRow, aip_id)
            if row is None:
                raise CatalogError(f"no AIP {aip_id}")
            row.status = AipStatus(status).value

    # -- access copies and access levels (embargo release) -------------------------------------
    def aip_ids_with_access_level(self, level: AccessLevel) -> list[str]:
        with self._session() as s:
            q = select(AipRow.id).where(AipRow.access_level == AccessLevel(level).value)
            return list(s.scalars(q.order_by(AipRow.created_at)))

    def replace_documents(
        self,
        aip_id: str,
        documents: Sequence[AccessCopy],
        *,
        kinds: Sequence[str],
        expect_level: AccessLevel | str,
        expect_target: str,
        events: Sequence[Event] = (),
    ) -> bool:
        """Swap the AIP's access copies of ``kinds`` (its IIIF manifest and page) for
        ``documents``, with the events saying so, leaving every other copy as it is now; nothing
        written (False) when, with the AIP row locked, its publication is withheld, its level is
        no longer ``expect_level``, or its copies are no longer at ``expect_target`` (a change
        carried out meanwhile: what was stored for the old place must not be recorded)."""
        with self._tx() as s:
            aip = s.get(AipRow, aip_id, with_for_update=True)
            if aip is None:
                raise CatalogError(f"no AIP {aip_id}")
            if withheld(s, aip_id) or aip.access_level != AccessLevel(expect_level).value:
                return False
            if any(row.target != expect_target for row in aip.access):
                return False
            kept = [_view_of(row) for row in aip.access if row.kind not in kinds]
            aip.access.clear()
            s.flush()
            for a in [*kept, *documents]:
                aip.access.append(_access_row(a))
            s.add_all(event_row(e, aip_id) for e in events)
            return True

    def replace_access(
        self,
        aip_id: str,
        copies: Sequence[AccessCopy],
        *,
        access_level: AccessLevel,
        events: Sequence[Event] = (),
        unless_withheld: bool = False,
    ) -> bool:
        """Record where an AIP's access copies now are and its new access level (an embargo
        released), with the events saying so, in one transaction. ``unless_withheld``: the AIP row
        is locked and nothing is written (False returned) when its publication is withheld then
        (`publication_withheld`: withdrawn, deaccessioned, or a private change pending)."""
        with self._tx() as s:
            aip = s.get(AipRow, aip_id, with_for_update=True)
            if aip is None:
                raise CatalogError(f"no AIP {aip_id}")
            if unless_withheld and withheld(s, aip_id):
                return False
            aip.access.clear()
            s.flush()
            for a in copies:
                aip.access.append(_access_row(a))
            aip.access_level = AccessLevel(access_level).value
            s.add_all(event_row(e, aip_id) for e in events)
            return True

    # -- replicas and objects (audits, back-fill, repair) ---------------------------------------
    def objects(self, aip_id: str | None = None, target: str | None = None) -> list[StoredObject]:
        with self._session() as s:
            q = select(ObjectRow)
            if aip_id:
                q = q.where(ObjectRow.aip_id == aip_id)
            if target:
                q = q.where(ObjectRow.target == target)
            return [_stored_object(r) for r in s.scalars(q.order_by(ObjectRow.aip_id, ObjectRow.target, ObjectRow.key))]

    def damaged_objects(self) -> list[StoredObject]:
        """Objects whose last check found them damaged or missing (what damage alerts are about)."""
        with self._session() as s:
            q = (
                select(ObjectRow)
                .where(ObjectRow.status.in_((ReplicaStatus.DAMAGED.value, ReplicaStatus.MISSING.value)))
                .order_by(ObjectRow.aip_id, ObjectRow.target, ObjectRow.key)
            )
            return [_stored_object(r) for r in s.scalars(q)]

    def record_object_check(
        self,
        aip_id: str,
        target: str,
        key: str,
        *,
        status: ReplicaStatus,
        verified_at: dt.datetime | None,
        version_id: str | None = None,
        events: Sequence[Event] = (),
    ) -> None:
        """Record the outcome of a check of one object. ``verified_at`` is set only by a caller that
        has just compared the object's bytes with our SHA-256."""
        with self._tx() as s:
            row = s.scalar(
                select(ObjectRow).where(ObjectRow.aip_id == aip_id, ObjectRow.target == target, ObjectRow.key == key)
            )
            if row is None:
                raise CatalogError(f"no object {target}:{key} for AIP {aip_id}")
            row.status = ReplicaStatus(status).value
            if verified_at is not None:
                row.last_verified_at = verified_at
            if version_id is not None:
                row.version_id = version_id
            s.add_all(event_row(e, aip_id) for e in events)
            _refresh_replica(s, aip_id, target)

    def upsert_replica(self, aip_id: str, replica: ReplicaRecord, events: Sequence[Event] = ()) -> None:
        """Add (back-fill) or replace one replica of an existing AIP, with its objects."""
        with self._tx() as s:
            aip = s.get(AipRow, aip_id)
            if aip is None:
                raise CatalogError(f"no AIP {aip_id}")
            for r in list(aip.replicas):
                if r.target == replica.target:
                    aip.replicas.remove(r)
            for stale in list(aip.objects):
                if stale.target == replica.target:
                    aip.objects.remove(stale)
            s.flush()
            aip.replicas.append(_replica_row(replica))
            for o in replica.objects:
                aip.objects.append(_object_row(o, replica.target))
            s.add_all(event_row(e, aip_id) for e in events)


def _refresh_replica(s: Session, aip_id: str, target: str) -> None:
    """A replica is verified only while every one of its objects is."""
    rows = list(s.scalars(select(ObjectRow).where(ObjectRow.aip_id == aip_id, ObjectRow.target == target)))
    rep = s.scalar(select(ReplicaRow).where(ReplicaRow.aip_id == aip_id, ReplicaRow.target == target))
    if rep is None or not rows:
        return
    bad = [ReplicaStatus(r.status) for r in rows if r.status != ReplicaStatus.VERIFIED]
    if not bad:
        rep.status = ReplicaStatus.VERIFIED.value
        rep.verified_at = min(aware(r.last_verified_at) or utcnow() for r in rows)
    elif all(b is ReplicaStatus.MISSING for b in bad):
        rep.status = ReplicaStatus.MISSING.value
    else:
        rep.status = ReplicaStatus.DAMAGED.value


def _replica_row(r: ReplicaRecord) -> ReplicaRow:
    return ReplicaRow(target=r.target, uri=r.uri, status=ReplicaStatus(r.status).value, verified_at=r.verified_at)


def _view_of(row: AccessRow) -> AccessCopy:
    return AccessCopy(row.kind, row.target, row.key, row.uri, row.size, row.sha256)


def _access_row(a: AccessCopy) -> AccessRow:
    return AccessRow(kind=a.kind, target=a.target, key=a.key, uri=a.uri, size=a.size, sha256=a.sha256)


def _object_row(o: StoredObject, target: str) -> ObjectRow:
    return ObjectRow(
        target=target,
        key=o.key,
        size=o.size,
        sha256=o.sha256,
        status=ReplicaStatus(o.status).value,
        last_verified_at=o.verified_at,
        version_id=o.version_id or "",
        lock_mode=o.lock_mode or "",
        lock_until=o.lock_until,
        stored_key=o.stored_key or "",
        stored_size=o.stored_size,
        stored_sha256=o.stored_sha256 or "",
    )


def _stored_object(r: ObjectRow) -> StoredObject:
    return StoredObject(
        target=r.target,
        key=r.key,
        size=r.size,
        sha256=r.sha256,
        verified_at=aware(r.last_verified_at),
        version_id=r.version_id,
        lock_mode=r.lock_mode,
        lock_until=aware(r.lock_until),
        status=ReplicaStatus(r.status),
        aip_id=r.aip_id,
        stored_key=r.stored_key or "",
        stored_size=r.stored_size,
        stored_sha256=r.stored_sha256 or "",
    )


def _aip_view(row: AipRow, events: list[Event]) -> AipView:
    objs: dict[str, list[StoredObject]] = {}
    for o in row.objects:
        objs.setdefault(o.target, []).append(_stored_object(o))
    return AipView(
        id=row.id,
        title=row.title,
        created=aware(row.created_at) or utcnow(),
        status=AipStatus(row.status),
        access_level=AccessLevel(row.access_level),
        submission_name=row.submission_name,
        payload_oxum=row.payload_oxum,
        files=tuple(file_view(f) for f in row.files),
        replicas=tuple(
            ReplicaRecord(r.target, r.uri, ReplicaStatus(r.status), aware(r.verified_at), tuple(objs.get(r.target, ())))
            for r in row.replicas
        ),
        access=tuple(AccessCopy(a.kind, a.target, a.key, a.uri, a.size, a.sha256) for a in row.access),
        events=tuple(events),
        versions=tuple(version_record(v) for v in row.versions),
    )


def file_view(f: FileRow) -> FileView:
    return FileView(
        f.path, f.size, f.sha256, f.sha512, f.role, f.format_name, f.format_registry_key, f.original_name_hex
    )


def version_record(v: AipVersionRow) -> VersionRecord:
    return VersionRecord(
        number=v.number,
        created=aware(v.created_at) or utcnow(),
        reason=v.reason,
        operator=v.operator,
        members=dict(v.members or {}),
    )


def member_of(aip_id: str, key: str) -> str:
    """The bag member an object key names: `preserve.storage.base.member_path`, which the catalog
    (below storage) cannot import; the two are tested against each other."""
    rel = key.removeprefix(f"{aip_id}/")
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), rel)
