"""The catalog's access changes (withdrawals, set-access) on SQLite and on a real PostgreSQL: the
intent written first and resumed, superseded by a withdrawal, completed in one transaction with
the AIP's level and copies, withheld publication, the dashboard's clean-up bookkeeping, the
status line, and the upgrade of a catalog at the previous revision (0002_alerts)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from preserve.catalog import AccessCopy, Catalog, NewAip, ReplicaRecord, StoredObject
from preserve.core.errors import CatalogError
from preserve.core.model import (
    AccessLevel,
    Agent,
    AipStatus,
    Digests,
    Event,
    EventType,
    Outcome,
    PayloadFile,
    Role,
    utcnow,
)
from preserve.report.views import status_json

OPERATOR = Agent("archivist-a", kind="person")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    c = Catalog(url)
    yield c
    c.close()


def _stored(catalog: Catalog, aip_id: str = "aip-1", level: str = "open") -> None:
    f = PayloadFile("data/objects/film.mov", Digests(10, {"sha256": "a" * 64, "sha512": "b" * 128}), Role.VIDEO)
    now = utcnow()
    catalog.record_aip(
        NewAip(
            id=aip_id,
            title="Film",
            submission_name=f"{aip_id}.mov",
            access_level=AccessLevel(level),
            payload_oxum="10.1",
            files=[f],
            replicas=[ReplicaRecord("s3", "s3://b/x/", "verified", now, (StoredObject("s3", "k", 10, "a" * 64, now),))],
            access=[AccessCopy("proxy", "access", f"{aip_id}/proxy.mp4", "s3://a/open/p", 5, "c" * 64)],
            events=[Event(EventType.INGESTION, Outcome.PASS, Agent("preserve", "0.1"))],
        )
    )


def test_a_withdrawal_is_an_intent_until_it_is_completed(catalog: Catalog) -> None:
    _stored(catalog)
    assert not catalog.publication_withheld("aip-1")
    change, resumed = catalog.begin_access_change(
        "aip-1", from_level=AccessLevel.OPEN, to_level=AccessLevel.DARK, until=None, reason="asked", operator=OPERATOR
    )
    assert not resumed and change.pending and change.is_withdrawal and change.operator == "archivist-a"
    # from now on nothing may publish it, though the level is still the old one (copies may be reachable)
    assert catalog.publication_withheld("aip-1")
    assert catalog.get_aip("aip-1").access_level == "open"
    (shown,) = catalog.status().access_changes
    assert (shown.aip_id, shown.from_level, shown.to_level) == ("aip-1", "open", "dark")
    assert catalog.status().needs_attention
    assert status_json(catalog.status())["access_changes"][0]["to_level"] == "dark"
    # asked again: the same change, resumed
    again, resumed = catalog.begin_access_change(
        "aip-1", from_level=AccessLevel.OPEN, to_level=AccessLevel.DARK, until=None, reason="twice", operator=OPERATOR
    )
    assert resumed and again.id == change.id and again.reason == "asked"
    catalog.access_change_attempted(change.id, error="access: not checked", detail={"remaining": {"access": ["x"]}})
    assert catalog.access_change(change.id).attempts == 1
    assert catalog.status().access_changes[0].last_error == "access: not checked"
    done = catalog.complete_access_change(
        change.id,
        copies=[],
        events=[Event(EventType.ACCESS_DECISION, Outcome.PASS, OPERATOR, "withdrawn", extra={"level": "dark"})],
        detail={"removed": {}},
    )
    assert done.state == "done" and done.completed_at is not None
    aip = catalog.get_aip("aip-1")
    assert aip.access_level == "dark" and aip.access == ()
    assert aip.events[-1].agent == OPERATOR
    assert catalog.publication_withheld("aip-1") and not catalog.status().access_changes
    with pytest.raises(CatalogError, match="done"):  # a change is completed once
        catalog.complete_access_change(change.id, copies=[], events=[], detail={})


def test_a_withdrawal_supersedes_a_pending_change_and_a_later_decision_lifts_it(catalog: Catalog) -> None:
    _stored(catalog)
    moving, _ = catalog.begin_access_change(
        "aip-1", from_level=AccessLevel.OPEN, to_level=AccessLevel.RESTRICTED, until=None, reason="r", operator=OPERATOR
    )
    with pytest.raises(CatalogError, match="still being carried out"):
        catalog.begin_access_change(
            "aip-1",
            from_level=AccessLevel.OPEN,
            to_level=AccessLevel.EMBARGOED,
            until=dt.date(2030, 1, 1),
            reason="e",
            operator=OPERATOR,
        )
    dark, _ = catalog.begin_access_change(
        "aip-1",
        from_level=AccessLevel.OPEN,
        to_level=AccessLevel.DARK,
        until=None,
        reason="now",
        operator=OPERATOR,
        supersede=True,
    )
    assert [c.state for c in catalog.access_changes("aip-1")] == ["superseded", "pending"]
    with pytest.raises(CatalogError, match="superseded"):  # the replaced change can no longer record anything
        catalog.complete_access_change(moving.id, copies=[], events=[], detail={})
    catalog.complete_access_change(dark.id, copies=[], events=[], detail={})
    # the dashboard is to be cleaned, once; a re-submission's run asks for it again
    assert [c.id for c in catalog.dashboard_cleanup_due()] == [dark.id]
    catalog.dashboard_cleaned(dark.id)
    assert catalog.dashboard_cleanup_due() == []
    catalog.request_dashboard_cleanup("aip-1")
    assert [c.id for c in catalog.dashboard_cleanup_due()] == [dark.id]
    # published again by a later decision (with its date): no longer withheld
    until = dt.date(2031, 5, 1)
    back, _ = catalog.begin_access_change(
        "aip-1", from_level=AccessLevel.DARK, to_level=AccessLevel.EMBARGOED, until=until, reason="b", operator=OPERATOR
    )
    assert catalog.publication_withheld("aip-1")  # until it is carried out: the embargo's date is its own
    copy = AccessCopy("proxy", "access-embargoed", "aip-1/proxy.mp4", "s3://a/embargoed/aip-1/proxy.mp4", 5, "d" * 64)
    catalog.complete_access_change(back.id, copies=[copy], events=[], detail={})
    aip = catalog.get_aip("aip-1")
    assert aip.access_level == "embargoed" and aip.access == (copy,)
    assert catalog.access_changes("aip-1")[-1].until == until
    assert catalog.aip_ids_with_access_level(AccessLevel.EMBARGOED) == ["aip-1"]
    assert not catalog.publication_withheld("aip-1")
    # a change to open, still pending, holds nothing back (it publishes them itself)
    catalog.begin_access_change(
        "aip-1", from_level=AccessLevel.EMBARGOED, to_level=AccessLevel.OPEN, until=None, reason="o", operator=OPERATOR
    )
    assert not catalog.publication_withheld("aip-1")


def test_an_unknown_aip_has_no_access_change(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="no AIP"):
        catalog.begin_access_change(
            "nope", from_level=AccessLevel.OPEN, to_level=AccessLevel.DARK, until=None, reason="x", operator=OPERATOR
        )
    assert catalog.access_changes() == [] and not catalog.publication_withheld("nope")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_catalog_at_0002_is_upgraded_with_its_rows_kept(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A catalog made at revision 0002_alerts (before access changes) gains the table on the
    first open and keeps its AIPs."""
    import sqlalchemy as sa
    from alembic import command

    from preserve.catalog import schema

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0002_alerts")
        conn.execute(
            sa.text(
                "INSERT INTO aips (id, title, submission_name, created_at, status, access_level, payload_oxum, "
                "content_key) VALUES ('kept', 'Film', 'kept.mov', '2026-01-01 00:00:00', 'stored', 'open', '1.1', '')"
            )
        )
        assert not sa.inspect(conn).has_table("access_changes")
    engine.dispose()
    with Catalog(url) as upgraded:
        with upgraded.engine.connect() as conn:
            assert schema.current_revision(conn) == schema.head_revision()
            assert sa.inspect(conn).has_table("access_changes")
        assert upgraded.get_aip("kept").access_level == "open"
        change, _ = upgraded.begin_access_change(
            "kept", from_level=AccessLevel.OPEN, to_level=AccessLevel.DARK, until=None, reason="x", operator=OPERATOR
        )
        assert upgraded.publication_withheld("kept") and change.pending


def test_a_deaccessioned_aip_is_withheld(catalog: Catalog) -> None:
    _stored(catalog)
    assert not catalog.publication_withheld("aip-1")
    catalog.set_aip_status("aip-1", AipStatus.DEACCESSIONED)
    assert catalog.publication_withheld("aip-1")  # no access decision at all, but nothing may publish it


def test_replace_access_unless_withheld_refuses_in_its_own_transaction(catalog: Catalog) -> None:
    """What embargo release writes: re-checked with the AIP row locked, so a withdrawal that
    completed after the caller's own check is never overwritten with "open"."""
    _stored(catalog, level="embargoed")
    published = [AccessCopy("proxy", "access", "aip-1/proxy.mp4", "s3://a/open/aip-1/proxy.mp4", 5, "c" * 64)]
    change, _ = catalog.begin_access_change(
        "aip-1", from_level=AccessLevel.EMBARGOED, to_level=AccessLevel.DARK, until=None, reason="r", operator=OPERATOR
    )
    catalog.complete_access_change(change.id, copies=[], events=[], detail={})
    assert not catalog.replace_access("aip-1", published, access_level=AccessLevel.OPEN, unless_withheld=True)
    aip = catalog.get_aip("aip-1")
    assert (aip.access_level, aip.access) == ("dark", ())
    # a deaccessioned AIP is refused too; without the flag (repairs, tests) the write goes through
    _stored(catalog, "aip-2", level="embargoed")
    catalog.set_aip_status("aip-2", AipStatus.DEACCESSIONED)
    assert not catalog.replace_access("aip-2", published, access_level=AccessLevel.OPEN, unless_withheld=True)
    assert catalog.get_aip("aip-2").access_level == "embargoed"
    assert catalog.replace_access("aip-1", published, access_level=AccessLevel.OPEN)
    assert catalog.get_aip("aip-1").access_level == "open"


def test_replace_documents_swaps_only_the_documents_and_only_where_they_were(catalog: Catalog) -> None:
    """What an amend's refresh records: the manifest and page swapped, every other copy as it is
    now; nothing when the level or the copies' place changed meanwhile, or a withdrawal began."""
    _stored(catalog, level="open")
    media = [
        AccessCopy("proxy", "access", "aip-1/proxy.mp4", "s3://a/aip-1/proxy.mp4", 5, "c" * 64),
        AccessCopy("subtitles", "access", "aip-1/subtitles-1.en.vtt", "s3://a/aip-1/subtitles-1.en.vtt", 2, "d" * 64),
    ]
    old = [AccessCopy("manifest", "access", "aip-1/manifest.json", "s3://a/aip-1/manifest.json", 3, "e" * 64)]
    catalog.replace_access("aip-1", [*media, *old], access_level=AccessLevel.OPEN)
    new = [
        AccessCopy("manifest", "access", "aip-1/manifest.json", "s3://a/aip-1/manifest.json", 4, "f" * 64),
        AccessCopy("page", "access", "aip-1/index.html", "s3://a/aip-1/index.html", 6, "0" * 64),
    ]
    kinds = ["manifest", "page"]
    assert not catalog.replace_documents("aip-1", new, kinds=kinds, expect_level="restricted", expect_target="access")
    assert not catalog.replace_documents("aip-1", new, kinds=kinds, expect_level="open", expect_target="elsewhere")
    assert catalog.get_aip("aip-1").access == (*media, *old)
    assert catalog.replace_documents("aip-1", new, kinds=kinds, expect_level="open", expect_target="access")
    assert catalog.get_aip("aip-1").access == (*media, *new)
    catalog.begin_access_change(
        "aip-1", from_level=AccessLevel.OPEN, to_level=AccessLevel.DARK, until=None, reason="r", operator=OPERATOR
    )
    assert not catalog.replace_documents("aip-1", old, kinds=kinds, expect_level="open", expect_target="access")
    assert catalog.get_aip("aip-1").access == (*media, *new)
