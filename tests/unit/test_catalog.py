"""The catalog: one-transaction AIP records, claims with leases, verified only with a time."""

import datetime as dt
from pathlib import Path

import pytest

from preserve.catalog import AccessCopy, Catalog, NewAip, ReplicaRecord, StoredObject, content_key
from preserve.errors import CatalogError
from preserve.model import Agent, Digests, Event, EventType, Outcome, PayloadFile, Role, utcnow


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    c = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield c
    c.close()


def _aip(aip_id: str = "aip-1", name: str = "film.mov", verified_at=None) -> NewAip:
    f = PayloadFile("data/objects/film.mov", Digests(10, {"sha256": "a" * 64, "sha512": "b" * 128}), Role.VIDEO)
    now = verified_at if verified_at is not None else utcnow()
    obj = StoredObject("s3", f"{aip_id}/data/objects/film.mov", 10, "a" * 64, now)
    return NewAip(id=aip_id, title="Film", submission_name=name, access_level="open", payload_oxum="10.1",
                  files=[f], replicas=[ReplicaRecord("s3", "s3://b/aip-1/", "verified", now, (obj,))],
                  access=[AccessCopy("proxy", "access", f"{aip_id}/proxy.mp4", "s3://a/p", 5, "c" * 64)],
                  events=[Event(EventType.INGESTION, Outcome.PASS, Agent("preserve", "0.1"))])


def test_record_and_show_json(catalog: Catalog) -> None:
    claim = catalog.claim_submission("film.mov", "w1", 60)
    assert claim is not None and claim.status == "ingesting"
    catalog.record_aip(_aip(claim.aip_id))
    view = catalog.get_aip(claim.aip_id)
    data = view.to_json()
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
