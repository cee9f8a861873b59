"""Privacy post-check of a finished access copy (proxy, poster, contact sheet): an allow-list, not a
deny-list. Reads the file and runs ffprobe, ffmpeg (no decode, for the SEI) and ExifTool on it, and
MediaInfo in process; writes nothing.

Every metadata element that three independent tools find must be on the short allow-lists below
(technical fields: codecs, dimensions, durations, rates, brands, ffmpeg's bit-exact encoder name);
anything else is a finding and fails the copy:

- **ffprobe**: the container and stream fields, their tags (and each tag's value), stream side
  data, chapters and programs, and, after decoding the first `FRAMES_DECODED` frames, every frame's
  side data and the ``closed_captions`` flag;
- **the H.264 bitstream**, read through to its end without decoding (`tools.ffmpeg.sei_units`): it
  must hold no SEI at all, so no caption data (GA94), no encoder settings text (x264's SEI), no
  user-data SEI;
- **ExifTool** (``-ee -G1 -a -u``): every tag of every group, unknown and embedded ones included,
  ICC profiles and JPEG segments among them;
- **MediaInfo**: every field of every track (name patterns, after its ``_String``-style variants are
  folded in), and the fields it files under ``extra``;
- **the structure**: the ISO BMFF boxes or the JPEG segments, walked by hand.

A second net follows: one pass over the file's bytes with an Aho-Corasick automaton (pyahocorasick)
of every marker and forbidden value (the film's descriptive values and its source's identifying
tags, in UTF-8 and UTF-16), linear in the size of the file and in the number and length of the
patterns, which are capped (`MAX_FORBIDDEN_VALUES`, `MAX_PATTERN_BYTES`), under a time limit. The
same automaton looks for the forbidden values in every string the three tools report.

Findings name the tool and the field or marker, never the value (it may be the very secret)."""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import ahocorasick

from preserve.tools import exiftool, ffmpeg, ffprobe, mediainfo

CHUNK = 8 * 1024 * 1024
#: inside compressed payload (mdat, JPEG scan data) a pattern this short turns up by chance
#: (a 4-byte marker about once per 4 GiB); shorter patterns only count outside the payload
MIN_PAYLOAD_PATTERN = 8
#: frames of each stream decoded to look at their side data (captions, ICC profiles); the SEI scan
#: of the whole H.264 stream does not depend on this bound
FRAMES_DECODED = 100
#: the byte scan's bounds: values searched for, bytes of each pattern (a longer value is searched
#: for by its first MAX_PATTERN_BYTES bytes, still distinctive), and seconds for one file. Measured
#: here (scripts/bench_byte_scan.py): 10,000 values (30,018 patterns) scan 500 MB at 20-34 MB/s in
#: 141 MiB; 100,000 values at 4 MB/s in 654 MiB, hence the cap (more values is itself a finding)
MAX_FORBIDDEN_VALUES = 10_000
MAX_PATTERN_BYTES = 256
SCAN_SECONDS = 1800.0

Check = Callable[[Any], bool]


# -- value checks of the allow-lists -------------------------------------------------------------
_NUMBERS = re.compile(r"-?[0-9]+(\.[0-9]+)?([ :/]-?[0-9]+(\.[0-9]+)?)*")
_BINARY = re.compile(r"\(Binary data [0-9]+ bytes, use -b option to extract\)")
_BRAND = re.compile(r"[A-Za-z0-9 ]{0,64}")
_ZERO_DATE = "0000:00:00 00:00:00"


def _number(value: Any) -> bool:
    """A number, or numbers separated by spaces, colons or slashes ("1 0 0 0 1 0 0 0 1", "1:1")."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and bool(_NUMBERS.fullmatch(value))


def _binary(value: Any) -> bool:
    """ExifTool's placeholder for a binary table it did not print (sample sizes, offsets, avcC)."""
    return isinstance(value, str) and bool(_BINARY.fullmatch(value))


def _zero_date(value: Any) -> bool:
    """A date ffmpeg's bit-exact mode wrote: zero, never the time the copy was made."""
    return value in (_ZERO_DATE, 0, "0")


def _one_of(*allowed: Any) -> Check:
    return lambda value: value in allowed


def _brand(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return all(isinstance(v, str) and bool(_BRAND.fullmatch(v)) for v in values)


#: the one encoder name an access copy may carry: ffmpeg's libavcodec in bit-exact mode (no version)
_ENCODER = re.compile(r"Lav[fc][0-9.]*( [A-Za-z0-9_-]+)?")


def _encoder(value: Any) -> bool:
    return isinstance(value, str) and bool(_ENCODER.fullmatch(value))


def _anything(value: Any) -> bool:
    return True


# -- (a) ffprobe ---------------------------------------------------------------------------------
#: ffprobe tags an ffmpeg-made proxy may carry; each with the values it may have
ALLOWED_TAGS: dict[str, Check] = {
    "major_brand": _brand,
    "minor_version": lambda v: str(v).isdigit(),
    "compatible_brands": _brand,
    "handler_name": _one_of("", "VideoHandler", "SoundHandler"),
    "vendor_id": _one_of("[0][0][0][0]", "FFMP"),
    "language": lambda v: bool(re.fullmatch(r"[a-z]{3}", str(v))),
    # a bare library name, with a version unless bit-exact, and the codec for stream tags
    "encoder": _encoder,
}
#: ffprobe's own container fields (its schema: computed, not copied from the file)
FFPROBE_FORMAT_FIELDS = frozenset(
    {
        "filename",
        "nb_streams",
        "nb_programs",
        "format_name",
        "format_long_name",
        "start_time",
        "duration",
        "size",
        "bit_rate",
        "probe_score",
        "tags",
    }
)
#: ffprobe's own stream fields; ``tags`` and ``side_data_list`` are checked item by item
FFPROBE_STREAM_FIELDS = frozenset(
    {
        "index",
        "codec_name",
        "codec_long_name",
        "profile",
        "codec_type",
        "codec_tag_string",
        "codec_tag",
        "width",
        "height",
        "coded_width",
        "coded_height",
        "closed_captions",
        "film_grain",
        "has_b_frames",
        "sample_aspect_ratio",
        "display_aspect_ratio",
        "pix_fmt",
        "level",
        "color_range",
        "color_space",
        "color_transfer",
        "color_primaries",
        "chroma_location",
        "field_order",
        "refs",
        "is_avc",
        "nal_length_size",
        "id",
        "r_frame_rate",
        "avg_frame_rate",
        "time_base",
        "start_pts",
        "start_time",
        "duration_ts",
        "duration",
        "bit_rate",
        "max_bit_rate",
        "bits_per_raw_sample",
        "nb_frames",
        "extradata_size",
        "disposition",
        "tags",
        "sample_fmt",
        "sample_rate",
        "channels",
        "channel_layout",
        "bits_per_sample",
        "initial_padding",
    }
)
#: the codecs of the access copies made here: H.264 and AAC (proxy), JPEG (poster, contact sheet)
ALLOWED_CODECS = frozenset({"h264", "aac", "mjpeg"})
#: stream and frame side data allowed in an access copy: none (captions, ICC profiles, SEI, display
#: matrices and HDR data are all deleted when the copy is made)
ALLOWED_SIDE_DATA: frozenset[str] = frozenset()


def _key(key: Any) -> str:
    """A field or tag name as a finding may show it: printable ASCII, at most 48 characters (a key
    can be chosen by a sender; its value is never shown)."""
    text = re.sub(r"[^A-Za-z0-9_.:@ \[\]-]", "?", str(key))
    return text if len(text) <= 48 else text[:45] + "..."


def _tag_findings(where: str, tags: dict[str, Any]) -> list[str]:
    out = []
    for key, value in (tags or {}).items():
        check = ALLOWED_TAGS.get(str(key))
        if check is None or not check(str(value)):
            out.append(f"ffprobe: {where} tag {_key(key)!r}")
    return out


def _ffprobe_findings(path: Path, report: ffprobe.ProbeReport, search: _ValueSearch) -> list[str]:
    if not report.readable:
        return [f"ffprobe: cannot read the file ({report.error})"]
    raw = report.raw
    found = search.findings("ffprobe", _strings(raw))
    fmt = raw.get("format") or {}
    found += [f"ffprobe: format field {_key(k)!r}" for k in fmt if k not in FFPROBE_FORMAT_FIELDS]
    found += _tag_findings("format", report.tags)
    for stream in raw.get("streams") or []:
        where = f"stream {stream.get('index')}"
        found += [f"ffprobe: {where} field {_key(k)!r}" for k in stream if k not in FFPROBE_STREAM_FIELDS]
        found += _tag_findings(where, stream.get("tags") or {})
        ctype = stream.get("codec_type")
        if ctype not in ("video", "audio"):
            found.append(f"ffprobe: {where} is a {_key(ctype)} stream")
        elif stream.get("codec_name") not in ALLOWED_CODECS:
            found.append(f"ffprobe: {where} codec {_key(stream.get('codec_name'))!r} is not one access copies use")
        if (stream.get("disposition") or {}).get("attached_pic"):
            found.append(f"ffprobe: {where} is an attached picture")
        if stream.get("closed_captions"):
            found.append(f"ffprobe: {where} carries closed captions")
        for sd in stream.get("side_data_list") or []:
            kind = sd.get("side_data_type") if isinstance(sd, dict) else sd
            if kind not in ALLOWED_SIDE_DATA:
                found.append(f"ffprobe: {where} side data {_key(kind)!r}")
    if report.chapters:
        found.append(f"ffprobe: {len(report.chapters)} chapter(s)")
    if raw.get("programs"):
        found.append("ffprobe: programs")
    for stream in report.video_streams + report.image_streams + report.audio_streams:
        found += _frame_findings(path, int(stream["index"]))
    return found


def _frame_findings(path: Path, index: int) -> list[str]:
    """Decode the first frames of one stream: side data on a frame (A53 captions, an ICC profile,
    user-data SEI), or captions the decoder noticed, are findings."""
    frames = ffprobe.probe_frames(path, index, count=FRAMES_DECODED)
    if frames.error:
        return [f"ffprobe: stream {index} does not decode ({frames.error})"]
    found = []
    if frames.closed_captions:
        found.append(f"ffprobe: stream {index} carries closed captions (seen when decoding)")
    for kind in sorted(set(frames.side_data_types()) - ALLOWED_SIDE_DATA):
        found.append(f"ffprobe: stream {index} frame side data {_key(kind)!r}")
    return found


# -- (b) the H.264 bitstream ---------------------------------------------------------------------
def _sei_findings(path: Path, report: ffprobe.ProbeReport) -> list[str]:
    """Every H.264 stream of the copy, read to its end: any SEI NAL unit is a finding, named by what
    it holds (caption data, encoder settings text, other user data)."""
    found = []
    for stream in report.video_streams:
        if stream.get("codec_name") != "h264":
            continue
        index = int(stream["index"])
        sei = ffmpeg.sei_units(path, index)
        if not sei:
            continue
        kinds = []
        if b"GA94" in sei:
            kinds.append("caption data (ATSC A/53 GA94)")
        if b"x264" in sei:
            kinds.append("encoder settings text (x264)")
        found.append(f"H.264 stream {index}: {len(sei)} bytes of SEI: " + (", ".join(kinds) or "user data or other"))
    return found


# -- (c) ExifTool --------------------------------------------------------------------------------
_N, _B, _Z = _number, _binary, _zero_date
#: per ExifTool group (family 1; "Track1", "Track2" … are "Track"), the tags an access copy may
#: carry, with the values each may have; ExifTool's own System group (the local file's name,
#: folder, dates and permissions) is not about the content and is not checked
EXIFTOOL_ALLOWED: dict[str, dict[str, Check]] = {
    "File": {
        # (a proxy whose video track holds no frame is "M4A" to ExifTool)
        "FileType": _one_of("MP4", "M4A", "JPEG"),
        "FileTypeExtension": _one_of("MP4", "M4A", "JPG"),
        "MIMEType": _one_of("video/mp4", "audio/mp4", "image/jpeg"),
        **dict.fromkeys(("ImageWidth", "ImageHeight", "EncodingProcess", "BitsPerSample", "ColorComponents"), _N),
        "YCbCrSubSampling": _N,
    },
    "JFIF": dict.fromkeys(("JFIFVersion", "ResolutionUnit", "XResolution", "YResolution"), _N),
    "Composite": dict.fromkeys(("ImageSize", "Megapixels", "AvgBitrate", "Rotation", "Duration"), _N),
    "QuickTime": {
        "MajorBrand": _brand,
        "MinorVersion": lambda v: bool(re.fullmatch(r"[0-9]+(\.[0-9]+)*", str(v))),
        "CompatibleBrands": _brand,
        "CreateDate": _Z,
        "ModifyDate": _Z,
        **dict.fromkeys(
            (
                "MovieHeaderVersion",
                "TimeScale",
                "Duration",
                "PreferredRate",
                "PreferredVolume",
                "MatrixStructure",
                "PreviewTime",
                "PreviewDuration",
                "PosterTime",
                "SelectionTime",
                "SelectionDuration",
                "CurrentTime",
                "NextTrackID",
                "MediaDataSize",
                "MediaDataOffset",
            ),
            _N,
        ),
        # the empty metadata box ffmpeg writes: its handler, and no item in it
        "HandlerType": _one_of("mdir"),
        "HandlerVendorID": _one_of("appl"),
        "Free": _B,
        "MediaData": _B,
    },
    "Track": {
        **dict.fromkeys(("TrackCreateDate", "TrackModifyDate", "MediaCreateDate", "MediaModifyDate"), _Z),
        **dict.fromkeys(
            (
                "TrackHeaderVersion",
                "TrackID",
                "TrackDuration",
                "TrackLayer",
                "TrackVolume",
                "MatrixStructure",
                "ImageWidth",
                "ImageHeight",
                "MediaHeaderVersion",
                "MediaTimeScale",
                "MediaDuration",
                "GraphicsMode",
                "OpColor",
                "SourceImageWidth",
                "SourceImageHeight",
                "XResolution",
                "YResolution",
                "BitDepth",
                "PixelAspectRatio",
                "BufferSize",
                "MaxBitrate",
                "AverageBitrate",
                "VideoFrameRate",
                "Balance",
                "AudioChannels",
                "AudioBitsPerSample",
                "AudioSampleRate",
                # colour description (nclx), never an ICC profile
                "ColorPrimaries",
                "TransferCharacteristics",
                "MatrixCoefficients",
                "VideoFullRangeFlag",
            ),
            _N,
        ),
        "ColorProfiles": _one_of("nclx", "nclc"),
        # the ISO 639-2 code of an audio track (the proxy keeps each track's), as ffprobe's "language"
        "MediaLanguageCode": lambda v: bool(re.fullmatch(r"[a-z]{3}", str(v))),
        "HandlerType": _one_of("vide", "soun"),
        "HandlerDescription": _one_of("VideoHandler", "SoundHandler"),
        "CompressorID": _one_of("avc1"),
        "CompressorName": lambda v: v == "" or _encoder(v),
        "AudioFormat": _one_of("mp4a"),
        **dict.fromkeys(
            (
                "AVCConfiguration",
                "SyncSampleTable",
                "SampleToChunk",
                "SampleSizes",
                "ChunkOffset",
                "ChunkOffset64",
                "TimeToSampleTable",
                "CompositionTimeToSample",
                "CompositionToDecodeTimelineMapping",
                "SampleGroupDescription",
                "SampleToGroup",
                # boxes ExifTool has no table for (-u), known to be technical: edit list, MPEG-4
                # audio descriptor, bit rates
                "Unknown_edts",
                "Unknown_esds",
                "Unknown_btrt",
            ),
            _B,
        ),
    },
}
_TRACK_GROUP = re.compile(r"Track[0-9]+")


def _exiftool_findings(path: Path, search: _ValueSearch) -> list[str]:
    report = exiftool.describe(path)
    if not report.readable:
        return [f"ExifTool: cannot read the file ({report.error})"]
    found = [f"ExifTool: warning ({w[:120]})" for w in report.warnings]
    tags = report.content_tags()
    found += search.findings("ExifTool", _strings(tags))
    for key, value in tags.items():
        group, _, tag = key.partition(":")
        allowed = EXIFTOOL_ALLOWED.get("Track" if _TRACK_GROUP.fullmatch(group) else group, {})
        check = allowed.get(tag)
        if check is None:
            found.append(f"ExifTool: {_key(group)} tag {_key(tag)}")
        elif not check(value):
            found.append(f"ExifTool: {_key(group)} tag {_key(tag)} has a value outside the allow-list")
    return found


# -- (d) MediaInfo -------------------------------------------------------------------------------
#: MediaInfo field names an access copy may show, once `_mediainfo_base` has folded a name's
#: variants (``_String3``, ``_Info``, ``Source_``, ``Sampled_`` …) into it. Local-file fields
#: (name, folder, dates of the copy on this disk) are allowed: they describe our copy, not the film.
MEDIAINFO_FIELDS = re.compile(
    r"@type|@typeorder|Count|StreamCount|StreamKind|StreamKindID|StreamKindPos|StreamOrder|ID|Language"
    r"|(Video|Audio|Image)Count|(Video|Audio|Image)_(Format_List|Format_WithHint_List|Codec_List|Language_List)"
    r"|Audio_Channels_Total"
    r"|CompleteName|FolderName|FileName|FileExtension|FileNameExtension|File_(Modified|Created)_Date(_Local)?"
    r"|Format|Format_Commercial|Format_Extensions|Format_Profile|Format_Level|Format_Tier|Format_Compression"
    r"|Format_Settings(_[A-Za-z]+)?|Format_AdditionalFeatures|InternetMediaType|CodecID|CodecID_Compatible"
    r"|FileSize|Duration|OverallBitRate|OverallBitRate_Mode|BitRate|BitRate_Mode|FrameRate|FrameRate_Mode"
    r"|FrameCount|StreamSize|HeaderSize|DataSize|FooterSize|IsStreamable|Delay"
    r"|Width|Height|PixelAspectRatio|DisplayAspectRatio|Rotation|ColorSpace|ChromaSubsampling|BitDepth"
    r"|ScanType|ScanOrder|BitsPixel_Frame|colour_description_present|colour_range|colour_primaries"
    r"|transfer_characteristics|matrix_coefficients"
    r"|Channels|ChannelPositions|ChannelLayout|SamplesPerFrame|SamplingRate|SamplingCount|Compression_Mode"
    r"|Default|Forced|AlternateGroup"
)
#: fields MediaInfo files under ``extra`` that an access copy may show
MEDIAINFO_EXTRA = frozenset({"CodecConfigurationBox", "Source_Delay", "Source_Delay_Source"})
_MI_SUFFIX = re.compile(
    r"_(String[0-9]*|Info|Url|Source|Original|Num|Den|Proportion|Maximum|Minimum|Nominal|FirstFrame|LastFrame"
    r"|Position|Settings_Mode)$"
)
_MI_PREFIX = re.compile(r"^(Source_|Stored_|Sampled_|Original_)")
#: track kinds an access copy may have (no Text, Menu = chapters, Other = timecode or data)
MEDIAINFO_TRACKS = frozenset({"General", "Video", "Audio", "Image"})


def _mediainfo_base(name: str) -> str:
    """A MediaInfo field name without its variant suffixes and prefixes (pure)."""
    previous = None
    while previous != name:
        previous = name
        name = _MI_PREFIX.sub("", _MI_SUFFIX.sub("", name))
    return name


def _mediainfo_findings(path: Path, search: _ValueSearch) -> list[str]:
    report = mediainfo.extract(path)
    found = search.findings("MediaInfo", _strings(report.tracks))
    for track in report.tracks:
        kind = str(track.get("@type", "?"))
        if kind not in MEDIAINFO_TRACKS:
            found.append(f"MediaInfo: {_key(kind)} track" + (" (chapters)" if kind == "Menu" else ""))
            continue
        for key in track:
            if key == "extra":
                continue
            if not MEDIAINFO_FIELDS.fullmatch(_mediainfo_base(key)):
                found.append(f"MediaInfo: {kind} field {_key(key)}")
        extra = track.get("extra") or {}
        for key in extra if isinstance(extra, dict) else ("?",):
            if key not in MEDIAINFO_EXTRA:
                found.append(f"MediaInfo: {kind} extra field {_key(key)}")
    return found


# -- (e) structure ---------------------------------------------------------------------------------
_BMFF_TOP = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"}
_BMFF_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"udta", b"edts", b"dinf"}


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
    return _key(kind.decode("latin-1"))


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
    """JPEG segments before the scan: only JFIF (APP0) and coding tables are expected; an ICC
    profile (APP2: its description and copyright are free text), Exif/XMP (APP1), IPTC (APP13),
    other APPn and comments other than ffmpeg's are findings. The entropy-coded data after SOS is
    payload."""
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
            if marker == 0xE2 and ident.startswith(b"ICC_PROFILE\x00"):
                found.append("structure: JPEG APP2 segment (ICC profile)")
            elif not (marker == 0xE0 and ident.startswith(b"JFIF\x00")):
                found.append(f"structure: JPEG APP{marker - 0xE0} segment")
        pos += 2 + length
    return found, []


def _kind(path: Path) -> str:
    """ "jpeg", "bmff" or "" (not an access-copy format this check knows)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[4:8] in _BMFF_TOP:
        return "bmff"
    return ""


def _structure(path: Path) -> tuple[list[str], list[tuple[int, int]]]:
    size = path.stat().st_size
    kind = _kind(path)
    with open(path, "rb") as fh:
        if kind == "jpeg":
            return _jpeg_findings(fh, size)
        if kind == "bmff":
            return _bmff_findings(fh, size)
    return ["structure: not an MP4 or JPEG file"], []


# -- (f) the byte scan -----------------------------------------------------------------------------
#: byte markers of identifying metadata boxes/keys in QuickTime/MP4, JPEG (Exif, XMP, IPTC, ICC)
#: and of x264's settings text
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
    b"ICC_PROFILE\x00",
    b"acsp",
    b"x264 - core",
)


class _Automaton:
    """An Aho-Corasick automaton over byte strings (pyahocorasick works on str: bytes are mapped
    one to one through Latin-1). Building it is linear in the total length of the patterns; a
    search is linear in the length of the text plus the number of matches."""

    def __init__(self, patterns: Sequence[bytes]) -> None:
        self.patterns = list(patterns)
        self._auto: Any = ahocorasick.Automaton()
        for i, pat in enumerate(self.patterns):
            self._auto.add_word(pat.decode("latin-1"), i)
        if self.patterns:
            self._auto.make_automaton()

    def matches(self, data: bytes) -> Iterator[tuple[int, int]]:
        """(start offset, pattern number) of every occurrence in ``data``."""
        if not self.patterns:
            return
        for end, i in self._auto.iter(data.decode("latin-1")):
            yield end - len(self.patterns[i]) + 1, i


def scan_bytes(
    path: Path,
    patterns: dict[bytes, str],
    payload: Sequence[tuple[int, int]] = (),
    *,
    seconds: float | None = SCAN_SECONDS,
) -> list[str]:
    """Stream the whole file once through one automaton of all patterns, in chunks that overlap by
    the longest pattern less one byte, and report the first offset of each pattern. Matches of
    short patterns inside ``payload`` ranges (compressed data, where they occur by chance) are
    ignored. Patterns are cut to MAX_PATTERN_BYTES. A scan that runs past ``seconds`` stops and
    says so (a finding: the file was not fully checked)."""
    pats: dict[bytes, str] = {}
    for pat, label in patterns.items():
        if pat:
            pats.setdefault(pat[:MAX_PATTERN_BYTES], label)
    if not pats:
        return []
    automaton = _Automaton(list(pats))
    overlap = max(len(p) for p in pats) - 1
    found: dict[bytes, int] = {}
    late: list[str] = []
    deadline = None if seconds is None else time.monotonic() + seconds

    def by_chance(offset: int, length: int) -> bool:
        return length < MIN_PAYLOAD_PATTERN and any(a <= offset < b for a, b in payload)

    with open(path, "rb") as fh:
        tail, tail_at = b"", 0  # the end of the previous buffer, and its file offset
        while len(found) < len(pats):
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            buf, buf_at = tail + chunk, tail_at
            for start, i in automaton.matches(buf):
                pat = automaton.patterns[i]
                if pat not in found and not by_chance(buf_at + start, len(pat)):
                    found[pat] = buf_at + start
            keep = min(overlap, len(buf))
            tail, tail_at = buf[len(buf) - keep :], buf_at + len(buf) - keep
            if deadline is not None and time.monotonic() > deadline:
                late = [f"bytes: scan stopped after {seconds:.0f} s at offset {tail_at + keep}; the rest is unchecked"]
                break
    return [f"bytes: {pats[p]} at offset {off}" for p, off in sorted(found.items(), key=lambda x: x[1])] + late


def _patterns(forbidden_values: Sequence[str]) -> dict[bytes, str]:
    pats = {m: f"marker {m!r}" for m in MARKERS}
    for n, value in enumerate(forbidden_values, 1):
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            pats.setdefault(value.encode(encoding)[:MAX_PATTERN_BYTES], f"forbidden value #{n} ({encoding})")
    return pats


# -- (g) forbidden values in what the tools report ---------------------------------------------------
#: report fields that hold the checked file's own name, not its content
_NAME_FIELDS = frozenset(
    {"filename", "CompleteName", "FileName", "FileNameExtension", "FolderName", "FileExtension", "@ref", "SourceFile"}
)


def _strings(tree: Any) -> Iterator[str]:
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


class _ValueSearch:
    """The forbidden values, searched for in every string a tool reports, with one automaton."""

    def __init__(self, values: Sequence[str]) -> None:
        self.values = list(values)
        self._automaton = _Automaton([v.encode("utf-8") for v in self.values])

    def findings(self, tool: str, strings: Iterable[str]) -> list[str]:
        hits = {i + 1 for s in strings for _, i in self._automaton.matches(s.encode("utf-8"))}
        return [f"{tool}: reports forbidden value #{n}" for n in sorted(hits)]


# -- the check -------------------------------------------------------------------------------------
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
    directors) and the identifying tags of its source, each long enough to be searched for, each
    once, in the order first seen."""
    values = (str(v).strip() for v in (*described, *identifying_tags(source_probe)) if v)
    return list(dict.fromkeys(v for v in values if len(v) >= MIN_FORBIDDEN_LENGTH))


@dataclass(frozen=True)
class LeakReport:
    """What the privacy check found; empty means clean. Findings name the field or marker but
    never repeat the value (it may be the very secret)."""

    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def check_clean(
    path: Path, *, forbidden_values: Iterable[str] = (), seconds: float | None = SCAN_SECONDS
) -> LeakReport:
    """Check a finished access copy against the allow-lists of ffprobe (with its first frames
    decoded), ExifTool and MediaInfo, its H.264 stream for SEI, its box or segment structure, and
    its bytes for markers and ``forbidden_values`` (e.g. the source's title and location), which
    are also looked for in every value the tools report. Forbidden values should be distinctive
    (a two-letter title matches technical fields by chance); inside compressed media data only
    patterns of MIN_PAYLOAD_PATTERN bytes or more count. More than MAX_FORBIDDEN_VALUES values is
    itself a finding (the check would not be bounded). Raises ToolError if a tool cannot run; the
    caller turns findings into a decision (nothing published)."""
    path = Path(path)
    values = list(dict.fromkeys(str(v).strip() for v in forbidden_values if str(v).strip()))
    findings: list[str] = []
    if len(values) > MAX_FORBIDDEN_VALUES:
        findings.append(f"check: {len(values)} forbidden values, more than the {MAX_FORBIDDEN_VALUES} searched for")
        values = values[:MAX_FORBIDDEN_VALUES]
    search = _ValueSearch(values)
    report = ffprobe.probe(path)
    findings += _ffprobe_findings(path, report, search)
    findings += _sei_findings(path, report)
    findings += _exiftool_findings(path, search)
    findings += _mediainfo_findings(path, search)
    structure, payload = _structure(path)
    findings += structure
    findings += scan_bytes(path, _patterns(values), payload, seconds=seconds)
    return LeakReport(findings=findings)
