"""Deaccession in the catalog, on SQLite and on a real PostgreSQL: two people (the requester never
approves), one open request per AIP, cancelled requests stay cancelled, the approval moves the
AIP's objects into deletion records in one transaction and leaves a tombstone; the 0004 migration
upgrades a catalog at 0003. Storage is not involved here (tests/integration/test_deaccession.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.catalog.deaccessions import DeaccessionState, DeletionState, same_person
from preserve.core.errors import ConfigError
from preserve.core.model import Agent, AipStatus, EventType, Outcome
from preserve.operations import deaccession
from preserve.report.views import aip_json
from tests.support import load_merged
from tests.unit.test_catalog import _aip

ALICE, BOB = Agent("alice", kind="person"), Agent("bob", kind="person")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    c = Catalog(url)
    yield c
    c.close()


def _stored(catalog: Catalog, aip_id: str = "aip-1") -> str:
    catalog.record_aip(_aip(aip_id, name=f"{aip_id}.mov"))
    return aip_id


def test_the_requester_cannot_approve_and_a_second_person_can(catalog: Catalog, tmp_path: Path) -> None:
    aip_id = _stored(catalog)
    d = deaccession.request(catalog, aip_id, reason="the filmmaker asked", operator=ALICE)
    assert d.state is DeaccessionState.REQUESTED and d.requested_by == "alice"
    settings = load_merged({"archive": {"var_dir": str(tmp_path / "var")}})
    for same in (ALICE, Agent(" Alice ", kind="person")):  # case and blanks do not make a second person
        with pytest.raises(ConfigError, match="second person") as refused:
            deaccession.approve(settings, catalog, d.id, operator=same)
        assert "--operator" in refused.value.advice
    assert catalog.deaccession(d.id).state is DeaccessionState.REQUESTED  # nothing changed
    assert catalog.get_aip(aip_id).status is AipStatus.STORED and catalog.objects(aip_id)
    refusals = [e for e in catalog.events(aip_id, EventType.DEACCESSION) if e.outcome is Outcome.FAIL]
    assert len(refusals) == 2 and refusals[0].agent == ALICE and "refused" in refusals[0].detail
    # the repository refuses too, whoever calls it
    with pytest.raises(ConfigError, match="second person"):
        catalog.approve_deaccession(d.id, approved_by="ALICE")

    approved = catalog.approve_deaccession(d.id, approved_by="bob")
    assert approved.state is DeaccessionState.APPROVED and approved.approved_by == "bob" and approved.approved_at
    aip = catalog.get_aip(aip_id)
    assert aip.status is AipStatus.DEACCESSIONED and aip.replicas == ()
    assert catalog.objects(aip_id) == []  # audits no longer expect them...
    assert [(o.target, o.key, o.state) for o in approved.objects] == [  # ...the deletion records do
        ("s3", f"{aip_id}/data/objects/film.mov", DeletionState.PENDING)
    ]
    assert [(f.path, f.sha256, f.sha512) for f in approved.files] == [("data/objects/film.mov", "a" * 64, "b" * 128)]
    data = aip_json(aip, catalog.tombstone(aip_id))
    assert data["status"] == "deaccessioned"
    assert data["tombstone"]["requested_by"] == "alice" and data["tombstone"]["approved_by"] == "bob"
    assert data["tombstone"]["reason"] == "the filmmaker asked"
    assert data["tombstone"]["files"][0]["sha512"] == "b" * 128
    assert data["tombstone"]["deletions"][0]["state"] == "pending"
    assert not catalog.status().at_risk  # its copies are gone on purpose


def test_one_open_request_per_aip_cancel_and_unknown_ids(catalog: Catalog, tmp_path: Path) -> None:
    aip_id = _stored(catalog)
    first = deaccession.request(catalog, aip_id, reason="r", operator=ALICE)
    with pytest.raises(ConfigError, match=f"already requested: request {first.id} by alice") as again:
        deaccession.request(catalog, aip_id, reason="again", operator=BOB)
    assert "cancel" in again.value.advice
    with pytest.raises(ConfigError, match="reason"):
        deaccession.request(catalog, aip_id, reason="  ", operator=BOB)
    with pytest.raises(ConfigError, match="no AIP"):
        deaccession.request(catalog, "no-such-aip", reason="r", operator=ALICE)
    settings = load_merged({"archive": {"var_dir": str(tmp_path / "var")}})
    with pytest.raises(ConfigError, match="no deaccession request"):
        deaccession.approve(settings, catalog, "no-such-request", operator=BOB)
    with pytest.raises(ConfigError, match="no deaccession request"):
        deaccession.cancel(catalog, "no-such-request", operator=BOB)

    cancelled = deaccession.cancel(catalog, first.id[:8], operator=BOB, reason="the filmmaker changed their mind")
    assert cancelled.state is DeaccessionState.CANCELLED and cancelled.cancelled_by == "bob"
    with pytest.raises(ConfigError, match="was cancelled by bob") as late:
        deaccession.approve(settings, catalog, first.id, operator=BOB)
    assert "new request" in late.value.advice
    with pytest.raises(ConfigError, match="cannot be cancelled"):
        deaccession.cancel(catalog, first.id, operator=BOB)
    assert catalog.get_aip(aip_id).status is AipStatus.STORED and catalog.objects(aip_id)  # nothing lost

    second = deaccession.request(catalog, aip_id, reason="again, for good", operator=BOB)  # a new request is fine
    catalog.approve_deaccession(second.id, approved_by="alice")
    with pytest.raises(ConfigError, match="cannot be cancelled"):
        deaccession.cancel(catalog, second.id, operator=ALICE)
    with pytest.raises(ConfigError, match="already deaccessioned"):
        deaccession.request(catalog, aip_id, reason="r", operator=ALICE)
    assert [d.state for d in catalog.deaccessions(aip_id=aip_id)] == [
        DeaccessionState.CANCELLED,
        DeaccessionState.APPROVED,
    ]
    steps = [e.extra.get("step") for e in catalog.events(aip_id, EventType.DEACCESSION)]
    assert steps == ["requested", "cancelled", "requested"]  # (the repository call above adds no event)


def test_two_people_requesting_at_once_make_one_request(catalog: Catalog) -> None:
    aip_id = _stored(catalog)
    results: list[object] = []
    start = threading.Barrier(4)

    def ask(who: str) -> None:
        start.wait()
        try:
            results.append(deaccession.request(catalog, aip_id, reason=who, operator=Agent(who, kind="person")))
        except ConfigError as exc:
            results.append(exc)

    threads = [threading.Thread(target=ask, args=(f"op{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert len(catalog.deaccessions(aip_id=aip_id)) == 1


def test_same_person() -> None:
    assert same_person("Alice", " alice") and not same_person("alice", "alicia")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0004_upgrades_a_catalog_at_0003(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A catalog written by the previous revision keeps its rows and gains the deaccession tables."""
    import sqlalchemy as sa
    from alembic import command

    from preserve.catalog import schema

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0003_access_changes")
        assert not sa.inspect(conn).has_table("deaccessions")
        conn.execute(
            sa.text(
                "INSERT INTO aips (id, title, submission_name, created_at, status, access_level, payload_oxum, "
                "content_key) VALUES ('old-aip', 't', 's', '2026-01-01 00:00:00', 'stored', 'open', '1.1', 'k')"
            )
        )
    engine.dispose()
    upgraded = Catalog(url)
    try:
        with upgraded.engine.connect() as conn:
            assert schema.current_revision(conn) == schema.head_revision()
            assert sa.inspect(conn).has_table("deaccessions") and sa.inspect(conn).has_table("deaccession_objects")
        assert upgraded.get_aip("old-aip") is not None
        d = deaccession.request(upgraded, "old-aip", reason="r", operator=ALICE)
        assert upgraded.deaccession(d.id) == d
    finally:
        upgraded.close()


def test_the_withdrawal_counts_only_once_a_change_to_dark_after_the_approval_is_done(catalog: Catalog) -> None:
    """`withdrawal_done_at`: a withdrawal finished elsewhere (housekeeping) counts for an approved
    deaccession once it is done after the approval and still the AIP's latest decision."""
    from preserve.catalog.access_changes import DONE
    from preserve.core.model import AccessLevel

    aip_id = _stored(catalog)

    def to_dark() -> int:
        change, _ = catalog.begin_access_change(
            aip_id, from_level=AccessLevel.OPEN, to_level=AccessLevel.DARK, until=None, reason="r", operator=ALICE
        )
        return change.id

    def done(change_id: int) -> None:
        catalog.complete_access_change(change_id, copies=[], events=[], detail={})

    done(to_dark())  # an old withdrawal, before the deaccession: not this deaccession's
    d = deaccession.request(catalog, aip_id, reason="r", operator=ALICE)
    assert deaccession.withdrawal_done_at(catalog, d) is None  # not approved
    d = catalog.approve_deaccession(d.id, approved_by="bob")
    assert deaccession.withdrawal_done_at(catalog, d) is None
    pending = to_dark()  # the deaccession's withdrawal, an access location down: still pending
    assert deaccession.withdrawal_done_at(catalog, d) is None
    done(pending)  # housekeeping finished it
    [change] = [c for c in catalog.access_changes(aip_id) if c.id == pending]
    assert change.state == DONE and deaccession.withdrawal_done_at(catalog, d) == change.completed_at
    catalog.mark_withdrawn(d.id, at=change.completed_at)
    assert catalog.deaccession(d.id).withdrawn_at == change.completed_at
