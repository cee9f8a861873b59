"""The JSON shapes of catalog values, as `preserve show --json` and `preserve status --json` print
them (a contract for scripts: change only by adding keys). Pure: builds dicts, prints nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from preserve.catalog.deaccessions import Deaccession
from preserve.catalog.records import AipView
from preserve.catalog.views import CatalogStatus
from preserve.core.model import Event


def aip_json(view: AipView, tombstone: Deaccession | None = None) -> dict[str, Any]:
    """The `preserve show --json` contract; a deaccessioned AIP (status "deaccessioned") also has
    its ``tombstone``."""
    data: dict[str, Any] = {
        "id": view.id,
        "title": view.title,
        "created": view.created.isoformat(),
        "status": view.status.value,
        "access_level": view.access_level.value,
        "size": view.size,
        "files": [
            {
                "path": f.path,
                "size": f.size,
                "sha256": f.sha256,
                "sha512": f.sha512,
                "role": f.role,
                "format": f.format_name,
                "puid": f.format_registry_key,
            }
            for f in view.files
        ],
        "replicas": [
            {
                "name": r.target,
                "uri": r.uri,
                "status": r.status.value,
                "verified_at": r.verified_at.isoformat() if r.verified_at else None,
            }
            for r in view.replicas
        ],
        "access": [{"kind": a.kind, "uri": a.uri, "size": a.size, "sha256": a.sha256} for a in view.access],
        "events": [event_json(e) for e in view.events],
        "version": view.version,
        "versions": [
            {"number": v.number, "date": v.created.isoformat(), "reason": v.reason, "operator": v.operator}
            for v in view.versions
        ],
    }
    if tombstone is not None:
        data["tombstone"] = tombstone_json(tombstone)
    return data


def tombstone_json(d: Deaccession) -> dict[str, Any]:
    """What stays of a deaccessioned AIP: the decision (reason, requester, approver, dates), the
    digests of every file, and what was deleted where and when (or is scheduled, or failed)."""

    def when(t: dt.datetime | None) -> str | None:
        return t.isoformat() if t else None

    return {
        "request": d.id,
        "aip_id": d.aip_id,
        "state": d.state.value,
        "reason": d.reason,
        "requested_by": d.requested_by,
        "requested_at": when(d.requested_at),
        "approved_by": d.approved_by,
        "approved_at": when(d.approved_at),
        "access_withdrawn_at": when(d.withdrawn_at),
        "completed_at": when(d.completed_at),
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256, "sha512": f.sha512} for f in d.files],
        "deletions": [
            {
                "replica": o.target,
                "key": o.key,
                "size": o.size,
                "sha256": o.sha256,
                "state": o.state.value,
                "deleted_at": when(o.deleted_at),
                "due_at": when(o.due_at),
                "versions_deleted": o.versions_deleted,
                "method": o.method,
                "detail": o.detail,
            }
            for o in d.objects
        ],
    }


def event_json(e: Event) -> dict[str, Any]:
    return {
        "type": e.type.value,
        "outcome": e.outcome.value,
        "at": e.at.isoformat(),
        "agent": str(e.agent),
        "detail": e.detail,
        "subject": e.subject,
    }


def status_json(status: CatalogStatus) -> dict[str, Any]:
    """The `preserve status --json` contract (times in ISO 8601 UTC)."""
    data: dict[str, Any] = _plain(asdict(status))
    data["needs_attention"] = status.needs_attention
    for item, d in zip(data["deaccessions"], status.deaccessions, strict=True):
        item["needs_attention"] = d.stuck  # see DeaccessionInProgress.stuck
    return data


def _plain(v: Any) -> Any:
    """JSON-ready: datetimes as ISO 8601 text, tuples as lists, recursively."""
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
