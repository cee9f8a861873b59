"""Alerts in the catalog: a notification to the operators is written before it is delivered, so one
that could not be sent stays visible (`preserve status`) and is retried, and the same condition
(its key) is announced once. Side effects: database reads and writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from preserve.catalog.engine import CatalogEngine, aware, insert_ignore
from preserve.catalog.models import AlertRow
from preserve.catalog.records import AlertRecord
from preserve.core.model import utcnow


class AlertRepository(CatalogEngine):
    """Recording alerts, counting their delivery attempts, listing them."""

    def record_alert(self, key: str, kind: str, subject: str, summary: str, detail: dict[str, Any]) -> bool:
        """Write an alert before delivering it. False when this condition (``key``) was already
        alerted and delivered, so the same damage is not announced twice."""
        with self._tx() as s:
            s.execute(
                insert_ignore(s, AlertRow).values(
                    key=key,
                    kind=kind,
                    subject=subject,
                    summary=summary,
                    detail=detail,
                    created_at=utcnow(),
                    attempts=0,
                    last_error="",
                )
            )
            row = s.scalar(select(AlertRow).where(AlertRow.key == key).with_for_update())
            return row is not None and row.delivered_at is None

    def alert_attempted(self, key: str, error: str = "") -> None:
        """Count a delivery attempt; ``error`` empty means every channel accepted it."""
        with self._tx() as s:
            row = s.scalar(select(AlertRow).where(AlertRow.key == key).with_for_update())
            if row is None:
                return
            row.attempts = (row.attempts or 0) + 1
            row.last_error = error
            if not error:
                row.delivered_at = utcnow()

    def alerts(self, *, undelivered_only: bool = False, limit: int = 100) -> list[AlertRecord]:
        """The newest alerts first."""
        with self._session() as s:
            q = select(AlertRow).order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(limit)
            if undelivered_only:
                q = q.where(AlertRow.delivered_at.is_(None))
            return [_alert_record(r) for r in s.scalars(q)]


def _alert_record(r: AlertRow) -> AlertRecord:
    return AlertRecord(
        r.key,
        r.kind,
        r.subject,
        r.summary,
        dict(r.detail or {}),
        aware(r.created_at) or utcnow(),
        r.attempts or 0,
        aware(r.delivered_at),
        r.last_error,
    )
