"""Normalization to an FFV1 level 3 / Matroska preservation master, and the proof that it is
lossless: the framemd5 of every video and audio stream of the master must equal the source's.
Runs ffmpeg via tools.run; writes only the master file it is asked for (through a temporary name).

Only uncompressed or lossless-intended sources qualify. Lossy sources (H.264, HEVC, ProRes, ...)
are never normalised: re-encoding them losslessly only multiplies their size (Archivematica
switched that off after 30x blow-ups) and cannot add anything that is not already there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preserve import tools
from preserve.config import NormalizationSettings
from preserve.fixity import framemd5
from preserve.tools import ffmpeg
from preserve.tools.ffprobe import ProbeReport
from preserve.tools.mediainfo import MediaInfoReport

#: uncompressed video codecs (as ffprobe names them)
UNCOMPRESSED_VIDEO = frozenset(
    {
        "rawvideo",
        "v210",
        "v410",
        "v308",
        "v408",
        "r210",
        "r10k",
        "yuv4",
        "ayuv",
        "y41p",
        "012v",
        "bitpacked",
        "avrp",
        "avui",
    }
)
#: lossless codecs that are not our master format, or FFV1 below version 3
LOSSLESS_VIDEO = frozenset({"huffyuv", "ffvhuff", "utvideo", "magicyuv", "ffv1"})
#: subtitle codecs Matroska can carry by stream copy
MKV_SUBTITLES = frozenset({"subrip", "ass", "ssa", "hdmv_pgs_subtitle", "dvd_subtitle", "webvtt", "dvb_subtitle"})
#: PCM codecs FLAC encodes without loss (integer, at most 24 bits)
_FLAC_SAFE_PCM = frozenset({"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_u8", "pcm_s8"})


@dataclass(frozen=True)
class Decision:
    normalise: bool
    reason: str


def _ffv1_version(info: MediaInfoReport | None) -> str:
    for track in info.tracks if info is not None else []:
        if track.get("@type") == "Video" and track.get("Format") == "FFV1":
            return str(track.get("Format_Version", "")).removeprefix("Version ").strip()
    return ""


def decide(probe: ProbeReport, info: MediaInfoReport | None, settings: NormalizationSettings) -> Decision:
    """Whether a file gets a preservation master (pure). FFV1 needs MediaInfo to tell its version:
    ffprobe does not report it."""
    if settings.policy == "never":
        return Decision(False, "normalization policy is 'never'")
    if not probe.has_video:
        return Decision(False, "no video stream")
    codecs = [str(s.get("codec_name") or "") for s in probe.video_streams]
    lossy = [c for c in codecs if c not in UNCOMPRESSED_VIDEO | LOSSLESS_VIDEO]
    if lossy:
        return Decision(False, f"lossy source ({', '.join(sorted(set(lossy)))}): kept as it is, never re-encoded")
    if all(c == "ffv1" for c in codecs):
        version = _ffv1_version(info)
        if version.startswith("3"):
            return Decision(False, f"already FFV1 version {version}")
        if not version:
            return Decision(False, "FFV1 of unknown version (MediaInfo did not say): left as it is")
        return Decision(True, f"FFV1 version {version} (below level 3)")
    return Decision(
        True,
        f"{'uncompressed' if set(codecs) & UNCOMPRESSED_VIDEO else 'lossless'} "
        f"source ({', '.join(sorted(set(codecs)))})",
    )


def _audio_args(n: int, stream: dict[str, Any], settings: NormalizationSettings) -> list[str]:
    """FLAC for integer PCM of up to 24 bits (with its bit depth kept: no forced 16-bit), a copy
    of everything else (float PCM, 32-bit PCM, and any compressed audio, which must not be
    re-encoded)."""
    codec = str(stream.get("codec_name") or "")
    if settings.audio == "flac" and codec in _FLAC_SAFE_PCM:
        return [f"-c:a:{n}", "flac", f"-compression_level:a:{n}", "8"]
    return [f"-c:a:{n}", "copy"]


def master_argv(src: Path, dst: Path, probe: ProbeReport, settings: NormalizationSettings) -> list[str]:
    """ffmpeg arguments (pure) for the master: every video stream FFV1 version 3 with per-slice
    CRCs and GOP 1, every audio stream mapped (by absolute index), subtitles Matroska can hold
    copied; no pixel or sample format is forced, so the encoder keeps the source's."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", tools.media_path(src)]
    for s in probe.video_streams:
        argv += ["-map", f"0:{int(s['index'])}"]
    for s in probe.audio_streams:
        argv += ["-map", f"0:{int(s['index'])}"]
    subs = [s for s in probe.subtitle_streams if s.get("codec_name") in MKV_SUBTITLES]
    for s in subs:
        argv += ["-map", f"0:{int(s['index'])}"]
    argv += ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1", "-slices", str(settings.slices)]
    for n, s in enumerate(probe.audio_streams):
        argv += _audio_args(n, s, settings)
    if subs:
        argv += ["-c:s", "copy"]
    argv += ["-max_muxing_queue_size", "4096", "-f", "matroska", tools.media_path(dst)]
    return argv


def left_out(probe: ProbeReport) -> list[str]:
    """Streams the master does not carry (they stay in the original, which is always kept)."""
    out = [
        f"stream {s.get('index')} ({s.get('codec_type')} {s.get('codec_name') or s.get('codec_tag_string', '')})"
        for s in probe.data_streams
    ]
    out += [
        f"stream {s.get('index')} (subtitle {s.get('codec_name')})"
        for s in probe.subtitle_streams
        if s.get("codec_name") not in MKV_SUBTITLES
    ]
    out += [f"stream {s.get('index')} (attached picture)" for s in probe.attached_pictures]
    return out


def make_master(
    src: Path, dst: Path, probe: ProbeReport, settings: NormalizationSettings, *, timeout: float | None = 6 * 3600
) -> Path:
    """Encode the master to ``dst`` (replaced atomically). Raises ToolError."""
    with ffmpeg.output(dst) as tmp:
        tools.run(master_argv(src, tmp, probe, settings), timeout=timeout)
    return Path(dst)


@dataclass(frozen=True)
class LosslessProof:
    lossless: bool
    comparison: framemd5.Comparison
    detail: str


def prove_lossless(
    source: framemd5.Manifest,
    source_probe: ProbeReport,
    master: Path,
    master_probe: ProbeReport,
    *,
    timeout: float | None = 6 * 3600,
    scratch: Path | None = None,
) -> LosslessProof:
    """Compare the source's framemd5 (every video and audio stream, audio at full precision)
    with the master's, decoded into the source's own pixel and sample formats. Equal manifests
    mean every source frame and sample can be rebuilt bit-exactly from the master. A master whose
    decoder produces another layout (uyvy422 repacked as yuv422p) is converted back, which can
    never restore information the master lacks."""
    pix_fmt, sample_fmts = framemd5.decoded_formats(source_probe)
    if len(master_probe.audio_streams) != len(source_probe.audio_streams) or len(master_probe.video_streams) != len(
        source_probe.video_streams
    ):
        comparison = framemd5.Comparison(
            problems=[
                f"the master has {len(master_probe.video_streams)} video / {len(master_probe.audio_streams)} audio "
                f"streams, the source {len(source_probe.video_streams)} / {len(source_probe.audio_streams)}"
            ]
        )
        return LosslessProof(False, comparison, comparison.summary())
    forced = pix_fmt if master_probe.pix_fmt != pix_fmt else None
    audio_forced = {n: f for n, f in sample_fmts.items() if master_probe.audio_streams[n].get("sample_fmt") != f}
    theirs = framemd5.manifest(
        master, master_probe, pix_fmt=forced, sample_fmts=audio_forced or None, timeout=timeout, scratch=scratch
    )
    comparison = framemd5.compare(source, theirs)
    notes = []
    if forced:
        notes.append(f"master decoded as {master_probe.pix_fmt}, compared as the source's {pix_fmt}")
    if audio_forced:
        notes.append(
            "audio compared in the source's sample formats "
            + ", ".join(f"#{n}={f}" for n, f in sorted(audio_forced.items()))
        )
    verdict = "lossless on every stream" if comparison.identical else "NOT lossless"
    detail = f"{verdict}: {comparison.summary()}" + (f" ({'; '.join(notes)})" if notes else "")
    return LosslessProof(comparison.identical, comparison, detail)
