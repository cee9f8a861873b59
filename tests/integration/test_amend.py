"""`preserve amend` and `restore --version`, for real (library pipeline, the session's SeaweedFS with
versioned buckets and an Object Lock bucket, a filesystem replica, SQLite): a film amended twice is
restored as three valid bags, each with its own sidecar and the film byte-identical; what amend
uploads is counted from the stores themselves (only new keys under versions/v<N>/, no payload);
an access level changed by the sidecar moves the access copies; refusals and a target failing
half-way leave storage and catalog as they were; under Object Lock nothing is overwritten."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from preserve import cli
from preserve.access import iiif, policy
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.errors import ConfigError, StorageError
from preserve.core.model import AccessLevel, Agent, EventType
from preserve.operations import amend, audit, deaccession, restore, withdraw
from preserve.packaging import bag, premis
from preserve.pipeline import ingest_submission
from preserve.storage import layout, open_store
from tests.mediafactory import make_clip
from tests.support import isolated_settings, raw_s3, write_config

ALICE, BOB = Agent("alice", kind="person"), Agent("bob", kind="person")
SIDECAR_V1 = "title: The First Title\ndirector: [Someone Named]\nyear: 1990\ncontributor_id: contrib-42\n"
#: a payload file bigger than everything an amend may write, so a payload upload cannot hide
DOC_BYTES = 300_000


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> Any:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        proxy={"preset": "ultrafast"},
        access={"contact_sheet_frames": 4, "contact_sheet_tile_width": 64},
    )
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def _ingest(settings: Settings, catalog: Catalog, source: Path) -> str:
    outcome = ingest_submission(settings, catalog, source)
    assert outcome.status == "stored", outcome.detail
    return outcome.aip_id


def _folder(settings: Settings, name: str, sidecar: str | None, *, film: bool = False) -> Path:
    folder = settings.ingest_dir / name
    folder.mkdir(parents=True)
    if film:
        make_clip(folder / "film.mp4", duration=1.0)
    (folder / "letters.pdf").write_bytes(os.urandom(DOC_BYTES))
    if sidecar is not None:
        (folder / "metadata.yaml").write_text(sidecar, encoding="utf-8")
    return folder


def _sidecar(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def stored(settings: Settings, aip_id: str) -> dict[str, dict[str, tuple[tuple[str, int], ...]]]:
    """Every stored version of every key under the AIP on each target, straight from the stores
    (boto3 for S3, the directory for a filesystem target): target -> key -> ((version, size), ...).
    A filesystem 'version' is the file's inode and modification time: a rewrite changes it."""
    out: dict[str, dict[str, tuple[tuple[str, int], ...]]] = {}
    for t in settings.targets:
        found: dict[str, list[tuple[str, int]]] = {}
        if t.kind == "s3":
            client, bucket, prefix = raw_s3(settings, t.name)
            for page in client.get_paginator("list_object_versions").paginate(
                Bucket=bucket, Prefix=f"{prefix}{aip_id}/"
            ):
                for v in page.get("Versions", []):
                    found.setdefault(v["Key"].removeprefix(prefix), []).append((v["VersionId"], v["Size"]))
                for v in page.get("DeleteMarkers", []):
                    found.setdefault(v["Key"].removeprefix(prefix), []).append((f"delete-marker {v['VersionId']}", 0))
        else:
            root = settings.target_path(t)
            for p in (root / aip_id).rglob("*") if (root / aip_id).exists() else []:
                if p.is_file():
                    st = p.stat()
                    found[p.relative_to(root).as_posix()] = [(f"{st.st_ino}:{st.st_mtime_ns}", st.st_size)]
        out[t.name] = {k: tuple(sorted(v)) for k, v in found.items()}
    return out


def new_since(before: dict[str, Any], after: dict[str, Any], aip_id: str) -> dict[str, dict[str, int]]:
    """target -> {key: size} of the object versions that are new, checking that no key that
    existed before got a new version (nothing stored was overwritten) and that every new key is a
    version member or a journal object."""
    out: dict[str, dict[str, int]] = {}
    for target, keys in after.items():
        old = before[target]
        for key, versions in keys.items():
            if key in old:
                assert versions == old[key], f"{target}:{key} was written again"
                continue
            kind = layout.classify(aip_id, key)
            assert kind in ("version-member", "version-inventory", "event-record"), f"{target}: unexpected {key}"
            if kind == "version-member":
                out.setdefault(target, {})[key] = sum(size for _, size in versions)
        assert set(old) <= set(keys), f"{target}: something was removed"
    return out


def _catalog_state(catalog: Catalog, aip_id: str) -> Any:
    aip = catalog.get_aip(aip_id)
    assert aip is not None
    return (
        aip.title,
        aip.access_level,
        aip.files,
        [(v.number, dict(v.members)) for v in catalog.versions(aip_id)],
        sorted((o.target, o.key, o.sha256) for o in catalog.objects(aip_id)),
        len(aip.events),
        catalog.access_changes(aip_id),
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the whole story -------------------------------------------------------------------------------
def test_amend_twice_restore_every_version_and_count_the_bytes(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, catalog = env
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    folder = _folder(settings, "the film", SIDECAR_V1 + "access: restricted\n", film=True)
    originals = {p.name: _sha256(p) for p in folder.iterdir()}
    aip_id = _ingest(settings, catalog, folder)
    aip = catalog.get_aip(aip_id)
    assert aip.access_level == "restricted" and aip.access and aip.version == 1
    restricted = {c.kind: c for c in aip.access}
    v1_members = dict(catalog.versions(aip_id)[0].members)
    film_key = v1_members["data/objects/film.mp4"]
    assert film_key == f"{aip_id}/data/objects/film.mp4"

    # version 2, through the command line: a new title and year, and published
    v2_text = SIDECAR_V1.replace("The First Title", "The Corrected Title").replace("1990", "1991") + "access: open\n"
    v2_file = _sidecar(tmp_path, "metadata-v2.yaml", v2_text)
    before = stored(settings, aip_id)
    code = cli.main(
        ["--config", config, "--operator", "alice", "amend", aip_id, "--sidecar", str(v2_file), "--reason", "year"]
    )
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"{aip_id}  version 2 recorded" in out and "total uploaded" in out
    assert "sidecar fields changed: title, year, access" in out
    assert "access: changed restricted -> open (access copies verified)" in out
    assert "Someone Named" not in out + err  # the amend's output names fields, not people
    after_v2 = stored(settings, aip_id)
    new_v2 = new_since(before, after_v2, aip_id)

    # what was written: only the changed members, under versions/v2/, on both replicas, no payload
    v2 = catalog.versions(aip_id)[-1]
    assert (v2.number, v2.reason, v2.operator) == (2, "year", "alice")
    written = {m: k for m, k in v2.members.items() if k != v1_members.get(m)}
    assert set(written) == {
        "data/objects/metadata.yaml",
        "data/metadata/premis.xml",
        "bag-info.txt",
        "manifest-sha256.txt",
        "manifest-sha512.txt",
        "tagmanifest-sha256.txt",
        "tagmanifest-sha512.txt",
    }
    assert all(k == layout.version_member_key(aip_id, 2, m) for m, k in written.items())
    assert v2.members["bagit.txt"] == v1_members["bagit.txt"]  # unchanged bytes keep their object
    assert {m: k for m, k in v2.members.items() if m not in written} == {
        m: k for m, k in v1_members.items() if m not in written
    }
    for target in ("seaweed", "local"):
        assert set(new_v2[target]) == set(written.values())
        assert sum(new_v2[target].values()) < 1_000_000
        assert not any(layout.classify(aip_id, k) == "bag" for k in new_v2[target])
    film_size = next(f.size for f in aip.files if f.path == "data/objects/film.mp4")
    assert sum(new_v2["seaweed"].values()) < film_size + DOC_BYTES  # less than the payload, by far
    assert all(after_v2[t][film_key] == before[t][film_key] for t in ("seaweed", "local"))

    # the catalog: new title, files, objects (verified), the event with the operator
    aip = catalog.get_aip(aip_id)
    assert aip.title == "The Corrected Title" and aip.version == 2
    sidecar_file = next(f for f in aip.files if f.path == "data/objects/metadata.yaml")
    assert sidecar_file.sha256 == _sha256(v2_file)
    objs = {(o.target, o.key): o for o in catalog.objects(aip_id)}
    for key in written.values():
        for target in ("seaweed", "local"):
            assert objs[(target, key)].verified_at is not None and objs[(target, key)].status == "verified"
    [mod] = [e for e in aip.events if e.type is EventType.METADATA_MODIFICATION and e.extra.get("version") == 2]
    assert mod.agent.name == "preserve" and mod.extra["operator"] == "alice" and mod.extra["reason"] == "year"
    assert mod.extra["authorized_by"] == ["alice"] and "The Corrected Title" not in mod.detail
    assert {r.status for r in aip.replicas} == {"verified"}

    # the access copies followed the access level: moved to the public location, verified there;
    # the media as they were, the IIIF manifest and the page written again: for the new title and
    # year (the amend refreshed them first) and, the manifest, with the ids of the public place
    assert aip.access_level == "open"
    public = policy.access_location(settings, "open")
    assert public is not None
    assert [c.kind for c in aip.access] == [c.kind for c in restricted.values()]  # nothing lost, documents last
    assert [c.kind for c in aip.access][-2:] == ["manifest", "page"]
    with open_store(settings, public) as store:
        for copy in aip.access:
            assert copy.target == public.name
            assert (copy.sha256 == restricted[copy.kind].sha256) is (copy.kind not in ("manifest", "page")), copy.kind
            assert store.get_file(copy.key, tmp_path / copy.key.rsplit("/", 1)[-1]) == copy.sha256
    by_kind = {c.kind: c for c in aip.access}
    manifest = (tmp_path / "manifest.json").read_bytes()
    shown, base = iiif.presentation_of(manifest)
    assert base == policy.folder_url(settings, "open", by_kind["proxy"].uri)
    assert (shown.title, shown.year, shown.credits) == ("The Corrected Title", 1991, ())
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "The Corrected Title" in page and "1991" in page and "The First Title" not in page
    for document in (manifest.decode("utf-8"), page):
        assert "Someone Named" not in document and "contrib-42" not in document  # credits are not public
    # one version of each at the public place (no earlier title left fetchable), none at the old one
    client, bucket, prefix = raw_s3(settings, public.name)
    listed = client.list_object_versions(Bucket=bucket, Prefix=f"{prefix}{aip_id}/")
    assert "DeleteMarkers" not in listed
    assert sorted(v["Key"].removeprefix(prefix) for v in listed["Versions"]) == sorted(c.key for c in aip.access)
    with open_store(settings, policy.access_location(settings, "restricted")) as store:
        assert list(store.list_versions(f"{aip_id}/")) == []
    change = catalog.access_changes(aip_id)[-1]
    assert (change.from_level, change.to_level, change.operator) == ("restricted", "open", "alice")
    assert change.state == "done" and "version 2 (amend): year" in change.reason

    # version 3, through the library: one field only; the title (and so the access copies) unchanged
    v3_text = v2_text.replace("contrib-42", "PSN-0007")
    result = amend.amend(
        settings, catalog, aip_id[:13], _sidecar(tmp_path, "v3.yaml", v3_text), reason="pseudonym", operator=BOB
    )
    assert (result.version, result.fields, result.title_changed) == (3, ("contributor_id",), False)
    assert result.access.startswith("unchanged (open")
    assert result.documents == "unchanged"  # the pseudonym is shown nowhere: the documents stay as they are
    assert catalog.get_aip(aip_id).access == aip.access
    after_v3 = stored(settings, aip_id)
    new_v3 = new_since(after_v2, after_v3, aip_id)
    for target in ("seaweed", "local"):
        assert sum(new_v3[target].values()) == result.uploaded[target] < 1_000_000
        assert set(new_v3[target]) == set(result.written.values())
        assert all(k.startswith(f"{aip_id}/versions/v3/") for k in new_v3[target])
    assert "data/objects/film.mp4" in result.kept and "data/objects/letters.pdf" in result.kept

    # an audit of every object (the new ones included) finds nothing wrong, and nothing unrecorded
    checked = audit.run_audit(settings, catalog, audit.AuditScope(aip_id=aip_id, full=True))
    assert checked.exit_code == 0, audit.format_report(checked)

    # show --json: version 3 and the versions; the human `show` lists them too
    code = cli.main(["--config", config, "show", aip_id, "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and shown["version"] == 3
    assert [(v["number"], v["reason"], v["operator"]) for v in shown["versions"]] == [
        (1, "ingest", ""),
        (2, "year", "alice"),
        (3, "pseudonym", "bob"),
    ]
    assert cli.main(["--config", config, "show", aip_id]) == 0
    human = capsys.readouterr().out
    assert "3 (current)" in human and "pseudonym" in human and "bob" in human

    # restore every version: a valid bag, its own sidecar, the film and the document byte-identical
    sidecars = {1: SIDECAR_V1 + "access: restricted\n", 2: v2_text, 3: v3_text}
    titles = {1: "The First Title", 2: "The Corrected Title", 3: "The Corrected Title"}
    manifests: dict[int, list[str]] = {}
    for n in (1, 2, 3):
        got = restore.restore(settings, catalog, aip_id, tmp_path / f"v{n}", version=n)
        assert got.ok and got.version == n, got.report.errors
        assert bag.validate(got.path).valid  # every digest of every manifest, read again
        assert (got.path / "data/objects/metadata.yaml").read_text(encoding="utf-8") == sidecars[n]
        assert _sha256(got.path / "data/objects/film.mp4") == originals["film.mp4"]
        assert _sha256(got.path / "data/objects/letters.pdf") == originals["letters.pdf"]
        assert not (got.path / "versions").exists() and not (got.path / "events").exists()
        info = (got.path / "bag-info.txt").read_text(encoding="utf-8")
        assert f"Title: {titles[n]}" in info and f"External-Identifier: {aip_id}" in info
        assert "Source-Organization: " in info
        assert ("Access-Level: open" if n > 1 else "Access-Level: restricted") in info
        record = (got.path / "data/metadata/premis.xml").read_bytes()
        assert premis.validate(record) == []
        assert (b"version 2 of the AIP written by" in record and b"alice" in record) is (n > 1)
        assert (b"bob" in record) is (n == 3)
        manifests[n] = (got.path / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines()
    changed = set(manifests[2]) ^ set(manifests[1])
    assert {line.split("  ", 1)[1] for line in changed} == {"data/objects/metadata.yaml", "data/metadata/premis.xml"}
    latest = restore.restore(settings, catalog, aip_id, tmp_path / "latest")
    assert latest.version == 3
    assert (latest.path / "data/objects/metadata.yaml").read_text(encoding="utf-8") == v3_text
    with pytest.raises(ConfigError, match="its versions are 1, 2, 3"):
        restore.restore(settings, catalog, aip_id, tmp_path / "v9", version=9)
    # restore --version through the command line
    code = cli.main(["--config", config, "restore", aip_id, str(tmp_path / "cli"), "--version", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "version 1 restored from" in out
    assert (tmp_path / "cli" / aip_id / "data/objects/metadata.yaml").read_text(encoding="utf-8") == sidecars[1]


# -- refusals leave everything as it was -----------------------------------------------------------
def test_refusals_change_nothing(env: Any, tmp_path: Path) -> None:
    settings, catalog = env
    aip_id = _ingest(settings, catalog, _folder(settings, "letters", SIDECAR_V1))
    storage, recorded = stored(settings, aip_id), _catalog_state(catalog, aip_id)

    def refused(text: str | bytes, match: str, *, reason: str = "a fix", name: str = "m.yaml") -> str:
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        with pytest.raises(ConfigError, match=match) as info:
            amend.amend(settings, catalog, aip_id, path, reason=reason, operator=ALICE)
        assert stored(settings, aip_id) == storage and _catalog_state(catalog, aip_id) == recorded
        return str(info.value) + info.value.public + info.value.advice

    said = refused("title: Fine\ncontributor_id: ZhangSan\n", r"line 2 \(contributor_id\)")
    assert "ZhangSan" not in said and "REPORT.txt" not in said
    said = refused("title: Fine\ndirector: 吴文光\nyear: 3000\n", r"line 3 \(year\)")
    assert "吴文光" not in said and "3000" not in said
    refused("title: [unclosed\n", "not valid YAML at line")
    refused("a: &x [1]\nb: *x\n", "anchor")
    refused(b"\xff\xfe title", "not UTF-8")
    refused(b"title: x\n" + b"#" * (settings.ingest.sidecar_max_bytes + 10), "larger than the limit")
    refused(SIDECAR_V1, "byte for byte the sidecar of version 1")
    refused(SIDECAR_V1.replace("1990", "1991"), "reason", reason="  ")
    with pytest.raises(ConfigError, match="no AIP"):
        amend.amend(settings, catalog, "no-such-aip", tmp_path / "m.yaml", reason="x", operator=ALICE)
    refused(SIDECAR_V1.replace("1990", "1991") + "access: {level: embargoed, until: 2001-01-01}\n", "not after today")

    # a deaccessioned AIP has no new versions
    d = deaccession.request(catalog, aip_id, reason="rights withdrawn", operator=ALICE)
    assert deaccession.approve(settings, catalog, d.id, operator=BOB).ok
    storage, recorded = stored(settings, aip_id), _catalog_state(catalog, aip_id)
    refused(SIDECAR_V1.replace("1990", "1991"), "deaccessioned")


def test_a_withdrawn_film_stays_dark_and_a_sidecar_is_added_where_there_was_none(env: Any, tmp_path: Path) -> None:
    settings, catalog = env
    source = settings.ingest_dir / "alone.pdf"
    source.write_bytes(os.urandom(DOC_BYTES))
    aip_id = _ingest(settings, catalog, source)
    assert [f.path for f in catalog.get_aip(aip_id).files if f.path.startswith("data/objects/")] == [
        "data/objects/alone.pdf"
    ]
    assert withdraw.withdraw(settings, catalog, aip_id, reason="asked", operator=ALICE).ok
    result = amend.amend(
        settings,
        catalog,
        aip_id,
        _sidecar(tmp_path, "new.yaml", "title: Letters\naccess: open\n"),
        reason="described at last",
        operator=BOB,
    )
    assert result.sidecar == "data/objects/metadata.yaml" and result.written[result.sidecar].endswith(
        "/versions/v2/data/objects/metadata.yaml"
    )
    assert "NOT changed to open" in result.access and "withdrawn by alice" in result.access
    aip = catalog.get_aip(aip_id)
    assert aip.access_level is AccessLevel.DARK and aip.access == () and aip.title == "Letters"
    v1 = restore.restore(settings, catalog, aip_id, tmp_path / "v1", version=1)
    v2 = restore.restore(settings, catalog, aip_id, tmp_path / "v2")
    assert v1.ok and v2.ok and v2.version == 2
    assert not (v1.path / "data/objects/metadata.yaml").exists()
    assert (v2.path / "data/objects/metadata.yaml").read_text(encoding="utf-8") == "title: Letters\naccess: open\n"
    assert _sha256(v2.path / "data/objects/alone.pdf") == _sha256(settings.done_dir / "alone.pdf")
    oxum = v2.report.payload_oxum.split(".")
    assert int(oxum[1]) == int(v1.report.payload_oxum.split(".")[1]) + 1  # one payload file more


# -- faults ----------------------------------------------------------------------------------------
def test_a_target_failing_half_way_leaves_nothing_recorded(env: Any, tmp_path: Path) -> None:
    settings, catalog = env
    aip_id = _ingest(settings, catalog, _folder(settings, "letters", SIDECAR_V1))
    # the filesystem replica cannot create versions/v2/: a file stands where its folder must go
    blocker = settings.target_path(settings.target("local")) / aip_id / "versions" / "v2"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"in the way")
    storage, recorded = stored(settings, aip_id), _catalog_state(catalog, aip_id)
    with pytest.raises(StorageError, match="failed on local") as info:
        amend.amend(
            settings,
            catalog,
            aip_id,
            _sidecar(tmp_path, "m.yaml", SIDECAR_V1.replace("1990", "1999")),
            reason="x",
            operator=ALICE,
        )
    assert "nothing was recorded" in str(info.value) and "it had uploaded were removed again" in str(info.value)
    assert _catalog_state(catalog, aip_id) == recorded
    # what went up to seaweed first was removed again, every version of it
    assert stored(settings, aip_id) == storage
    # once the way is clear, the same amend goes through
    blocker.unlink()
    result = amend.amend(
        settings,
        catalog,
        aip_id,
        _sidecar(tmp_path, "m.yaml", SIDECAR_V1.replace("1990", "1999")),
        reason="x",
        operator=ALICE,
    )
    assert result.version == 2 and restore.restore(settings, catalog, aip_id, tmp_path / "r").ok


def test_an_interrupted_amend_left_other_bytes_under_the_new_key_so_it_is_refused(env: Any, tmp_path: Path) -> None:
    settings, catalog = env
    aip_id = _ingest(settings, catalog, _folder(settings, "letters", SIDECAR_V1))
    client, bucket, prefix = raw_s3(settings, "seaweed")
    leftover = layout.version_member_key(aip_id, 2, "data/metadata/premis.xml")
    client.put_object(Bucket=bucket, Key=prefix + leftover, Body=b"<premis/> of an amend that never finished")
    storage, recorded = stored(settings, aip_id), _catalog_state(catalog, aip_id)
    with pytest.raises(StorageError, match="never overwrites") as info:
        amend.amend(
            settings,
            catalog,
            aip_id,
            _sidecar(tmp_path, "m.yaml", SIDECAR_V1.replace("1990", "1999")),
            reason="x",
            operator=ALICE,
        )
    assert f"seaweed:{leftover}" in str(info.value)
    assert stored(settings, aip_id) == storage and _catalog_state(catalog, aip_id) == recorded


# -- Object Lock -----------------------------------------------------------------------------------
def test_amend_on_an_object_lock_target_overwrites_nothing(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        targets=[
            {
                "name": "seaweed",
                "kind": "s3",
                "embedded": True,
                "bucket": "preserve-locked",
                "prefix": f"amend-{tmp_path.name}",
                "object_lock_mode": "GOVERNANCE",
                "object_lock_days": 1,
            },
            {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")},
        ],
    )
    with Catalog(settings.catalog_url) as catalog:
        source = settings.ingest_dir / "letters.pdf"
        source.write_bytes(os.urandom(DOC_BYTES))
        (settings.ingest_dir / "letters.pdf.yaml").write_text(SIDECAR_V1, encoding="utf-8")
        aip_id = _ingest(settings, catalog, source)
        before = stored(settings, aip_id)
        result = amend.amend(
            settings,
            catalog,
            aip_id,
            _sidecar(tmp_path, "m.yaml", SIDECAR_V1.replace("1990", "1989")),
            reason="the year",
            operator=ALICE,
        )
        assert result.sidecar == "data/objects/letters.pdf.yaml"  # the sidecar beside a single file
        new = new_since(before, stored(settings, aip_id), aip_id)  # no existing key got a new version
        assert set(new["seaweed"]) == set(result.written.values())
        locked = [o for o in catalog.objects(aip_id, "seaweed") if o.key in set(result.written.values())]
        assert locked and all(o.lock_mode == "GOVERNANCE" and o.lock_until and o.version_id for o in locked)
        for n in (1, 2):
            got = restore.restore(settings, catalog, aip_id, tmp_path / f"v{n}", version=n, replica="seaweed")
            assert got.ok, got.report.errors
            text = (got.path / "data/objects/letters.pdf.yaml").read_text(encoding="utf-8")
            assert ("1989" in text) is (n == 2)
            assert _sha256(got.path / "data/objects/letters.pdf") == _sha256(settings.done_dir / "letters.pdf")
