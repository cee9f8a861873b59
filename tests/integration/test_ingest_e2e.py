"""End to end through the library pipeline (no Prefect), on real components: ffmpeg-made clips,
the session's SeaweedFS on 127.0.0.1 (started by tests/conftest.py via `preserve.dev.services.up`),
a filesystem replica, and a SQLite catalog per test."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import bagit
import pytest

from preserve.access import iiif
from preserve.catalog import Catalog
from preserve.characterise import decode
from preserve.config import Settings
from preserve.core.model import EventType, Outcome
from preserve.fixity.digest import digest_chunks
from preserve.operations import restore
from preserve.pipeline import ingest_submission
from preserve.storage import open_store
from preserve.tools import ffprobe
from tests.mediafactory import make_clip, truncated_copy
from tests.support import isolated_settings

LOCATION = "+39.9042+116.4074/"
#: a film's access files as `preserve access` writes them: the copies (text tracks after them),
#: then the IIIF manifest and the page
ACCESS_FILES = ["proxy.mp4", "poster.jpg", "contact-sheet.jpg", "manifest.json", "index.html"]
SECRET_TITLE = "Secret Title 秘密"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> tuple[Settings, Catalog]:
    settings = isolated_settings(s3_settings, tmp_path)
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def _submissions(ingest_dir: Path) -> dict[str, Path]:
    tagged = {"title": SECRET_TITLE, "location": LOCATION}
    subs = {
        "prores": make_clip(
            ingest_dir / "prores.mov",
            vcodec="prores_aw",
            size="320x240",
            audio=True,
            acodec="pcm_s16le",
            metadata=tagged,
        ),
        "h264": make_clip(ingest_dir / "h264.mp4", vcodec="libx264", metadata=tagged),
        "ffv1": make_clip(ingest_dir / "ffv1.mkv", vcodec="ffv1", size="160x120", acodec="flac"),
        "silent": make_clip(ingest_dir / "silent.mp4", audio=False),
        "odd": make_clip(ingest_dir / "odd.mp4", size="1279x717", duration=0.5),
    }
    folder = ingest_dir / "流浪北京 1990"
    folder.mkdir()
    make_clip(folder / "流浪北京 1990.mov", vcodec="prores_aw", size="320x240", acodec="pcm_s16le", metadata=tagged)
    (folder / "流浪北京 1990.zh.srt").write_text("1\n00:00:00,000 --> 00:00:00,900\n北京\n", encoding="utf-8")
    (folder / "metadata.yaml").write_text(
        "title: Bumming in Beijing\noriginal_title: 流浪北京\ndirector: Real Person Name\ncontributor_id: contrib-42\n",
        encoding="utf-8",
    )
    subs["folder"] = folder
    return subs


def test_ingest_matrix_end_to_end(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    subs = _submissions(settings.ingest_dir)
    originals = {
        name: (
            {p.relative_to(path).as_posix(): _sha256(p) for p in path.rglob("*") if p.is_file()}
            if path.is_dir()
            else {path.name: _sha256(path)}
        )
        for name, path in subs.items()
    }
    outcomes = {name: ingest_submission(settings, catalog, path) for name, path in subs.items()}
    for name, o in outcomes.items():
        assert o.status == "stored", (name, o.detail)
        assert not subs[name].exists() and (settings.ingest_dir / "done" / subs[name].name).exists()
    assert not list(settings.staging_dir.iterdir())  # staging cleaned up

    for name, o in outcomes.items():
        aip = catalog.get_aip(o.aip_id)
        assert {r.target: r.status for r in aip.replicas} == {"seaweed": "verified", "local": "verified"}
        assert all(r.verified_at is not None for r in aip.replicas)
        # every object on S3 hashes to the catalog's SHA-256 (re-read, not the ETag)
        seaweed = next(r for r in aip.replicas if r.target == "seaweed")
        store = open_store(settings, settings.target("seaweed"))
        for obj in seaweed.objects:
            assert digest_chunks(store.read_chunks(obj.key)).values["sha256"] == obj.sha256, obj.key

        # restore gives back a valid BagIt 1.0 bag, byte-identical to the source files
        result = restore.restore(settings, catalog, aip.id, tmp_path / "restored")
        bag = bagit.Bag(str(result.path))
        assert bag.version_info == (1, 0)
        bag.validate()
        payload = {
            p.relative_to(result.path / "data" / "objects").as_posix(): _sha256(p)
            for p in (result.path / "data" / "objects").rglob("*")
            if p.is_file()
        }
        assert payload == originals[name]
        info = (result.path / "bag-info.txt").read_text(encoding="utf-8")
        assert f"External-Identifier: {aip.id}" in info and "Bag-Software-Agent: preserve" in info
        assert "Real Person Name" not in info  # real names never reach tag files
        tech = result.path / "data" / "metadata" / "technical"
        assert any(p.name.endswith(".mediainfo.xml") for p in tech.rglob("*"))
        assert any(p.name.endswith(".ffprobe.json") for p in tech.rglob("*"))

        # the access proxy plays, is small enough, and carries nothing of the source's tags; a
        # restricted film (no access decision) has its IIIF manifest and page too, and the folder's
        # SRT its WebVTT track; the fetched manifest names the files where they were fetched to
        dest = tmp_path / "access" / name
        copies = restore.fetch_access(settings, catalog, aip.id, dest)
        proxy = next(p for p in copies if p.suffix == ".mp4")
        tracks = ["subtitles-1.zh.vtt"] if name == "folder" else []
        assert aip.access_level == "restricted"
        assert [p.name for p in copies] == [*ACCESS_FILES[:3], *tracks, *ACCESS_FILES[3:]]
        shown, base = iiif.presentation_of((dest / "manifest.json").read_bytes())
        assert base == dest.resolve().as_uri() + "/" and shown.aip_id == aip.id
        assert [(t.name, t.language) for t in shown.tracks] == [(t, "zh") for t in tracks]
        assert shown.credits == ()  # the sidecar does not mark the credits public
        assert decode.decode_check(proxy, timeout=120).ok
        probe = ffprobe.probe(proxy)
        assert probe.video_codec == "h264" and probe.height <= 1080 and probe.width % 2 == 0 and probe.height % 2 == 0
        assert probe.has_audio == (name != "silent")
        tags = json.dumps(probe.raw.get("format", {}).get("tags", {})) + json.dumps(
            [s.get("tags", {}) for s in probe.raw["streams"]]
        )
        assert "location" not in tags and "title" not in tags and "creation_time" not in tags
        for copy in copies:  # every access file: the media, the track, the manifest and the page
            raw = copy.read_bytes()
            for needle in (b"loci", b"+39.9042", SECRET_TITLE.encode(), b"\xa9xyz", b"ISO6709"):
                assert needle not in raw, (copy.name, needle)
            for person in (b"Real Person Name", b"contrib-42"):
                assert person not in raw, (copy.name, person)

    odd = ffprobe.probe(tmp_path / "access" / "odd" / "proxy.mp4")
    assert (odd.width, odd.height) == (1278, 716)
    folder = catalog.get_aip(outcomes["folder"].aip_id)
    assert folder.title == "Bumming in Beijing"
    assert {f.path for f in folder.files} >= {"data/objects/流浪北京 1990.mov", "data/objects/流浪北京 1990.zh.srt"}


def test_truncated_video_is_quarantined_with_source_intact(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    good = make_clip(tmp_path / "good.mp4", duration=2.0)
    bad = truncated_copy(good, settings.ingest_dir / "cut.mp4", 0.6)
    before = _sha256(bad)
    o = ingest_submission(settings, catalog, bad)
    assert o.status == "quarantined" and not bad.exists()
    folder = settings.ingest_dir / "failed" / "cut.mp4"
    assert _sha256(folder / "cut.mp4") == before
    report = (folder / "REPORT.txt").read_text()
    assert "MediaError" in report and "--accept-invalid" in report
    assert json.loads((folder / "report.json").read_text())["step"] == "characterise"
    assert catalog.list_aips() == [] and catalog.submission("cut.mp4").status == "quarantined"
    # the archivist knowingly accepts the only copy there is
    shutil.move(folder / "cut.mp4", settings.ingest_dir / "cut.mp4")
    accepted = ingest_submission(settings, catalog, settings.ingest_dir / "cut.mp4", accept_invalid=True)
    assert accepted.status == "stored"
    events = catalog.get_aip(accepted.aip_id).events
    assert any(
        e.type is EventType.VALIDATION and e.outcome is Outcome.WARNING and "archivist" in e.detail for e in events
    )


def test_unreachable_storage_quarantines_and_verifies_nothing(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        replication={"max_attempts": 1},
        targets=[
            {
                "name": "seaweed",
                "kind": "s3",
                "embedded": True,
                "endpoint": "http://127.0.0.1:9",
                "bucket": "preserve-aips",
            },
            {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")},
        ],
    )
    catalog = Catalog(settings.catalog_url)
    clip = make_clip(settings.ingest_dir / "clip.mp4")
    before = _sha256(clip)
    o = ingest_submission(settings, catalog, clip)
    assert o.status == "quarantined"
    folder = settings.ingest_dir / "failed" / "clip.mp4"
    assert _sha256(folder / "clip.mp4") == before
    assert "replicas verified" in (folder / "REPORT.txt").read_text()
    assert catalog.list_aips() == []  # nothing recorded, nothing marked verified
    catalog.close()


def test_pdf_is_preserved_without_access_copy(env: tuple[Settings, Catalog]) -> None:
    settings, catalog = env
    pdf = settings.ingest_dir / "notes.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
    o = ingest_submission(settings, catalog, pdf)
    assert o.status == "stored"
    aip = catalog.get_aip(o.aip_id)
    assert aip.access == ()
    assert any(e.type is EventType.CREATION and e.outcome is Outcome.NOT_PERFORMED for e in aip.events)


def test_same_content_again_is_a_duplicate(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    clip = make_clip(tmp_path / "a.mp4", audio=False)
    shutil.copy(clip, settings.ingest_dir / "film.mp4")
    first = ingest_submission(settings, catalog, settings.ingest_dir / "film.mp4")
    shutil.copy(clip, settings.ingest_dir / "film.mp4")
    second = ingest_submission(settings, catalog, settings.ingest_dir / "film.mp4")
    assert first.status == "stored" and second.status == "duplicate" and second.aip_id == first.aip_id
    assert len(catalog.list_aips()) == 1
    assert (settings.ingest_dir / "done" / "film.mp4.2").exists()


def test_document_that_sniffs_as_broken_video_is_preserved_as_a_document(
    env: tuple[Settings, Catalog], tmp_path: Path
) -> None:
    """ffprobe reads some documents (and random-looking bytes) as video; the extension decides:
    a .pdf is never decoded, never quarantined as broken media, and gets no proxy."""
    settings, catalog = env
    clip = make_clip(tmp_path / "c.mp4", duration=2.0, movflags="+faststart")  # moov first: still probes
    doc = truncated_copy(clip, settings.ingest_dir / "notes.pdf", 0.5)
    o = ingest_submission(settings, catalog, doc)
    assert o.status == "stored", o.detail
    aip = catalog.get_aip(o.aip_id)
    assert aip.access == ()
    assert any(e.outcome is Outcome.WARNING and "not as media" in e.detail for e in aip.events)


def test_a_retry_under_a_recorded_aip_id_never_sweeps_or_overwrites_it(
    env: tuple[Settings, Catalog], tmp_path: Path
) -> None:
    """A retry sweeps what an unrecorded earlier attempt left under its AIP id. If that id is
    already recorded (the record committed, then accession failed, then the archivist changed the
    files and retried), the retry must refuse before touching a single stored object."""
    settings, catalog = env
    shutil.copy(make_clip(tmp_path / "a.mp4", audio=False), settings.ingest_dir / "film.mp4")
    first = ingest_submission(settings, catalog, settings.ingest_dir / "film.mp4")
    assert first.status == "stored"
    stored = {r.target: r.objects for r in catalog.get_aip(first.aip_id).replicas}
    # the submission row a failed accession leaves: quarantined, holding the recorded AIP id
    shutil.copy(make_clip(tmp_path / "b.mp4", audio=False, duration=0.5), settings.ingest_dir / "again.mp4")
    catalog.mark_quarantined("again.mp4", "accession: simulated", [], aip_id=first.aip_id)

    again = ingest_submission(settings, catalog, settings.ingest_dir / "again.mp4")

    assert again.status == "quarantined" and again.aip_id == first.aip_id
    assert "already recorded" in again.detail
    assert (settings.failed_dir / "again.mp4" / "again.mp4").exists()  # the source is kept
    for target, objects in stored.items():
        with open_store(settings, settings.target(target)) as store:
            for obj in objects:  # every recorded object is still there, byte for byte
                assert digest_chunks(store.read_chunks(obj.key)).values["sha256"] == obj.sha256, (target, obj.key)
