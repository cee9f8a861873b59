"""Issue 6 through real ingests (library pipeline, the session's SeaweedFS, SQLite): PREMIS 3.0 in
every bag and from the catalog, valid against the XSD; PRONOM formats in the catalog; framemd5
sidecars; a lossless FFV1 master beside a v210 original (and none when the proof fails); one
tool's failure recorded without stopping the others; and access levels: open, restricted,
embargoed (held, then released by date), dark."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from lxml import etree

from preserve.access import policy
from preserve.catalog import Catalog
from preserve.characterise import normalise as normalization
from preserve.config import Settings
from preserve.core.model import EventType, Outcome
from preserve.operations import embargo, restore
from preserve.packaging import premis
from preserve.pipeline import ingest_submission
from preserve.storage import open_store
from tests.integration.test_preservation_media import make_v210_two_tracks
from tests.mediafactory import make_clip
from tests.support import isolated_settings

NS = {"p": premis.NS}


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> tuple[Settings, Catalog]:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        proxy={"preset": "ultrafast"},
        access={"contact_sheet_frames": 4, "contact_sheet_tile_width": 64},
    )
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def _keys(settings: Settings, level: str, aip_id: str) -> list[str]:
    location = policy.access_location(settings, level)
    return sorted(i.key for i in open_store(settings, location).list(f"{aip_id}/"))


def _submission(folder: Path, access: str, clip: Path | None = None) -> Path:
    folder.mkdir(parents=True)
    if clip is None:
        make_clip(folder / "film.mp4", duration=1.0)
    else:
        shutil.copy(clip, folder / clip.name)
    (folder / "metadata.yaml").write_text(f"title: A film\naccess: {access}\n", encoding="utf-8")
    return folder


def test_v210_ingest_premis_formats_framemd5_and_lossless_master(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    folder = settings.ingest_dir / "scan"
    folder.mkdir()
    make_v210_two_tracks(folder / "scan.mov")
    make_clip(folder / "trailer.mp4", size="640x480", duration=2.0)  # not faststart: fido guesses fmt/596
    o = ingest_submission(settings, catalog, folder)
    assert o.status == "stored", o.detail
    aip = catalog.get_aip(o.aip_id)
    files = {f.path: f for f in aip.files}
    master = "data/objects/scan.mov.ffv1.mkv"
    assert master in files and "data/objects/scan.mov" in files  # the original is kept beside its master
    assert files["data/objects/scan.mov"].format_registry_key == "x-fmt/384"
    assert files[master].format_registry_key == "fmt/569"
    assert files["data/objects/trailer.mp4"].format_registry_key == "fmt/199"
    for sidecar in ("scan.mov.framemd5", "trailer.mp4.framemd5"):
        assert f"data/metadata/framemd5/{sidecar}" in files

    events = aip.events
    norm = [e for e in events if e.type is EventType.NORMALIZATION and e.outcome is Outcome.PASS]
    assert len(norm) == 1 and "lossless on every stream" in norm[0].detail and norm[0].extra["master"] == master
    assert "stream 1 (audio)" in norm[0].detail and "stream 2 (audio)" in norm[0].detail
    assert any(
        e.type is EventType.NORMALIZATION
        and e.outcome is Outcome.NOT_PERFORMED
        and "lossy" in e.detail
        and e.subject == "data/objects/trailer.mp4"
        for e in events
    )
    assert any(
        e.type is EventType.FORMAT_IDENTIFICATION and e.outcome is Outcome.WARNING and "fmt/596" in e.detail
        for e in events
    )
    assert any(
        e.type is EventType.VALIDATION and "policy" in e.detail and e.outcome is Outcome.PASS and e.subject == master
        for e in events
    )
    assert {e.outcome for e in events if e.type is EventType.VIRUS_CHECK} <= {Outcome.PASS, Outcome.NOT_PERFORMED}
    assert len([e for e in events if e.type is EventType.VIRUS_CHECK]) == 2  # one per original, never skipped

    # the bag's PREMIS (events up to packing) and the catalog's (everything since) both validate
    restored = restore.restore(settings, catalog, aip.id, tmp_path / "restored").path
    bag_premis = (restored / "data" / "metadata" / "premis.xml").read_bytes()
    assert premis.validate(bag_premis) == []
    assert not (restored / "data" / "metadata" / "events.json").exists()  # replaced by premis.xml
    full = premis.from_catalog(catalog.get_aip(aip.id))
    assert premis.validate(full) == []
    types_in_bag = {t.text for t in etree.fromstring(bag_premis).iterfind(".//p:event/p:eventType", NS)}
    types_full = {t.text for t in etree.fromstring(full).iterfind(".//p:event/p:eventType", NS)}
    assert {
        "message digest calculation",
        "metadata extraction",
        "format identification",
        "validation",
        "virus check",
        "normalization",
        "fixity check",
        "creation",
        "metadata modification",
    } <= types_in_bag
    # decided as the copies are stored, after packing: these are in the catalog's record
    assert {"packing", "replication", "access decision", "ingestion", "accession"} <= types_full - types_in_bag
    doc = etree.fromstring(full)
    master_obj = [
        o
        for o in doc.iterfind("p:object", NS)
        if o.findtext("p:objectIdentifier/p:objectIdentifierValue", namespaces=NS) == master
    ][0]
    assert master_obj.findtext(".//p:formatRegistryKey", namespaces=NS) == "fmt/569"
    assert master_obj.findtext(".//p:relatedObjectIdentifierValue", namespaces=NS) == "data/objects/scan.mov"
    assert master_obj.findtext(".//p:relatedEventIdentifierValue", namespaces=NS)
    agents = {
        a.findtext("p:agentName", namespaces=NS): a.findtext("p:agentVersion", namespaces=NS)
        for a in doc.iterfind("p:agent", NS)
    }
    assert agents["fido"].startswith("1.6.1") and agents["ffmpeg"] and agents["MediaConch"]


def test_master_that_fails_its_proof_is_not_kept(
    env: tuple[Settings, Catalog], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, catalog = env
    real = normalization.master_argv

    def lossy_argv(*args: object, **kwargs: object) -> list[str]:  # a broken encoder: cannot be caused for real
        argv = real(*args, **kwargs)
        return argv[:-3] + ["-sample_fmt:a:0", "s16"] + argv[-3:]

    monkeypatch.setattr(normalization, "master_argv", lossy_argv)
    src = make_v210_two_tracks(settings.ingest_dir / "scan.mov")
    o = ingest_submission(settings, catalog, src)
    assert o.status == "stored", o.detail
    aip = catalog.get_aip(o.aip_id)
    assert [f.path for f in aip.files if f.path.endswith(".mkv")] == []
    failed = [e for e in aip.events if e.type is EventType.NORMALIZATION and e.outcome is Outcome.FAIL]
    assert len(failed) == 1 and "NOT kept" in failed[0].detail and "stream 1 (audio)" in failed[0].detail


def test_one_tools_failure_does_not_stop_the_others(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    good = make_clip(tmp_path / "m.mkv", vcodec="ffv1", acodec="flac", duration=2.0)
    cut = settings.ingest_dir / "cut.mkv"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    o = ingest_submission(settings, catalog, cut)
    assert o.status == "quarantined" and "does not decode" in o.detail
    events = [e for e in o.events if e.subject == "data/objects/cut.mkv"]
    kinds = {(e.type, e.agent.name) for e in events}
    assert (EventType.VALIDATION, "ffmpeg") in kinds  # the decode check failed...
    assert (EventType.VALIDATION, "MediaConch") in kinds  # ...and MediaConch still ran,
    assert (EventType.VIRUS_CHECK, "ClamAV clamscan") in kinds  # and the virus check,
    assert any(
        e.type is EventType.MESSAGE_DIGEST_CALCULATION and "framemd5" in e.detail for e in events
    )  # and framemd5
    decode_event = next(e for e in events if e.type is EventType.VALIDATION and e.agent.name == "ffmpeg")
    assert decode_event.outcome is Outcome.FAIL and decode_event.extra["error_count"] >= 1


def test_access_levels_open_restricted_embargoed_dark(env: tuple[Settings, Catalog]) -> None:
    settings, catalog = env
    until = dt.date.today() + dt.timedelta(days=400)
    subs = {
        level: _submission(settings.ingest_dir / level, spec)
        for level, spec in (
            ("open", "open"),
            ("restricted", "restricted"),
            ("dark", "dark"),
            ("embargoed", f"{{level: embargoed, until: {until.isoformat()}}}"),
        )
    }
    ids = {}
    for level, path in subs.items():
        o = ingest_submission(settings, catalog, path)
        assert o.status == "stored", (level, o.detail)
        ids[level] = o.aip_id
    media = ["contact-sheet.jpg", "poster.jpg", "proxy.mp4"]  # what an embargoed film's location holds
    names = ["contact-sheet.jpg", "index.html", "manifest.json", "poster.jpg", "proxy.mp4"]  # + manifest, page
    everywhere = {
        level: {where: _keys(settings, where, ids[level]) for where in ("open", "restricted", "embargoed")}
        for level in ids
    }
    assert everywhere["open"] == {"open": [f"{ids['open']}/{n}" for n in names], "restricted": [], "embargoed": []}
    assert everywhere["restricted"] == {
        "open": [],
        "restricted": [f"{ids['restricted']}/{n}" for n in names],
        "embargoed": [],
    }
    assert everywhere["embargoed"] == {
        "open": [],
        "restricted": [],
        "embargoed": [f"{ids['embargoed']}/{n}" for n in media],
    }
    assert everywhere["dark"] == {"open": [], "restricted": [], "embargoed": []}
    for level in ids:  # every decision is an event
        decisions = [e for e in catalog.get_aip(ids[level]).events if e.type is EventType.ACCESS_DECISION]
        assert decisions and decisions[-1].extra["level"] == level, level
    assert catalog.get_aip(ids["dark"]).access == ()
    assert {a.target for a in catalog.get_aip(ids["embargoed"]).access} == {"access-embargoed"}

    # the scheduled release: nothing before the date, publication on it
    assert [r.status for r in embargo.release_due(settings, catalog, today=until - dt.timedelta(days=1))] == ["not due"]
    assert _keys(settings, "open", ids["embargoed"]) == []
    released = embargo.release_due(settings, catalog, today=until)
    assert [r.status for r in released] == ["released"]
    assert _keys(settings, "open", ids["embargoed"]) == [f"{ids['embargoed']}/{n}" for n in names]
    assert _keys(settings, "embargoed", ids["embargoed"]) == []  # the held copies are gone
    aip = catalog.get_aip(ids["embargoed"])
    assert aip.access_level == "open" and {a.target for a in aip.access} == {"access"}
    assert premis.validate(premis.from_catalog(aip)) == []
    assert embargo.release_due(settings, catalog, today=until) == []  # nothing left to release
    # published: the manifest and the page written for the public location with the copies
    got = restore.fetch_access(settings, catalog, aip.id, settings.var_dir / "got")
    assert sorted(p.name for p in got) == names
