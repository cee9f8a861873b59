"""framemd5 manifests: an MD5 of every decoded video frame and every block of decoded audio, per
stream, written by ffmpeg's framemd5 muxer (via tools.run), parsed and compared. Writes only the
sidecar file it is asked for.

Two pitfalls are handled on purpose:
- the framemd5 muxer encodes audio as 16-bit PCM unless told otherwise, which silently drops the
  low 8 bits of 24-bit audio; here each audio stream is hashed in its own decoded sample format
  (s32 for 24-bit), so a lossless check cannot skip audio precision;
- audio frame sizes follow the container's packets (1024 samples in a MOV, 4608 in FLAC), so the
  same samples hash differently in two containers; audio is cut into fixed blocks of
  AUDIO_BLOCK_SAMPLES before hashing, which makes manifests of different containers comparable
  and says where (to a tenth of a second at 48 kHz) an audio stream broke."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.core.errors import ToolError
from preserve.tools.ffprobe import ProbeReport

#: audio is hashed in blocks of this many samples (per channel); the last block may be shorter
AUDIO_BLOCK_SAMPLES = 4800

#: decoded sample format -> a PCM encoder that keeps every bit of it (planar is interleaved, which
#: is a lossless rearrangement); unknown formats fall back to 64-bit float, which holds any of them
_PCM_FOR_SAMPLE_FMT = {
    "u8": "pcm_u8",
    "u8p": "pcm_u8",
    "s16": "pcm_s16le",
    "s16p": "pcm_s16le",
    "s32": "pcm_s32le",
    "s32p": "pcm_s32le",
    "s64": "pcm_s64le",
    "s64p": "pcm_s64le",
    "flt": "pcm_f32le",
    "fltp": "pcm_f32le",
    "dbl": "pcm_f64le",
    "dblp": "pcm_f64le",
}


def pcm_codec_for(sample_fmt: str | None) -> str:
    return _PCM_FOR_SAMPLE_FMT.get(sample_fmt or "", "pcm_f64le")


def framemd5_argv(
    src: Path,
    dst: Path | str,
    probe: ProbeReport,
    *,
    pix_fmt: str | None = None,
    sample_fmts: dict[int, str] | None = None,
) -> list[str]:
    """ffmpeg arguments (pure) for one framemd5 manifest of every video and audio stream of
    ``src``, in one decoding pass. ``dst`` is a path or "-" for stdout. ``pix_fmt`` /
    ``sample_fmts`` (audio stream position -> sample format) force the decoded formats, used to
    compare a source with a master whose decoder produces another, equivalent layout."""
    video = list(probe.video_streams)
    audio = list(probe.audio_streams)
    if not video and not audio:
        raise ValueError("framemd5 needs at least one video or audio stream")
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", tools.media_path(src)]
    for s in video:
        argv += ["-map", f"0:{int(s['index'])}"]
    for s in audio:
        argv += ["-map", f"0:{int(s['index'])}"]
    if video:
        argv += ["-c:v", "rawvideo"]
        if pix_fmt:
            argv += ["-pix_fmt", pix_fmt]
    for n, s in enumerate(audio):
        fmt = (sample_fmts or {}).get(n) or s.get("sample_fmt")
        argv += [f"-c:a:{n}", pcm_codec_for(fmt)]
        if (sample_fmts or {}).get(n):
            argv += [f"-sample_fmt:a:{n}", str(fmt)]
    if audio:
        argv += ["-filter:a", f"asetnsamples=n={AUDIO_BLOCK_SAMPLES}:p=0"]
    argv += ["-fflags", "+bitexact", "-f", "framemd5", "-" if str(dst) == "-" else tools.media_path(Path(dst))]
    return argv


@dataclass(frozen=True)
class Manifest:
    """A parsed framemd5: per output stream, its media type and its (size, md5) list in order."""

    streams: dict[int, str]  # stream number -> "video" | "audio"
    frames: dict[int, list[tuple[int, str]]]

    def count(self, stream: int) -> int:
        return len(self.frames.get(stream, []))


def parse(text: str) -> Manifest:
    """Read a framemd5 (version 2) text (pure). Timestamps are ignored on purpose: containers
    use different time bases for the same frames."""
    streams: dict[int, str] = {}
    frames: dict[int, list[tuple[int, str]]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#media_type"):
            head, _, kind = line.partition(":")
            streams[int(head.split()[1])] = kind.strip()
            continue
        if line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6:
            continue
        frames.setdefault(int(parts[0]), []).append((int(parts[4]), parts[5]))
    return Manifest(streams=streams, frames=frames)


@dataclass(frozen=True)
class StreamComparison:
    stream: int
    kind: str
    frames: int
    identical: bool
    first_difference: int | None = None  # frame/block number
    detail: str = ""


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing two manifests stream by stream; ``identical`` only if every stream of
    both has the same number of frames with the same hashes."""

    streams: list[StreamComparison] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.problems and all(s.identical for s in self.streams)

    def summary(self) -> str:
        parts = [
            f"stream {s.stream} ({s.kind}): {s.frames} {'frames' if s.kind == 'video' else 'blocks'} "
            + ("identical" if s.identical else f"DIFFER ({s.detail})")
            for s in self.streams
        ]
        return "; ".join(self.problems + parts)


def compare(a: Manifest, b: Manifest) -> Comparison:
    """Compare a source manifest ``a`` with ``b`` (pure)."""
    problems = []
    if a.streams != b.streams:
        problems.append(f"stream layout differs: {a.streams} vs {b.streams}")
    out = []
    for n in sorted(set(a.streams) | set(b.streams)):
        fa, fb = a.frames.get(n, []), b.frames.get(n, [])
        kind = a.streams.get(n) or b.streams.get(n, "?")
        first = next((i for i, (x, y) in enumerate(zip(fa, fb, strict=False)) if x != y), None)
        if first is None and len(fa) == len(fb):
            out.append(StreamComparison(n, kind, len(fa), True))
            continue
        if first is not None:
            detail = f"first difference at {'frame' if kind == 'video' else 'block'} {first}"
        else:
            detail = f"{len(fa)} vs {len(fb)} {'frames' if kind == 'video' else 'blocks'}"
            first = min(len(fa), len(fb))
        out.append(StreamComparison(n, kind, len(fa), False, first, detail))
    if not a.streams:
        problems.append("the source manifest holds no streams")
    return Comparison(out, problems)


@dataclass(frozen=True)
class FrameMd5Result:
    path: Path | None  # the sidecar written, if any
    manifest: Manifest
    errors: list[str]


def _run(argv: list[str], timeout: float | None, stdout_to: Path | None) -> tuple[str, str]:
    result = tools.run(argv, timeout=timeout, check=False, stdout_to=stdout_to)
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise ToolError(
            f"ffmpeg framemd5 failed with status {result.returncode}: {tail}",
            argv=argv,
            returncode=result.returncode,
            stderr=result.stderr,
        )
    text = stdout_to.read_text(encoding="utf-8") if stdout_to else result.stdout.decode("utf-8")
    return text, result.stderr


def write(src: Path, dst: Path, probe: ProbeReport, *, timeout: float | None = 6 * 3600) -> FrameMd5Result:
    """Write the framemd5 sidecar of every video and audio stream of ``src`` to ``dst``.
    Raises ToolError when ffmpeg cannot produce it."""
    argv = framemd5_argv(src, "-", probe)
    text, stderr = _run(argv, timeout, Path(dst))
    return FrameMd5Result(Path(dst), parse(text), [line for line in stderr.splitlines() if line.strip()])


def manifest(
    src: Path,
    probe: ProbeReport,
    *,
    pix_fmt: str | None = None,
    sample_fmts: dict[int, str] | None = None,
    timeout: float | None = 6 * 3600,
    scratch: Path | None = None,
) -> Manifest:
    """A framemd5 manifest of ``src`` (optionally in forced decoded formats), not kept. Streams
    through ``scratch`` (a file) when given, so a long film's manifest never sits in a pipe."""
    argv = framemd5_argv(src, "-", probe, pix_fmt=pix_fmt, sample_fmts=sample_fmts)
    text, _ = _run(argv, timeout, scratch)
    return parse(text)


def decoded_formats(probe: ProbeReport) -> tuple[str | None, dict[int, str]]:
    """(pix_fmt of the first video stream, {audio position: sample_fmt}) as ffprobe reports them."""
    return probe.pix_fmt, {
        n: str(s.get("sample_fmt")) for n, s in enumerate(probe.audio_streams) if s.get("sample_fmt")
    }


def stream_summary(m: Manifest) -> str:
    """E.g. "stream 0 video 50 frames, stream 1 audio 21 blocks" (for event details)."""
    return ", ".join(
        f"stream {n} {kind} {m.count(n)} {'frames' if kind == 'video' else 'blocks'}"
        for n, kind in sorted(m.streams.items())
    )


def kinds(m: Manifest) -> Iterable[str]:
    return m.streams.values()
