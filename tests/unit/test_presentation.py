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
