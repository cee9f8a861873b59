"""The catalog: one-transaction AIP records, claims with leases, verified only with a time."""

import datetime as dt
from pathlib import Path

import pytest

from preserve.catalog import AccessCopy, Catalog, NewAip, ReplicaRecord, StoredObject, content_key
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
    ReplicaStatus,
    Role,
    SubmissionStatus,
    utcnow,
)
from preserve.report.views import aip_json, status_json


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    """Every catalog test runs on SQLite and on a real PostgreSQL (tests/pgserver.py)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    c = Catalog(url)
    yield c
    c.close()


def _aip(aip_id: str = "aip-1", name: str = "film.mov", verified_at=None) -> NewAip:
    f = PayloadFile("data/objects/film.mov", Digests(10, {"sha256": "a" * 64, "sha512": "b" * 128}), Role.VIDEO)
    now = verified_at if verified_at is not None else utcnow()
    obj = StoredObject("s3", f"{aip_id}/data/objects/film.mov", 10, "a" * 64, now)
    return NewAip(
        id=aip_id,
        title="Film",
        submission_name=name,
        access_level="open",
        payload_oxum="10.1",
        files=[f],
        replicas=[ReplicaRecord("s3", "s3://b/aip-1/", "verified", now, (obj,))],
        access=[AccessCopy("proxy", "access", f"{aip_id}/proxy.mp4", "s3://a/p", 5, "c" * 64)],
        events=[Event(EventType.INGESTION, Outcome.PASS, Agent("preserve", "0.1"))],
    )


def test_record_and_show_json(catalog: Catalog) -> None:
    claim = catalog.claim_submission("film.mov", "w1", 60)
    assert claim is not None and claim.status == "ingesting"
    catalog.record_aip(_aip(claim.aip_id))
    view = catalog.get_aip(claim.aip_id)
    data = aip_json(view)
    assert set(data) >= {"id", "title", "created", "files", "replicas", "access", "events"}
    assert data["files"][0]["sha512"] == "b" * 128
    assert data["replicas"][0]["status"] == "verified" and data["replicas"][0]["verified_at"]
    assert data["events"][0]["agent"] == "preserve 0.1"
    assert catalog.submission("film.mov").status == "stored"
    assert catalog.find_by_content(content_key(_aip().files)) == claim.aip_id


def test_verified_without_time_is_refused(catalog: Catalog) -> None:
    bad = _aip()
    bad = NewAip(**{**bad.__dict__, "replicas": [ReplicaRecord("s3", "u", "verified", None)]})
    with pytest.raises(CatalogError):
        catalog.record_aip(bad)
    assert catalog.list_aips() == []  # nothing half-written


def test_a_worker_that_lost_its_claim_cannot_record(catalog: Catalog) -> None:
    first = catalog.claim_submission("film.mov", "w1", 60)
    catalog.claim_submission("film.mov", "w2", 60, now=utcnow() + dt.timedelta(seconds=120))  # lease expired
    with pytest.raises(CatalogError, match="no longer holds the claim"):
        catalog.record_aip(_aip(first.aip_id), claimed_by="w1")
    assert catalog.list_aips() == []
    catalog.record_aip(_aip(first.aip_id), claimed_by="w2")
    assert catalog.submission("film.mov").status == "stored"


def test_claims_exclude_live_workers_and_take_over_dead_ones(catalog: Catalog) -> None:
    first = catalog.claim_submission("s", "w1", 60)
    assert catalog.claim_submission("s", "w2", 60) is None
    later = utcnow() + dt.timedelta(seconds=120)
    taken = catalog.claim_submission("s", "w2", 60, now=later)
    assert taken is not None and taken.aip_id == first.aip_id  # same AIP id: redone, not duplicated
    assert catalog.claim_submission("s", "w3", 60, holder_is_dead=lambda h: h == "w2").claimed_by == "w3"


def test_object_check_updates_replica_status(catalog: Catalog) -> None:
    catalog.record_aip(_aip())
    key = "aip-1/data/objects/film.mov"
    catalog.record_object_check("aip-1", "s3", key, status="damaged", verified_at=None)
    assert catalog.get_aip("aip-1").replicas[0].status == "damaged"
    when = utcnow()
    catalog.record_object_check("aip-1", "s3", key, status="verified", verified_at=when)
    rep = catalog.get_aip("aip-1").replicas[0]
    assert rep.status == "verified" and abs((rep.verified_at - when).total_seconds()) < 1


def test_quarantine_and_duplicate_states(catalog: Catalog) -> None:
    ev = Event(EventType.QUARANTINE, Outcome.FAIL, Agent("preserve"), "boom")
    catalog.mark_quarantined("bad.mov", "stage: boom", [ev])
    assert catalog.submission("bad.mov").status == "quarantined"
    assert catalog.submissions("quarantined")[0].reason == "stage: boom"
    again = catalog.claim_submission("bad.mov", "w", 60)
    assert again is not None  # a retried submission can be claimed again


def test_status_words_are_enums_and_stored_as_the_same_words(catalog: Catalog) -> None:
    """Values read back carry the enums; the database keeps the bare words (no migration)."""
    import sqlalchemy as sa

    claim = catalog.claim_submission("film.mov", "w1", 60)
    assert claim is not None and claim.status is SubmissionStatus.INGESTING
    catalog.record_aip(_aip(claim.aip_id))
    view = catalog.get_aip(claim.aip_id)
    assert view.status is AipStatus.STORED and view.access_level is AccessLevel.OPEN
    assert view.replicas[0].status is ReplicaStatus.VERIFIED
    assert view.replicas[0].objects[0].status is ReplicaStatus.VERIFIED
    assert catalog.submission("film.mov").status is SubmissionStatus.STORED
    assert f"{view.status} {view.replicas[0].status}" == "stored verified"  # what the CLI prints
    with catalog.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, access_level FROM aips")).one()
        assert (type(row[0]), tuple(row)) == (str, ("stored", "open"))
        assert conn.execute(sa.text("SELECT status FROM submissions")).scalar_one() == "stored"
    catalog.set_aip_status(claim.aip_id, AipStatus.AT_RISK)
    assert catalog.get_aip(claim.aip_id).status is AipStatus.AT_RISK
    assert catalog.aip_ids_with_access_level(AccessLevel.OPEN) == [claim.aip_id]


def test_status_json(catalog: Catalog) -> None:
    """The `preserve status --json` shape: plain JSON values, times in ISO 8601, needs_attention."""
    import json

    catalog.record_aip(_aip())
    catalog.mark_quarantined("bad.mov", "stage: boom", [])
    st = catalog.status()
    data = status_json(st)
    assert json.loads(json.dumps(data)) == data
    assert data["at"] == st.at.isoformat() and data["aips"] == 1 and data["needs_attention"] is True
    assert data["quarantined"][0]["name"] == "bad.mov" and isinstance(data["quarantined"][0]["since"], str)
    assert data["targets"][0] == {
        "target": "s3",
        "replicas": 1,
        "verified": 1,
        "damaged": 0,
        "missing": 0,
        "other": 0,
        "objects": 1,
        "bytes": 10,
        # encryption (issue 16): the catalog alone knows no custody; the CLI adds the config's
        "encrypted": False,
        "custody": "",
        "encrypted_objects": 0,
        "keys_unverified": 0,
    }


# -- schema migrations and concurrent claims (issue 7) ---------------------------------------------
def test_migrations_match_models(catalog: Catalog) -> None:
    """A model change without its Alembic migration fails here (see catalog/migrations/README.md)."""
    from preserve.catalog import schema

    assert schema.drift(catalog.engine) == []
    with catalog.engine.connect() as conn:
        assert schema.current_revision(conn) == schema.head_revision()


def test_a_catalog_from_before_migrations_is_stamped_and_upgraded(tmp_path: Path) -> None:
    """A database made before migrations existed (the baseline tables, no alembic_version) keeps
    its rows and gains the newer tables on the first open."""
    import sqlalchemy as sa
    from alembic import command

    from preserve.catalog import schema

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), schema.BASELINE)
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.execute(
            sa.text(
                "INSERT INTO submissions (name, status, aip_id, reason, claimed_by, updated_at, "
                "attempts) VALUES ('old.mov', 'quarantined', '', 'stage: boom', '', "
                "'2026-01-01 00:00:00', 1)"
            )
        )
        assert not sa.inspect(conn).has_table("alerts")
    engine.dispose()
    old = Catalog(url)  # the first open after preserve was upgraded
    with old.engine.connect() as conn:
        assert schema.current_revision(conn) == schema.head_revision()
        assert sa.inspect(conn).has_table("alerts")
    assert old.submission("old.mov").reason == "stage: boom"
    old.close()


def test_concurrent_claims_give_each_submission_to_one_worker(catalog: Catalog) -> None:
    """Six workers, each with its own connection pool, race for the same 15 submissions: every
    submission is taken exactly once (a row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite)."""
    import threading

    url = catalog.engine.url.render_as_string(hide_password=False)
    names = [f"film-{i:02d}.mov" for i in range(15)]
    won: dict[str, list[str]] = {n: [] for n in names}
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def worker(w: str) -> None:
        c = Catalog(url)
        try:
            barrier.wait()
            for n in names:
                if c.claim_submission(n, w, 60) is not None:
                    won[n].append(w)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {n: len(ws) for n, ws in won.items()} == {n: 1 for n in names}


def test_opening_the_sqlite_catalog_waits_for_another_process_writing(tmp_path: Path) -> None:
    """A watcher starting while another holds a write transaction for several seconds (a
    migration, a claim under load) waits for it, rather than failing with "database is
    locked" at the first statement it runs on connecting."""
    import sqlite3
    import subprocess
    import sys

    db = tmp_path / "busy.sqlite"  # a new file, not yet in WAL mode: switching it needs the lock
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE placeholder (x)")
    code = (
        "import sys\nfrom preserve.catalog import Catalog\n"
        "c = Catalog(sys.argv[1]); c.claim_submission('s', 'w', 60); c.close()\n"
    )
    opener = subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{db}"], stderr=subprocess.PIPE, text=True)
    try:
        opener.wait(timeout=8)  # still waiting after longer than sqlite3's default 5 s
        raise AssertionError(f"did not wait: {opener.stderr.read()[-500:]}")
    except subprocess.TimeoutExpired:
        pass
    holder.execute("COMMIT")
    holder.close()
    assert opener.wait(timeout=60) == 0, opener.stderr.read()[-500:]
    assert Catalog(f"sqlite:///{db}").submission("s") is not None


def test_a_catalog_error_never_shows_the_database_password() -> None:
    from preserve.core.errors import CatalogError

    with pytest.raises(CatalogError) as err:
        Catalog("postgresql+psycopg://archive:s3cret-word@127.0.0.1:1/catalog")
    assert "s3cret-word" not in str(err.value) and "archive:***@" in str(err.value)
