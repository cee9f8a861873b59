"""The catalog seam of issue 16 (encrypted replicas), on SQLite and on a real PostgreSQL: AIP keys
recorded, rewrapped, verified and destroyed (a destroyed key stays destroyed); an object's opaque
key and ciphertext digest kept beside its plaintext ones, through recording, amending, back-fill,
deaccession and the state snapshot a rebuild reads back; the 0007 migration upgrades a catalog at
0006."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from preserve.catalog import (
    AipKeyRecord,
    Catalog,
    FileView,
    NewAip,
    NewVersion,
    RebuiltAip,
    StoredObject,
    VersionRecord,
)
from preserve.catalog.deaccessions import DeletionState
from preserve.core.errors import CatalogError
from preserve.core.model import ReplicaStatus, utcnow
from tests.unit.test_catalog_versions import AIP, _new_aip

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
#: key object bytes as age writes them (binary after the header): base64 must carry every byte
WRAPPED = b"age-encryption.org/v1\n-> X25519 abc\nxyz\n--- mac\n\x00\xff\xfe\x80 binary tail"
RECIPIENT = "age1" + "q" * 58


def _key(aip_id: str = AIP, target: str = "vault", wrapped: bytes = WRAPPED, **kw: object) -> AipKeyRecord:
    values: dict[str, object] = {
        "aip_id": aip_id,
        "target": target,
        "recipient": RECIPIENT,
        "wrapped": wrapped,
        "sha256": hashlib.sha256(wrapped).hexdigest(),
        "recipients": ("age1target1", "age1target2"),
        "created_at": T0,
    }
    values.update(kw)
    return AipKeyRecord(**values)  # type: ignore[arg-type]


def _sealed(aip: NewAip | None = None) -> NewAip:
    """The AIP of test_catalog_versions with its "local" replica encrypted: every object there
    under an opaque key, as ciphertext of another size and digest."""
    aip = aip or _new_aip()
    replicas = []
    for r in aip.replicas:
        if r.target == "local":
            objs = tuple(
                dataclasses.replace(
                    o,
                    stored_key=f"{AIP}/o/{i:04d}",
                    stored_size=o.size + 200,
                    stored_sha256=hashlib.sha256(o.key.encode()).hexdigest(),
                )
                for i, o in enumerate(r.objects)
            )
            r = dataclasses.replace(r, objects=objs)
        replicas.append(r)
    return dataclasses.replace(aip, replicas=replicas)


# -- AIP keys -----------------------------------------------------------------------------------------
def test_a_key_is_recorded_rewrapped_verified_and_destroyed(catalog: Catalog) -> None:
    assert catalog.key_of(AIP, "vault") is None and catalog.keys() == []
    catalog.record_key(_key())
    catalog.record_key(_key("0a-other", "vault"))
    catalog.record_key(_key(AIP, "cold"))
    got = catalog.key_of(AIP, "vault")
    assert got == _key()  # every field, the binary bytes exactly, the dates as aware UTC
    assert got is not None and not got.destroyed and got.created_at.tzinfo is not None
    assert [(k.aip_id, k.target) for k in catalog.keys()] == [("0a-other", "vault"), (AIP, "cold"), (AIP, "vault")]
    assert [k.aip_id for k in catalog.keys("vault")] == ["0a-other", AIP]

    # a rewrap to other target recipients: same key, new key object; created_at stays
    rewrapped = b"age-encryption.org/v1\n-> X25519 new\n\x01\x02"
    catalog.record_key(
        _key(wrapped=rewrapped, recipients=("age1target3",), created_at=T0 + dt.timedelta(days=9), verified_at=T0)
    )
    got = catalog.key_of(AIP, "vault")
    assert got is not None and got.wrapped == rewrapped and got.sha256 == hashlib.sha256(rewrapped).hexdigest()
    assert got.recipients == ("age1target3",) and got.verified_at == T0 and got.created_at == T0
    assert len(catalog.keys("vault")) == 2  # updated in place, not a second row

    later = T0 + dt.timedelta(days=30)
    catalog.mark_key_verified(AIP, "vault", later)
    assert catalog.key_of(AIP, "vault").verified_at == later  # type: ignore[union-attr]
    with pytest.raises(CatalogError, match="no key"):
        catalog.mark_key_verified(AIP, "nowhere", later)

    assert catalog.destroy_key(AIP, "vault", later) is True
    gone = catalog.key_of(AIP, "vault")
    assert gone is not None and gone.destroyed and gone.destroyed_at == later and gone.wrapped == b""
    assert gone.recipient == RECIPIENT  # the record of what was destroyed stays
    assert catalog.destroy_key(AIP, "vault", later + dt.timedelta(days=1)) is False  # nothing left to change
    assert catalog.key_of(AIP, "vault").destroyed_at == later  # type: ignore[union-attr]
    assert catalog.destroy_key(AIP, "nowhere", later) is False
    assert [(k.aip_id, k.target) for k in catalog.keys("vault")] == [("0a-other", "vault")]
    assert [(k.aip_id, k.destroyed) for k in catalog.keys("vault", include_destroyed=True)] == [
        ("0a-other", False),
        (AIP, True),
    ]
    with pytest.raises(CatalogError, match="destroyed"):
        catalog.mark_key_verified(AIP, "vault", later)


def test_a_destroyed_key_cannot_be_recorded_again(catalog: Catalog) -> None:
    catalog.record_key(_key())
    assert catalog.destroy_key(AIP, "vault", T0)
    for again in (_key(), _key(recipient="age1" + "z" * 58), _key(destroyed_at=None, verified_at=T0)):
        with pytest.raises(CatalogError, match="destroyed"):
            catalog.record_key(again)
    gone = catalog.key_of(AIP, "vault")
    assert gone is not None and gone.wrapped == b"" and gone.destroyed_at == T0


def test_a_key_that_encrypted_recorded_objects_is_never_replaced(catalog: Catalog) -> None:
    other = "age1" + "z" * 58
    catalog.record_key(_key(target="local"))
    catalog.record_key(_key(target="local", recipient=other))  # no object encrypted to it yet: a retry may
    assert catalog.key_of(AIP, "local").recipient == other  # type: ignore[union-attr]
    catalog.record_aip(_sealed())
    with pytest.raises(CatalogError, match="encrypted to its recorded key"):
        catalog.record_key(_key(target="local", recipient=RECIPIENT))
    assert catalog.key_of(AIP, "local").recipient == other  # type: ignore[union-attr]
    catalog.record_key(_key(target="local", recipient=other, wrapped=b"rewrapped"))  # a rewrap still may
    assert catalog.key_of(AIP, "local").wrapped == b"rewrapped"  # type: ignore[union-attr]


# -- objects: the opaque key and the ciphertext beside the plaintext ----------------------------------
def test_stored_object_physical_helpers() -> None:
    plain = StoredObject("s3", f"{AIP}/bagit.txt", 55, "e" * 64, None)
    assert not plain.encrypted
    assert (plain.physical_key, plain.physical_size, plain.physical_sha256) == (f"{AIP}/bagit.txt", 55, "e" * 64)
    sealed = dataclasses.replace(plain, stored_key=f"{AIP}/o/1", stored_size=300, stored_sha256="9" * 64)
    assert sealed.encrypted
    assert (sealed.physical_key, sealed.physical_size, sealed.physical_sha256) == (f"{AIP}/o/1", 300, "9" * 64)
    assert dataclasses.replace(sealed, stored_size=0).physical_size == 0  # an empty ciphertext is still a size


def test_stored_forms_round_trip_through_record_amend_backfill(catalog: Catalog) -> None:
    new = _sealed()
    catalog.record_aip(new)
    want = {(o.target, o.key): o for r in new.replicas for o in r.objects}
    got = catalog.objects(AIP)
    assert len(got) == 6
    for o in got:
        w = want[(o.target, o.key)]
        assert (o.stored_key, o.stored_size, o.stored_sha256) == (w.stored_key, w.stored_size, w.stored_sha256)
        assert o.encrypted is (o.target == "local")
    assert {o.stored_size for o in got if o.target == "s3"} == {None}
    view = catalog.get_aip(AIP)
    assert view is not None
    local = next(r for r in view.replicas if r.target == "local")
    assert all(o.physical_key.startswith(f"{AIP}/o/") and o.physical_size == o.size + 200 for o in local.objects)
    v1 = catalog.versions(AIP)[0]
    assert f"{AIP}/o/0000" not in v1.members.values()  # versions name the plaintext keys only

    # an amend's new objects keep theirs too
    now = utcnow()
    members = {**v1.members, "data/objects/new.srt": f"{AIP}/v2/data/objects/new.srt"}
    added = [
        StoredObject("local", f"{AIP}/v2/data/objects/new.srt", 3, "1" * 64, now, stored_key=f"{AIP}/o/0099"),
        StoredObject("s3", f"{AIP}/v2/data/objects/new.srt", 3, "1" * 64, now),
    ]
    added[0] = dataclasses.replace(added[0], stored_size=203, stored_sha256="2" * 64)
    catalog.add_version(
        NewVersion(
            AIP,
            VersionRecord(2, now, "subtitles", "ana", members),
            [FileView("data/objects/new.srt", 3, "1" * 64, "3" * 128, "subtitles")],
            added,
            [],
        )
    )
    (amended,) = [o for o in catalog.objects(AIP, "local") if o.key.endswith("new.srt")]
    assert (amended.stored_key, amended.stored_size, amended.stored_sha256) == (f"{AIP}/o/0099", 203, "2" * 64)

    # a back-filled replica replaces the target's objects with its own, stored forms included
    rep = next(r for r in new.replicas if r.target == "local")
    catalog.upsert_replica(AIP, dataclasses.replace(rep, objects=rep.objects[:1]))
    (only,) = catalog.objects(AIP, "local")
    assert only.stored_key == rep.objects[0].stored_key and only.stored_sha256 == rep.objects[0].stored_sha256


def test_a_deaccession_keeps_the_opaque_key_it_must_delete(catalog: Catalog) -> None:
    catalog.record_aip(_sealed())
    opaque = {o.key: o.stored_key for o in catalog.objects(AIP, "local")}
    catalog.request_deaccession("d-1", AIP, reason="asked", requested_by="alice")
    d = catalog.approve_deaccession("d-1", approved_by="bob")
    for o in d.objects:
        if o.target == "local":
            assert o.stored_key == opaque[o.key] and o.physical_key == opaque[o.key]
        else:
            assert o.stored_key == "" and o.physical_key == o.key
    # listing the encrypted target finds the opaque keys: they are the same objects, not strays
    found = [("local", k, 1) for k in opaque.values()] + [("local", f"{AIP}/o/stray", 7)]
    assert catalog.add_deletions("d-1", found, state=DeletionState.PENDING) == 1
    stray = [o for o in catalog.deaccession("d-1").objects if o.key == f"{AIP}/o/stray"]  # type: ignore[union-attr]
    assert len(stray) == 1 and stray[0].physical_key == f"{AIP}/o/stray"
    assert len(catalog.deaccession("d-1").objects) == 7  # type: ignore[union-attr]
    state = catalog.aip_state(AIP)
    travelled = {o["key"]: o["stored_key"] for o in state["deaccessions"][0]["objects"] if o["target"] == "local"}
    assert {k: v for k, v in travelled.items() if k in opaque} == opaque


# -- the state snapshot: what a rebuilt catalog gets back ---------------------------------------------
def test_state_carries_the_stored_forms_and_the_keys_through_a_rebuild(catalog: Catalog, tmp_path: Path) -> None:
    catalog.record_aip(_sealed())
    catalog.record_key(_key(target="local", verified_at=T0))
    catalog.record_key(_key(target="cold"))
    assert catalog.destroy_key(AIP, "cold", T0 + dt.timedelta(hours=1))
    catalog.record_key(_key("0a-other", "local"))  # another AIP's key does not travel with this one
    state = json.loads(json.dumps(catalog.aip_state(AIP)))  # as an event record carries it: JSON

    sealed = {(o.target, o.key): o for o in catalog.objects(AIP) if o.encrypted}
    assert [(o["target"], o["key"]) for o in state["objects"]] == sorted(sealed)  # only the encrypted ones
    for o in state["objects"]:
        s = sealed[(o["target"], o["key"])]
        assert (o["stored_key"], o["stored_size"], o["stored_sha256"]) == (s.stored_key, s.stored_size, s.stored_sha256)
    assert [k["target"] for k in state["keys"]] == ["cold", "local"]
    # never the wrapped key: event records are kept for ever, so a key there could not be destroyed
    assert all("wrapped" not in k for k in state["keys"])
    assert WRAPPED.hex() not in json.dumps(state) and base64.b64encode(WRAPPED).decode() not in json.dumps(state)
    assert state["keys"][1]["sha256"] == hashlib.sha256(WRAPPED).hexdigest()
    assert state["keys"][0]["destroyed_at"]

    before = catalog.get_aip(AIP)
    assert before is not None
    # the rebuild's inventory pass finds the objects by their plaintext identity only
    found = [
        dataclasses.replace(o, stored_key="", stored_size=None, stored_sha256="")
        for r in before.replicas
        for o in r.objects
    ]
    other = Catalog(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    try:
        other.import_aip(RebuiltAip(state, before.files, before.versions, found, before.events))
        assert other.objects(AIP) == catalog.objects(AIP)  # the opaque keys and ciphertext digests are back
        # which keys there were comes back; the wrapped key itself comes from the key object on
        # the target (the rebuild reads it there)
        assert [dataclasses.replace(k, wrapped=b"") for k in other.keys(include_destroyed=True)] == [
            dataclasses.replace(k, wrapped=b"") for k in catalog.keys(include_destroyed=True) if k.aip_id == AIP
        ]
        restored = other.key_of(AIP, "local")
        assert restored is not None and restored.wrapped == b"" and restored.verified_at == T0
        assert restored.recipients == ("age1target1", "age1target2")
        assert other.key_of(AIP, "cold").destroyed  # type: ignore[union-attr]
        assert other.key_of("0a-other", "local") is None
        # and it carries on: the rebuilt catalog's state is the same (but for its number)
        again = json.loads(json.dumps(other.aip_state(AIP)))
        assert again["objects"] == state["objects"] and again["keys"] == state["keys"]
    finally:
        other.close()


def test_a_rebuilt_object_keeps_the_stored_form_the_rebuild_found(catalog: Catalog) -> None:
    from preserve.catalog.snapshot import default_state

    state = default_state(AIP, title="t", submission_name="s", created=T0, access_level="dark", payload_oxum="1.1")
    assert state["objects"] == [] and state["keys"] == []
    state["objects"] = [
        {
            "target": "local",
            "key": f"{AIP}/bagit.txt",
            "stored_key": f"{AIP}/o/old",
            "stored_size": 9,
            "stored_sha256": "8" * 64,
        }
    ]
    now = utcnow()
    objs = [
        StoredObject("local", f"{AIP}/bagit.txt", 1, "a" * 64, now, stored_key=f"{AIP}/o/new", stored_size=201),
        StoredObject("local", f"{AIP}/data/x", 1, "b" * 64, None, status=ReplicaStatus.PENDING),
    ]
    v1 = VersionRecord(1, now, "ingest", "", {"bagit.txt": f"{AIP}/bagit.txt", "data/x": f"{AIP}/data/x"})
    catalog.import_aip(RebuiltAip(state, [FileView("data/x", 1, "b" * 64, "c" * 128, "video")], [v1], objs, []))
    got = {o.key: o for o in catalog.objects(AIP)}
    assert (got[f"{AIP}/bagit.txt"].stored_key, got[f"{AIP}/bagit.txt"].stored_size) == (f"{AIP}/o/new", 201)
    assert not got[f"{AIP}/data/x"].encrypted


# -- the migration --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0007_upgrades_a_catalog_at_0006(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Objects stored before encryption stay plaintext ones; the key table starts empty; the
    downgrade takes it all away again."""
    import sqlalchemy as sa
    from alembic import command

    from preserve.catalog import schema

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0006_access_tracks")
        conn.execute(
            sa.text(
                "INSERT INTO aips (id, title, submission_name, created_at, status, access_level, payload_oxum, "
                "content_key, state_seq) VALUES (:id, 't', 's', '2026-01-01 00:00:00', 'stored', 'open', '1.1', 'k', 0)"
            ),
            {"id": AIP},
        )
        conn.execute(
            sa.text(
                "INSERT INTO objects (aip_id, target, key, size, sha256, status, last_verified_at, version_id, "
                "lock_mode) VALUES (:id, 's3', :k, 1, :h, 'verified', '2026-01-01 00:00:00', '', '')"
            ),
            {"id": AIP, "k": f"{AIP}/bagit.txt", "h": "a" * 64},
        )
        conn.execute(
            sa.text(
                "INSERT INTO deaccessions (id, aip_id, state, reason, requested_by, requested_at, approved_by, "
                "cancelled_by, files) VALUES ('d-1', 'gone', 'approved', 'r', 'a', '2026-01-01 00:00:00', 'b', '', "
                "'[]')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO deaccession_objects (deaccession_id, aip_id, target, key, size, sha256, version_id, "
                "lock_mode, state, versions_deleted, method, detail, attempts) VALUES ('d-1', 'gone', 's3', 'gone/x', "
                "1, '', '', '', 'pending', 0, '', '', 0)"
            )
        )
    engine.dispose()
    upgraded = Catalog(url)
    try:
        (o,) = upgraded.objects(AIP)
        assert (o.stored_key, o.stored_size, o.stored_sha256, o.encrypted) == ("", None, "", False)
        assert upgraded.deaccession("d-1").objects[0].stored_key == ""  # type: ignore[union-attr]
        assert upgraded.keys(include_destroyed=True) == []
        upgraded.record_key(_key())
        assert upgraded.key_of(AIP, "vault") == _key()
        assert schema.drift(upgraded.engine) == []
    finally:
        upgraded.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.downgrade(schema._config(conn), "0006_access_tracks")
        inspector = sa.inspect(conn)
        assert not inspector.has_table("aip_keys")
        assert "stored_key" not in {c["name"] for c in inspector.get_columns("objects")}
        assert "stored_key" not in {c["name"] for c in inspector.get_columns("deaccession_objects")}
        assert conn.execute(sa.text("SELECT count(*) FROM objects")).scalar() == 1
    engine.dispose()
