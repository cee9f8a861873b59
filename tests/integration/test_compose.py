"""docker-compose.yml is a valid deployment description (Debian's docker-compose validates it
offline, without a Docker engine): the services, their wiring to PostgreSQL, MinIO and the Prefect
server, secrets only from the environment, and preserve's own config for the stack loads."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from preserve import config as settings_mod

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "POSTGRES_PASSWORD": "pg-secret",
    "PRESERVE_DB_PASSWORD": "catalog-secret",
    "PREFECT_DB_PASSWORD": "prefect-secret",
    "MINIO_ROOT_USER": "root",
    "MINIO_ROOT_PASSWORD": "root-secret",
    "PRESERVE_S3_ACCESS_KEY": "preserve",
    "PRESERVE_S3_SECRET_KEY": "s3-secret",
}

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed (scripts/setup.sh installs it)"
)


def _config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_validates_and_wires_the_stack() -> None:
    res = _config(ENV)
    assert res.returncode == 0, res.stderr
    stack = yaml.safe_load(res.stdout)
    services = stack["services"]
    assert set(services) == {"postgres", "minio", "minio-init", "prefect", "scheduler", "worker"}

    assert services["postgres"]["image"].startswith("postgres:15")
    prefect = services["prefect"]
    assert prefect["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"] == (
        "postgresql+asyncpg://prefect:prefect-secret@postgres:5432/prefect"
    )
    assert prefect["environment"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert any(
        str(p.get("host_ip", p) if isinstance(p, dict) else p).startswith("127.0.0.1") for p in prefect["ports"]
    )  # the dashboard is not published to the network

    for name in ("worker", "scheduler"):
        svc = services[name]
        env = svc["environment"]
        assert svc["build"]["context"] == str(ROOT) and svc["image"] == "preserve:local"
        assert (
            env["PRESERVE__ARCHIVE__CATALOG_URL"]
            == "postgresql+psycopg://preserve:catalog-secret@postgres:5432/preserve"
        )
        assert env["PREFECT_API_URL"] == "http://prefect:4200/api"
        assert (
            env["PRESERVE_MINIO_ACCESS_KEY_ID"] == "preserve" and env["PRESERVE_MINIO_SECRET_ACCESS_KEY"] == "s3-secret"
        )
        assert svc["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in svc["volumes"]}
        assert {"/srv/ingest", "/srv/replica", "/etc/preserve/preserve.toml"} <= targets
    assert services["worker"]["command"] == ["watch"]
    assert services["scheduler"]["command"][:2] == ["serve", "--no-server"]
    assert services["minio-init"]["entrypoint"] == ["/bin/sh", "/minio-init.sh"]
    init = (ROOT / "deploy" / "minio-init.sh").read_text()
    assert "--with-lock local/preserve-aips" in init and "--with-versioning local/preserve-access" in init


def test_compose_refuses_to_start_without_secrets() -> None:
    res = _config({k: v for k, v in ENV.items() if k != "POSTGRES_PASSWORD"})
    assert res.returncode != 0 and "POSTGRES_PASSWORD" in res.stderr


def test_the_stack_config_loads_with_secrets_from_the_environment() -> None:
    env = {"PRESERVE__ARCHIVE__CATALOG_URL": "postgresql+psycopg://preserve:x@postgres:5432/preserve"}
    s = settings_mod.load(ROOT / "deploy" / "preserve.compose.toml", env=env)
    assert s.catalog_url.startswith("postgresql+psycopg://") and not s.services.enabled
    assert [t.name for t in s.targets] == ["minio", "disk"] and s.replication.min_verified_replicas == 2
    minio = s.target("minio")
    assert minio.endpoint == "http://minio:9000" and minio.object_lock_mode == "GOVERNANCE"
    assert minio.env_names() == ("PRESERVE_MINIO_ACCESS_KEY_ID", "PRESERVE_MINIO_SECRET_ACCESS_KEY")
    for copied in ("pyproject.toml", "README.md", "src", "flows", "config"):  # what the Dockerfile COPYs
        assert (ROOT / copied).exists()
