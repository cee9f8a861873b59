"""What the public sees of a film, as plain values: its text tracks (UTF-8 WebVTT access tracks
made from the submission's subtitles, `preserve.access.subtitles`), what was found converting
each subtitle source (its encoding and how it was decided, or why it was not converted), and the
`Presentation` of one AIP's access copies that the IIIF manifest (`preserve.access.iiif`) and the
page (`preserve.access.page`) are written from. No side effects.

Nothing here may carry what identifies the people involved: a track's ``source`` (the subtitle
file's name in the submission, a stream number) is for the preservation events only and is never
written into an access file; access files are named by their number and language
(`track_name`), never after what the submitter called them; a presentation holds people's names
(``credits``) only when the sidecar marks the credits public. What the public files may say
(`own_texts`) and what they are searched for (`forbidden_search`) are decided here, once, for
the manifest's and the page's checks."""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: a BCP 47 language tag as access tracks and IIIF use it (language, script, region; no private
#: use): "en", "zh", "zh-Hans", "zh-Hant-TW", "yue", "und" for an undetermined language
LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?")
UNDETERMINED = "und"
#: the access files of an AIP, by kind, under the names every step gives them
PROXY_NAME, POSTER_NAME, CONTACT_SHEET_NAME = "proxy.mp4", "poster.jpg", "contact-sheet.jpg"
MANIFEST_NAME, PAGE_NAME = "manifest.json", "index.html"
#: the access-copy kinds the catalog records (``AccessCopy.kind``), in publication order
KIND_PROXY, KIND_POSTER, KIND_SHEET = "proxy", "poster", "contact sheet"
KIND_TRACK, KIND_MANIFEST, KIND_PAGE = "subtitles", "manifest", "page"


#: the primary language subtags accepted: every ISO 639-1 code, and the ISO 639-2/3 codes of
#: languages without one that this archive's films are in (Chinese languages, minority
#: languages of China, a few more). A tag is published (a file name, the manifest, the page), so
#: only a known language is taken: "wu-Ming" is a name, not a language
ISO_639_1 = frozenset(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da "
    "de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz "
    "ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln "
    "lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi "
    "pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti "
    "tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu".split()
)
OTHER_LANGUAGES = frozenset(
    "yue cmn wuu nan hak hsn gan cjy cpx mnp czh cdo lzh zhx hmn iii khb fil sgn csl hks mul zxx und".split()
)
#: the script subtags accepted (Han simplified and traditional, and the scripts of the languages above)
SCRIPTS = frozenset("Hans Hant Hani Latn Cyrl Arab Tibt Mong Yiii Tavt Lana Thai Jpan Kore Hira Kana Hang".split())


def normal_language(tag: str) -> str | None:
    """``tag`` in the case BCP 47 recommends ("ZH-hans" -> "zh-Hans", "en_GB" -> "en-GB") when it
    is a tag `LANGUAGE_TAG` accepts, of a known language (`ISO_639_1`, `OTHER_LANGUAGES`) and
    script (`SCRIPTS`); None otherwise (pure)."""
    parts = tag.strip().replace("_", "-").split("-")
    if not parts or not parts[0]:
        return None
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.title() if len(part) == 4 else part.upper())
    candidate = "-".join(out)
    if not LANGUAGE_TAG.fullmatch(candidate) or (out[0] not in ISO_639_1 and out[0] not in OTHER_LANGUAGES):
        return None
    if len(out) > 1 and len(out[1]) == 4 and out[1] not in SCRIPTS:
        return None
    return candidate


def track_name(number: int, language: str) -> str:
    """The access file name of the ``number``-th text track (from 1): ``subtitles-1.zh-Hans.vtt``."""
    if number < 1:
        raise ValueError(f"track numbers start at 1, got {number}")
    lang = normal_language(language) or UNDETERMINED
    return f"subtitles-{number}.{lang}.vtt"


class TrackOutcome(str, enum.Enum):
    """What became of one subtitle source."""

    CONVERTED = "converted"  # a WebVTT access track was made
    UNDECIDABLE = "undecidable encoding"  # more than one encoding reads it: a person must say which
    BITMAP = "bitmap"  # PGS, VobSub, DVB: pictures of text, recorded and not converted
    UNREADABLE = "unreadable"  # not a subtitle format we read, or no cue in it
    TOO_BIG = "too big"  # over [access] subtitle_max_bytes
    WITHHELD = "withheld"  # made, but the privacy check found something: not offered


@dataclass(frozen=True)
class TextTrack:
    """One UTF-8 WebVTT access track, made and checked, not yet stored."""

    path: Path  # named `track_name(number, language)`
    language: str  # BCP 47, `UNDETERMINED` when nothing said
    label: str  # the language's name as a viewer reads it ("English", "中文（简体）")
    cues: int


@dataclass(frozen=True)
class TrackFinding:
    """What converting one subtitle source found, for its preservation event (never published).
    ``encoding`` is the codec the text was decoded with (None for a bitmap stream or when
    undecidable) and ``how`` says how that was decided: a byte-order mark, the sidecar, a strict
    UTF-8 decode, charset-normalizer's best match (with the runner-up when it was close), or
    ffmpeg decoding a container stream; ``candidates`` the encodings that were possible."""

    source: str  # payload path of the file, or "<film payload path>#<stream index>"
    outcome: TrackOutcome
    detail: str  # one sentence a person can act on; names no value of the file
    track: TextTrack | None = None
    encoding: str | None = None
    how: str = ""
    candidates: tuple[str, ...] = ()
    #: where the language came from: "sidecar", "file name", "stream tag", "none"
    language_from: str = "none"
    #: header fields and comments dropped from the track (their names, never their values)
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackRef:
    """A stored text track, as the manifest and the page name it."""

    name: str  # the access file name (`track_name`)
    language: str
    label: str


@dataclass(frozen=True)
class Presentation:
    """Everything the IIIF manifest and the page of one AIP are written from. ``credits`` holds
    the directors' names only when the sidecar says ``credits_public: true``; otherwise it is
    empty and no person is named anywhere."""

    aip_id: str
    title: str
    #: the proxy: its length (s) and picture size, as ffprobe reads the made proxy
    duration: float
    width: int
    height: int
    original_title: str = ""
    #: the language of the original title (BCP 47), for its label's language map
    original_language: str = "zh"
    year: int | None = None
    credits: tuple[str, ...] = ()
    #: the poster's picture size; None when there is no poster
    poster: tuple[int, int] | None = None
    contact_sheet: bool = False
    tracks: tuple[TrackRef, ...] = field(default_factory=tuple)


def fold(text: str) -> str:
    """The form strings are compared in: NFC, case-folded."""
    return unicodedata.normalize("NFC", text).casefold()


def own_texts(p: Presentation) -> frozenset[str]:
    """The presentation's own texts, which the access files may show: the AIP id, title, original
    title, year, track labels and languages, and the directors only when their credits are
    public (``p.credits`` is empty otherwise)."""
    texts = {p.aip_id, p.title, p.original_title, *p.credits}
    if p.year is not None:
        texts.add(str(p.year))
    for track in p.tracks:
        texts |= {track.label, track.language}
    return frozenset(t for t in texts if t)


def forbidden_search(forbidden: Sequence[str], p: Presentation) -> tuple[str, ...]:
    """The forbidden values to look for, folded: each non-empty one, except those that are in
    full one of the presentation's own texts (a title the caller also forbids in media files is
    still the title here). A forbidden value inside an own text is still looked for."""
    own = {fold(t) for t in own_texts(p)}
    values = (fold(v.strip()) for v in forbidden if v.strip())
    return tuple(dict.fromkeys(v for v in values if v not in own))
