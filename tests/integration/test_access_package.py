"""The access package end to end (issue 15), on real components: an archivist's folder with a
Matroska film (two audio tracks, a text subtitle stream), an English SRT in UTF-8, a Chinese SRT in
GB18030, a traditional-Chinese ASS in Big5 whose script header names a person, and a sidecar;
ingested through the library pipeline to the session's SeaweedFS; then its access copies fetched
with `preserve access`, moved by `set-access`, withdrawn and made again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from preserve.access import iiif, policy, subtitles
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import Agent, EventType, Outcome
from preserve.operations import access_change, restore, withdraw
from preserve.pipeline import ingest_submission
from preserve.pipeline.result import IngestResult
from preserve.storage import open_store
from preserve.storage.base import read_small
from preserve.tools import ffprobe
from tests.mediafactory import ffmpeg, make_clip
from tests.support import isolated_settings

DIRECTOR = "Real Person Name"
TRANSLATOR = "Planted Translator"
VOICE = "张三的录音"
OPERATOR = Agent("archivist-a", kind="person")
EN_CUES = [("00:00:00,200", "00:00:01,000", "Where are we going?"), ("00:00:01,100", "00:00:01,900", "Home & away.")]
ZH_CUES = [("00:00:00,200", "00:00:01,000", "我们去哪里？"), ("00:00:01,100", "00:00:01,900", "回家，回到村子里去。")]
HANT_TEXT = ["我們去哪裡？", "回家，回到村子裡去。"]


def _srt(cues: list[tuple[str, str, str]]) -> str:
    return "\r\n".join(f"{i}\r\n{a} --> {b}\r\n{t}\r\n" for i, (a, b, t) in enumerate(cues, start=1))


def _ass() -> str:
    return (
        "[Script Info]\n"
        f"Title: 回家\nOriginal Script: {TRANSLATOR}\nUpdate Details: fixed by {TRANSLATOR}\n"
        "ScriptType: v4.00+\nPlayResX: 320\nPlayResY: 240\n\n"
        "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
        "Alignment, MarginL, MarginR, MarginV, Encoding\n"
        "Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        f"Dialogue: 0,0:00:00.20,0:00:01.00,Default,{TRANSLATOR},0,0,0,,{HANT_TEXT[0]}\n"
        f"Comment: 0,0:00:00.50,0:00:01.00,Default,,0,0,0,,note by {TRANSLATOR}\n"
        f"Dialogue: 0,0:00:01.10,0:00:01.90,Default,,0,0,0,,{{\\pos(10,10)}}{HANT_TEXT[1]}\n"
    )


def _film(folder: Path) -> Path:
    """A 2 s Matroska film: video, two audio tracks (chi with a title naming a person, eng), and a
    subrip subtitle stream tagged chi."""
    clip = make_clip(folder.parent / "clip.mkv", duration=2.0, audio=False)
    stream_srt = folder.parent / "stream.srt"
    stream_srt.write_text(_srt([("00:00:00,500", "00:00:01,500", "片中字幕")]), encoding="utf-8")
    film = folder / "回家.mkv"
    ffmpeg(
        [
            "-i", str(clip),
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
            "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000:duration=2",
            "-i", str(stream_srt),
            "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s",
            "-c:v", "copy", "-c:a", "flac", "-c:s", "srt",
            "-metadata:s:a:0", "language=chi", "-metadata:s:a:0", f"title={VOICE}",
            "-metadata:s:a:1", "language=eng", "-metadata:s:a:1", "title=Commentary",
            "-metadata:s:s:0", "language=chi",
            str(film),
        ]
    )  # fmt: skip
    clip.unlink()
    return film


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> tuple[Settings, Catalog]:
    settings = isolated_settings(s3_settings, tmp_path, access={"public_base_url": "https://films.example.org/a/"})
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def _submission(settings: Settings) -> tuple[Path, dict[str, str]]:
    folder = settings.ingest_dir / "回家 2009"
    folder.mkdir()
    _film(folder)
    (folder / "回家.en.srt").write_text(_srt(EN_CUES), encoding="utf-8")
    (folder / "回家.zh-Hans.srt").write_bytes(_srt(ZH_CUES).encode("gb18030"))
    (folder / "回家.ass").write_bytes(_ass().encode("big5"))
    (folder / "metadata.yaml").write_text(
        "title: Going Home\noriginal_title: 回家\n"
        f"director: {DIRECTOR}\nyear: 2009\nlanguage: zh\naccess: open\ncontributor_id: contrib-42\n"
        "subtitles:\n  回家.ass: {language: zh-Hant, encoding: big5}\n",
        encoding="utf-8",
    )
    originals = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return folder, originals


def _no_planted(root: Path) -> None:
    planted = [DIRECTOR, TRANSLATOR, VOICE, "contrib-42", "Commentary"]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in planted:
                for encoded in (value.encode("utf-8"), value.encode("utf-16-le")):
                    assert encoded not in data, (path.name, value)


def test_folder_with_subtitles_becomes_a_watchable_access_package(
    env: tuple[Settings, Catalog], tmp_path: Path
) -> None:
    settings, catalog = env
    folder, originals = _submission(settings)
    outcome = ingest_submission(settings, catalog, folder)
    assert outcome.status == "stored", outcome.detail
    aip = catalog.get_aip(outcome.aip_id)
    assert aip is not None

    kinds = [a.kind for a in aip.access]
    assert kinds.count("subtitles") == 4  # en, zh-Hans, zh-Hant (ASS) and the container's stream
    assert {"proxy", "poster", "manifest", "page"} <= set(kinds)
    assert kinds[-2:] == ["manifest", "page"]  # stored last: they point at copies that are there

    # one event per subtitle source, with the encoding found and how
    tracks = {e.subject: e for e in aip.events if e.type is EventType.CREATION and "WebVTT" in e.detail}
    gb = next(e for s, e in tracks.items() if s.endswith("zh-Hans.srt"))
    assert gb.outcome is Outcome.PASS and gb.extra["encoding"] == "gb18030"
    big5 = next(e for s, e in tracks.items() if s.endswith(".ass"))
    assert big5.extra["encoding"] == "big5" and "sidecar" in big5.extra["encoding_detected_by"]
    assert any(s.endswith(".mkv#3") for s in tracks)

    # `preserve access`: everything, verified, in one folder
    dest = tmp_path / "fetched"
    written = {p.name: p for p in restore.fetch_access(settings, catalog, aip.id, dest)}
    assert {"proxy.mp4", "poster.jpg", "manifest.json", "index.html"} <= set(written)
    vtts = sorted(n for n in written if n.endswith(".vtt"))
    assert vtts == [  # the files in payload order, then the container's streams
        "subtitles-1.zh-Hant.vtt",
        "subtitles-2.en.vtt",
        "subtitles-3.zh-Hans.vtt",
        "subtitles-4.zh.vtt",
    ]
    cues = {n: [c[2] for c in subtitles.read_cues(written[n])] for n in vtts}
    assert cues["subtitles-2.en.vtt"] == [t for _, _, t in EN_CUES]
    assert cues["subtitles-3.zh-Hans.vtt"] == [t for _, _, t in ZH_CUES]
    assert cues["subtitles-1.zh-Hant.vtt"] == HANT_TEXT
    assert cues["subtitles-4.zh.vtt"] == ["片中字幕"]
    for n in vtts:
        data = written[n].read_bytes()
        data.decode("utf-8")
        assert data.startswith(b"WEBVTT\n") and b"\r" not in data

    # every audio track of the source, AAC, in order, languages kept
    proxy = ffprobe.probe(written["proxy.mp4"])
    assert [s["codec_name"] for s in proxy.audio_streams] == ["aac", "aac"]
    assert [s.get("tags", {}).get("language") for s in proxy.audio_streams] == ["chi", "eng"]
    assert not proxy.subtitle_streams

    # the manifest: valid, ids under the public URL, one annotation per track with its language
    with open_store(settings, settings.access_target) as public:  # as stored: ids under the public URL
        stored = json.loads(read_small(public, f"{aip.id}/manifest.json"))
    assert stored["id"] == f"https://films.example.org/a/{aip.id}/manifest.json"
    document = written["manifest.json"].read_bytes()  # as fetched: ids of the files where it was written
    assert iiif.validate(document) == []
    m = json.loads(document)
    assert m["id"] == dest.resolve().as_uri() + "/manifest.json"
    assert m["items"][0]["items"][0]["items"][0]["body"]["id"] == dest.resolve().as_uri() + "/proxy.mp4"
    assert stored["label"] == m["label"] and len(json.dumps(stored)) > 1000
    assert m["label"] == {"en": ["Going Home"], "zh": ["回家"]}
    canvas = m["items"][0]
    assert abs(canvas["duration"] - 2.0) < 0.2
    annotations = canvas["annotations"][0]["items"]
    assert [a["body"]["language"] for a in annotations] == ["zh-Hant", "en", "zh-Hans", "zh"]
    page = written["index.html"].read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "回家" in page
    for n in vtts + ["proxy.mp4", "poster.jpg"]:
        assert f'"{n}"' in page

    _no_planted(dest)  # no credits (credits_public is not set), no header name, no stream title
    for name, digest in originals.items():  # the originals are preserved byte for byte
        assert any(f.path.endswith(name) and f.sha256 == digest for f in aip.files), name

    # set-access restricted: the manifest is written again for its new place, the rest moved
    report = access_change.set_access(settings, catalog, aip.id, "restricted", reason="asked", operator=OPERATOR)
    assert report.ok, report.remaining_lines()
    moved = catalog.get_aip(aip.id)
    restricted = policy.access_location(settings, "restricted")
    assert restricted is not None and {a.target for a in moved.access} == {restricted.name}
    assert sorted(a.kind for a in moved.access) == sorted(kinds)
    assert restricted is not None
    with open_store(settings, restricted) as private:
        m2 = json.loads(read_small(private, f"{aip.id}/manifest.json"))
    # no restricted_base_url: the storage URI of the restricted location
    assert m2["id"] == f"s3://preserve-access/{restricted.prefix}/{aip.id}/manifest.json", m2["id"]
    assert m2["label"] == m["label"] and len(m2["items"][0]["annotations"][0]["items"]) == 4
    with open_store(settings, settings.access_target) as public:
        assert not list(public.list_versions(f"{aip.id}/"))  # nothing left at the public location

    # withdrawn: nothing anywhere; opened again: everything made again from the preserved originals
    w = withdraw.withdraw(settings, catalog, aip.id, reason="risk", operator=OPERATOR)
    assert w.ok
    for location in policy.access_locations(settings):
        with open_store(settings, location) as store:
            assert not list(store.list_versions(f"{aip.id}/")), location.name
    reopened = access_change.set_access(settings, catalog, aip.id, "open", reason="safe now", operator=OPERATOR)
    assert reopened.ok, reopened.remaining_lines()
    final = catalog.get_aip(aip.id)
    assert sorted(a.kind for a in final.access) == sorted(kinds)
    back = tmp_path / "reopened"
    names = {p.name for p in restore.fetch_access(settings, catalog, aip.id, back)}
    assert set(vtts) <= names and "manifest.json" in names
    assert iiif.validate((back / "manifest.json").read_bytes()) == []
    _no_planted(back)


def _credited(settings: Settings, catalog: Catalog) -> IngestResult:
    """An open film whose sidecar makes its director's name public, ingested."""
    film = settings.ingest_dir / "credited.mp4"
    make_clip(film, duration=1.0)
    (settings.ingest_dir / "credited.mp4.yaml").write_text(
        f"title: Credited\ndirector: {DIRECTOR}\ncredits_public: true\naccess: open\n", encoding="utf-8"
    )
    outcome = ingest_submission(settings, catalog, film)
    assert outcome.status == "stored", outcome.detail
    return outcome


def test_credits_taken_back_by_an_amend_leave_no_version_naming_them(
    env: tuple[Settings, Catalog], tmp_path: Path
) -> None:
    """Credits made public, then private again by an amend: the manifest and the page are written
    again at once, and no version of the old ones stays fetchable at the access location."""
    from preserve.operations import amend

    settings, catalog = env
    outcome = _credited(settings, catalog)
    aip_id = outcome.aip_id
    first = {p.name: p.read_bytes() for p in restore.fetch_access(settings, catalog, aip_id, tmp_path / "a")}
    assert DIRECTOR.encode() in first["manifest.json"] and DIRECTOR.encode() in first["index.html"]

    private = tmp_path / "private.yaml"
    private.write_text(f"title: Credited again\ndirector: {DIRECTOR}\naccess: open\n", encoding="utf-8")
    result = amend.amend(settings, catalog, aip_id, private, reason="the director asked", operator=OPERATOR)
    assert result.documents.startswith("IIIF manifest and page written again"), result.documents
    after = {p.name: p.read_bytes() for p in restore.fetch_access(settings, catalog, aip_id, tmp_path / "b")}
    for name in ("manifest.json", "index.html"):
        assert DIRECTOR.encode() not in after[name] and b"Credited again" in after[name]
    assert after["proxy.mp4"] == first["proxy.mp4"]  # the copies themselves stay as they were
    with open_store(settings, settings.access_target) as store:
        for name in ("manifest.json", "index.html"):
            versions = [v for v in store.list_versions(f"{aip_id}/{name}")]
            assert len(versions) == 1, versions  # the old version is gone, not just hidden
    event = catalog.get_aip(aip_id).events[-1]
    assert "written again from the amended sidecar" in " ".join(e.detail for e in catalog.get_aip(aip_id).events)
    assert event is not None


def test_credits_taken_back_never_return_with_a_later_access_change(
    env: tuple[Settings, Catalog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The amend that makes the credits private cannot write the documents again (a location
    down: the one fault here that is mocked); the next `set-access` writes them from the sidecar
    as it is now, not from the older manifest that still names the director."""
    from preserve.core.errors import StorageUnavailable
    from preserve.operations import amend, presenting

    settings, catalog = env
    outcome = _credited(settings, catalog)

    def down(*args: object, **kwargs: object) -> str:
        raise StorageUnavailable("the access location does not answer")

    monkeypatch.setattr(presenting, "refresh", down)
    private = tmp_path / "private.yaml"
    private.write_text(f"title: Credited\ndirector: {DIRECTOR}\naccess: open\n", encoding="utf-8")
    result = amend.amend(settings, catalog, outcome.aip_id, private, reason="asked", operator=OPERATOR)
    assert result.documents.startswith("NOT written again")
    monkeypatch.undo()
    report = access_change.set_access(
        settings, catalog, outcome.aip_id, "restricted", reason="reading room only", operator=OPERATOR
    )
    assert report.ok, report.remaining_lines()
    fetched = {p.name: p.read_bytes() for p in restore.fetch_access(settings, catalog, outcome.aip_id, tmp_path / "r")}
    assert b"Credited" in fetched["manifest.json"]
    for name in ("manifest.json", "index.html"):
        assert DIRECTOR.encode() not in fetched[name], name


def test_an_undecidable_subtitle_file_is_made_a_track_once_its_encoding_is_named(
    env: tuple[Settings, Catalog], tmp_path: Path
) -> None:
    """A one-line GB18030 file reads as Big5 too: no track (never mojibake), a warning with the
    candidates; the archivist names the encoding by an amend, and `set-access --remake` makes
    every copy again, the track among them."""
    from preserve.operations import amend

    settings, catalog = env
    folder = settings.ingest_dir / "short"
    folder.mkdir()
    make_clip(folder / "film.mp4", duration=1.0)
    (folder / "film.srt").write_bytes("1\r\n00:00:00,100 --> 00:00:00,900\r\n好，我等你。\r\n".encode("gb18030"))
    (folder / "metadata.yaml").write_text("title: Short\naccess: open\n", encoding="utf-8")
    outcome = ingest_submission(settings, catalog, folder)
    assert outcome.status == "stored", outcome.detail
    aip = catalog.get_aip(outcome.aip_id)
    warned = [e for e in aip.events if e.subject.endswith("film.srt") and "track_outcome" in e.extra]
    assert [e.outcome for e in warned] == [Outcome.WARNING]
    assert warned[0].extra["encoding_candidates"][:2] == ["gb18030", "big5"] and "--remake" in warned[0].detail
    assert "subtitles" not in [a.kind for a in aip.access]

    named = tmp_path / "named.yaml"
    named.write_text("title: Short\naccess: open\nsubtitles:\n  film.srt: {language: zh, encoding: gb18030}\n")
    amend.amend(settings, catalog, aip.id, named, reason="encoding named", operator=OPERATOR)
    report = access_change.set_access(
        settings, catalog, aip.id, "open", reason="make the subtitles", operator=OPERATOR, remake=True
    )
    assert report.ok, report.remaining_lines()
    after = catalog.get_aip(aip.id)
    assert [a.key.rsplit("/", 1)[-1] for a in after.access if a.kind == "subtitles"] == ["subtitles-1.zh.vtt"]
    fetched = {p.name: p for p in restore.fetch_access(settings, catalog, aip.id, tmp_path / "made")}
    assert [c[2] for c in subtitles.read_cues(fetched["subtitles-1.zh.vtt"])] == ["好，我等你。"]
    assert "subtitles-1.zh.vtt" in fetched["index.html"].read_text(encoding="utf-8")
    made = [e for e in after.events if e.subject.endswith("film.srt") and e.extra.get("track_outcome") == "converted"]
    assert made and made[-1].extra["encoding"] == "gb18030" and "sidecar" in made[-1].extra["encoding_detected_by"]
