"""Tiny synthetic media files for tests, made with ffmpeg's lavfi sources (testsrc2, sine); writes only the paths it is given."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: extra encoder arguments per video codec, chosen to be fast and valid
_VCODEC_ARGS: dict[str, list[str]] = {
    "libx264": ["-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "prores_aw": ["-profile:v", "2", "-pix_fmt", "yuv422p10le"],  # 5x cheaper than prores_ks
    "ffv1": ["-level", "3", "-slicecrc", "1", "-g", "1", "-slices", "4"],
    "mjpeg": ["-pix_fmt", "yuvj420p"],
}
_DEFAULT_ACODEC = {
    ".mp4": "aac",
    ".m4v": "aac",
    ".m4a": "aac",
    ".mov": "pcm_s16le",
    ".mkv": "flac",
    ".avi": "pcm_s16le",
}


def ffmpeg(args: Sequence[str]) -> None:
    """Run ffmpeg quietly; fail the test loudly with its stderr."""
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {proc.stderr}")


def make_clip(
    path: Path,
    *,
    vcodec: str = "libx264",
    size: str = "320x240",
    duration: float = 1.0,
    rate: int = 25,
    audio: bool = True,
    acodec: str | None = None,
    metadata: dict[str, str] | None = None,
    chapters: Sequence[tuple[float, float, str]] = (),
    interlaced: bool = False,
    movflags: str | None = None,
    extra_args: Sequence[str] = (),
) -> Path:
    """A test-pattern clip (with a sine tone unless ``audio=False``). ``metadata`` becomes global
    ``-metadata k=v`` tags, ``chapters`` (start s, end s, title) an ffmetadata chapter list,
    ``interlaced`` a top-field-first stream (libx264 +ildct, or field_order tt elsewhere)."""
    path = Path(path)
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={duration}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
    meta_file = None
    if chapters:
        fd, name = tempfile.mkstemp(suffix=".ffmeta", dir=path.parent)
        meta_file = Path(name)
        lines = [";FFMETADATA1"]
        for start, end, title in chapters:
            lines += [
                "[CHAPTER]",
                "TIMEBASE=1/1000",
                f"START={int(start * 1000)}",
                f"END={int(end * 1000)}",
                f"title={title}",
            ]
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        args += ["-f", "ffmetadata", "-i", str(meta_file)]
    try:
        args += ["-map", "0:v"]
        if audio:
            args += ["-map", "1:a"]
        if meta_file is not None:
            args += ["-map_chapters", str(2 if audio else 1)]
        args += ["-c:v", vcodec, *_VCODEC_ARGS.get(vcodec, [])]
        if interlaced:
            args += ["-vf", "setfield=tff"]
            args += ["-flags", "+ildct+ilme"] if vcodec == "libx264" else ["-field_order", "tt"]
        if audio:
            args += ["-c:a", acodec or _DEFAULT_ACODEC.get(path.suffix.lower(), "aac")]
        for key, value in (metadata or {}).items():
            args += ["-metadata", f"{key}={value}"]
        if movflags:
            args += ["-movflags", movflags]
        args += [*extra_args, "file:" + str(path.absolute())]
        ffmpeg(args)
    finally:
        if meta_file is not None:
            meta_file.unlink(missing_ok=True)
    return path


def make_still(path: Path, *, size: str = "64x48") -> Path:
    """One test-pattern picture; the format follows the extension (.jpg, .png, ...)."""
    ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}",
            "-frames:v",
            "1",
            "-update",
            "1",
            "file:" + str(Path(path).absolute()),
        ]
    )
    return Path(path)


def truncated_copy(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of ``src``: a transfer cut short."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def flip_byte(path: Path, offset: int | None = None) -> int:
    """Invert one byte in place (default: the middle of the file); returns its offset."""
    path = Path(path)
    offset = path.stat().st_size // 2 if offset is None else offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return offset


def corrupt_range(src: Path, dst: Path, *, at: float = 0.5, length: int = 2000) -> Path:
    """A copy of ``src`` with ``length`` bytes scrambled from ``at`` (fraction of the size):
    a damaged bitstream in the middle of an otherwise intact file."""
    data = bytearray(Path(src).read_bytes())
    start = int(len(data) * at)
    for i in range(start, min(start + length, len(data))):
        data[i] = (data[i] * 7 + 13) & 0xFF
    Path(dst).write_bytes(bytes(data))
    return Path(dst)
