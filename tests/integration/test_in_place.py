"""The bag built in place (`[ingest] staging = "in-place"`, the default): the originals are hashed
where they lie and uploaded from the ingest folder, never copied into var/staging; their uploads
start in the background right after the duplicate check (to targets without Object Lock), and a
source that changes during the ingest is quarantined as SourceChanged with nothing stored. Real
ffmpeg clips, the session's SeaweedFS on 127.0.0.1 (an Object Lock bucket too), a filesystem
replica, SQLite; a StepRunner looks at staging and changes the source between steps."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bagit
import pytest

from preserve.access import policy
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import EventType, Outcome
from preserve.operations import restore
from preserve.pipeline import IngestContext, ingest_submission
from preserve.storage import open_store
from tests.mediafactory import corrupt_range, make_clip
from tests.support import isolated_settings

Hook = Callable[[IngestContext], None]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hooked(before: dict[str, Hook] | None = None, after: dict[str, Hook] | None = None) -> Any:
    """A StepRunner that calls ``before[step](ctx)`` and ``after[step](ctx)`` around each step."""

    def runner(step: Any, ctx: IngestContext, *args: Any, **kwargs: Any) -> Any:
        if before and step.__name__ in before:
            before[step.__name__](ctx)
        result = step(ctx, *args, **kwargs)
        if after and step.__name__ in after:
            after[step.__name__](ctx)
        return result

    return runner


def every_step(hook: Hook) -> Any:
    names = ("stage", "characterise", "validate", "normalise", "make_access", "package", "replicate", "publish")
    return hooked(before=dict.fromkeys(names, hook), after=dict.fromkeys(names, hook))


def stored_versions(settings: Settings, target_name: str, prefix: str = "") -> list[str]:
    """Every version (and delete marker) of every key under the prefix on a target."""
    target = policy.target(settings, target_name)
    with open_store(settings, target) as store:
        return sorted(f"{v.key}@{v.version_id}" for v in store.list_versions(prefix))


def everything_stored(settings: Settings, aip_id: str) -> dict[str, list[str]]:
    """What the replica targets and every access location hold of one AIP (all versions), by
    target. Only under the AIP's prefix: other tests share the access buckets."""
    assert aip_id
    names = [t.name for t in settings.targets] + [t.name for t in policy.access_locations(settings)]
    return {name: found for name in names if (found := stored_versions(settings, name, f"{aip_id}/"))}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> Any:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        proxy={"preset": "ultrafast"},
        access={"default_level": "open", "contact_sheet_frames": 4, "contact_sheet_tile_width": 64},
    )
    assert settings.ingest.staging == "in-place"  # the default
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def test_in_place_ingest_restores_byte_identical_and_never_writes_the_payload_to_staging(
    env: Any, tmp_path: Path
) -> None:
    settings, catalog = env
    folder = settings.ingest_dir / "夜行 night"
    folder.mkdir()
    make_clip(folder / "night.mp4", duration=1.0)
    (folder / "night.zh.srt").write_text("1\n00:00:00,000 --> 00:00:00,900\n夜\n", encoding="utf-8")
    (folder / "metadata.yaml").write_text("title: Night\ncontributor_id: contrib-7\n", encoding="utf-8")
    originals = {p.relative_to(folder).as_posix(): _sha256(p) for p in folder.rglob("*") if p.is_file()}
    looked: list[str] = []

    def no_payload_in_staging(ctx: IngestContext) -> None:
        looked.append(ctx.aip_id)
        if not ctx.work_dir.exists():
            return
        in_staging = {p.relative_to(ctx.work_dir).as_posix(): p for p in ctx.work_dir.rglob("*") if p.is_file()}
        assert not [rel for rel in in_staging if rel.startswith("bag/data/objects/")], in_staging
        copies = [rel for rel, p in in_staging.items() if _sha256(p) in originals.values()]
        assert copies == [], f"an original's bytes were written to staging: {copies}"

    o = ingest_submission(settings, catalog, folder, runner=every_step(no_payload_in_staging))
    assert o.status == "stored", o.detail
    assert len(looked) == 16  # before and after each of the 8 steps up to publish

    aip = catalog.get_aip(o.aip_id)
    assert {r.target: r.status for r in aip.replicas} == {"seaweed": "verified", "local": "verified"}
    seaweed = next(r for r in aip.replicas if r.target == "seaweed")
    assert {o.key for o in seaweed.objects} >= {f"{aip.id}/data/objects/{rel}" for rel in originals}
    # the first read's digests were checked again by the uploads, and the bag was checked in place
    fixity = [e for e in aip.events if e.type is EventType.FIXITY_CHECK]
    assert any("hashed again" in e.detail and "from the ingest folder" in e.detail for e in fixity)
    assert not any("re-read before packing" in e.detail for e in fixity)
    packing = next(e for e in aip.events if e.type is EventType.PACKING)
    assert "built in place around the 3 original(s)" in packing.detail
    replication = [e for e in aip.events if e.type is EventType.REPLICATION and e.outcome is Outcome.PASS]
    assert {e.subject for e in replication if e.extra.get("early")} == {"seaweed", "local"}
    digests = {e.subject: e.detail for e in aip.events if e.type is EventType.MESSAGE_DIGEST_CALCULATION}
    assert set(digests) == {f"data/objects/{rel}" for rel in originals}

    result = restore.restore(settings, catalog, aip.id, tmp_path / "restored")
    assert result.ok
    bag = bagit.Bag(str(result.path))
    assert bag.version_info == (1, 0)
    bag.validate()  # every digest of every manifest recomputed from the restored bytes
    restored = result.path / "data" / "objects"
    assert {p.relative_to(restored).as_posix(): _sha256(p) for p in restored.rglob("*") if p.is_file()} == originals
    # the tools read the files in the ingest folder, but their reports in the bag name no local
    # path: not the ingest folder, not the submission's folder name
    technical = sorted((result.path / "data" / "metadata" / "technical").rglob("*"))
    assert any(p.name == "night.mp4.mediainfo.xml" for p in technical)
    for report in (p for p in technical if p.is_file()):
        text = report.read_text(encoding="utf-8")
        assert str(settings.ingest_dir) not in text and "夜行" not in text, report.name
    xml = (result.path / "data/metadata/technical/night.mp4.mediainfo.xml").read_text(encoding="utf-8")
    assert "data/objects/night.mp4" in xml
    done = settings.done_dir / folder.name
    assert {p.relative_to(done).as_posix(): _sha256(p) for p in done.rglob("*") if p.is_file()} == originals
    assert not settings.staging_dir.exists() or list(settings.staging_dir.iterdir()) == []


def _same_size_change(path: Path, old: bytes, new: bytes) -> None:
    """Overwrite ``old`` with ``new`` (same length) in place, then put the mtime back: the size,
    mtime, inode and device all stay as they were."""
    st = path.stat()
    data = path.read_bytes()
    at = data.index(old)
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


@pytest.mark.parametrize(
    ("change", "step", "caught_by"),
    [
        ("append", "stage", "found after stage"),  # the fingerprint (size, mtime) sees it at once
        ("same size, mtime restored", "stage", "its upload found other bytes"),  # only the upload's hash can
        ("append", "publish", "right before the catalog was to be written"),  # everything was stored by then
    ],
)
def test_a_source_changed_during_the_ingest_is_quarantined_and_nothing_is_stored(
    env: Any, change: str, step: str, caught_by: str
) -> None:
    settings, catalog = env
    film = make_clip(settings.ingest_dir / "film.mp4", duration=1.0, metadata={"comment": "AAAAAAAAAAAA"})
    changed: dict[str, str] = {}

    def alter(ctx: IngestContext) -> None:
        if change == "append":
            with open(film, "ab") as fh:
                fh.write(b"\0")
        else:  # the title tag: the film still decodes, so only the change itself can stop it
            _same_size_change(film, b"AAAAAAAAAAAA", b"BBBBBBBBBBBB")
        changed["sha256"] = _sha256(film)
        changed["aip"] = ctx.aip_id

    o = ingest_submission(settings, catalog, film, runner=hooked(after={step: alter}))

    assert o.status == "quarantined", o.detail
    folder = settings.failed_dir / "film.mp4"
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    text = (folder / "REPORT.txt").read_text(encoding="utf-8")
    assert report["code"] == "SourceChanged", report
    assert "changed while being ingested" in text and caught_by in text
    assert "Wait until the copy into the ingest folder is finished" in text and "preserve retry" in text
    assert _sha256(folder / "film.mp4") == changed["sha256"]  # kept as it was after the change
    assert catalog.list_aips() == [] and catalog.get_aip(changed["aip"]) is None  # nothing recorded
    assert catalog.submission("film.mp4").status == "quarantined"
    assert everything_stored(settings, changed["aip"]) == {}  # no object (or old version) of it on any target
    if step == "publish":  # it had been stored and published: the removal is on record
        deletions = [e for e in o.events if e.type is EventType.DELETION and e.outcome is Outcome.PASS]
        assert {e.subject for e in deletions} >= {"seaweed", "local", "access"}
    assert not settings.staging_dir.exists() or list(settings.staging_dir.iterdir()) == []


def test_a_film_refused_in_validate_leaves_nothing_in_storage_and_never_reaches_a_locked_bucket(
    s3_settings: Settings, tmp_path: Path
) -> None:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        targets=[
            {
                "name": "seaweed",
                "kind": "s3",
                "embedded": True,
                "bucket": "preserve-aips",
                "prefix": f"t-{tmp_path.name}",
            },
            {
                "name": "locked",
                "kind": "s3",
                "embedded": True,
                "bucket": "preserve-locked",
                "prefix": f"t-{tmp_path.name}",
                "object_lock_mode": "GOVERNANCE",
                "object_lock_days": 1,
            },
            {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")},
        ],
    )
    catalog = Catalog(settings.catalog_url)
    clip = make_clip(tmp_path / "clip.mp4", duration=2.0, audio=False)
    bad = corrupt_range(clip, settings.ingest_dir / "damaged.mp4", at=0.5, length=4000)
    before = _sha256(bad)
    seen: dict[str, list[str]] = {}

    def early_uploads_landed(ctx: IngestContext) -> None:
        key = f"{ctx.aip_id}/data/objects/damaged.mp4"
        for name in ("seaweed", "local"):
            wait_for(lambda n=name: any(v.startswith(key) for v in stored_versions(settings, n)), f"{key} on {name}")
        seen.update({t.name: stored_versions(settings, t.name, f"{ctx.aip_id}/") for t in settings.targets})

    o = ingest_submission(settings, catalog, bad, runner=hooked(before={"validate": early_uploads_landed}))

    assert o.status == "quarantined"
    report = json.loads((settings.failed_dir / "damaged.mp4" / "report.json").read_text(encoding="utf-8"))
    assert (report["step"], report["code"]) == ("validate", "MediaError")
    assert seen["seaweed"] and seen["local"] and seen["locked"] == []  # uploaded early, but not where locked
    assert everything_stored(settings, o.aip_id) == {}  # removed, every version; the locked bucket never got a byte
    removed = [e for e in o.events if e.type is EventType.DELETION and e.outcome is Outcome.PASS]
    assert {e.subject for e in removed} == {"seaweed", "local"}
    assert _sha256(settings.failed_dir / "damaged.mp4" / "damaged.mp4") == before
    assert catalog.list_aips() == []
    catalog.close()


def test_copy_mode_still_copies_into_staging_and_ingests(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(s3_settings, tmp_path, ingest={"staging": "copy"}, proxy={"preset": "ultrafast"})
    catalog = Catalog(settings.catalog_url)
    film = make_clip(settings.ingest_dir / "film.mp4", duration=1.0)
    sha = _sha256(film)
    staged: list[str] = []

    def copied(ctx: IngestContext) -> None:
        staged.append(_sha256(ctx.bag_dir / "data" / "objects" / "film.mp4"))

    o = ingest_submission(settings, catalog, film, runner=hooked(after={"stage": copied}))
    assert o.status == "stored", o.detail
    assert staged == [sha]  # the staging copy, as before
    aip = catalog.get_aip(o.aip_id)
    fixity = [e.detail for e in aip.events if e.type is EventType.FIXITY_CHECK]
    assert any("re-read before packing" in d for d in fixity) and any("from staging" in d for d in fixity)
    result = restore.restore(settings, catalog, aip.id, tmp_path / "restored")
    assert result.ok and _sha256(result.path / "data" / "objects" / "film.mp4") == sha
    catalog.close()


def test_a_worker_whose_claim_was_taken_over_stops_and_touches_nothing_of_the_other_workers(env: Any) -> None:
    """A worker that stalled past its lease finds, after its step, that another worker took the
    submission over (same AIP id): it must not quarantine the source, nor remove what is stored
    under the AIP id (the other worker's uploads), and must stop."""
    settings, catalog = env
    film = make_clip(settings.ingest_dir / "film.mp4", duration=1.0)
    before = _sha256(film)
    planted: dict[str, str] = {}

    def take_over(ctx: IngestContext) -> None:
        # the other worker's claim (the holder counted as dead, as after a stalled heartbeat)
        other = catalog.claim_submission(ctx.name, "other-host:1:x", 3600, holder_is_dead=lambda _w: True)
        assert other is not None and other.aip_id == ctx.aip_id
        # ... and what it has already stored under the same AIP id
        key = f"{ctx.aip_id}/data/objects/film.mp4"
        for target in settings.targets:
            with open_store(settings, target) as store:
                store.put_file(key, film, sha256=before, size=film.stat().st_size)
        planted["aip"], planted["key"] = ctx.aip_id, key

    o = ingest_submission(settings, catalog, film, runner=hooked(after={"characterise": take_over}))

    assert o.status == "skipped", o.detail
    assert "another worker" in o.detail
    assert film.exists() and _sha256(film) == before  # left where it is, for the worker that holds it
    assert not (settings.failed_dir / "film.mp4").exists()
    state = catalog.submission("film.mp4")
    assert state is not None and state.claimed_by == "other-host:1:x" and state.status == "ingesting"
    for target in settings.targets:  # the other worker's objects are all still there
        with open_store(settings, target) as store:
            info = store.head(planted["key"])
            assert info is not None and info.size == film.stat().st_size, target.name
    assert catalog.get_aip(planted["aip"]) is None


def test_a_publish_that_fails_half_way_leaves_no_access_copy_anywhere(env: Any) -> None:
    """The proxy is published, then the poster cannot be (its file is gone): the ingest is
    quarantined, and the proxy already public is removed with the rest, although no list of
    published copies was ever returned."""
    settings, catalog = env
    film = make_clip(settings.ingest_dir / "film.mp4", duration=1.0)
    seen: dict[str, str] = {}

    def lose_the_poster(ctx: IngestContext) -> None:
        poster = ctx.work_dir / "access" / "poster.jpg"
        assert poster.exists()
        poster.unlink()
        seen["aip"] = ctx.aip_id

    o = ingest_submission(settings, catalog, film, runner=hooked(before={"publish": lose_the_poster}))

    assert o.status == "quarantined", o.detail
    report = json.loads((settings.failed_dir / "film.mp4" / "report.json").read_text(encoding="utf-8"))
    assert report["step"] == "publish"
    removed = {e.subject for e in o.events if e.type is EventType.DELETION and e.outcome is Outcome.PASS}
    assert "access" in removed  # the open location held the proxy, and it went
    assert everything_stored(settings, seen["aip"]) == {}
    assert catalog.get_aip(seen["aip"]) is None
