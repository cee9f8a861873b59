"""The JSON shapes of catalog values, as `preserve show --json` and `preserve status --json` print
them (a contract for scripts: change only by adding keys). Pure: builds dicts, prints nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from preserve.catalog.records import AipView
from preserve.catalog.views import CatalogStatus
from preserve.core.model import Event


def aip_json(view: AipView) -> dict[str, Any]:
    """The `preserve show --json` contract."""
    return {
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
