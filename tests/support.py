"""Per-test Settings that share the session's SeaweedFS (see tests/conftest.py) but get their own
var directory, catalog, ingest folder, local replica and S3 prefixes, so tests never see each
other's objects."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from preserve import config as settings_mod
from preserve.config import Settings
from preserve.storage.credentials import credentials_for


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
        "access_target": {
            "name": "access",
            "kind": "s3",
            "embedded": True,
            "bucket": "preserve-access",
            "prefix": f"t-{run}",
        },
    }
    s = load_merged(overrides, sections)
    s.ingest_dir.mkdir(parents=True, exist_ok=True)
    return s


def load_merged(base: dict[str, Any], overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings from the default config with ``base`` over it, then ``overrides``: a [section]
    given as a dict is merged key by key into base's, anything else (a list of targets) replaces
    it. The environment is ignored."""
    merged = dict(base)
    for section, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}
        else:
            merged[section] = values
    return settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides=merged)


def write_config(settings: Settings, path: Path, **extra_sections: dict[str, Any]) -> Path:
    """A TOML config file equivalent to ``settings``, for code that loads its own Settings from a
    file as production does (flows, the CLI in a subprocess, `preserve serve`). ``extra_sections``
    add or override [section] keys, e.g. audit={"audit_interval_days": 30}."""
    import json

    def val(v: Any) -> str:
        return json.dumps(str(v)) if isinstance(v, Path) else json.dumps(v)

    archive = {
        "var_dir": settings.var_dir,
        "ingest_dir": settings.ingest_dir,
        "organization": settings.archive.organization,
    }
    if settings.archive.catalog_url:
        archive["catalog_url"] = settings.archive.catalog_url
    sections: dict[str, dict[str, Any]] = {"archive": archive}
    for section in ("ingest", "proxy", "replication", "audit", "alerts", "serve"):
        if hasattr(settings, section):
            sections[section] = getattr(settings, section).model_dump()
    for name, values in extra_sections.items():
        sections[name] = {**sections.get(name, {}), **values}
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {val(v)}" for k, v in values.items() if v is not None]
    lines += ["[services]", f"port_base = {settings.services.port_base}", f"data_dir = {val(settings.services_dir)}"]
    for t in [*settings.targets, settings.access_target]:
        if t is None:
            continue
        lines.append("[access_target]" if t is settings.access_target else "[[targets]]")
        for k, v in t.model_dump().items():
            if v in (None, "") or (k == "path" and v is None):
                continue
            lines.append(f"{k} = {val(settings.target_path(t) if k == 'path' else v)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def raw_s3(settings: Settings, target_name: str) -> tuple[Any, str, str]:
    """A plain boto3 client, bucket and key prefix for a target: how tests damage stored objects
    behind preserve's back."""
    import boto3

    t = settings.target(target_name)
    client = boto3.client(
        "s3", endpoint_url=settings.endpoint_of(t), region_name=t.region, **credentials_for(settings, t, env={})
    )
    return client, t.bucket, (t.prefix.strip("/") + "/") if t.prefix else ""


def parts_on_server(settings: Settings, target_name: str, key: str) -> int:
    """How many parts the largest unfinished multipart upload of ``key`` holds on an S3 target
    (what an interrupted upload left for a resume)."""
    client, bucket, prefix = raw_s3(settings, target_name)
    try:
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix + key).get("Uploads", [])
        return max(
            (
                len(client.list_parts(Bucket=bucket, Key=prefix + key, UploadId=u["UploadId"]).get("Parts", []))
                for u in uploads
            ),
            default=0,
        )
    finally:
        client.close()


def kill_once_parts_are_stored(
    proc: Any, settings: Settings, target_name: str, key: str, *, parts: int = 4, timeout: float = 300
) -> int:
    """SIGKILL an uploading child process once ``parts`` parts of ``key`` are on the server, then
    the number of parts stored, counted once the server's view has been still for two seconds (a
    part whose bytes were all sent before the kill may still be committed just after it)."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while parts_on_server(settings, target_name, key) < parts:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no parts appeared"
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    uploaded, still_since = parts_on_server(settings, target_name, key), time.monotonic()
    while time.monotonic() - still_since < 2.0:
        time.sleep(0.25)
        now = parts_on_server(settings, target_name, key)
        if now != uploaded:
            uploaded, still_since = now, time.monotonic()
    return uploaded
