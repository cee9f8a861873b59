"""`preserve.access.charset`: subtitle text of every encoding a submission brings is decoded to
the text it was written as, and said how; what cannot be told apart is undecidable, never
mojibake (pure, no I/O)."""

from __future__ import annotations

import pytest

from preserve.access import charset
from tests.subtitlefactory import ENGLISH, SHORT_SIMPLIFIED, SIMPLIFIED, TRADITIONAL, cues_of, encode, srt_text

GB_SRT = srt_text(cues_of(SIMPLIFIED))
BIG5_SRT = srt_text(cues_of(TRADITIONAL))
EN_SRT = srt_text(cues_of(ENGLISH))


@pytest.mark.parametrize(
    ("text", "encoding", "bom", "codec", "how"),
    [
        (GB_SRT, "utf-16-le", True, "utf-16", "byte-order mark (UTF-16LE)"),
        (GB_SRT, "utf-16-be", True, "utf-16", "byte-order mark (UTF-16BE)"),
        (BIG5_SRT, "utf-8", True, "utf-8-sig", "byte-order mark (UTF-8)"),
        (EN_SRT, "utf-32-le", True, "utf-32", "byte-order mark (UTF-32LE)"),
        (GB_SRT, "utf-8", False, "utf-8", "strict UTF-8 decode"),
    ],
)
def test_marks_and_utf8_decide_first(text: str, encoding: str, bom: bool, codec: str, how: str) -> None:
    d = charset.decode(encode(text, encoding, bom=bom))
    assert (d.text, d.encoding, d.how) == (text, codec, how)  # the mark is removed, nothing else


def test_gb18030_has_a_mark_of_its_own() -> None:
    d = charset.decode(b"\x84\x31\x95\x33" + GB_SRT.encode("gb18030"))
    assert (d.text, d.encoding, d.how) == (GB_SRT, "gb18030", "byte-order mark (GB18030)")


@pytest.mark.parametrize(
    ("text", "encoding", "codec"),
    [(GB_SRT, "gb18030", "gb18030"), (BIG5_SRT, "big5", "big5"), (EN_SRT, "cp1252", "cp1252")],
)
def test_legacy_encodings_of_a_whole_film(text: str, encoding: str, codec: str) -> None:
    """26 cues of GB18030 (with characters GBK lacks), 24 of Big5, 8 of Windows-1252 (accents)."""
    d = charset.decode(encode(text, encoding))
    assert d.text == text and d.encoding == codec
    assert "not UTF-8" in d.how and f"charset-normalizer: best match {codec} (chaos " in d.how
    assert codec in d.candidates


def test_gb18030_characters_outside_gbk_decode() -> None:
    """A GBK decoder stops at 䶮 (FE9F) and 𬌗 (4 bytes); GB18030, their superset, reads them."""
    with pytest.raises(UnicodeDecodeError):
        GB_SRT.encode("gb18030").decode("gbk")
    assert "䶮" in (charset.decode(GB_SRT.encode("gb18030")).text or "")


def test_utf16_without_a_mark_is_told_by_its_nuls() -> None:
    for encoding, order in (("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")):
        d = charset.decode(GB_SRT.encode(encoding))
        assert (d.text, d.encoding) == (GB_SRT, encoding)
        assert f"NUL bytes in the {order} pattern" in d.how


def test_newlines_are_not_touched() -> None:
    text = charset.decode(encode(BIG5_SRT, "big5", crlf=True)).text
    assert text is not None and text.count("\r\n") == BIG5_SRT.count("\n")


def test_a_very_short_gb18030_file_is_undecidable() -> None:
    """ "好，我等你。" in GB18030 is also valid Big5 (other characters) with little mess: no
    decoding is clearly better, so none is published."""
    data = srt_text(cues_of(SHORT_SIMPLIFIED)).encode("gb18030")
    other = data.decode("big5")
    assert other != data.decode("gb18030")  # both decode strictly, to different text
    d = charset.decode(data)
    assert d.text is None and d.encoding is None
    assert d.candidates == ("gb18030", "big5")
    assert "it reads as gb18030 and big5 with different text" in d.how


@pytest.mark.parametrize(("lines", "encoding"), [(SIMPLIFIED, "gb18030"), (TRADITIONAL, "big5")])
@pytest.mark.parametrize("size", [1, 2, 3, 10])
def test_short_chinese_files_are_never_mojibake(lines: tuple[str, ...], encoding: str, size: int) -> None:
    """Every run of ``size`` consecutive cues decodes to its own text or is undecidable, never to
    another text; and from three cues on, each is decided (measured: all are, from one cue)."""
    for i in range(len(lines) - size + 1):
        text = srt_text(cues_of(lines[i : i + size]))
        d = charset.decode(text.encode(encoding))
        assert d.text in (text, None), (encoding, i, size, d.encoding, d.how)
        if size >= 3:
            assert d.text == text and d.encoding == encoding, (i, size, d.how)


def test_declared_encoding_is_used_when_it_decodes() -> None:
    data = srt_text(cues_of(SHORT_SIMPLIFIED)).encode("gb18030")
    d = charset.decode(data, declared="GB18030")
    assert (d.text, d.encoding, d.how) == (data.decode("gb18030"), "gb18030", "declared in the sidecar (gb18030)")
    d = charset.decode(data, declared="big5")  # the person's word beats detection, even when short
    assert d.encoding == "big5" and d.how == "declared in the sidecar (big5)"


def test_a_declared_encoding_that_does_not_fit_is_not_used() -> None:
    data = GB_SRT.encode("gb18030")
    d = charset.decode(data, declared="gbk")  # GBK stops at 䶮
    assert d.encoding == "gb18030" and d.text == GB_SRT
    assert d.how.startswith("the sidecar declares gbk, but it does not decode as gbk")
    d = charset.decode(data, declared="Zhang Sanfeng")  # not a codec: said so, never quoted
    assert d.encoding == "gb18030" and "Zhang" not in d.how and "not one Python knows" in d.how
    d = charset.decode(data, declared="rot13")
    assert d.encoding == "gb18030" and "not a text encoding" in d.how


def test_a_mark_beats_the_sidecar() -> None:
    d = charset.decode(encode(GB_SRT, "utf-16-le", bom=True), declared="gb18030")
    assert (d.text, d.encoding) == (GB_SRT, "utf-16")


def test_broken_utf8_is_not_guessed_into_mojibake() -> None:
    """UTF-8 Chinese with one byte lost is no longer UTF-8, and no legacy codec reads it."""
    data = bytearray(GB_SRT.encode("utf-8"))
    del data[40]
    d = charset.decode(bytes(data))
    assert d.text is None and d.encoding is None


KOREAN = (
    "오늘은 비가 와요.",
    "내일 역에서 만나요.",
    "하루 종일 너를 기다렸어.",
    "정말 고마워, 잘 가.",
    "학교 앞에서 다시 만나자.",
)
JAPANESE = (
    "今日は雨が降っています。",
    "明日は晴れるでしょう、たぶん。",
    "駅まで迎えに行きますね。",
    "ありがとう、またね。",
)


@pytest.mark.parametrize(("lines", "encoding"), [(KOREAN, "euc_kr"), (JAPANESE, "shift_jis"), (JAPANESE, "euc_jp")])
def test_encodings_outside_the_candidates_are_undecidable(lines: tuple[str, ...], encoding: str) -> None:
    """GB18030 decodes EUC-KR and Shift-JIS bytes without error, but as a mess (2.5-20%: above
    `CLEAN`); so every file of one cue to all of them is undecidable, never read as Chinese."""
    for size in (1, 2, len(lines)):
        for i in range(len(lines) - size + 1):
            data = srt_text(cues_of(lines[i : i + size])).encode(encoding)
            d = charset.decode(data)
            assert d.text is None, (encoding, i, size, d.how)
    messy = charset.decode(srt_text(cues_of(JAPANESE)).encode("shift_jis"))
    assert "no encoding reads it as clean text" in messy.how and messy.candidates == ("gb18030",)


def test_bytes_no_candidate_decodes() -> None:
    d = charset.decode(bytes(range(256)) * 4)
    assert d.text is None and d.candidates == ()
    assert "it does not decode as any of gb18030, big5, cp1252" in d.how


def test_a_mark_with_broken_text_after_it_is_undecidable() -> None:
    d = charset.decode(b"\xff\xfe" + "好".encode("utf-16-le") + b"\x00\xd8")  # a lone surrogate
    assert d.text is None and d.candidates == ("utf-16",) and d.how.startswith("byte-order mark (UTF-16LE), but")
