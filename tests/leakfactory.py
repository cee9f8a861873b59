"""Media that carries identifying text where cameras, broadcast recorders and colour tools really
put it, for the privacy tests: EIA-608 captions in H.264 SEI (GA94 cc_data, odd parity), an ICC
profile with free-text desc/cprt tags in the iCCP chunk of PNG frames, and headers that lie about
the duration (Matroska Duration, MP4 mvhd/tkhd/mdhd). Everything is built here byte by byte on top
of ffmpeg's test patterns; writes only the paths it is given."""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.mediafactory import ffmpeg

# -- EIA-608 captions in H.264 SEI (ATSC A/53 "GA94") ------------------------------------------------


def odd_parity(byte: int) -> int:
    """A 7-bit EIA-608 byte with its parity bit (bit 7) set so that the byte has odd parity."""
    byte &= 0x7F
    return byte | (0x80 if bin(byte).count("1") % 2 == 0 else 0)


#: EIA-608 control codes, channel 1 (each sent as a pair, and sent twice as the standard asks)
RCL, EOC, ENM = (0x14, 0x20), (0x14, 0x2F), (0x14, 0x2E)


def cea608_pairs(text: str) -> list[tuple[int, int]]:
    """The byte pairs of a pop-on caption showing ``text`` (printable ASCII): load, characters,
    display. Without parity; `cc_data` adds it."""
    pairs: list[tuple[int, int]] = [RCL, RCL, ENM, ENM]
    chars = [ord(c) for c in text if 0x20 <= ord(c) < 0x7F]
    if len(chars) % 2:
        chars.append(0)
    pairs += [(chars[i], chars[i + 1]) for i in range(0, len(chars), 2)]
    pairs += [EOC, EOC]
    return pairs


def cc_data(pairs: Sequence[tuple[int, int]]) -> bytes:
    """ATSC A/53 cc_data(): process_cc_data_flag, cc_count, em_data, then per pair a marker byte
    (cc_valid, cc_type 0 = NTSC field 1) and the two bytes with odd parity, then marker bits."""
    out = bytearray([0x40 | (len(pairs) & 0x1F), 0xFF])
    for a, b in pairs:
        out += bytes([0xFC, odd_parity(a), odd_parity(b)])
    out.append(0xFF)
    return bytes(out)


def caption_bytes(text: str) -> bytes:
    """How the first characters of ``text`` look inside cc_data (marker byte, two parity-coded
    characters, repeated): what a byte scan would have to look for, and never does."""
    pairs = cea608_pairs(text)[4:-2]
    return b"".join(bytes([0xFC, odd_parity(a), odd_parity(b)]) for a, b in pairs[:2])  # one SEI holds two


def ga94_sei_payload(pairs: Sequence[tuple[int, int]]) -> bytes:
    """user_data_registered_itu_t_t35: USA (0xB5), ATSC (0x0031), "GA94", type 3 (cc_data)."""
    return b"\xb5\x00\x31GA94\x03" + cc_data(pairs)


def _sei_number(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes([value % 255])


def _emulation_prevention(rbsp: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def sei_nal(payload_type: int, payload: bytes) -> bytes:
    """One H.264 SEI NAL unit (type 6) holding one message, with its start code."""
    rbsp = _sei_number(payload_type) + _sei_number(len(payload)) + payload + b"\x80"
    return b"\x00\x00\x00\x01\x06" + _emulation_prevention(rbsp)


def nal_units(stream: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B stream, without their start codes."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", stream)]
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(stream)
        yield stream[start:end].rstrip(b"\x00") if i + 1 < len(starts) else stream[start:end]


def with_captions(annexb: bytes, pairs_per_frame: Sequence[Sequence[tuple[int, int]]]) -> bytes:
    """An Annex B H.264 stream with a GA94 caption SEI before the first slice of every picture
    (one slice per picture), taking the caption bytes of frame N from ``pairs_per_frame[N]``
    (padding with 608 null pairs once the caption has been sent)."""
    out = bytearray()
    frame = 0
    for nal in nal_units(annexb):
        kind = nal[0] & 0x1F
        if kind in (1, 5):
            pairs = pairs_per_frame[frame] if frame < len(pairs_per_frame) else [(0x00, 0x00)]
            out += sei_nal(4, ga94_sei_payload(pairs))
            frame += 1
        out += b"\x00\x00\x00\x01" + nal
    return bytes(out)


def make_captioned_h264(path: Path, text: str, *, duration: float = 2.0, rate: int = 25, audio: bool = True) -> Path:
    """An MP4 whose H.264 video carries ``text`` as EIA-608 pop-on captions in GA94 SEI (as a
    broadcast recorder writes them), muxed with a sine tone. ffprobe reports closed_captions=1."""
    path = Path(path)
    raw = path.with_suffix(".h264")
    ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x240:rate={rate}:duration={duration}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-x264-params",
            "slices=1:threads=1",
            "-bsf:v",
            "filter_units=remove_types=6",  # x264's own SEI: only our captions remain
            "-f",
            "h264",
            "file:" + str(raw.absolute()),
        ]
    )
    pairs = cea608_pairs(text)
    # two pairs per frame, as at 29.97 fps in the US; here at our rate, which decoders accept
    per_frame = [pairs[i : i + 2] for i in range(0, len(pairs), 2)]
    raw.write_bytes(with_captions(raw.read_bytes(), per_frame))
    args = ["-framerate", str(rate), "-f", "h264", "-i", "file:" + str(raw.absolute())]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
    args += ["-map", "0:v"] + (["-map", "1:a", "-c:a", "aac"] if audio else [])
    args += ["-c:v", "copy", "file:" + str(path.absolute())]
    try:
        ffmpeg(args)
    finally:
        raw.unlink(missing_ok=True)
    return path


def caption_text(path: Path) -> str:
    """The EIA-608 caption text a decoder finds in the first video stream of ``path`` (through
    lavfi's ``movie=...[out+subcc]`` and ffmpeg's ccaption decoder, as SubRip text); '' if none."""
    name = str(Path(path).absolute()).replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")
    proc = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"movie='{name}'[out0+subcc]",
            "-map",
            "0:s?",
            "-f",
            "srt",
            "-",
        ],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout.decode("utf-8", errors="replace")


# -- ICC profiles with free text ---------------------------------------------------------------------


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _desc_tag(text: str) -> bytes:
    """ICC v2 textDescriptionType: ASCII, no Unicode, no ScriptCode."""
    ascii_ = text.encode("ascii", "replace") + b"\x00"
    return (
        b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_)) + ascii_ + b"\x00" * 8 + b"\x00\x00\x00" + b"\x00" * 67
    )


def _text_tag(text: str) -> bytes:
    return b"text\x00\x00\x00\x00" + text.encode("ascii", "replace") + b"\x00"


def icc_profile(description: str, copyright_: str, *, device_model: str = "") -> bytes:
    """A small but well-formed ICC v2 display profile whose description ('desc'), copyright ('cprt')
    and, if given, device model description ('dmdd') are the free text given."""
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _desc_tag(description)),
        (b"cprt", _text_tag(copyright_)),
        (b"wtpt", b"XYZ \x00\x00\x00\x00" + _s15(0.9642) + _s15(1.0) + _s15(0.8249)),
    ]
    if device_model:
        tags.append((b"dmdd", _desc_tag(device_model)))
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, body = bytearray(struct.pack(">I", len(tags))), bytearray()
    for sig, data in tags:
        pad = b"\x00" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data + pad
    size = 128 + len(table) + len(body)
    header = bytearray(128)
    header[0:4] = struct.pack(">I", size)
    header[8:12] = b"\x02\x10\x00\x00"
    header[12:16], header[16:20], header[20:24] = b"mntr", b"RGB ", b"XYZ "
    header[24:36] = struct.pack(">6H", 2024, 5, 4, 12, 0, 0)
    header[36:40] = b"acsp"
    header[68:80] = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    return bytes(header + table + body)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def with_iccp(png: bytes, profile: bytes, name: str = "ICC profile") -> bytes:
    """A PNG with an iCCP chunk (profile name, zlib-compressed profile) right after IHDR."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    chunk = _png_chunk(b"iCCP", name.encode("latin-1")[:79] + b"\x00\x00" + zlib.compress(profile))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def make_icc_video(
    path: Path, profile: bytes, *, profile_name: str = "ICC profile", frames: int = 25, rate: int = 25
) -> Path:
    """A PNG-coded QuickTime film whose every frame carries ``profile`` in an iCCP chunk (as a
    grading tool's PNG sequence does), with a sine tone."""
    path = Path(path)
    seq = path.parent / (path.stem + "-frames")
    seq.mkdir(exist_ok=True)
    ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x240:rate={rate}",
            "-frames:v",
            str(frames),
            "file:" + str((seq / "f%03d.png").absolute()),
        ]
    )
    for frame in sorted(seq.glob("f*.png")):
        frame.write_bytes(with_iccp(frame.read_bytes(), profile, profile_name))
    try:
        ffmpeg(
            [
                "-framerate",
                str(rate),
                "-i",
                "file:" + str((seq / "f%03d.png").absolute()),
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate=48000:duration={frames / rate}",
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:v",
                "copy",
                "-c:a",
                "pcm_s16le",
                "file:" + str(path.absolute()),
            ]
        )
    finally:
        for frame in seq.iterdir():
            frame.unlink()
        seq.rmdir()
    return path


# -- headers that lie about the duration --------------------------------------------------------------

#: 2**32 seconds: "136 years", what an all-ones 32-bit duration at a 1 Hz time scale claims
FALSE_DURATION = float(2**32)


def _ebml_size(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    value = first & ((0x80 >> (length - 1)) - 1)
    for b in data[pos + 1 : pos + length]:
        value = value << 8 | b
    return value, length


def set_matroska_duration(path: Path, seconds: float) -> None:
    """Overwrite the Segment Info Duration (EBML 0x4489, a float in TimestampScale units, ms by
    default) of a Matroska file in place, leaving every cluster as it is."""
    data = bytearray(Path(path).read_bytes())
    at = data.find(b"\x44\x89")
    if at < 0:
        raise ValueError("no Duration element")
    size, n = _ebml_size(data, at + 2)
    body = at + 2 + n
    if size == 8:
        data[body : body + 8] = struct.pack(">d", seconds * 1000.0)
    elif size == 4:
        data[body : body + 4] = struct.pack(">f", seconds * 1000.0)
    else:
        raise ValueError(f"Duration of {size} bytes")
    Path(path).write_bytes(bytes(data))


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size < 8 or pos + size > end:
            return
        yield kind, pos, pos + size
        pos += size


def set_mp4_durations(path: Path, seconds: float) -> None:
    """Overwrite the durations of an MP4's mvhd, every tkhd and every mdhd (version 0 boxes) in
    place with ``seconds`` (saturating at 2**32 - 1 ticks), leaving the sample tables as they are."""
    data = bytearray(Path(path).read_bytes())

    def patch(start: int, end: int) -> None:
        for kind, pos, stop in _boxes(bytes(data), start, end):
            body = pos + 8
            if kind in (b"moov", b"trak", b"mdia"):
                patch(body, stop)
            elif kind in (b"mvhd", b"mdhd") and data[body] == 0:
                scale = struct.unpack(">I", data[body + 12 : body + 16])[0]
                data[body + 16 : body + 20] = struct.pack(">I", min(int(seconds * scale), 2**32 - 1))
            elif kind == b"tkhd" and data[body] == 0:
                data[body + 20 : body + 24] = struct.pack(">I", 2**32 - 1)

    patch(0, len(data))
    Path(path).write_bytes(bytes(data))
