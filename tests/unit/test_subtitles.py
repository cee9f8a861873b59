"""`preserve.access.subtitles` on subtitle files: every encoding and format becomes a UTF-8
WebVTT track that webvtt-py reads back with the original cue text and timings, with nothing of
the file's headers, comments and credits; the original is never changed; the privacy post-check
catches every kind of leftover (real files in a temporary folder, no ffmpeg)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pytest
import webvtt

from preserve.access import subtitles
from preserve.access.presentation import TrackFinding, TrackOutcome
from tests.subtitlefactory import (
    ASS_CUES,
    ENGLISH,
    PLANTED,
    SHORT_SIMPLIFIED,
    SIMPLIFIED,
    SRT_MARKUP,
    SRT_MARKUP_CUES,
    TRADITIONAL,
    VTT_CUES,
    VTT_TEXT,
    Cue,
    ass_text,
    cues_of,
    encode,
    srt_text,
)

MAX = 1 << 20


def convert(
    src: Path,
    *,
    language: str = "zh",
    encoding: str | None = None,
    max_bytes: int = MAX,
    forbidden: Sequence[str] = (),
) -> TrackFinding:
    out = src.parent / "out"
    out.mkdir(exist_ok=True)
    return subtitles.convert_file(
        src,
        out / f"subtitles-1.{language}.vtt",
        source=f"objects/{src.name}",
        language=language,
        language_from="file name",
        encoding=encoding,
        max_bytes=max_bytes,
        forbidden=forbidden,
    )


def assert_track(finding: TrackFinding, want: list[Cue]) -> bytes:
    """The finding made a track that is UTF-8 without a mark, headed by exactly "WEBVTT", that
    webvtt-py reads back as ``want`` (text and milliseconds), and that passes the post-check."""
    assert finding.outcome is TrackOutcome.CONVERTED, finding.detail
    assert finding.track is not None and finding.track.cues == len(want)
    data = finding.track.path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8")
    assert text.split("\n", 1)[0] == "WEBVTT" and "\r" not in text
    assert subtitles.read_cues(finding.track.path) == [c.seconds for c in want]
    doc = webvtt.read(str(finding.track.path), strict=True)
    assert not (doc.header_text or doc.metadata or doc.styles or doc.regions or doc.header_comments)
    assert all(c.identifier is None and not str(c.settings) and not c.comments for c in doc.captions)
    assert subtitles.check_track(finding.track.path) == []
    return data


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def public_text(finding: TrackFinding) -> str:
    """Everything a finding says that reaches an event (the track's path aside)."""
    d = asdict(finding)
    d.pop("track")
    return json.dumps(d, ensure_ascii=False)


# -- encodings -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lines", "encoding", "crlf", "bom", "codec"),
    [
        (SIMPLIFIED, "gb18030", False, False, "gb18030"),
        (SIMPLIFIED, "gb18030", True, False, "gb18030"),
        (TRADITIONAL, "big5", True, False, "big5"),
        (SIMPLIFIED, "utf-16-le", True, True, "utf-16"),
        (TRADITIONAL, "utf-8", False, True, "utf-8-sig"),
        (ENGLISH, "utf-8", True, False, "utf-8"),
        (ENGLISH, "cp1252", True, False, "cp1252"),
    ],
)
def test_every_encoding_becomes_the_same_utf8_track(
    tmp_path: Path, lines: tuple[str, ...], encoding: str, crlf: bool, bom: bool, codec: str
) -> None:
    cues = cues_of(lines)
    src = tmp_path / "film.zh.srt"
    src.write_bytes(encode(srt_text(cues), encoding, crlf=crlf, bom=bom))
    before = fingerprint(src)
    finding = convert(src)
    data = assert_track(finding, cues)
    assert finding.encoding == codec and finding.how and finding.candidates
    assert data.decode("utf-8").count("\n00:") == len(cues)
    assert fingerprint(src) == before  # the original: not a byte, not a time changed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["subtitles-1.zh.vtt"]  # no temporary left
    assert finding.track is not None and (finding.track.language, finding.track.label) == ("zh", "中文")


def test_an_undecidable_file_makes_no_track_and_says_what_to_do(tmp_path: Path) -> None:
    src = tmp_path / "film.zh.srt"
    src.write_bytes(srt_text(cues_of(SHORT_SIMPLIFIED)).encode("gb18030"))
    finding = convert(src)
    assert finding.outcome is TrackOutcome.UNDECIDABLE and finding.track is None
    assert finding.candidates == ("gb18030", "big5") and finding.encoding is None
    assert "sidecar" in finding.detail and "--remake" in finding.detail and "film" not in finding.detail
    assert not (tmp_path / "out" / "subtitles-1.zh.vtt").exists()
    declared = convert(src, encoding="gb18030")  # the sidecar says which: converted
    assert_track(declared, cues_of(SHORT_SIMPLIFIED))
    assert declared.how == "declared in the sidecar (gb18030)"


def test_too_big_is_not_read(tmp_path: Path) -> None:
    src = tmp_path / "film.srt"
    src.write_bytes(srt_text(cues_of(ENGLISH)).encode())
    finding = convert(src, max_bytes=100)
    assert finding.outcome is TrackOutcome.TOO_BIG and finding.track is None
    assert "subtitle_max_bytes" in finding.detail
    assert not (tmp_path / "out" / "subtitles-1.zh.vtt").exists()


@pytest.mark.parametrize(
    ("name", "content"), [("film.srt", "just some notes\n"), ("film.ass", "[Script Info]\nTitle: x\n")]
)
def test_no_cue_is_unreadable(tmp_path: Path, name: str, content: str) -> None:
    src = tmp_path / name
    src.write_text(content, encoding="utf-8")
    finding = convert(src)
    assert finding.outcome is TrackOutcome.UNREADABLE and "no cue" in finding.detail
    assert not (tmp_path / "out" / "subtitles-1.zh.vtt").exists()


# -- SubRip ----------------------------------------------------------------------------------------
def test_srt_keeps_b_i_u_and_text_as_written(tmp_path: Path) -> None:
    src = tmp_path / "film.en.srt"
    src.write_text(SRT_MARKUP, encoding="utf-8")
    finding = convert(src, language="en")
    text = assert_track(finding, SRT_MARKUP_CUES).decode()
    assert "<i>Italic</i> and <b>bold</b>\n<u>under</u> &lt;laughs&gt; 1 &lt; 2 --&gt; 3" in text
    assert "Tom &amp; Jerry" in text and "font" not in text and "an8" not in text
    assert "The year was\n1989\n" in text  # pysubs2 alone drops a last cue's line of digits
    assert "Wang Xiaoming" not in text
    assert set(finding.dropped) == {
        "SubRip lines before the first cue (1)",
        "SubRip {\\...} codes (1)",
        "SubRip <font> and other formatting tags (1)",
    }
    assert "Wang" not in public_text(finding)


def test_srt_preamble_credit_in_the_dialogue_is_withheld(tmp_path: Path) -> None:
    src = tmp_path / "film.en.srt"
    src.write_text(SRT_MARKUP.replace("Tom & Jerry", "Thank you, Wang Xiaoming"), encoding="utf-8")
    finding = convert(src, language="en")
    assert finding.outcome is TrackOutcome.WITHHELD
    assert "SubRip text before the first cue" in finding.detail and "Wang" not in public_text(finding)


def test_cues_are_ordered_and_empty_or_backwards_ones_dropped(tmp_path: Path) -> None:
    src = tmp_path / "film.srt"
    src.write_text(
        "1\n00:00:05,000 --> 00:00:06,000\nsecond\n\n"
        "2\n00:00:01,000 --> 00:00:02,000\nfirst\n\n"
        "3\n00:00:03,000 --> 00:00:03,000\nnever shown\n\n"
        "4\n00:00:04,000 --> 00:00:04,500\n<i></i>\n",
        encoding="utf-8",
    )
    finding = convert(src)
    assert_track(finding, [Cue(1000, 2000, "first"), Cue(5000, 6000, "second")])
    assert {"empty cues (1)", "cues that end before they start (1)"} <= set(finding.dropped)


# -- ASS -------------------------------------------------------------------------------------------
def test_ass_keeps_only_timings_and_text(tmp_path: Path) -> None:
    src = tmp_path / "film.zh.ass"
    src.write_text(ass_text(), encoding="utf-8")
    before = fingerprint(src)
    finding = convert(src)
    data = assert_track(finding, ASS_CUES)
    text = data.decode()
    for value in PLANTED:
        assert value.encode() not in data, value
        assert value not in public_text(finding), value
    assert "天快黑了，<i>我们</i>还是早点回去吧。" in text and "<b>火车站</b>" in text
    assert "<u>下划线</u>和<b>粗体</b>\n大字" in text and "软 换行\u00a0和空格 &amp; &lt;不是标签&gt;" in text
    assert {
        "ASS Script Info: Title",
        "ASS Script Info: Original Script",
        "ASS Script Info: Original Translation",
        "ASS Script Info: Original Timing",
        "ASS Script Info: Update Details",
        "ASS Script Info: other fields (1)",
        "ASS Script Info comment lines (2)",
        "ASS styles (2)",
        "ASS Aegisub project fields (2)",
        "ASS Comment events (1)",
        "ASS event Name fields (2)",
        "ASS event Effect fields (1)",
        "ASS inline comments (1)",
        "ASS drawing events (1)",
        "ASS override tags other than bold, italic, underline (5)",
    } <= set(finding.dropped)
    assert fingerprint(src) == before


@pytest.mark.parametrize(
    ("spoken", "field"),
    [
        ("谢谢你，李建国。", "ASS Script Info Original Script"),
        ("Chen Jingyi, 来一下。", "ASS Script Info Original Translation"),
        ("写信给 CHENJINGYI@EXAMPLE.ORG", "ASS Script Info fields"),
        ("王小明，走吧。", "ASS Script Info comment lines"),
    ],
)
def test_a_dropped_name_in_the_cue_text_withholds_the_track(tmp_path: Path, spoken: str, field: str) -> None:
    src = tmp_path / "film.zh.ass"
    src.write_text(ass_text(extra_dialogue=spoken), encoding="utf-8")
    dst = tmp_path / "out" / "subtitles-1.zh.vtt"
    dst.parent.mkdir()
    dst.write_text("an earlier track\n")  # a track made before is not left behind
    finding = convert(src)
    assert finding.outcome is TrackOutcome.WITHHELD and finding.track is None
    assert f"a value of the dropped {field}" in finding.detail
    assert not dst.exists() and list(dst.parent.iterdir()) == []
    for value in PLANTED:
        assert value.lower() not in public_text(finding).lower(), value


def test_the_callers_forbidden_values_withhold_too(tmp_path: Path) -> None:
    src = tmp_path / "film.srt"
    src.write_text(srt_text([Cue(1000, 2000, "导演：陈凯")]), encoding="utf-8")
    assert convert(src).outcome is TrackOutcome.CONVERTED
    finding = convert(src, forbidden=["陈凯"])
    assert finding.outcome is TrackOutcome.WITHHELD and "a forbidden value" in finding.detail
    assert "陈凯" not in public_text(finding)


SSA = (
    "[Script Info]\nScriptType: v4.00\nOriginal Script: 李建国\n\n[V4 Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, TertiaryColour, BackColour, Bold, Italic, "
    "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, AlphaLevel, Encoding\n"
    "Style: Default,Arial,20,16777215,65535,65535,-2147483640,0,0,1,2,1,2,10,10,10,0,1\n\n[Events]\n"
    "Format: Marked, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    "Dialogue: Marked=0,0:00:01.50,0:00:03.00,Default,赵小红,0000,0000,0000,,{\\i1}你好{\\i0}\\N世界\n"
)


def test_ssa_is_read_as_ssa(tmp_path: Path) -> None:
    src = tmp_path / "film.zh.ssa"
    src.write_bytes(SSA.encode("gb18030"))
    finding = convert(src)
    data = assert_track(finding, [Cue(1500, 3000, "你好\n世界")])
    assert b"<i>" in data and "李建国".encode() not in data and "赵小红".encode() not in data
    assert {"ASS Script Info: Original Script", "ASS event Name fields (1)"} <= set(finding.dropped)


def test_ass_wrap_style_2_makes_soft_breaks_lines(tmp_path: Path) -> None:
    src = tmp_path / "film.ass"
    src.write_text(ass_text().replace("WrapStyle: 0", "WrapStyle: 2"), encoding="utf-8")
    want = [c if "软" not in c.text else Cue(c.start, c.end, "软\n换行\u00a0和空格 & <不是标签>") for c in ASS_CUES]
    assert_track(convert(src), want)


def test_content_beats_the_suffix(tmp_path: Path) -> None:
    """An ASS script named .srt and a WebVTT file named .srt are read as what they are."""
    ass, vtt = tmp_path / "a.srt", tmp_path / "v.srt"
    ass.write_text(ass_text(), encoding="utf-8")
    vtt.write_text(VTT_TEXT, encoding="utf-8")
    assert_track(convert(ass), ASS_CUES)
    assert_track(convert(vtt), VTT_CUES)


# -- WebVTT ----------------------------------------------------------------------------------------
def test_vtt_loses_its_blocks_identifiers_settings_and_voices(tmp_path: Path) -> None:
    src = tmp_path / "film.en.vtt"
    src.write_bytes(encode(VTT_TEXT, "utf-8", crlf=True, bom=True))
    finding = convert(src, language="en")
    data = assert_track(finding, VTT_CUES)
    for value in PLANTED:
        assert value.encode() not in data, value
        assert value not in public_text(finding), value
    assert set(finding.dropped) == {
        "WebVTT header text",
        "WebVTT header lines (2)",
        "WebVTT NOTE blocks (2)",
        "WebVTT STYLE blocks (1)",
        "WebVTT REGION blocks (1)",
        "WebVTT cue identifiers (2)",
        "WebVTT cue settings (1)",
        "WebVTT voice spans (1)",
        "WebVTT cue tags other than b, i, u (3)",
    }
    assert b"<i>We should</i> go back &amp; rest.\nTomorrow at <b>seven</b>." in data


def test_a_character_named_in_the_dialogue_keeps_the_track(tmp_path: Path) -> None:
    """Name fields and voice speakers name characters, whom the dialogue names too: they are
    dropped from the track, never a reason to withhold it."""
    vtt = tmp_path / "film.vtt"
    vtt.write_text(VTT_TEXT.replace("Tomorrow", "Chen Jingyi, tomorrow"), encoding="utf-8")
    finding = convert(vtt)
    assert finding.outcome is TrackOutcome.CONVERTED and "WebVTT voice spans (1)" in finding.dropped
    assert finding.track is not None and b"<v" not in finding.track.path.read_bytes()
    ass = tmp_path / "film.zh.ass"
    ass.write_text(ass_text(extra_dialogue="周警官，您好。"), encoding="utf-8")
    finding = convert(ass)
    assert finding.outcome is TrackOutcome.CONVERTED, finding.detail
    assert any(d.startswith("ASS event Name fields") for d in finding.dropped)


def test_a_cue_block_webvtt_py_cannot_read_makes_no_track(tmp_path: Path) -> None:
    """webvtt-py skips a block with a broken timing; converting would lose its text."""
    src = tmp_path / "film.vtt"
    src.write_text(VTT_TEXT.replace("00:00:04.000 --> 00:00:06.070", "00:00:04.000 --> 00:00:0x.070"), encoding="utf-8")
    finding = convert(src)
    assert finding.outcome is TrackOutcome.UNREADABLE and "1 of its cue blocks" in finding.detail
    assert not (tmp_path / "out" / "subtitles-1.zh.vtt").exists()


# -- the post-check --------------------------------------------------------------------------------
CLEAN = "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello <i>there</i>, Tom &amp; Jerry\n\n00:00:03.000 --> 00:00:04.000\nbye\n"


@pytest.mark.parametrize(
    ("data", "finding"),
    [
        (b"\xef\xbb\xbf" + CLEAN.encode(), "a byte-order mark"),
        (CLEAN.encode("utf-16"), "not UTF-8"),
        (CLEAN.replace("\n", "\r\n").encode(), "a carriage return"),
        (CLEAN.replace("WEBVTT", "WEBVTT - by Wang Xiaoming", 1).encode(), "a header line other than exactly WEBVTT"),
        (CLEAN.replace("WEBVTT\n", "WEBVTT\nKind: captions\n", 1).encode(), "header lines after WEBVTT"),
        (CLEAN.replace("\n\n00:00:03", "\n\nNOTE by Wang Xiaoming\n\n00:00:03").encode(), "a NOTE block"),
        (CLEAN.replace("WEBVTT\n\n", "WEBVTT\n\nSTYLE\n::cue { color: red }\n\n").encode(), "a STYLE block"),
        (CLEAN.replace("WEBVTT\n\n", "WEBVTT\n\nREGION\nid:fred\n\n").encode(), "a REGION block"),
        (CLEAN.replace("\n\n00:00:03", "\n\nintro-2\n00:00:03").encode(), "a cue identifier"),
        (CLEAN.replace("\n\n00:00:03", "\n\nTranslated by Wang Xiaoming\n\n00:00:03").encode(), "neither a cue timing"),
        (CLEAN.replace("00:00:02.500", "00:00:02.500 align:start").encode(), "a timing line with cue settings"),
        (CLEAN.replace("bye", "<v Wang Xiaoming>bye").encode(), "a cue tag other than <b>, <i>, <u>"),
        (CLEAN.replace("bye", "<c.yellow>bye</c>").encode(), "a cue tag other than <b>, <i>, <u>"),
        (CLEAN.replace("bye", "a --> b").encode(), "a cue text line with -->"),
        (CLEAN.replace("\nbye\n", "\n").encode(), "a cue without text"),
        (b"WEBVTT\n", "no cue"),
    ],
)
def test_check_track_catches_each_leftover(tmp_path: Path, data: bytes, finding: str) -> None:
    clean = tmp_path / "clean.vtt"
    clean.write_text(CLEAN, encoding="utf-8")
    assert subtitles.check_track(clean) == []
    bad = tmp_path / "bad.vtt"
    bad.write_bytes(data)
    found = subtitles.check_track(bad)
    assert any(finding in f for f in found), found
    assert not any("Wang" in f for f in found)


def test_check_track_finds_forbidden_values_however_written(tmp_path: Path) -> None:
    track = tmp_path / "t.vtt"
    track.write_text(CLEAN, encoding="utf-8")
    assert subtitles.check_track(track, ["Jerry Lee"]) == []
    for value in ("jerry", "Tom & Jerry", "TOM &amp; JERRY"):
        assert subtitles.check_track(track, [value]) == ["a forbidden value"], value


# -- languages -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("film.en.srt", "en"),
        ("film.zh-Hans.srt", "zh-Hans"),
        ("Film.ZH-HANT.ass", "zh-Hant"),
        ("film.zh_CN.srt", "zh-CN"),
        ("film.chi.srt", "zh"),
        ("film.zho.srt", "zh"),
        ("film.eng.srt", "en"),
        ("film.fre.vtt", "fr"),
        ("film.deu.ssa", "de"),
        ("film.tib.srt", "bo"),
        ("film.uig.srt", "ug"),
        ("film.yue.srt", "yue"),
        ("film.chs.ass", "zh-Hans"),
        ("film.CHT.ass", "zh-Hant"),
        ("film.en.forced.srt", "en"),
        ("objects/subs/night.train.ja.srt", "ja"),
        ("film.srt", None),
        ("my.film.srt", None),
        ("my.dog.srt", None),
        ("film.2019.srt", None),
        ("film.und.srt", None),
        ("en.srt", None),
    ],
)
def test_language_from_name(name: str, language: str | None) -> None:
    assert subtitles.language_from_name(name) == language


@pytest.mark.parametrize(
    ("tags", "language"),
    [
        ({"language": "chi"}, "zh"),
        ({"language": "eng"}, "en"),
        ({"LANGUAGE": "jpn"}, "ja"),
        ({"language": "swe"}, "sv"),
        ({"language": "fil"}, "fil"),
        ({"language": "und"}, None),
        ({"title": "Chinese"}, None),
        ({"language": "not a code"}, None),
    ],
)
def test_language_of_stream(tags: dict[str, str], language: str | None) -> None:
    assert subtitles.language_of_stream({"index": 2, "codec_name": "subrip", "tags": tags}) == language
    assert subtitles.language_of_stream({"index": 2}) is None


@pytest.mark.parametrize(
    ("language", "label"),
    [
        ("en", "English"),
        ("zh", "中文"),
        ("zh-Hans", "中文（简体）"),
        ("zh-CN", "中文（简体）"),
        ("zh-Hant", "中文（繁體）"),
        ("zh-TW", "中文（繁體）"),
        ("zh-Hant-HK", "中文（繁體）"),
        ("yue", "粵語"),
        ("fr", "Français"),
        ("en-GB", "English (GB)"),
        ("und", "Subtitles"),
        ("", "Subtitles"),
        ("xx", "xx"),
    ],
)
def test_label_of(language: str, label: str) -> None:
    assert subtitles.label_of(language) == label


def test_is_subtitle_file() -> None:
    assert all(subtitles.is_subtitle_file(n) for n in ("a.srt", "b.ASS", "c.ssa", "d.vtt"))
    assert not any(subtitles.is_subtitle_file(n) for n in ("a.txt", "b.sub", "c.idx", "srt"))


def test_a_subrip_block_with_an_unreadable_timing_makes_no_track(tmp_path: Path) -> None:
    """pysubs2 folds such a block into the cue before it; converting would publish its number and
    timing as text and lose its own timing."""
    src = tmp_path / "film.en.srt"
    src.write_text(
        "1\n00:00:01,000 --> 00:00:02,000\nFirst\n\n2\n00:00:03 --> 00:00:04\nSecond\n\n"
        "3\n00:00:05,000 --> 00:00:06,000\nThird\n",
        encoding="utf-8",
    )
    finding = convert(src)
    assert finding.outcome is TrackOutcome.UNREADABLE and "1 of its cue blocks" in finding.detail
    assert finding.track is None
    fine = tmp_path / "fine.en.srt"
    fine.write_text("1\n00:00:01,000 --> 00:00:02,000\nan arrow --> in the text\n", encoding="utf-8")
    assert convert(fine).outcome is TrackOutcome.CONVERTED
