"""Privacy post-check of a finished access copy (proxy or poster): ffprobe tags, MediaInfo fields, container structure and a streaming byte scan; reads the file, writes nothing."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from preserve.tools import ffprobe, mediainfo

CHUNK = 8 * 1024 * 1024
#: inside compressed payload (mdat, JPEG scan data) a pattern this short turns up by chance
#: (a 4-byte marker about once per 4 GiB); shorter patterns only count outside the payload
MIN_PAYLOAD_PATTERN = 8

_BRAND = re.compile(r"^[A-Za-z0-9 ]{0,64}$")
#: ffprobe tags an ffmpeg-made proxy may carry; each with the values it may have
ALLOWED_TAGS: dict[str, Callable[[str], bool]] = {
    "major_brand": lambda v: bool(_BRAND.match(v)),
    "minor_version": lambda v: v.isdigit(),
    "compatible_brands": lambda v: bool(_BRAND.match(v)),
    "handler_name": lambda v: v in {"", "VideoHandler", "SoundHandler"},
    "vendor_id": lambda v: v in {"[0][0][0][0]", "FFMP"},
    "language": lambda v: bool(re.fullmatch(r"[a-z]{3}", v)),
    # a bare library name, with a version unless bit-exact, and the codec for stream tags
    "encoder": lambda v: bool(re.fullmatch(r"Lav[fc][0-9.]*( [A-Za-z0-9_-]+)?", v)),
}

#: MediaInfo fields (any track, case-insensitive) that identify a place, device, person or time
MEDIAINFO_FORBIDDEN = frozenset(
    s.lower()
    for s in (
        "Title",
        "Movie",
        "Movie_More",
        "Track",
        "Album",
        "Performer",
        "Artist",
        "Director",
        "Producer",
        "Composer",
        "Publisher",
        "Copyright",
        "Comment",
        "Description",
        "Synopsis",
        "Keywords",
        "Subject",
        "Encoded_By",
        "Recorded_Date",
        "Encoded_Date",
        "Tagged_Date",
        "Mastered_Date",
        "Written_Date",
        "Recorded_Location",
        "Encoded_Location",
        "Location",
        "xyz",
        "Make",
        "Model",
        "Lyrics",
    )
)
#: names under MediaInfo's free-form ``extra`` that hint at identifying data
_EXTRA_SUSPECT = re.compile(
    r"location|xyz|gps|latitude|longitude|make|model|apple|android|camera|lens|serial|owner|"
    r"author|artist|title|comment|date|user",
    re.IGNORECASE,
)

#: byte markers of identifying metadata boxes/keys in QuickTime/MP4, JPEG (Exif, XMP, IPTC)
MARKERS: tuple[bytes, ...] = (
    b"loci",
    b"\xa9xyz",
    b"\xa9mak",
    b"\xa9mod",
    b"\xa9day",
    b"\xa9nam",
    b"\xa9ART",
    b"\xa9cmt",
    b"\xa9aut",
    b"com.apple.quicktime.",
    b"ISO6709",
    b"Exif\x00\x00",
    b"http://ns.adobe.com/xap",
    b"<x:xmpmeta",
    b"Photoshop 3.0\x00",
)

_BMFF_TOP = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"}
_BMFF_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"udta", b"edts", b"dinf"}


#: source tag names (substrings, case-insensitive) whose values identify a title, place, device or
#: person: an access copy must contain none of those values
IDENTIFYING_KEYS = (
    "title",
    "location",
    "xyz",
    "make",
    "model",
    "artist",
    "author",
    "comment",
    "description",
    "copyright",
    "serial",
    "iso6709",
    "com.apple.quicktime.location.iso6709",
    "com.apple.quicktime.make",
    "com.apple.quicktime.model",
    "com.apple.quicktime.author",
)
#: shorter values turn up by chance in compressed data and in ordinary words
MIN_FORBIDDEN_LENGTH = 4


def identifying_tags(raw: dict[str, Any]) -> list[str]:
    """Values of the source's identifying tags (ffprobe JSON): the proxy must not contain any of them."""
    values: list[str] = []
    tag_sets = [raw.get("format", {}).get("tags", {})] + [s.get("tags", {}) for s in raw.get("streams", [])]
    for tags in tag_sets:
        for k, v in (tags or {}).items():
            if any(key in k.lower() for key in IDENTIFYING_KEYS) and isinstance(v, str):
                values.append(v.strip())
    return values


def forbidden_values(described: Iterable[str], source_probe: dict[str, Any]) -> list[str]:
    """What no access copy of a film may contain: its descriptive values (title, original title,
    directors) and the identifying tags of its source, each long enough to be searched for."""
    return [v for v in (*described, *identifying_tags(source_probe)) if v and len(v) >= MIN_FORBIDDEN_LENGTH]


@dataclass(frozen=True)
class LeakReport:
    """What the privacy check found; empty means clean. Findings name the field or marker but
    never repeat the value (it may be the very secret)."""

    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


#: report fields that hold the checked file's own name, not its content
_NAME_FIELDS = frozenset(
    {"filename", "CompleteName", "FileName", "FileNameExtension", "FolderName", "FileExtension", "@ref"}
)


def _strings(tree: Any) -> Iterable[str]:
    """Every string value in a JSON-like tree, except the file's own name."""
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            if key not in _NAME_FIELDS:
                yield from _strings(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _strings(value)


def _value_findings(tool: str, strings: Iterable[str], values: list[str]) -> list[str]:
    hits = {n for s in strings for n, v in enumerate(values, 1) if v in s}
    return [f"{tool}: reports forbidden value #{n}" for n in sorted(hits)]


# -- (a) ffprobe -------------------------------------------------------------------------------
def _tag_findings(where: str, tags: dict[str, Any]) -> list[str]:
    out = []
    for key, value in (tags or {}).items():
        check = ALLOWED_TAGS.get(str(key))
        if check is None or not check(str(value)):
            out.append(f"ffprobe: {where} tag {key!r}")
    return out


def _ffprobe_findings(path: Path, values: list[str]) -> list[str]:
    report = ffprobe.probe(path)
    if not report.readable:
        return [f"ffprobe: cannot read the file ({report.error})"]
    found = _tag_findings("format", report.tags)
    found += _value_findings("ffprobe", _strings(report.raw), values)
    for stream in report.raw.get("streams") or []:
        where = f"stream {stream.get('index')}"
        found += _tag_findings(where, stream.get("tags") or {})
        ctype = stream.get("codec_type")
        if ctype in ("data", "attachment", "subtitle"):
            found.append(f"ffprobe: {where} is a {ctype} stream")
        if (stream.get("disposition") or {}).get("attached_pic"):
            found.append(f"ffprobe: {where} is an attached picture")
    if report.chapters:
        found.append(f"ffprobe: {len(report.chapters)} chapter(s)")
    return found


# -- (b) MediaInfo -----------------------------------------------------------------------------
def _mediainfo_findings(path: Path, values: list[str]) -> list[str]:
    report = mediainfo.extract(path)
    found = _value_findings("MediaInfo", _strings(report.tracks), values)
    for track in report.tracks:
        kind = track.get("@type", "?")
        if kind == "Menu":
            found.append("MediaInfo: Menu track (chapters)")
            continue
        for key in track:
            if key.lower() in MEDIAINFO_FORBIDDEN:
                found.append(f"MediaInfo: {kind} field {key}")
        app = str(track.get("Encoded_Application", ""))
        if app and not app.startswith("Lavf"):
            found.append(f"MediaInfo: {kind} field Encoded_Application")
        extra = track.get("extra") or {}
        for key in extra if isinstance(extra, dict) else ():
            if _EXTRA_SUSPECT.search(key):
                found.append(f"MediaInfo: {kind} extra field {key}")
    return found


# -- (c) structure and bytes -------------------------------------------------------------------
def _boxes(fh: BinaryIO, start: int, end: int) -> Iterable[tuple[bytes, int, int, int]]:
    """ISO BMFF boxes in [start, end): (type, box start, payload start, box end). Stops at the
    first size that does not fit, so a damaged file cannot send the walk astray."""
    pos = start
    while pos + 8 <= end:
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        payload = pos + 8
        if size == 1:
            big = fh.read(8)
            if len(big) < 8:
                return
            size = struct.unpack(">Q", big)[0]
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < payload - pos or pos + size > end:
            return
        yield kind, pos, payload, pos + size
        pos += size


def _name(kind: bytes) -> str:
    return kind.decode("latin-1")


def _bmff_findings(fh: BinaryIO, size: int) -> tuple[list[str], list[tuple[int, int]]]:
    """Structural check of an MP4/MOV: the box types present outside ffmpeg's minimal set, the
    content of every ``udta`` (ffmpeg writes one holding only an empty or encoder-only ``ilst``),
    and tracks that are not video or sound. Returns findings and the mdat payload ranges."""
    found: list[str] = []
    payloads: list[tuple[int, int]] = []

    def udta(start: int, end: int, where: str) -> None:
        for kind, _, body, stop in _boxes(fh, start, end):
            if kind != b"meta":
                found.append(f"structure: {where}/udta/{_name(kind)} box")
                continue
            meta(body, stop, f"{where}/udta")

    def meta(body: int, stop: int, where: str) -> None:
        fh.seek(body)
        full = fh.read(8)
        inner = body + 4 if len(full) == 8 and full[4:8] != b"hdlr" else body  # MP4 full box
        for kind, _, kbody, kstop in _boxes(fh, inner, stop):
            if kind == b"hdlr":
                continue
            if kind != b"ilst":
                found.append(f"structure: {where}/meta/{_name(kind)} box")
                continue
            for item, _, ibody, istop in _boxes(fh, kbody, kstop):
                fh.seek(ibody)
                value = fh.read(min(istop - ibody, 256))
                if item != b"\xa9too" or b"Lavf" not in value:
                    found.append(f"structure: {where}/meta/ilst item {_name(item)!r}")

    def walk(start: int, end: int, where: str) -> None:
        for kind, _, body, stop in _boxes(fh, start, end):
            here = f"{where}/{_name(kind)}" if where else _name(kind)
            if not where and kind not in _BMFF_TOP:
                found.append(f"structure: top-level {_name(kind)!r} box")
            elif kind == b"uuid":
                found.append(f"structure: {here} box")
            if kind == b"mdat":
                payloads.append((body, stop))
            elif kind == b"udta":
                udta(body, stop, where or "file")
            elif kind == b"meta":
                found.append(f"structure: {here} box")
            elif kind == b"hdlr" and where.endswith("/mdia"):
                fh.seek(body + 8)
                handler = fh.read(4)
                if handler not in (b"vide", b"soun"):
                    found.append(f"structure: track handler {_name(handler)!r}")
            elif kind in _BMFF_CONTAINERS:
                walk(body, stop, here)

    walk(0, size, "")
    return found, payloads


def _jpeg_findings(fh: BinaryIO, size: int) -> tuple[list[str], list[tuple[int, int]]]:
    """JPEG segments before the scan: only JFIF (APP0), an ICC profile (APP2) and coding tables
    are expected; Exif/XMP (APP1), IPTC (APP13), other APPn and comments are findings. The
    entropy-coded data after SOS is payload."""
    found: list[str] = []
    pos = 2
    while pos + 4 <= size:
        fh.seek(pos)
        head = fh.read(4)
        if head[0] != 0xFF:
            found.append("structure: JPEG segment chain broken")
            return found, []
        marker = head[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", head[2:4])[0]
        if marker == 0xDA:  # start of scan: the rest is image data
            return found, [(pos + 2 + length, size)]
        if marker == 0xFE:
            fh.seek(pos + 4)
            if not fh.read(max(length - 2, 0)).startswith(b"Lavc"):
                found.append("structure: JPEG comment segment")
        elif 0xE0 <= marker <= 0xEF:
            fh.seek(pos + 4)
            ident = fh.read(14)
            if not (
                (marker == 0xE0 and ident.startswith(b"JFIF\x00"))
                or (marker == 0xE2 and ident.startswith(b"ICC_PROFILE\x00"))
            ):
                found.append(f"structure: JPEG APP{marker - 0xE0} segment")
        pos += 2 + length
    return found, []


def _structure(path: Path) -> tuple[list[str], list[tuple[int, int]]]:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:3] == b"\xff\xd8\xff":
            return _jpeg_findings(fh, size)
        if head[4:8] in _BMFF_TOP:
            return _bmff_findings(fh, size)
    return [], []


def scan_bytes(path: Path, patterns: dict[bytes, str], payload: Sequence[tuple[int, int]] = ()) -> list[str]:
    """Stream the whole file once, in chunks that overlap by the longest pattern less one byte,
    and report the first offset of each pattern. Matches of short patterns inside ``payload``
    ranges (compressed data, where they occur by chance) are ignored."""
    pats = {p: label for p, label in patterns.items() if p}
    if not pats:
        return []
    overlap = max(len(p) for p in pats) - 1
    found: dict[bytes, int] = {}

    def by_chance(offset: int, length: int) -> bool:
        return length < MIN_PAYLOAD_PATTERN and any(a <= offset < b for a, b in payload)

    with open(path, "rb") as fh:
        tail, tail_at = b"", 0  # the end of the previous buffer, and its file offset
        while len(found) < len(pats):
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            buf, buf_at = tail + chunk, tail_at
            inside = any(a <= buf_at and buf_at + len(buf) <= b for a, b in payload)
            for pat in pats:
                if pat in found or (inside and len(pat) < MIN_PAYLOAD_PATTERN):
                    continue  # all of this buffer is payload: short patterns cannot count
                i = buf.find(pat)
                while i != -1:
                    if not by_chance(buf_at + i, len(pat)):
                        found[pat] = buf_at + i
                        break
                    i = buf.find(pat, i + 1)
            keep = min(overlap, len(buf))
            tail, tail_at = buf[len(buf) - keep :], buf_at + len(buf) - keep
    return [f"bytes: {pats[p]} at offset {off}" for p, off in sorted(found.items(), key=lambda x: x[1])]


def _patterns(forbidden_values: Iterable[str]) -> dict[bytes, str]:
    pats = {m: f"marker {m!r}" for m in MARKERS}
    for n, value in enumerate(forbidden_values, 1):
        value = str(value).strip()
        if not value:
            continue
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            pats.setdefault(value.encode(encoding), f"forbidden value #{n} ({encoding})")
    return pats


def check_clean(path: Path, *, forbidden_values: Iterable[str] = ()) -> LeakReport:
    """Look for identifying metadata in a finished access copy three independent ways (ffprobe,
    MediaInfo, raw bytes and box structure), plus each of ``forbidden_values`` (e.g. the source's
    title and location) in the bytes and in every value the tools report. Forbidden values should
    be distinctive (a two-letter title matches technical fields by chance); inside compressed
    media data only patterns of MIN_PAYLOAD_PATTERN bytes or more count. Raises ToolError if a
    tool cannot run; the caller turns findings into PrivacyError."""
    path = Path(path)
    values = [str(v).strip() for v in forbidden_values if str(v).strip()]
    findings = _ffprobe_findings(path, values) + _mediainfo_findings(path, values)
    structure, payload = _structure(path)
    findings += structure
    findings += scan_bytes(path, _patterns(values), payload)
    return LeakReport(findings=findings)
