"""The keys of AIPs on encrypted targets (one per AIP and target): their public halves, the key
objects as stored beside each AIP (the AIP's identity wrapped to the target's recipients), when a
key object was last found intact, and their destruction, whose row stays as the record of it.
Side effects: database reads and writes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from preserve.catalog.engine import CatalogEngine, aware
from preserve.catalog.models import AipKeyRow, ObjectRow
from preserve.catalog.records import AipKeyRecord
from preserve.core.errors import CatalogError
from preserve.core.model import utcnow


class KeyRepository(CatalogEngine):
    """AIP keys: recorded, rewrapped, verified and destroyed."""

    def record_key(self, rec: AipKeyRecord) -> None:
        """Record the key of an AIP on a target, or, when one is recorded, its key object anew (a
        rewrap to other recipients): its bytes, their SHA-256, its recipients and when it was
        verified. Refused (CatalogError) for a key that was destroyed (it stays destroyed) and for
        a different key (another public key) once objects encrypted on that target are recorded:
        they would be left unreadable."""
        with self._tx() as s:
            row = _row(s, rec.aip_id, rec.target, lock=True)
            if row is None:
                s.add(
                    AipKeyRow(
                        aip_id=rec.aip_id,
                        target=rec.target,
                        recipient=rec.recipient,
                        wrapped=bytes(rec.wrapped),
                        sha256=rec.sha256,
                        recipients=list(rec.recipients),
                        created_at=rec.created_at,
                        verified_at=rec.verified_at,
                        destroyed_at=rec.destroyed_at,
                    )
                )
                return
            if row.destroyed_at is not None:
                raise CatalogError(
                    f"the key of AIP {rec.aip_id} on {rec.target} was destroyed; it cannot be recorded again"
                )
            if row.recipient != rec.recipient:
                encrypted = s.scalar(
                    select(ObjectRow.id)
                    .where(ObjectRow.aip_id == rec.aip_id, ObjectRow.target == rec.target, ObjectRow.stored_key != "")
                    .limit(1)
                )
                if encrypted is not None:
                    raise CatalogError(
                        f"AIP {rec.aip_id} on {rec.target} has objects encrypted to its recorded key; "
                        "a different key cannot replace it"
                    )
                row.recipient, row.created_at = rec.recipient, rec.created_at
            row.wrapped, row.sha256, row.recipients = bytes(rec.wrapped), rec.sha256, list(rec.recipients)
            row.verified_at = rec.verified_at

    def key_of(self, aip_id: str, target: str) -> AipKeyRecord | None:
        """The key of the AIP on the target (destroyed or not), if one was recorded."""
        with self._session() as s:
            row = _row(s, aip_id, target)
            return None if row is None else _record(row)

    def keys(self, target: str | None = None, *, include_destroyed: bool = False) -> list[AipKeyRecord]:
        """Recorded keys (of one target, or all), by AIP and target; destroyed ones only if asked."""
        with self._session() as s:
            q = select(AipKeyRow)
            if target is not None:
                q = q.where(AipKeyRow.target == target)
            if not include_destroyed:
                q = q.where(AipKeyRow.destroyed_at.is_(None))
            return [_record(r) for r in s.scalars(q.order_by(AipKeyRow.aip_id, AipKeyRow.target))]

    def mark_key_verified(self, aip_id: str, target: str, at: dt.datetime) -> None:
        """The key object on the target was found intact at ``at``. CatalogError when no such key
        is recorded, or it was destroyed."""
        with self._tx() as s:
            row = _row(s, aip_id, target, lock=True)
            if row is None:
                raise CatalogError(f"no key of AIP {aip_id} on {target} is recorded")
            if row.destroyed_at is not None:
                raise CatalogError(f"the key of AIP {aip_id} on {target} was destroyed")
            row.verified_at = at

    def destroy_key(self, aip_id: str, target: str, at: dt.datetime) -> bool:
        """Forget the key object's bytes (the row stays, with when it was destroyed). True if it
        changed something: False when there is no such key or it was destroyed already."""
        with self._tx() as s:
            row = _row(s, aip_id, target, lock=True)
            if row is None or row.destroyed_at is not None:
                return False
            row.wrapped, row.destroyed_at = b"", at
            return True


def _row(s: Session, aip_id: str, target: str, *, lock: bool = False) -> AipKeyRow | None:
    q = select(AipKeyRow).where(AipKeyRow.aip_id == aip_id, AipKeyRow.target == target)
    return s.scalar(q.with_for_update() if lock else q)


def _record(row: AipKeyRow) -> AipKeyRecord:
    return AipKeyRecord(
        aip_id=row.aip_id,
        target=row.target,
        recipient=row.recipient,
        wrapped=bytes(row.wrapped or b""),
        sha256=row.sha256,
        recipients=tuple(str(r) for r in row.recipients or ()),
        created_at=aware(row.created_at) or utcnow(),
        verified_at=aware(row.verified_at),
        destroyed_at=aware(row.destroyed_at),
    )
