"""The part of an AIP's catalog record that is neither an event nor in a version inventory (its
row, replicas, access copies, access changes, deaccessions and their deletions, version headers,
where each object on an encrypted target is and what its ciphertext is, which keys the AIP has
(public parts only: never the wrapped key, which must stay destroyable)), as a
JSON-ready dict that every event record carries to storage (`aip_state`); and the way back:
importing a rebuilt AIP into an empty catalog in one transaction (`import_aip`), with the
bookkeeping of rebuilds. Columns are written by name (bytes as base64), so a column added later
travels without a change here; of the objects, only the encrypted ones and only `OBJECT_COLUMNS`
travel. Side effects: database reads and writes."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Date, DateTime, LargeBinary, func, select
from sqlalchemy.orm import Session

from preserve.catalog.aips import _object_row
from preserve.catalog.engine import CatalogEngine, aware
from preserve.catalog.events import event_row
from preserve.catalog.models import (
    AccessChangeRow,
    AccessRow,
    AipKeyRow,
    AipRow,
    AipVersionRow,
    Base,
    DeaccessionObjectRow,
    DeaccessionRow,
    EventRow,
    FileRow,
    ObjectRow,
    RebuildRow,
    ReplicaRow,
    SubmissionRow,
)
from preserve.catalog.records import RebuiltAip, StoredObject
from preserve.core.errors import CatalogError
from preserve.core.model import AccessLevel, AipStatus, ReplicaStatus, SubmissionStatus, utcnow

STATE_FORMAT = 1
#: columns that are the catalog's own bookkeeping, not the AIP's record
_SKIP = frozenset({"id", "aip_id", "deaccession_id"})
#: what travels of an object on an encrypted target (the rest is in the version inventories or is
#: found again by the rebuild's inventory pass): which plaintext member it holds, under which
#: opaque key, and the ciphertext's size and SHA-256
OBJECT_COLUMNS = ("target", "key", "stored_key", "stored_size", "stored_sha256")


def _dump(row: Base, skip: frozenset[str] = _SKIP) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in row.__table__.columns:
        if col.key in skip:
            continue
        v = getattr(row, col.key)
        if isinstance(v, dt.datetime):
            v = (aware(v) or v).isoformat()
        elif isinstance(v, dt.date):
            v = v.isoformat()
        elif isinstance(v, bytes | bytearray | memoryview):
            v = base64.b64encode(bytes(v)).decode("ascii")
        out[col.key] = v
    return out


def _load(model: type[Base], data: Mapping[str, Any], skip: frozenset[str] = _SKIP) -> dict[str, Any]:
    """Column values for ``model`` from a dumped dict: unknown keys ignored, missing ones left to
    the column defaults, dates and times parsed back."""
    out: dict[str, Any] = {}
    for col in model.__table__.columns:
        if col.key in skip or col.key not in data:
            continue
        v = data[col.key]
        if v is not None and isinstance(col.type, DateTime):
            v = aware(dt.datetime.fromisoformat(str(v)))
        elif v is not None and isinstance(col.type, Date):
            v = dt.date.fromisoformat(str(v)[:10])
        elif v is not None and isinstance(col.type, LargeBinary):
            v = base64.b64decode(str(v), validate=True)
        out[col.key] = v
    return out


def default_state(
    aip_id: str,
    *,
    title: str,
    submission_name: str,
    created: dt.datetime,
    access_level: AccessLevel | str,
    payload_oxum: str,
    content_key: str = "",
) -> dict[str, Any]:
    """The state of an AIP whose event records could not be read: what its bag says, stored."""
    return {
        "format": STATE_FORMAT,
        "aip": {
            "id": aip_id,
            "title": title,
            "submission_name": submission_name,
            "created_at": created.isoformat(),
            "status": AipStatus.STORED.value,
            "access_level": AccessLevel(access_level).value,
            "payload_oxum": payload_oxum,
            "content_key": content_key,
        },
        "replicas": [],
        "access": [],
        "access_changes": [],
        "deaccessions": [],
        "versions": [],
        "objects": [],
        "keys": [],
    }


class SnapshotRepository(CatalogEngine):
    """An AIP's state out (for event records) and a rebuilt AIP in."""

    def aip_state(self, aip_id: str) -> dict[str, Any]:
        """The state, numbered: each call takes the AIP's next ``state_seq`` in the same
        transaction that reads the state (the row locked), so of two event records the one with
        the higher number carries the newer state, whichever was written last (a flush racing an
        operation writes them out of order); a rebuild takes that one, and the rebuilt catalog
        goes on counting from it."""
        with self._tx() as s:
            row = s.get(AipRow, aip_id, with_for_update=True)
            if row is None:
                raise CatalogError(f"no AIP {aip_id}")
            row.state_seq = (row.state_seq or 0) + 1
            s.flush()
            return _state(s, row)

    def aip_head(self, aip_id: str) -> dict[str, Any]:
        """The AIP's own row as `aip_state` dumps it (no number is taken); {} when unknown."""
        with self._session() as s:
            row = s.get(AipRow, aip_id)
            return _dump(row, frozenset()) if row is not None else {}

    def is_empty(self) -> bool:
        """No AIPs, submissions or events: a database a rebuild may fill."""
        with self._session() as s:
            return not any(s.scalar(select(func.count()).select_from(m)) for m in (AipRow, SubmissionRow, EventRow))

    def has_aip(self, aip_id: str) -> bool:
        with self._session() as s:
            return s.get(AipRow, aip_id) is not None

    def import_aip(self, a: RebuiltAip, *, uris: Mapping[str, str] | None = None) -> None:
        """Write one rebuilt AIP whole: its row, files, versions, objects, replicas (one per target
        that has objects; status and verification time from its objects, as audits keep them),
        access copies, access changes, deaccessions, keys, events, and its submission as stored.
        An object the rebuild found without its encrypted form (``stored_key``) takes it from
        the state's ``objects``. ``uris`` gives a replica's URI where the state has none.
        CatalogError if it exists."""
        state = a.state
        head = dict(state.get("aip") or {})
        aip_id = str(head.get("id") or "")
        if not aip_id:
            raise CatalogError("a rebuilt AIP's state names no AIP id")
        with self._tx() as s:
            if s.get(AipRow, aip_id) is not None:
                raise CatalogError(f"AIP {aip_id} is already in the catalog")
            if not head.get("created_at"):
                head["created_at"] = utcnow().isoformat()
            row = AipRow(**_load(AipRow, head, frozenset()))
            for f in a.files:
                row.files.append(
                    FileRow(
                        path=f.path,
                        size=f.size,
                        sha256=f.sha256,
                        sha512=f.sha512,
                        role=f.role,
                        format_name=f.format_name,
                        format_registry_key=f.format_registry_key,
                        original_name_hex=f.original_name_hex,
                    )
                )
            for v in a.versions:
                row.versions.append(
                    AipVersionRow(
                        number=v.number,
                        created_at=v.created,
                        reason=v.reason,
                        operator=v.operator,
                        members=dict(v.members),
                    )
                )
            known = {str(r.get("target")): r for r in state.get("replicas") or ()}
            by_target: dict[str, list[ReplicaStatus]] = {}
            dates: dict[str, list[dt.datetime | None]] = {}
            sealed = {(str(o.get("target")), str(o.get("key"))): o for o in state.get("objects") or ()}
            for o in a.objects:
                o = _with_stored(o, sealed.get((o.target, o.key)))
                row.objects.append(_object_row(o, o.target))
                by_target.setdefault(o.target, []).append(ReplicaStatus(o.status))
                dates.setdefault(o.target, []).append(o.verified_at)
            for target, statuses in sorted(by_target.items()):
                status, verified_at = _replica_status(statuses, dates[target])
                uri = str(known.get(target, {}).get("uri") or (uris or {}).get(target, ""))
                row.replicas.append(ReplicaRow(target=target, uri=uri, status=status.value, verified_at=verified_at))
            for c in state.get("access") or ():
                row.access.append(AccessRow(**_load(AccessRow, c)))
            s.add(row)
            for c in state.get("access_changes") or ():
                s.add(AccessChangeRow(aip_id=aip_id, **_load(AccessChangeRow, c)))
            for d in state.get("deaccessions") or ():
                drow = DeaccessionRow(aip_id=aip_id, **_load(DeaccessionRow, d, frozenset({"aip_id"})))
                s.add(drow)
                s.flush()
                for o in d.get("objects") or ():
                    s.add(DeaccessionObjectRow(deaccession_id=drow.id, aip_id=aip_id, **_load(DeaccessionObjectRow, o)))
            for k in state.get("keys") or ():
                values = _load(AipKeyRow, k)
                target = str(values.get("target") or "")
                if not target or s.scalar(
                    select(AipKeyRow.id).where(AipKeyRow.aip_id == aip_id, AipKeyRow.target == target)
                ):
                    continue  # the catalog's own record of a key wins over a copy from storage
                values.setdefault("created_at", row.created_at)
                values.setdefault("wrapped", b"")
                s.add(AipKeyRow(aip_id=aip_id, **values))
            s.add_all(event_row(e, aip_id, row.submission_name) for e in a.events)
            if row.submission_name and s.get(SubmissionRow, row.submission_name) is None:
                s.add(
                    SubmissionRow(
                        name=row.submission_name,
                        status=SubmissionStatus.STORED.value,
                        aip_id=aip_id,
                        updated_at=row.created_at,
                        attempts=1,
                    )
                )

    # -- rebuild bookkeeping ------------------------------------------------------------------
    def rebuild_begin(self, source: str) -> int:
        with self._tx() as s:
            row = RebuildRow(source=source, started_at=utcnow(), report={})
            s.add(row)
            s.flush()
            return row.id

    def rebuild_note(self, rebuild_id: int, findings: Mapping[str, Any]) -> None:
        """Keep what the rebuild found about one AIP it imported, so a resumed run reports it too."""
        with self._tx() as s:
            row = s.get(RebuildRow, rebuild_id, with_for_update=True)
            if row is None:
                raise CatalogError(f"no rebuild {rebuild_id}")
            report = dict(row.report or {})
            report["notes"] = [*report.get("notes", []), dict(findings)]
            row.report = report

    def rebuild_notes(self, rebuild_id: int) -> list[dict[str, Any]]:
        with self._session() as s:
            row = s.get(RebuildRow, rebuild_id)
            return list((row.report or {}).get("notes", [])) if row is not None else []

    def rebuild_running(self) -> tuple[int, str] | None:
        """The unfinished rebuild (id, source), if one was interrupted: the next run resumes it."""
        with self._session() as s:
            row = s.scalar(select(RebuildRow).where(RebuildRow.finished_at.is_(None)).order_by(RebuildRow.id.desc()))
            return (row.id, row.source) if row else None

    def rebuild_end(self, rebuild_id: int, report: Mapping[str, Any]) -> None:
        with self._tx() as s:
            row = s.get(RebuildRow, rebuild_id)
            if row is None:
                raise CatalogError(f"no rebuild {rebuild_id}")
            row.finished_at, row.report = utcnow(), dict(report)

    def rebuilds(self) -> list[tuple[int, str, dt.datetime, dt.datetime | None, dict[str, Any]]]:
        with self._session() as s:
            return [
                (r.id, r.source, aware(r.started_at) or utcnow(), aware(r.finished_at), dict(r.report or {}))
                for r in s.scalars(select(RebuildRow).order_by(RebuildRow.id))
            ]


def _replica_status(
    statuses: Sequence[ReplicaStatus], dates: Sequence[dt.datetime | None]
) -> tuple[ReplicaStatus, dt.datetime | None]:
    """A replica is verified only while every object is (then its date is the oldest check)."""
    if all(st is ReplicaStatus.VERIFIED for st in statuses) and all(d is not None for d in dates):
        return ReplicaStatus.VERIFIED, min(d for d in dates if d is not None)
    if ReplicaStatus.DAMAGED in statuses:
        return ReplicaStatus.DAMAGED, None
    if all(st is ReplicaStatus.MISSING for st in statuses):
        return ReplicaStatus.MISSING, None
    return ReplicaStatus.PENDING, None


def _with_stored(o: StoredObject, sealed: Mapping[str, Any] | None) -> StoredObject:
    """The object with its encrypted form from the state, when the rebuild did not find one."""
    if o.encrypted or not sealed or not sealed.get("stored_key"):
        return o
    size = sealed.get("stored_size")
    return dataclasses.replace(
        o,
        stored_key=str(sealed["stored_key"]),
        stored_size=int(size) if size is not None else None,
        stored_sha256=str(sealed.get("stored_sha256") or ""),
    )


def _state(s: Session, row: AipRow) -> dict[str, Any]:
    changes = s.scalars(select(AccessChangeRow).where(AccessChangeRow.aip_id == row.id).order_by(AccessChangeRow.id))
    deacc = list(
        s.scalars(select(DeaccessionRow).where(DeaccessionRow.aip_id == row.id).order_by(DeaccessionRow.requested_at))
    )
    out_deacc = []
    for d in deacc:
        item = _dump(d, frozenset({"aip_id"}))
        objs = s.scalars(
            select(DeaccessionObjectRow)
            .where(DeaccessionObjectRow.deaccession_id == d.id)
            .order_by(DeaccessionObjectRow.target, DeaccessionObjectRow.key)
        )
        item["objects"] = [_dump(o) for o in objs]
        out_deacc.append(item)
    keys = s.scalars(select(AipKeyRow).where(AipKeyRow.aip_id == row.id).order_by(AipKeyRow.target))
    sealed = s.scalars(
        select(ObjectRow)
        .where(ObjectRow.aip_id == row.id, ObjectRow.stored_key != "")
        .order_by(ObjectRow.target, ObjectRow.key)
    )
    return {
        "format": STATE_FORMAT,
        "aip": _dump(row, frozenset()),
        "replicas": [_dump(r) for r in row.replicas],
        "access": [_dump(a) for a in row.access],
        "access_changes": [_dump(c) for c in changes],
        "deaccessions": out_deacc,
        "versions": [
            {
                "number": v.number,
                "created": (aware(v.created_at) or v.created_at).isoformat(),
                "reason": v.reason,
                "operator": v.operator,
            }
            for v in row.versions
        ],
        "objects": [{c: getattr(o, c) for c in OBJECT_COLUMNS} for o in sealed],
        # never the wrapped key itself: event records are kept for ever (under Object Lock too)
        # and on every replica, so a key there could not be destroyed; a rebuild takes the key
        # from the key object beside the AIP on the encrypted target
        "keys": [_dump(k, _SKIP | {"wrapped"}) for k in keys],
    }
