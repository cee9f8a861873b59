"""Fixtures the unit tests share. ``catalog``: an empty catalog on SQLite, and on PostgreSQL
when the postgres marker's server is available (a test file may still define its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from preserve.catalog import Catalog


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    c = Catalog(url)
    yield c
    c.close()
