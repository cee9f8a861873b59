"""Shared pytest fixtures, grouped by the part of preserve they serve. Add new fixtures in a group
of their own below the existing ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preserve.config import Settings
from preserve.core.errors import StorageUnavailable
from preserve.dev import services
from preserve.dev.services import free_port_base
from tests.support import load_merged

# ==== storage: the embedded SeaweedFS ==============================================================

#: the buckets every test server gets; "preserve-locked" has Object Lock enabled
TEST_BUCKETS = ["preserve-aips", "preserve-access"]
TEST_LOCK_BUCKETS = ["preserve-locked"]


def storage_settings(var_dir: Path, port_base: int, overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the default config, with everything on disk under var_dir, the embedded
    server on port_base, and the config's targets pointed there. The environment is ignored."""
    base: dict[str, Any] = {
        "archive": {"var_dir": str(var_dir)},
        "services": {"port_base": port_base, "buckets": TEST_BUCKETS, "object_lock_buckets": TEST_LOCK_BUCKETS},
        "targets": [
            {"name": "seaweed", "kind": "s3", "embedded": True, "bucket": "preserve-aips", "prefix": "aips"},
            {"name": "local", "kind": "filesystem", "path": str(var_dir / "replicas" / "local")},
        ],
        "access_target": {
            "name": "access",
            "kind": "s3",
            "embedded": True,
            "bucket": "preserve-access",
            "prefix": "open",
        },
    }
    return load_merged(base, overrides)


@pytest.fixture(scope="session")
def s3_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Starts a real SeaweedFS on 127.0.0.1 through the same `preserve.dev.services.up` that
    `preserve services up` uses.

    Yields Settings whose var_dir is a fresh temporary directory, with targets "seaweed" (bucket
    preserve-aips, prefix aips) and "local" (filesystem, under var_dir), access target "access"
    (preserve-access), and an Object Lock bucket "preserve-locked". The server is stopped with
    `preserve.dev.services.down` at the end of the session. Tests share it: use unique keys."""
    var_dir = tmp_path_factory.mktemp("preserve-var")
    settings: Settings | None = None
    for attempt in range(3):
        settings = storage_settings(var_dir, free_port_base())
        try:
            services.up(settings)
            break
        except StorageUnavailable:  # a concurrent run took one of our ports in the meantime
            if attempt == 2:
                raise
    assert settings is not None
    try:
        yield settings
    finally:
        services.down(settings)


@pytest.fixture
def make_storage_settings(tmp_path: Path) -> Callable[..., Settings]:
    """A factory of Settings for a server of the test's own (fresh var_dir under tmp_path, free
    ports, same buckets and targets as s3_settings). Nothing is started: the test calls
    `preserve.dev.services.up` and must call `down` itself."""
    counter = iter(range(1000))

    def make(overrides: dict[str, Any] | None = None) -> Settings:
        return storage_settings(tmp_path / f"var{next(counter)}", free_port_base(), overrides)

    return make


# ==== (add other groups of fixtures below) =========================================================


# ==== catalog: a real PostgreSQL (issue 7) ==========================================================


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A private PostgreSQL 15 (initdb + pg_ctl in a temporary directory, 127.0.0.1 only), started
    once per session (about 2 s). Tests call `.new_database()` for an empty database URL of their
    own. Skips when the server binaries are missing (scripts/test.sh installs them)."""
    from tests.pgserver import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed; run scripts/test.sh")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
