"""AIP versions in the catalog: version 1 is the bag as ingested (recorded with the AIP), each
`preserve amend` adds the next with the objects it wrote, the payload files it changed and its
events, in one transaction. Rows are only ever added. Side effects: database reads and writes."""

from __future__ import annotations

from sqlalchemy import select

from preserve.catalog.aips import _object_row, _refresh_replica, version_record
from preserve.catalog.engine import CatalogEngine
from preserve.catalog.events import event_row
from preserve.catalog.models import AipRow, AipVersionRow, FileRow
from preserve.catalog.records import NewVersion, VersionRecord
from preserve.core.errors import CatalogError
from preserve.core.model import AipStatus


class VersionRepository(CatalogEngine):
    """Reading an AIP's versions and recording a new one."""

    def versions(self, aip_id: str) -> list[VersionRecord]:
        """Oldest first; empty for an AIP the catalog does not hold."""
        with self._session() as s:
            q = select(AipVersionRow).where(AipVersionRow.aip_id == aip_id).order_by(AipVersionRow.number)
            return [version_record(v) for v in s.scalars(q)]

    def add_version(self, v: NewVersion) -> None:
        """Record a new version: its header and members, the payload files it added or changed, its
        objects on every target, its events and the AIP's new title. Refused (CatalogError) unless
        its number is the current version + 1 (two amends at once: the second must start again),
        or for a deaccessioned AIP."""
        with self._tx() as s:
            aip = s.get(AipRow, v.aip_id, with_for_update=True)
            if aip is None:
                raise CatalogError(f"no AIP {v.aip_id}")
            if aip.status == AipStatus.DEACCESSIONED.value:
                raise CatalogError(f"AIP {v.aip_id} was deaccessioned; it has no new versions")
            current = max((r.number for r in aip.versions), default=0)
            if v.version.number != current + 1:
                raise CatalogError(
                    f"AIP {v.aip_id} is at version {current}; version {v.version.number} cannot follow it "
                    "(another amend was recorded meanwhile)"
                )
            aip.versions.append(
                AipVersionRow(
                    number=v.version.number,
                    created_at=v.version.created,
                    reason=v.version.reason,
                    operator=v.version.operator,
                    members=dict(v.version.members),
                )
            )
            by_path = {f.path: f for f in aip.files}
            for f in v.files:
                row = by_path.get(f.path)
                if row is None:
                    row = FileRow(path=f.path, size=f.size, sha256=f.sha256, sha512=f.sha512)
                    aip.files.append(row)
                row.size, row.sha256, row.sha512 = f.size, f.sha256, f.sha512
                row.role = f.role
                row.format_name, row.format_registry_key = f.format_name, f.format_registry_key
                row.original_name_hex = f.original_name_hex
            members = set(v.version.members)
            if not any(m.startswith("data/") for m in members):
                raise CatalogError(f"version {v.version.number} of {v.aip_id} names no payload member")
            for path, row in by_path.items():
                if path not in members:  # a payload file this version no longer has
                    aip.files.remove(row)
            aip.payload_oxum = f"{sum(f.size for f in aip.files)}.{len(aip.files)}"
            existing = {(o.target, o.key) for o in aip.objects}
            for o in v.objects:
                if (o.target, o.key) in existing:
                    raise CatalogError(f"object {o.target}:{o.key} is already recorded; versions never reuse a key")
                aip.objects.append(_object_row(o, o.target))
            if v.title is not None:
                aip.title = v.title
            s.add_all(event_row(e, v.aip_id) for e in v.events)
            s.flush()
            for target in {o.target for o in v.objects}:
                _refresh_replica(s, v.aip_id, target)
