"""Migration 0006: access copies are unique by key within an AIP, so an AIP keeps several text
tracks (issue 15); a catalog at 0005 keeps every copy, in its order, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from preserve.catalog import AccessCopy, Catalog
from preserve.core.errors import CatalogError

AIP = "AIP-0006"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0006_keeps_copies_and_allows_several_of_a_kind(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import sqlalchemy as sa
    from alembic import command

    from preserve.catalog import schema

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0005_versions_journal")
        conn.execute(
            sa.text(
                "INSERT INTO aips (id, title, submission_name, created_at, status, access_level, payload_oxum, "
                "content_key, state_seq) VALUES (:id, 't', 's', '2026-01-01 00:00:00', 'stored', 'open', '1.1', 'k', 0)"
            ),
            {"id": AIP},
        )
        for kind, name in (("proxy", "proxy.mp4"), ("poster", "poster.jpg"), ("contact sheet", "contact-sheet.jpg")):
            conn.execute(
                sa.text(
                    'INSERT INTO access_copies (aip_id, kind, target, "key", uri, size, sha256) '
                    "VALUES (:id, :kind, 'access', :key, :uri, 1, :h)"
                ),
                {"id": AIP, "kind": kind, "key": f"{AIP}/{name}", "uri": f"s3://b/{AIP}/{name}", "h": "a" * 64},
            )
        with pytest.raises(sa.exc.IntegrityError):  # before: one copy per kind
            with conn.begin_nested():
                conn.execute(
                    sa.text(
                        'INSERT INTO access_copies (aip_id, kind, target, "key", uri, size, sha256) '
                        f"VALUES ('{AIP}', 'poster', 'access', 'other', 'u', 1, 'h')"
                    )
                )
    engine.dispose()
    catalog = Catalog(url)  # upgrades to head
    try:
        aip = catalog.get_aip(AIP)
        assert aip is not None
        assert [a.kind for a in aip.access] == ["proxy", "poster", "contact sheet"]  # kept, in order
        tracks = [
            AccessCopy("subtitles", "access", f"{AIP}/subtitles-{n}.{lang}.vtt", f"s3://b/{n}", 9, "b" * 64)
            for n, lang in ((1, "en"), (2, "zh-Hans"))
        ]
        catalog.replace_access(AIP, [*aip.access, *tracks], access_level="open")
        after = catalog.get_aip(AIP)
        assert after is not None and [a.kind for a in after.access].count("subtitles") == 2
        with pytest.raises(CatalogError):  # still one copy per key
            catalog.replace_access(AIP, [*after.access, tracks[0]], access_level="open")
        if backend == "postgresql":  # the rebuilt table's parts carry the table's own name
            with sa.create_engine(url).connect() as conn:
                names = set(
                    conn.execute(
                        sa.text(
                            "SELECT relname FROM pg_class WHERE relname LIKE 'access_copies%' UNION "
                            "SELECT conname FROM pg_constraint WHERE conname LIKE 'access_copies%'"
                        )
                    ).scalars()
                )
            assert not any("_new" in n for n in names), names
            assert {"access_copies_id_seq", "access_copies_pkey", "access_copies_aip_id_fkey"} <= names
    finally:
        catalog.close()
