"""Subtitle files and text subtitle streams made into UTF-8 WebVTT access tracks, scrubbed of
everything but timings and cue text, and the privacy post-check of a finished track. Side
effects: `convert_file` reads the subtitle file (never writes it) and writes the track through a
temporary name beside ``dst``; `convert_stream` runs ffmpeg (`preserve.tools.run`) into a
temporary file beside ``dst``, removed afterwards, then does the same; `check_track` and
`read_cues` read a track.

How a source becomes a track:

- its bytes are decoded by `preserve.access.charset` (a byte-order mark, the sidecar's encoding,
  strict UTF-8, then charset-normalizer); an undecidable encoding makes no track;
- newlines are normalised to LF and the text parsed by its content ("WEBVTT", "[Script Info]") or
  its suffix: SubRip and SubStation (ASS/SSA) by pysubs2, WebVTT by webvtt-py (pysubs2 reads WebVTT
  as SubRip with dots, and would put NOTE blocks and cue identifiers into the cue text);
- only timings and cue text are kept. Cue text keeps ``<b>``, ``<i>``, ``<u>`` and nothing else
  (ASS ``\\N`` is a line break, ``\\n`` one only in wrap style 2 and a space otherwise, ``\\h`` a
  no-break space; every other override tag, inline comment and drawing is dropped); headers,
  styles, fonts, comments, ASS ``Comment:`` events and Name (actor) and Effect fields, WebVTT
  NOTE, STYLE and REGION blocks, header text, cue identifiers and settings, and voice spans
  (``<v Name>``) are dropped, and what was dropped is recorded by name, never by value
  (`TrackFinding.dropped`);
- the track is written by hand (``&``, ``<``, ``>`` escaped), read back with webvtt-py, and must
  give the same cues, to the millisecond, with the same text; then `check_track` must find
  nothing, with the dropped values that could name a person (ASS ``Original Script`` and the
  other credit fields, comments, WebVTT header text) among the forbidden ones, so a translator's
  name that is also in the cue text withholds the track. Name fields and voice speakers are
  dropped but not searched for: they name characters, whom the dialogue names too.

The cue text is kept as written: what a viewer reads is the decoded text without its markup
(empty and blank lines dropped, as a blank line would end a WebVTT cue); no Unicode
normalisation. A cue that ends before it starts is never shown and is dropped (and counted)."""

from __future__ import annotations

import html
import os
import re
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pysubs2
import webvtt
from pysubs2.time import TIMESTAMP as SRT_TIMESTAMP
from webvtt.errors import MalformedCaptionError, MalformedFileError

from preserve import tools
from preserve.access import charset
from preserve.access.presentation import UNDETERMINED, TextTrack, TrackFinding, TrackOutcome, normal_language
from preserve.core.fs import atomic_target

SUBTITLE_SUFFIXES: tuple[str, ...] = (".srt", ".ass", ".ssa", ".vtt")
#: subtitle codecs whose subtitles are pictures: recorded, never converted (that needs OCR)
BITMAP_CODECS: frozenset[str] = frozenset({"hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle", "xsub"})
#: subtitle codecs read out of a container and converted
TEXT_CODECS: frozenset[str] = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})
#: how each text codec leaves the container: (ffmpeg's -c:s, muxer). Copied where a muxer takes
#: the packets as they are, so the bytes reach `charset.decode` raw; transcoded by ffmpeg otherwise
EXTRACTION: dict[str, tuple[str, str]] = {
    "subrip": ("copy", "srt"),
    "srt": ("copy", "srt"),
    "ass": ("copy", "ass"),
    "ssa": ("copy", "ass"),
    "webvtt": ("copy", "webvtt"),
    "mov_text": ("srt", "srt"),
    "text": ("srt", "srt"),
}
FORMAT_NAMES = {"srt": "SubRip", "ass": "Advanced SubStation Alpha", "ssa": "SubStation Alpha", "vtt": "WebVTT"}
_MUXER_FORMAT = {"srt": "srt", "ass": "ass", "webvtt": "vtt"}

# -- languages -----------------------------------------------------------------------------------
#: ISO 639-2 codes (bibliographic and terminology) of the languages this archive meets, to the
#: two-letter code BCP 47 prefers
ISO639_2: dict[str, str] = {
    "chi": "zh", "zho": "zh", "eng": "en", "fre": "fr", "fra": "fr", "ger": "de", "deu": "de",
    "jpn": "ja", "kor": "ko", "spa": "es", "rus": "ru", "tib": "bo", "bod": "bo", "uig": "ug",
    "ita": "it", "por": "pt", "dut": "nl", "nld": "nl", "ara": "ar", "hin": "hi", "tha": "th",
    "vie": "vi", "ind": "id", "may": "ms", "msa": "ms", "mon": "mn", "kaz": "kk", "kir": "ky",
    "tur": "tr", "pol": "pl", "cze": "cs", "ces": "cs", "swe": "sv", "dan": "da", "nor": "no",
    "nob": "nb", "fin": "fi", "heb": "he", "per": "fa", "fas": "fa", "gre": "el", "ell": "el",
    "hun": "hu", "ukr": "uk", "rum": "ro", "ron": "ro", "zha": "za", "iii": "ii", "bur": "my", "mya": "my",
}  # fmt: skip
#: Chinese languages with no two-letter code, kept as they are
THREE_LETTER = frozenset({"yue", "cmn", "nan", "hak", "wuu", "hsn", "gan"})
#: what a file name may say instead of a tag (the fansub convention for simplified / traditional)
NAME_ALIASES = {"chs": "zh-Hans", "cht": "zh-Hant"}
#: words after the language in a file name that say something else ("film.en.forced.srt")
NAME_FLAGS = frozenset({"forced", "sdh", "cc", "default"})
KNOWN_LANGUAGES = frozenset(ISO639_2.values()) | THREE_LETTER
#: stream tags that say no language
NO_LANGUAGE = frozenset({"und", "mis", "mul", "zxx", ""})

LABELS: dict[str, str] = {
    "en": "English", "zh": "中文", "zh-Hans": "中文（简体）", "zh-Hant": "中文（繁體）",
    "yue": "粵語", "cmn": "普通话", "nan": "閩南語", "hak": "客家話", "wuu": "吴语", "hsn": "湘语", "gan": "赣语",
    "fr": "Français", "de": "Deutsch", "ja": "日本語", "ko": "한국어", "es": "Español", "ru": "Русский",
    "bo": "བོད་སྐད་", "ug": "ئۇيغۇرچە", "it": "Italiano", "pt": "Português", "nl": "Nederlands",
    "ar": "العربية", "hi": "हिन्दी", "th": "ไทย", "vi": "Tiếng Việt", "id": "Bahasa Indonesia",
    "ms": "Bahasa Melayu", "mn": "Монгол", "kk": "Қазақ тілі", "ky": "Кыргызча", "tr": "Türkçe",
    "pl": "Polski", "cs": "Čeština", "sv": "Svenska", "da": "Dansk", "no": "Norsk", "nb": "Norsk bokmål",
    "fi": "Suomi", "he": "עברית", "fa": "فارسی", "el": "Ελληνικά", "hu": "Magyar", "uk": "Українська",
    "ro": "Română", "za": "Vahcuengh", "ii": "ꆈꌠꉙ", "my": "မြန်မာ",
}  # fmt: skip
_SIMPLIFIED_REGIONS = frozenset({"CN", "SG", "MY"})
_TRADITIONAL_REGIONS = frozenset({"TW", "HK", "MO"})


def is_subtitle_file(name: str) -> bool:
    """Whether a file's name says it is a subtitle file we convert (by its suffix, any case)."""
    return name.lower().endswith(SUBTITLE_SUFFIXES)


def _known_tag(word: str) -> str | None:
    """``word`` as a BCP 47 tag when its language is one this archive knows (ISO 639-2 codes
    mapped to two letters: "chi" -> "zh", "ENG" -> "en", "zh-hant" -> "zh-Hant"); None for
    anything else, "und" included."""
    alias = NAME_ALIASES.get(word.strip().lower())
    if alias is not None:
        return alias
    parts = word.strip().replace("_", "-").split("-")
    parts[0] = ISO639_2.get(parts[0].lower(), parts[0])  # "chi" -> "zh" first: 639-2 is no BCP 47 primary here
    tag = normal_language("-".join(parts))
    if tag is None or tag.partition("-")[0] not in KNOWN_LANGUAGES:
        return None
    return tag


def language_from_name(name: str) -> str | None:
    """The language a subtitle file's name gives after its base name: "film.en.srt" -> "en",
    "film.zh-Hans.srt" -> "zh-Hans", "Film.ZH-HANT.ass" -> "zh-Hant", "film.chi.srt" -> "zh",
    "film.chs.srt" -> "zh-Hans", "film.en.forced.srt" -> "en"; None when it gives none
    ("film.srt", "my.film.srt": a word that is not a known language code is no language)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    parts = stem.split(".")
    while len(parts) > 2 and parts[-1].lower() in NAME_FLAGS:
        parts.pop()
    if len(parts) < 2:
        return None
    return _known_tag(parts[-1])


def language_of_stream(stream: dict[str, Any]) -> str | None:
    """The language an ffprobe stream's ``tags.language`` gives, as BCP 47 ("chi" -> "zh",
    "eng" -> "en"); None when untagged or "und". A code this module does not map is kept as
    the tag it is (a stream's tag is a language code by definition, unlike a word in a name)."""
    tags = stream.get("tags")
    if not isinstance(tags, dict):
        return None
    value = next((v for k, v in tags.items() if isinstance(k, str) and k.lower() == "language"), None)
    if not isinstance(value, str) or value.strip().lower() in NO_LANGUAGE:
        return None
    return _known_tag(value) or normal_language(value)


def label_of(language: str) -> str:
    """The name of a track's language as a viewer reads it: "English", "中文（简体）" for zh-Hans
    (and zh-CN), "中文（繁體）" for zh-Hant (and zh-TW, zh-HK), "中文" for zh, "粵語" for yue;
    "Subtitles" for an undetermined (or empty) language; the tag itself for one it does not know."""
    tag = normal_language(language)
    if tag == UNDETERMINED or not language.strip():
        return "Subtitles"
    if tag is None:
        return language
    if tag in LABELS:
        return LABELS[tag]
    primary, _, rest = tag.partition("-")
    subtags = set(rest.split("-")) if rest else set()
    if primary == "zh":
        script = next((s for s in subtags if len(s) == 4), None)
        if script == "Hans" or (script is None and subtags & _SIMPLIFIED_REGIONS):
            return LABELS["zh-Hans"]
        if script == "Hant" or (script is None and subtags & _TRADITIONAL_REGIONS):
            return LABELS["zh-Hant"]
    if primary in LABELS:
        return f"{LABELS[primary]} ({rest})"
    return tag


# -- the cues ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Span:
    """A run of cue text with one styling."""

    text: str
    bold: bool = False
    italic: bool = False
    underline: bool = False

    @property
    def style(self) -> tuple[bool, bool, bool]:
        return (self.bold, self.italic, self.underline)


Line = tuple[_Span, ...]


@dataclass(frozen=True)
class _Cue:
    start: int  # ms
    end: int  # ms
    lines: tuple[Line, ...]

    @property
    def plain(self) -> str:
        """The text a viewer reads: the lines without their markup."""
        return "\n".join("".join(s.text for s in line) for line in self.lines)


@dataclass
class _Notes:
    """What parsing dropped: names with counts (0: not counted), and the dropped values that
    could name a person, with what they were (for the post-check's findings)."""

    dropped: dict[str, int] = field(default_factory=dict)
    hidden: list[tuple[str, str]] = field(default_factory=list)

    def count(self, name: str, n: int = 1) -> None:
        if n > 0:
            self.dropped[name] = self.dropped.get(name, 0) + n

    def flag(self, name: str) -> None:
        self.dropped.setdefault(name, 0)

    def hide(self, what: str, value: str) -> None:
        """A dropped value the track must not contain. Values of one character or with no letter
        ("A", "男", "2") are too common to say anything of a person and are not searched for."""
        v = value.strip()
        if len(v) >= 2 and any(ch.isalpha() for ch in v) and (what, v) not in self.hidden:
            self.hidden.append((what, v))

    def names(self) -> tuple[str, ...]:
        return tuple(f"{k} ({n})" if n else k for k, n in self.dropped.items())


@dataclass
class _Parsed:
    cues: list[_Cue]
    notes: _Notes
    #: cue blocks the parser could not read (their text would be lost)
    lost: int = 0


class _Unreadable(Exception):
    """The source cannot be read as the format it is; the message names no value."""


class _Withheld(Exception):
    """The finished track failed its checks; ``problems`` name them, never a value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _tidy(lines: Sequence[Sequence[_Span]]) -> tuple[Line, ...]:
    """Lines without empty spans, adjacent spans of one styling merged, and without the empty and
    blank lines (a blank line would end a WebVTT cue, and shows nothing)."""
    out: list[Line] = []
    for line in lines:
        merged: list[_Span] = []
        for span in line:
            if not span.text:
                continue
            if merged and merged[-1].style == span.style:
                merged[-1] = _Span(merged[-1].text + span.text, *span.style)
            else:
                merged.append(span)
        if "".join(s.text for s in merged).strip():
            out.append(tuple(merged))
    return tuple(out)


# -- SubRip --------------------------------------------------------------------------------------
#: appended before pysubs2 reads a SubRip text, and removed after: pysubs2 drops a last line of
#: digits from every cue (taking it for the next cue's number), so a last cue ending "1989" would
#: lose it; with this cue after it, no real cue is the last
_SENTINEL_MS = 99 * 3_600_000 + 59 * 60_000 + 59_000
_SRT_SENTINEL = "\n\n0\n99:59:59,000 --> 99:59:59,999\n.\n"
#: markup in SubRip cue text: an HTML-like tag (the pattern pysubs2 strips) or an ASS-style code
_SRT_MARKUP = re.compile(r"<\s*(/?)\s*([a-zA-Z]+)(\s[^>]*)?\s*>|\{\\[^}]*\}")
#: SubRip tags dropped with the text inside kept; any other <word> is kept as text, as written
_SRT_DROPPED_TAGS = frozenset({"font", "s", "strike", "span"})


#: a line that starts the way a SubRip timing line does, readable or not ("00:00:03 --> ...")
_TIMING_LIKE = re.compile(r"\s*\d+:\d+(?::\d+)?(?:[,.:]\d+)?\s*-->")


def _parse_srt(text: str) -> _Parsed:
    notes = _Notes()
    _srt_preamble(text, notes)
    try:
        subs = pysubs2.SSAFile.from_string(text + _SRT_SENTINEL, format_="srt", keep_html_tags=True)
    except (ValueError, IndexError, KeyError, pysubs2.Pysubs2Error) as exc:
        raise _Unreadable("it could not be read as SubRip") from exc
    events = list(subs.events)
    if not events or events[-1].start != _SENTINEL_MS:
        raise _Unreadable("it could not be read as SubRip")
    # a block whose timing pysubs2 cannot read is folded into the cue before it (its number and
    # timing published as that cue's text, its own timing lost): every line that looks like a
    # timing must have become a cue, or the file is not converted
    timings = sum(1 for line in text.split("\n") if _TIMING_LIKE.match(line))
    if timings > len(events) - 1:
        raise _Unreadable(
            f"{timings - (len(events) - 1)} of its cue blocks have a timing line that cannot be read "
            "(HH:MM:SS,mmm --> HH:MM:SS,mmm): converting it would lose their text or their timing"
        )
    cues = [_Cue(e.start, e.end, _srt_lines(e.text, notes)) for e in events[:-1]]
    return _Parsed(cues, notes)


def _hide_credit(notes: _Notes, what: str, line: str) -> None:
    """A free-text line that may credit someone ("Subtitles: Wang Xiaoming", "翻译：王小明"): the
    line, and what follows its first colon, must not be in the track."""
    notes.hide(what, line)
    for colon in (":", "："):
        if colon in line:
            notes.hide(what, line.split(colon, 1)[1])
            break


def _srt_preamble(text: str, notes: _Notes) -> None:
    """Text before the first cue (a credit line, a title) is not a cue: dropped, and searched for."""
    for line in text.split("\n"):
        if len(SRT_TIMESTAMP.findall(line)) == 2:
            return
        s = line.strip()
        if s and not s.isdigit():
            notes.count("SubRip lines before the first cue")
            _hide_credit(notes, "SubRip text before the first cue", s)


def _srt_lines(text: str, notes: _Notes) -> tuple[Line, ...]:
    """A pysubs2 SubRip event's text (lines joined by ``\\N``, tags as written) as styled lines."""
    style = {"b": False, "i": False, "u": False}
    lines: list[list[_Span]] = []
    for raw in text.split("\\N"):
        spans: list[_Span] = []
        pos = 0
        for m in _SRT_MARKUP.finditer(raw):
            spans.append(_Span(raw[pos : m.start()], style["b"], style["i"], style["u"]))
            pos = m.end()
            name = (m.group(2) or "").lower()
            if m.group(0).startswith("{"):
                notes.count("SubRip {\\...} codes")
            elif name in style and not (m.group(3) or "").strip():
                style[name] = not m.group(1)
            elif name in _SRT_DROPPED_TAGS:
                notes.count("SubRip <font> and other formatting tags", 0 if m.group(1) else 1)
            else:  # not markup SubRip players know: text, as written
                spans.append(_Span(m.group(0), style["b"], style["i"], style["u"]))
        spans.append(_Span(raw[pos:], style["b"], style["i"], style["u"]))
        lines.append(spans)
    return _tidy(lines)


# -- SubStation Alpha (ASS / SSA) ----------------------------------------------------------------
#: the [Script Info] fields that name people (the credits of a subtitle file)
ASS_PERSON_FIELDS = (
    "Original Script",
    "Original Translation",
    "Original Editing",
    "Original Timing",
    "Script Updated By",
    "Update Details",
)
ASS_NAMED_FIELDS = ("Title", *ASS_PERSON_FIELDS)
ASS_TECHNICAL_FIELDS = frozenset(
    k.lower()
    for k in (
        "ScriptType", "PlayResX", "PlayResY", "PlayDepth", "WrapStyle", "ScaledBorderAndShadow", "YCbCr Matrix",
        "Collisions", "Timer", "Synch Point", "LayoutResX", "LayoutResY", "Kerning", "Language",
    )
)  # fmt: skip
_ASS_SECTIONS = frozenset(
    {"script info", "v4+ styles", "v4 styles", "v4 styles+", "events", "fonts", "graphics", "aegisub project garbage"}
)
_ASS_HEADING = re.compile(r"\[([^\]]+)\]")
_ASS_BLOCK = re.compile(r"\{([^}]*)\}")
_ASS_ESCAPES = re.compile(r"(\\[Nnh])")
_ASS_TAG = re.compile(r"([biupq])(\d*)")


def _parse_ass(text: str, fmt: str) -> _Parsed:
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=fmt)
    except (ValueError, IndexError, KeyError, pysubs2.Pysubs2Error) as exc:
        raise _Unreadable(f"it could not be parsed as {FORMAT_NAMES[fmt]}") from exc
    notes = _Notes()
    _ass_headers(text, subs, notes)
    wrap2 = subs.info.get("WrapStyle", "").strip() == "2"
    cues: list[_Cue] = []
    for event in subs.events:
        if event.is_comment:
            notes.count("ASS Comment events")
            continue
        if event.name.strip():
            # dropped, never searched for: a Name field mostly names a character, who is
            # addressed by name in the dialogue the track must keep as written
            notes.count("ASS event Name fields")
        if event.effect.strip():
            notes.count("ASS event Effect fields")
        reader = _AssReader(wrap2, notes)
        lines = reader.read(event.text)
        if not lines and reader.drew:
            notes.count("ASS drawing events")
            continue
        cues.append(_Cue(event.start, event.end, lines))
    return _Parsed(cues, notes)


def _ass_headers(text: str, subs: pysubs2.SSAFile, notes: _Notes) -> None:
    """Record (by name) everything of the file but its events, and hide the credit fields' values."""
    named = {k.lower(): k for k in ASS_NAMED_FIELDS}
    persons = {k.lower() for k in ASS_PERSON_FIELDS}
    for key, value in subs.info.items():
        k = key.strip().lower()
        if k in named:
            notes.flag(f"ASS Script Info: {named[k]}")
            if k in persons:
                notes.hide(f"ASS Script Info {named[k]}", value)
        elif k in ASS_TECHNICAL_FIELDS:
            notes.count("ASS Script Info: technical fields")
        else:
            notes.count("ASS Script Info: other fields")
            notes.hide("ASS Script Info fields", value)
    notes.count("ASS styles", len(subs.styles))
    notes.count("ASS embedded fonts", len(subs.fonts_opaque))
    notes.count("ASS embedded pictures", len(subs.graphics_opaque))
    notes.count("ASS Aegisub project fields", len(subs.aegisub_project))
    section = ""
    for line in text.split("\n"):
        s = line.strip()
        heading = _ASS_HEADING.fullmatch(s)
        if heading:
            section = heading.group(1).strip().lower()
            if section not in _ASS_SECTIONS:
                notes.count("ASS other sections")
        elif section == "script info" and s.startswith(";"):
            notes.count("ASS Script Info comment lines")
            _hide_credit(notes, "ASS Script Info comment lines", s[1:])


class _AssReader:
    """One ASS event's text as styled lines: override blocks interpreted for bold, italic,
    underline, drawing mode (``\\p``) and wrap style (``\\q``), everything else in them dropped."""

    def __init__(self, wrap2: bool, notes: _Notes) -> None:
        self.wrap2, self.notes = wrap2, notes
        self.bold = self.italic = self.underline = self.drawing = False
        self.drew = False
        self.lines: list[list[_Span]] = [[]]

    def read(self, text: str) -> tuple[Line, ...]:
        pos = 0
        for m in _ASS_BLOCK.finditer(text):
            self._text(text[pos : m.start()])
            self._overrides(m.group(1))
            pos = m.end()
        self._text(text[pos:])
        return _tidy(self.lines)

    def _add(self, text: str) -> None:
        self.lines[-1].append(_Span(text, self.bold, self.italic, self.underline))

    def _text(self, segment: str) -> None:
        if self.drawing:
            self.drew = self.drew or bool(segment.strip())
            return
        for piece in _ASS_ESCAPES.split(segment):
            if piece == "\\N" or (piece == "\\n" and self.wrap2):
                self.lines.append([])
            elif piece == "\\n":
                self._add(" ")
            elif piece == "\\h":
                self._add("\u00a0")
            else:
                self._add(piece)

    def _overrides(self, block: str) -> None:
        comment, *tags = block.split("\\")
        if comment.strip():
            self.notes.count("ASS inline comments")
        others = 0
        for raw in tags:
            tag = raw.strip()
            m = _ASS_TAG.fullmatch(tag)
            if m is None:
                if tag.startswith("r"):
                    self.bold = self.italic = self.underline = False
                elif tag:
                    others += 1
                continue
            name, digits = m.group(1), m.group(2)
            value = int(digits) if digits else None
            if name == "b":
                self.bold = value is not None and (value == 1 or value >= 700)
            elif name == "i":
                self.italic = value == 1
            elif name == "u":
                self.underline = value == 1
            elif name == "p" and value is not None:
                self.drawing = value > 0
            elif name == "q" and value is not None:
                self.wrap2 = value == 2
            else:
                others += 1
        self.notes.count("ASS override tags other than bold, italic, underline", others)


# -- WebVTT --------------------------------------------------------------------------------------
#: a line that starts a cue as webvtt-py reads it (its lenient timestamps)
_VTT_TIMING_START = re.compile(r"\s*(?:\d+:)?\d{1,2}:\d{1,2}\.\d{1,3}\s*-->")
_VTT_TAG = re.compile(r"<([^>]*)>")
_VTT_KEPT = frozenset({"b", "i", "u"})


def _parse_vtt(text: str) -> _Parsed:
    try:
        doc = webvtt.from_string(text.lstrip("\n"))
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise _Unreadable("it could not be parsed as WebVTT") from exc
    notes = _Notes()
    if doc.header_text.strip():
        notes.flag("WebVTT header text")
        notes.hide("WebVTT header text", doc.header_text)
    notes.count("WebVTT header lines", len(doc.metadata))
    comments = len(doc.header_comments) + len(doc.footer_comments) + sum(len(c.comments) for c in doc.captions)
    notes.count("WebVTT NOTE blocks", comments)
    notes.count("WebVTT STYLE blocks", len(doc.styles))
    notes.count("WebVTT REGION blocks", len(doc.regions))
    cues: list[_Cue] = []
    for c in doc.captions:
        if c.identifier:
            notes.count("WebVTT cue identifiers")
        if str(c.settings):
            notes.count("WebVTT cue settings")
        start, end = c.start_time.in_milliseconds(), c.end_time.in_milliseconds()
        cues.append(_Cue(start, end, _vtt_lines(c.lines, notes)))
    timings = sum(1 for line in text.split("\n") if _VTT_TIMING_START.match(line))
    return _Parsed(cues, notes, lost=max(0, timings - len(doc.captions)))


def _vtt_lines(raw_lines: Sequence[str], notes: _Notes) -> tuple[Line, ...]:
    """WebVTT cue text lines as styled lines: character references decoded, b/i/u kept, voice
    spans' speakers dropped (and hidden), every other tag dropped with its text kept."""
    style = {"b": False, "i": False, "u": False}
    lines: list[list[_Span]] = []
    for raw in raw_lines:
        spans: list[_Span] = []
        pos = 0
        for m in _VTT_TAG.finditer(raw):
            spans.append(_Span(html.unescape(raw[pos : m.start()]), style["b"], style["i"], style["u"]))
            pos = m.end()
            tag = m.group(1).strip()
            closing = tag.startswith("/")
            head, _, annotation = tag.lstrip("/").partition(" ")
            name = head.split(".", 1)[0].split("\t", 1)[0].lower()
            if name in _VTT_KEPT:
                style[name] = not closing
            elif name == "v":
                if not closing:
                    notes.count("WebVTT voice spans")  # a speaker is a character, as ASS Name fields
            elif not closing:
                notes.count("WebVTT cue tags other than b, i, u")
        spans.append(_Span(html.unescape(raw[pos:]), style["b"], style["i"], style["u"]))
        lines.append(spans)
    return _tidy(lines)


# -- parsing, writing, reading back --------------------------------------------------------------
def _sniff(text: str) -> str | None:
    """The format a text's content says it is, whatever its name: None when it says nothing."""
    if re.match(r"\s*WEBVTT(?:[ \t]|\n|$)", text):
        return "vtt"
    if re.search(r"^\s*\[(?:Script Info|V4\+? Styles\+?|Events)\]", text, re.M | re.I):
        v4plus = re.search(r"^\s*\[V4\+ Styles\]", text, re.M | re.I)
        return "ssa" if re.search(r"^\s*\[V4 Styles\]", text, re.M | re.I) and not v4plus else "ass"
    return None


def _format_of(name: str) -> str | None:
    suffix = os.path.splitext(name)[1].lower()
    return {".srt": "srt", ".ass": "ass", ".ssa": "ssa", ".vtt": "vtt"}.get(suffix)


def _parse(text: str, fmt: str) -> _Parsed:
    if fmt == "vtt":
        return _parse_vtt(text)
    if fmt in ("ass", "ssa"):
        return _parse_ass(text, fmt)
    return _parse_srt(text)


def _timed(parsed: _Parsed) -> list[_Cue]:
    """The cues a viewer sees, in the order WebVTT requires (by start, then end): a negative start
    becomes 0; a cue without text or that ends before it starts is dropped, and counted."""
    cues: list[_Cue] = []
    for cue in parsed.cues:
        if not cue.lines:
            parsed.notes.count("empty cues")
            continue
        start = max(0, cue.start)
        if cue.end <= start:
            parsed.notes.count("cues that end before they start")
            continue
        cues.append(_Cue(start, cue.end, cue.lines))
    cues.sort(key=lambda c: (c.start, c.end))
    return cues


def _timestamp(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render_line(line: Line) -> str:
    out: list[str] = []
    for span in line:
        tags = [t for t, on in zip(("b", "i", "u"), span.style, strict=True) if on]
        opening = "".join(f"<{t}>" for t in tags)
        closing = "".join(f"</{t}>" for t in reversed(tags))
        out.append(f"{opening}{_escape(span.text)}{closing}")
    return "".join(out)


def _render(cues: Sequence[_Cue]) -> str:
    """The WebVTT text: the header "WEBVTT" alone, then each cue's timings and text lines."""
    out = ["WEBVTT", ""]
    for cue in cues:
        out.append(f"{_timestamp(cue.start)} --> {_timestamp(cue.end)}")
        out.extend(_render_line(line) for line in cue.lines)
        out.append("")
    return "\n".join(out)


def _read_ms(path: Path) -> list[tuple[int, int, str]]:
    doc = webvtt.read(os.fspath(path), strict=True)
    return [(c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), html.unescape(c.text)) for c in doc.captions]


def read_cues(path: Path) -> list[tuple[float, float, str]]:
    """A WebVTT file's cues as webvtt-py reads it (strictly): (start s, end s, text), the text
    without its tags and with its character references decoded. Raises webvtt-py's
    MalformedFileError / MalformedCaptionError when it is not WebVTT."""
    return [(start / 1000, end / 1000, text) for start, end, text in _read_ms(Path(path))]


def _read_back(path: Path, cues: Sequence[_Cue]) -> list[str]:
    """Findings when webvtt-py does not read ``path`` back as exactly ``cues``."""
    try:
        got = _read_ms(path)
    except (MalformedFileError, MalformedCaptionError):
        return ["webvtt-py does not read it as WebVTT"]
    want = [(c.start, c.end, c.plain) for c in cues]
    if len(got) != len(want):
        return [f"webvtt-py reads {len(got)} cues where {len(want)} were written"]
    differ = sum(1 for g, w in zip(got, want, strict=True) if g != w)
    return [f"webvtt-py reads {differ} cues with other timings or text than were written"] if differ else []


# -- the privacy post-check ----------------------------------------------------------------------
_TIMING_LINE = re.compile(r"\d{2,}:[0-5]\d:[0-5]\d\.\d{3} --> \d{2,}:[0-5]\d:[0-5]\d\.\d{3}")
_TIMING_START = re.compile(r"\s*(?:\d+:)?\d{1,2}:\d{1,2}\.\d{1,3}\s*-->")
_KEPT_TAGS = frozenset({"b", "/b", "i", "/i", "u", "/u"})
_BLOCK_KEYWORDS = (("NOTE", "a NOTE block"), ("STYLE", "a STYLE block"), ("REGION", "a REGION block"))


def _structure(text: str) -> list[str]:
    """What in a track's text is not "WEBVTT", then blocks of one timing line and cue text."""
    problems: list[str] = []
    if "\r" in text:
        problems.append("a carriage return (lines end with LF alone)")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line:
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    blocks = [b for b in blocks if b]
    if not blocks or blocks[0][0] != "WEBVTT":
        problems.append("a header line other than exactly WEBVTT")
    elif len(blocks[0]) > 1:
        problems.append("header lines after WEBVTT")
    cues = 0
    for block in blocks[1:]:
        first = block[0]
        keyword = next(
            (what for word, what in _BLOCK_KEYWORDS if first.split(" ", 1)[0].split("\t", 1)[0] == word), None
        )
        if keyword is not None:
            problems.append(keyword)
            continue
        if _TIMING_START.match(first):
            text_lines = block[1:]
            if not _TIMING_LINE.fullmatch(first):
                problems.append("a timing line with cue settings or in another form")
        elif len(block) > 1 and _TIMING_START.match(block[1]):
            problems.append("a cue identifier")
            text_lines = block[2:]
        else:
            problems.append("a line that is neither a cue timing line nor cue text")
            continue
        cues += 1
        if not text_lines:
            problems.append("a cue without text")
        for line in text_lines:
            if "-->" in line:
                problems.append("a cue text line with -->")
            if any(m.group(1) not in _KEPT_TAGS for m in _VTT_TAG.finditer(line)):
                problems.append("a cue tag other than <b>, <i>, <u>")
    if not cues:
        problems.append("no cue")
    return problems


def _comparable(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _findings(data: bytes, labelled: Sequence[tuple[str, str]]) -> list[str]:
    """The post-check of a track's bytes; ``labelled`` are the values it must not contain, each
    with what it is (which the finding names instead of the value)."""
    problems: list[str] = []
    if data.startswith(b"\xef\xbb\xbf"):
        problems.append("a byte-order mark")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append("not UTF-8")
        text = data.decode("utf-8", errors="replace")
    problems += _structure(text.removeprefix("\ufeff"))
    haystacks = (_comparable(html.unescape(text)), _comparable(text))
    for what, value in labelled:
        v = value.strip()
        if v and (any(_comparable(v) in h for h in haystacks) or v.encode("utf-8") in data):
            problems.append(f"a value of the dropped {what}" if what != "forbidden" else "a forbidden value")
    return list(dict.fromkeys(problems))


def check_track(path: Path, forbidden: Sequence[str] = ()) -> list[str]:
    """The privacy post-check of a finished WebVTT track: findings naming what is wrong, never a
    value. A track passes only when it is UTF-8 without a byte-order mark, its header line is
    exactly "WEBVTT", and every other block is one timing line (no settings) and its cue text,
    with no tag but <b>, <i>, <u> (so no NOTE, STYLE or REGION block, no cue identifier, no voice
    span), and none of the ``forbidden`` values is in it (in its bytes, or in its text, case and
    character references aside)."""
    return _findings(Path(path).read_bytes(), [("forbidden", v) for v in forbidden])


# -- conversion ----------------------------------------------------------------------------------
def _undecidable(decoded: charset.Decoded, *, stream: bool) -> str:
    if len(decoded.candidates) >= 2:
        what = f"it reads as {' and '.join(decoded.candidates)} with different text"
    elif decoded.candidates:
        what = f"it decodes only as {decoded.candidates[0]}, and not as clean text"
    else:
        what = "it is not text in UTF-8, UTF-16, GB18030, Big5 or Windows-1252"
    if stream:
        return (
            f"undecidable encoding: {what}; a stream's encoding cannot be named in the sidecar, so it stays in the "
            "preserved original only (to publish it, submit it as a subtitle file and name its encoding)"
        )
    which = f"one of {', '.join(decoded.candidates)}" if len(decoded.candidates) >= 2 else "its encoding"
    return (
        f"undecidable encoding: {what}; say which in the sidecar "
        f"(subtitles: {{<file>: {{encoding: <{which}>}}}}), then `preserve amend AIP --sidecar FILE` and "
        "`preserve set-access AIP LEVEL --remake` make the track"
    )


def _convert(
    data: bytes,
    fmt: str | None,
    dst: Path,
    *,
    source: str,
    language: str,
    language_from: str,
    declared: str | None,
    forbidden: Sequence[str],
    origin: str = "",
) -> TrackFinding:
    """The shared conversion of a subtitle file's bytes (``fmt``: what its name or muxer says)."""
    decoded = charset.decode(data, declared=declared)
    how = origin + decoded.how

    def finding(outcome: TrackOutcome, detail: str, **kw: Any) -> TrackFinding:
        return TrackFinding(
            source,
            outcome,
            detail,
            encoding=decoded.encoding,
            how=how,
            candidates=decoded.candidates,
            language_from=language_from,
            **kw,
        )

    if decoded.text is None:
        return finding(TrackOutcome.UNDECIDABLE, _undecidable(decoded, stream=bool(origin)))
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
    kind = _sniff(text) or fmt or "srt"
    try:
        parsed = _parse(text, kind)
    except _Unreadable as exc:
        return finding(TrackOutcome.UNREADABLE, f"{exc}; it stays in the preserved original")
    cues = _timed(parsed)
    dropped = parsed.notes.names()
    if parsed.lost:
        return finding(
            TrackOutcome.UNREADABLE,
            f"{parsed.lost} of its cue blocks cannot be read as {FORMAT_NAMES[kind]}, so converting it would lose "
            "their text; it stays in the preserved original (a corrected file can be sent as a new submission)",
            dropped=dropped,
        )
    if not cues:
        return finding(
            TrackOutcome.UNREADABLE,
            f"no cue with text could be read from it as {FORMAT_NAMES[kind]}; it stays in the preserved original",
            dropped=dropped,
        )
    labelled = [*parsed.notes.hidden, *(("forbidden", v) for v in forbidden)]
    dst = Path(dst)
    try:
        with atomic_target(dst) as tmp:
            tmp.write_bytes(_render(cues).encode("utf-8"))
            problems = _read_back(tmp, cues) + _findings(tmp.read_bytes(), labelled)
            if problems:
                raise _Withheld(problems)
    except _Withheld as exc:
        dst.unlink(missing_ok=True)
        return finding(
            TrackOutcome.WITHHELD,
            f"withheld, nothing offered: the track's check found {'; '.join(exc.problems)} (a name in a dropped "
            "header or field may also be in the cue text); the subtitles stay in the preserved original for a "
            "person to look at",
            dropped=dropped,
        )
    lang = normal_language(language) or UNDETERMINED
    track = TextTrack(dst, lang, label_of(lang), len(cues))
    return finding(TrackOutcome.CONVERTED, f"{len(cues)} cues converted to UTF-8 WebVTT", track=track, dropped=dropped)


def convert_file(
    path: Path,
    dst: Path,
    *,
    source: str,
    language: str,
    language_from: str,
    encoding: str | None = None,
    max_bytes: int,
    forbidden: Sequence[str] = (),
) -> TrackFinding:
    """A WebVTT access track at ``dst`` (the final path, named by the caller) from the subtitle
    file ``path`` (read, never written): ``encoding`` is what the sidecar declares, ``forbidden``
    the values no access file may contain. Nothing is written unless the outcome is CONVERTED
    (for WITHHELD ``dst`` is removed). ``source`` and ``language_from`` are recorded as given."""
    path = Path(path)
    size = path.stat().st_size
    too_big = TrackFinding(
        source,
        TrackOutcome.TOO_BIG,
        f"the file is {size:,} bytes, over [access] subtitle_max_bytes ({max_bytes:,}): a film's subtitles are a "
        "few hundred KB; raise the limit if it really is a subtitle file",
        language_from=language_from,
    )
    if size > max_bytes:
        return too_big
    with open(path, "rb") as fh:
        data = fh.read(min(size, max_bytes) + 1)  # its own size, not a 16 MiB buffer
    if len(data) > max_bytes:
        return too_big
    return _convert(
        data,
        _format_of(path.name),
        dst,
        source=source,
        language=language,
        language_from=language_from,
        declared=encoding,
        forbidden=forbidden,
    )


def _codec_of(stream: dict[str, Any]) -> str:
    """The stream's codec name as ffprobe gives it (a name from ffmpeg's table, never free text)."""
    value = stream.get("codec_name")
    return value if isinstance(value, str) and re.fullmatch(r"[a-z0-9_]{1,40}", value) else "unknown"


def extraction_argv(src: Path, index: int, codec: str, out: Path) -> list[str]:
    """ffmpeg writing subtitle stream ``index`` of ``src`` (codec ``codec``, one of
    `EXTRACTION`) alone to ``out``, with no metadata of the source (pure)."""
    encoder, muxer = EXTRACTION[codec]
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-i", tools.media_path(src),
        "-map", f"0:{index}", "-map_metadata", "-1", "-map_chapters", "-1",
        "-c:s", encoder, "-f", muxer, tools.media_path(out),
    ]  # fmt: skip


def convert_stream(
    src: Path,
    stream: dict[str, Any],
    dst: Path,
    *,
    source: str,
    language: str,
    language_from: str,
    forbidden: Sequence[str] = (),
    timeout: float | None = 600,
) -> TrackFinding:
    """A WebVTT access track at ``dst`` from subtitle stream ``stream`` (ffprobe's) of ``src``:
    a text stream is written out by ffmpeg into a temporary file beside ``dst`` (copied as it is
    where a muxer takes it, so its bytes are decoded as a file's; mov_text and raw text are
    transcoded to SubRip by ffmpeg) and converted as a file is; a bitmap stream is BITMAP and
    another codec UNREADABLE, with nothing written. Raises ToolError when ffmpeg fails."""
    codec = _codec_of(stream)
    index = stream.get("index")
    if codec in BITMAP_CODECS:
        return TrackFinding(
            source,
            TrackOutcome.BITMAP,
            f"a bitmap subtitle stream ({codec}): its subtitles are pictures of text, which only OCR could make into "
            "a text track; recorded, not converted, and kept in the preserved original",
            how=f"container stream {codec}",
            language_from=language_from,
        )
    if codec not in EXTRACTION or not isinstance(index, int) or isinstance(index, bool):
        return TrackFinding(
            source,
            TrackOutcome.UNREADABLE,
            f"a {codec} subtitle stream: not a text subtitle codec that is converted; it stays in the preserved original",
            how=f"container stream {codec}",
            language_from=language_from,
        )
    dst = Path(dst)
    encoder, muxer = EXTRACTION[codec]
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=f".extract.{muxer}", dir=dst.parent)
    os.close(fd)
    scratch = Path(name)
    try:
        tools.run(extraction_argv(src, index, codec, scratch), timeout=timeout)
        data = scratch.read_bytes()
    finally:
        scratch.unlink(missing_ok=True)
    how = "copied out by ffmpeg" if encoder == "copy" else "decoded by ffmpeg and written out as UTF-8 SubRip"
    return _convert(
        data,
        _MUXER_FORMAT[muxer],
        dst,
        source=source,
        language=language,
        language_from=language_from,
        declared=None,
        forbidden=forbidden,
        origin=f"container stream {codec}, {how}; ",
    )
