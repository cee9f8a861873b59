"""Text of unknown encoding, decoded or declared undecidable: subtitle files come from the
mainland (GB18030 / GBK / GB2312), Taiwan and Hong Kong (Big5), Windows editors (UTF-16 with or
without a byte-order mark, Windows-1252 for Western languages), and lately UTF-8. `decode` says
which codec it used and how that was decided, for the preservation event. Pure: no I/O.

The order of evidence, strongest first:

1. a byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE, GB18030's own ``84 31 95 33``);
2. the encoding the sidecar declares (a person said so), when it is a text codec that decodes
   the bytes strictly;
3. a strict UTF-8 decode (other encodings almost never give valid UTF-8 by chance);
4. UTF-16 without a mark, told by its NUL bytes (a subtitle file is full of ASCII digits);
5. the legacy candidates (GB18030, the Big5 family, Windows-1252), each decoded strictly, the
   survivors scored by charset-normalizer's mess detector (``charset_normalizer.md.mess_ratio``,
   "chaos") on the whole text; the language coherence is reported, not used to decide.

GB18030 and Big5 are both double-byte encodings over nearly the same byte ranges, so a short text
in one often decodes without error in the other, as nonsense. The least messy decoding wins only
when it reads cleanly (chaos under `CLEAN`) and every other decoding with a different text is
at least `MARGIN` messier; otherwise the text is undecidable (``text`` None) and the candidates
are given, so a person can say which in the sidecar. Mojibake is never returned silently: a file
in an encoding outside the candidates (EUC-KR, Shift-JIS) reads as a mess in each of them and is
undecidable too. (EUC-JP is the known gap: its bytes read as GB18030 with little mess, so a
Japanese EUC-JP file is told from Chinese only when Big5 reads it as well; declare it.)

The text is returned as decoded (no Unicode normalisation, newlines untouched); only a
byte-order mark is removed."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from charset_normalizer.cd import coherence_ratio
from charset_normalizer.md import mess_ratio

#: byte-order marks, longest first (UTF-32LE's mark begins with UTF-16LE's): (mark, codec, name)
BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32LE"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32BE"),
    (b"\x84\x31\x95\x33", "gb18030", "GB18030"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16LE"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16BE"),
)
#: the legacy encodings tried when the bytes are not UTF-8, one family each: the first codec of
#: a family that decodes strictly stands for it. GB18030 is a superset of GBK and GB2312 (and
#: decodes their bytes to the same text); Big5 is tried before its extensions (Microsoft's
#: cp950, Hong Kong's HKSCS) so the narrowest codec that reads the file is named.
FAMILIES: tuple[tuple[str, ...], ...] = (("gb18030",), ("big5", "cp950", "big5hkscs"), ("cp1252",))
#: the most mess a decoding may have to be taken as the text (charset-normalizer's own default,
#: 0.2, lets wrong readings through). Measured on the test fixtures (tests/subtitlefactory.py)
#: with `mess_ratio`: right readings of Chinese subtitles 0.0-1.3%, of Windows-1252 French and
#: English 0.0-12.9% (short files) and 1.5% (a whole file); wrong ones: EUC-KR Korean read as
#: GB18030 2.5-12%, Shift-JIS Japanese read as GB18030 12.5-20%, Chinese read as Windows-1252
#: 100% and more. At 5% none of the wrong readings is taken; a short Western file may stay
#: undecidable, which costs a line in the sidecar.
CLEAN = 0.05
#: how much messier every other decoding (with another text) must be for the best one to win:
#: a one-cue GB18030 file read as Big5 scores 5-23%, a Big5 file read as GB18030 80% and more, so
#: a very short GB18030 file can stay undecidable, which is the point
MARGIN = 0.1
#: UTF-16 without a mark: at least this share of the high (or low) bytes of the code units is NUL
UTF16_NUL_SHARE = 0.3


@dataclass(frozen=True)
class Decoded:
    """The text (None when undecidable), the Python codec that decoded it, how that was decided
    (one phrase for the event; it never quotes the text), and the encodings that were possible."""

    text: str | None
    encoding: str | None
    how: str
    candidates: tuple[str, ...] = ()

    @property
    def decided(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class _Reading:
    encoding: str
    text: str
    chaos: float


def decode(data: bytes, *, declared: str | None = None) -> Decoded:
    """``data`` decoded by the strongest evidence there is (see the module's docstring);
    ``declared`` is the encoding the sidecar gives for this file, if any."""
    by_bom = _by_bom(data)
    if by_bom is not None:
        return by_bom
    notes: list[str] = []
    if declared:
        by_sidecar = _by_declared(data, declared, notes)
        if by_sidecar is not None:
            return by_sidecar
    try:
        return Decoded(data.decode("utf-8"), "utf-8", _joined(notes, "strict UTF-8 decode"), ("utf-8",))
    except UnicodeDecodeError as exc:
        notes.append(f"not UTF-8 (invalid byte at offset {exc.start})")
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return Decoded(utf16.text, utf16.encoding, _joined(notes, _utf16_how(utf16)), (utf16.encoding,))
    return _by_detection(data, notes)


def _joined(notes: list[str], how: str) -> str:
    return "; ".join([*notes, how])


def _pct(chaos: float) -> str:
    """A chaos ratio as a percentage; the mess detector stops counting past 100%."""
    return f"{chaos:.1%}" if chaos < 1.0 else "100%+"


def _by_bom(data: bytes) -> Decoded | None:
    for mark, codec, name in BOMS:
        if data.startswith(mark):
            how = f"byte-order mark ({name})"
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                return Decoded(None, None, f"{how}, but the text after it is not {name} (offset {exc.start})", (codec,))
            return Decoded(text.removeprefix("\ufeff"), codec, how, (codec,))
    return None


def _by_declared(data: bytes, declared: str, notes: list[str]) -> Decoded | None:
    """The sidecar's encoding, when Python knows it as a text codec and it decodes the bytes
    strictly; otherwise None, with a note of why (never quoting an unknown name: it is a value
    of the submission)."""
    try:
        info = codecs.lookup(declared)
    except LookupError:
        notes.append("the encoding the sidecar declares is not one Python knows")
        return None
    codec = info.name
    if not getattr(info, "_is_text_encoding", True) or codec in NOT_SUBTITLE_ENCODINGS:
        notes.append("the encoding the sidecar declares is not a text encoding")
        return None
    try:
        text = data.decode(codec)
    except LookupError:
        notes.append("the encoding the sidecar declares is not a text encoding")
        return None
    except UnicodeDecodeError as exc:
        notes.append(f"the sidecar declares {codec}, but it does not decode as {codec} (offset {exc.start})")
        return None
    except (UnicodeError, ValueError):  # punycode, idna, undefined: codecs that are not for text files
        notes.append(f"the sidecar declares {codec}, which is not an encoding of text files")
        return None
    return Decoded(text.removeprefix("\ufeff"), codec, f"declared in the sidecar ({codec})", (codec,))


#: codecs Python knows that no text file is written in: what the sidecar declares is not used then
NOT_SUBTITLE_ENCODINGS = frozenset({"undefined", "punycode", "idna", "raw_unicode_escape", "unicode_escape"})


def _utf16_without_bom(data: bytes) -> _Reading | None:
    """UTF-16 with no mark, when the NULs of its ASCII characters give its byte order away and it
    decodes strictly into clean text."""
    if len(data) < 4 or len(data) % 2:
        return None
    units = len(data) // 2
    low_nuls, high_nuls = data[0::2].count(0), data[1::2].count(0)
    if high_nuls >= UTF16_NUL_SHARE * units and low_nuls < high_nuls / 4:
        codec = "utf-16-le"
    elif low_nuls >= UTF16_NUL_SHARE * units and high_nuls < low_nuls / 4:
        codec = "utf-16-be"
    else:
        return None
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None
    chaos = mess_ratio(text, maximum_threshold=1.0)
    return _Reading(codec, text, chaos) if chaos < CLEAN else None


def _utf16_how(r: _Reading) -> str:
    order = "UTF-16LE" if r.encoding.endswith("le") else "UTF-16BE"
    return f"no byte-order mark, NUL bytes in the {order} pattern and a strict {order} decode (chaos {_pct(r.chaos)})"


def _readings(data: bytes, notes: list[str]) -> list[_Reading]:
    """Each family's strict decoding, least messy first; families that do not decode are noted."""
    readings: list[_Reading] = []
    for family in FAMILIES:
        for codec in family:
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                if codec == family[-1]:
                    notes.append(f"not {' or '.join(family)} (invalid at offset {exc.start})")
                continue
            readings.append(_Reading(codec, text, mess_ratio(text, maximum_threshold=1.0)))
            break
    readings.sort(key=lambda r: r.chaos)
    distinct: list[_Reading] = []
    for r in readings:
        if all(r.text != d.text for d in distinct):
            distinct.append(r)
    return distinct


def _coherence(text: str) -> str:
    """charset-normalizer's language coherence of ``text``, for the record ("coherence Chinese 29.9%")."""
    matches = coherence_ratio(text)
    if not matches:
        return "coherence not measurable (too little text)"
    language, ratio = matches[0]
    return f"coherence {language} {ratio:.1%}"


def _by_detection(data: bytes, notes: list[str]) -> Decoded:
    readings = _readings(data, notes)
    tried = ", ".join(f[0] for f in FAMILIES)
    if not readings:
        return Decoded(None, None, _joined(notes, f"it does not decode as any of {tried}"))
    candidates = tuple(r.encoding for r in readings)
    best, others = readings[0], readings[1:]
    scores = ", ".join(f"{r.encoding} {_pct(r.chaos)}" for r in readings)
    if best.chaos >= CLEAN:
        return Decoded(
            None,
            None,
            _joined(notes, f"no encoding reads it as clean text (charset-normalizer chaos: {scores})"),
            candidates,
        )
    rivals = [r for r in others if r.chaos < best.chaos + MARGIN]
    if rivals:
        names = " and ".join(r.encoding for r in (best, *rivals))
        return Decoded(
            None,
            None,
            _joined(
                notes,
                f"it reads as {names} with different text, none clearly better (charset-normalizer chaos: {scores})",
            ),
            tuple(r.encoding for r in (best, *rivals)),
        )
    how = f"charset-normalizer: best match {best.encoding} (chaos {_pct(best.chaos)}, {_coherence(best.text)})"
    if others:
        how += "; runner-up " + ", ".join(f"{r.encoding} (chaos {_pct(r.chaos)})" for r in others)
    return Decoded(best.text, best.encoding, _joined(notes, how), candidates)
