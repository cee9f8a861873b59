"""The values and small rules of the access package (issue 15): language tags and track names,
the sidecar's `credits_public` and `subtitles:` notes, where a track's language comes from, the
folder URL a manifest's ids are under, and the event a subtitle source gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from preserve.access import package, policy
from preserve.access.presentation import TextTrack, TrackFinding, TrackOutcome, normal_language, track_name
from preserve.config import Settings
from preserve.core.errors import SidecarError
from preserve.core.model import Outcome
from preserve.intake import sidecar


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("en", "en"),
        ("ZH-hans", "zh-Hans"),
        ("zh_Hant_TW", "zh-Hant-TW"),
        ("yue", "yue"),
        ("es-419", "es-419"),
        ("Chinese", None),
        ("", None),
        ("zh-Hans; rm -rf /", None),
        ("x-private", None),
        ("wu-Ming", None),  # a name in the shape of a tag: not a language, never published
        ("li-Wang", None),
        ("zz", None),
        ("zh-Wang", None),
        ("bo", "bo"),
        ("ug", "ug"),
    ],
)
def test_language_tags_are_normalised_or_refused(tag: str, expected: str | None) -> None:
    assert normal_language(tag) == expected


def test_track_names_carry_number_and_language_only() -> None:
    assert track_name(1, "zh-hans") == "subtitles-1.zh-Hans.vtt"
    assert track_name(3, "不是语言") == "subtitles-3.und.vtt"  # never a submitter's words
    with pytest.raises(ValueError):
        track_name(0, "en")


def test_sidecar_credits_and_subtitle_notes() -> None:
    s = sidecar.parse(
        "title: T\ncredits_public: true\nsubtitles:\n  film.zh.srt: zh-hans\n"
        "  subs/old.srt: {language: zh-Hant, encoding: BIG5}\n  ./other.ass: {encoding: gbk}\n"
    )
    assert s.credits_public is True
    assert s.subtitle_note("objects/film.zh.srt") == sidecar.SubtitleNote("film.zh.srt", "zh-Hans", "")
    assert s.subtitle_note("data/objects/subs/old.srt") == sidecar.SubtitleNote("subs/old.srt", "zh-Hant", "big5")
    assert s.subtitle_note("objects/other.ass") == sidecar.SubtitleNote("other.ass", "", "gbk")
    assert s.subtitle_note("objects/elsewhere/film.zh.srt") == sidecar.SubtitleNote("film.zh.srt", "zh-Hans", "")
    assert s.subtitle_note("objects/none.srt") is None
    assert sidecar.parse("title: T\n").credits_public is False  # nobody is named by default


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("credits_public: maybe\n", "credits_public: must be true or false"),
        ("subtitles: [a.srt]\n", "subtitles: must map"),
        ("subtitles: {a.srt: Mandarin}\n", "BCP 47"),
        ("subtitles: {a.srt: {encoding: klingon-8}}\n", "unknown encoding"),
        ("subtitles: {a.srt: {language: en, font: x}}\n", "must be a language tag"),
    ],
)
def test_bad_subtitle_notes_are_refused_with_their_line(text: str, problem: str) -> None:
    with pytest.raises(SidecarError) as err:
        sidecar.parse(text)
    assert problem in str(err.value) and "line 1" in str(err.value)
    assert "Mandarin" not in err.value.public and "klingon" not in err.value.public


def test_track_language_sidecar_then_file_name_then_none(tmp_path: Path) -> None:
    f = tmp_path / "x.srt"
    assert package.track_language(package.SubtitleSource("objects/film.en.srt", f, "zh-Hant")) == ("zh-Hant", "sidecar")
    assert package.track_language(package.SubtitleSource("objects/film.zh-Hans.srt", f)) == ("zh-Hans", "file name")
    assert package.track_language(package.SubtitleSource("objects/film.srt", f)) == ("und", "none")


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("https://Archive.Example.org/films", "https://archive.example.org/films/"),
        ("https://example.org:443/a", "https://example.org/a/"),
        ("https://example.org/影片/", "https://example.org/%E5%BD%B1%E7%89%87/"),
    ],
)
def test_base_urls_are_written_as_the_iiif_model_writes_ids(tmp_path: Path, given: str, normal: str) -> None:
    """A base URL an operator may well write is normalised, so a manifest can always be written
    under it (the IIIF model would otherwise rewrite every id: an ingest must not fail on it)."""
    from preserve.access.presentation import Presentation

    s = Settings.model_validate({"replication": {"min_verified_replicas": 0}, "access": {"public_base_url": given}})
    assert s.access.public_base_url == normal
    base = policy.folder_url(s, "open", "s3://b/p/AIP-1/proxy.mp4")
    manifest, page = package.write_documents(Presentation("AIP-1", "T", 2.0, 320, 240), base, tmp_path)
    assert manifest.read_text(encoding="utf-8").count(normal + "AIP-1/") >= 3 and page.exists()


def test_a_manifest_that_cannot_be_written_is_a_packaging_error(tmp_path: Path) -> None:
    from preserve.access.presentation import Presentation
    from preserve.core.errors import PackagingError

    with pytest.raises(PackagingError):
        package.write_documents(Presentation("AIP-1", "T", 2.0, 320, 240), "https://Upper.Example/AIP-1/", tmp_path)
    assert not list(tmp_path.iterdir())


def test_forbidden_values_spare_the_films_own_title() -> None:
    values = package.forbidden_values(
        ["回家", "Going Home", "a", "GPS +39.9+116.4", "Shot by Wang", "contrib-42", "", " Shot by Wang "],
        shown=("Going Home", "回家"),
    )
    assert values == ["GPS +39.9+116.4", "Shot by Wang", "contrib-42"]


def test_folder_url_uses_the_configured_base_or_the_storage_uri() -> None:
    s = Settings.model_validate(
        {"replication": {"min_verified_replicas": 0}, "access": {"public_base_url": "https://films.example.org/a"}}
    )
    assert s.access.public_base_url == "https://films.example.org/a/"
    uri = "s3://preserve-access/pub/AIP-1/proxy.mp4"
    assert policy.folder_url(s, "open", uri) == "https://films.example.org/a/AIP-1/"
    assert policy.folder_url(s, "restricted", "s3://preserve-access/restricted/AIP-1/proxy.mp4") == (
        "s3://preserve-access/restricted/AIP-1/"
    )
    assert policy.presented("open") and policy.presented("restricted")
    assert not policy.presented("embargoed") and not policy.presented("dark")
    with pytest.raises(ValueError):
        Settings.model_validate(
            {"replication": {"min_verified_replicas": 0}, "access": {"public_base_url": "ftp://x/"}}
        )


def test_event_of_a_subtitle_source(tmp_path: Path) -> None:
    made = TrackFinding(
        "objects/film.zh.srt",
        TrackOutcome.CONVERTED,
        "converted",
        track=TextTrack(tmp_path / "subtitles-1.zh.vtt", "zh", "中文", 12),
        encoding="gb18030",
        how="charset-normalizer: best match gb18030",
        candidates=("gb18030",),
        language_from="file name",
        dropped=("SRT font tags (2)",),
    )
    text, extra = package.event_detail(made)
    assert "read as gb18030 (charset-normalizer: best match gb18030)" in text and "from the file name" in text
    assert extra["encoding"] == "gb18030" and extra["cues"] == 12 and extra["dropped"] == ["SRT font tags (2)"]
    assert package.event_outcome(made) is Outcome.PASS
    undecided = TrackFinding("objects/a.srt", TrackOutcome.UNDECIDABLE, "say which", candidates=("gb18030", "big5"))
    text, extra = package.event_detail(undecided)
    assert text == "no access track: say which" and extra["encoding_candidates"] == ["gb18030", "big5"]
    assert package.event_outcome(undecided) is Outcome.WARNING
    assert package.event_outcome(TrackFinding("f#3", TrackOutcome.BITMAP, "pgs")) is Outcome.NOT_PERFORMED
    assert package.event_outcome(TrackFinding("f", TrackOutcome.WITHHELD, "x")) is Outcome.FAIL
