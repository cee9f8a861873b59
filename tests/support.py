"""Per-test Settings that share the session's SeaweedFS (see tests/conftest.py) but get their own
var directory, catalog, ingest folder, local replica and S3 prefixes, so tests never see each
other's objects."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from preserve import settings as settings_mod
from preserve.settings import Settings


def isolated_settings(server: Settings, tmp: Path, **sections: Any) -> Settings:
    run = uuid.uuid4().hex[:8]
    overrides: dict[str, Any] = {
        "archive": {"var_dir": str(tmp / "var"), "ingest_dir": str(tmp / "ingest")},
        "ingest": {"stable_seconds": 0.5, "poll_seconds": 0.2},
        "services": {"port_base": server.services.port_base, "data_dir": str(server.services_dir)},
        "replication": {"min_verified_replicas": 2},
        "targets": [
            {"name": "seaweed", "kind": "s3", "embedded": True, "bucket": "preserve-aips", "prefix": f"t-{run}"},
            {"name": "local", "kind": "filesystem", "path": str(tmp / "replica-local")},
        ],
        "access_target": {"name": "access", "kind": "s3", "embedded": True, "bucket": "preserve-access",
                          "prefix": f"t-{run}"},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(overrides.get(section), dict):
            overrides[section] = {**overrides[section], **values}
        else:
            overrides[section] = values
    s = settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides=overrides)
    s.ingest_dir.mkdir(parents=True, exist_ok=True)
    return s
