"""The benchmark's input data, generated once and cached under bench/data/cache/: a random file, a
1080p ProRes clip with audio, a sparse file, a folder of tiny files and two long films of a tiny
frame size (one three times the other's length). Side effects: writes
files there (each under a temporary name first, so an interrupted run never leaves a half file
that looks complete) and runs ffmpeg to make the clip and the films."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
CACHE_DIR = DATA_DIR / "cache"
GB = 1000**3
MB = 1000**2


@dataclass(frozen=True)
class Sizes:
    """How big the inputs are: the full run, or --quick for CI."""

    name: str
    random_bytes: int
    clip_seconds: int
    sparse_bytes: int
    tiny_files: int
    #: B10: the short and the long synthetic film, in seconds (the long one 3x the short one)
    film_seconds: tuple[int, int] = (3600, 3 * 3600)
    tiny_file_bytes: int = 1024

    @property
    def random_label(self) -> str:
        return f"{self.random_bytes / GB:g} GB" if self.random_bytes >= GB else f"{self.random_bytes / MB:g} MB"

    @property
    def sparse_label(self) -> str:
        return f"{self.sparse_bytes / GB:g} GB"


FULL = Sizes("full", random_bytes=2 * GB, clip_seconds=60, sparse_bytes=20 * GB, tiny_files=200)
#: CI: small enough to run in a minute or two, same rows (the sparse file stays 10x the random one,
#: the long film 3x the short one)
QUICK = Sizes(
    "quick", random_bytes=100 * MB, clip_seconds=5, sparse_bytes=1 * GB, tiny_files=20, film_seconds=(60, 180)
)


def hours(seconds: float) -> str:
    """A film's length for a label: "3 h", "60 s"."""
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"


@dataclass(frozen=True)
class Dataset:
    random_file: Path
    clip: Path
    sparse_file: Path
    tiny_folder: Path
    films: tuple[Path, Path]  # B10: short, long
    sizes: Sizes
    prepared_seconds: float  # time spent generating what was not cached yet


def _fresh(path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.partial")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    else:
        tmp.unlink(missing_ok=True)
    return tmp


def make_random_file(path: Path, size: int) -> Path:
    """Incompressible bytes (os.urandom), so no layer can cheat by compressing or deduplicating."""
    if path.is_file() and path.stat().st_size == size:
        return path
    tmp = _fresh(path)
    chunk = 8 << 20
    with open(tmp, "wb") as out:
        left = size
        while left:
            n = min(chunk, left)
            out.write(os.urandom(n))
            left -= n
    os.replace(tmp, path)
    return path


def make_clip(path: Path, seconds: int) -> Path:
    """1920x1080 24 fps ProRes 422 (prores_aw, profile 2, 10 bit) with 48 kHz stereo PCM in a MOV:
    a typical camera/edit master. testsrc2 moves, so the H.264 proxy has real work to do."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    tmp = _fresh(path)
    argv = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=1920x1080:rate=24:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "prores_aw",
        "-profile:v",
        "2",
        "-pix_fmt",
        "yuv422p10le",
        "-c:a",
        "pcm_s16le",
        "-ac",
        "2",
        "-f",
        "mov",
        f"file:{tmp}",
    ]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not make the benchmark clip: {proc.stderr[-2000:]}")
    os.replace(tmp, path)
    return path


#: B10's films: tiny frames and a cheap codec, so that hours of film cost minutes, but every frame
#: and every audio sample is there to be decoded, hashed, proxied and uploaded
FILM_SIZE = "64x36"
FILM_RATE = 24


def make_long_film(path: Path, seconds: int) -> Path:
    """A MOV of ``seconds`` of 64x36 24 fps MPEG-4 Part 2 video (moving testsrc2) with 8 kHz mono
    16-bit PCM: about 65 MB per hour, mostly the sound, so its bytes grow with its length as a
    real film's do. Not a candidate for normalisation (a lossy source)."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    tmp = _fresh(path)
    argv = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={FILM_SIZE}:rate={FILM_RATE}:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=8000:duration={seconds}",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "mpeg4",
        "-q:v",
        "10",
        "-c:a",
        "pcm_s16le",
        "-ac",
        "1",
        "-f",
        "mov",
        f"file:{tmp}",
    ]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not make the benchmark's long film: {proc.stderr[-2000:]}")
    os.replace(tmp, path)
    return path


def make_sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` zero bytes that takes no disk space (a hole): only reading it costs."""
    if path.is_file() and path.stat().st_size == size:
        return path
    tmp = _fresh(path)
    with open(tmp, "wb") as out:
        out.truncate(size)
    os.replace(tmp, path)
    return path


def make_tiny_folder(path: Path, count: int, size: int) -> Path:
    """One submission folder of ``count`` small text documents (distinct contents)."""
    if path.is_dir() and len(list(path.iterdir())) == count:
        return path
    if path.exists():
        shutil.rmtree(path)
    tmp = _fresh(path)
    tmp.mkdir(parents=True)
    for i in range(count):
        line = f"note {i:04d}: " + os.urandom(size).hex()
        (tmp / f"note-{i:04d}.txt").write_text(line[:size] + "\n", encoding="ascii")
    os.replace(tmp, path)
    return path


def prepare(sizes: Sizes, cache: Path = CACHE_DIR) -> Dataset:
    """Everything the benchmark reads, generated once per size and reused afterwards."""
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tag = sizes.name
    random_file = make_random_file(cache / f"random-{sizes.random_bytes}.bin", sizes.random_bytes)
    clip = make_clip(cache / f"prores-1080p-{sizes.clip_seconds}s.mov", sizes.clip_seconds)
    sparse = make_sparse_file(cache / f"sparse-{sizes.sparse_bytes}.bin", sizes.sparse_bytes)
    tiny = make_tiny_folder(cache / f"tiny-{sizes.tiny_files}-{tag}", sizes.tiny_files, sizes.tiny_file_bytes)
    short, long = (make_long_film(cache / f"film-{FILM_SIZE}-{s}s.mov", s) for s in sizes.film_seconds)
    return Dataset(random_file, clip, sparse, tiny, (short, long), sizes, time.monotonic() - started)
