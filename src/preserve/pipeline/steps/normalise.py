"""Step 4, normalise: FFV1 level 3 / Matroska preservation masters beside the originals, under the
normalization policy, each kept only when proved lossless. Side effects: runs ffmpeg, ffprobe,
MediaInfo and MediaConch; writes masters into the staging bag's data/objects/."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.characterise import normalise as normalization
from preserve.core.errors import PreserveError
from preserve.core.model import EventType, Outcome, PayloadFile
from preserve.fixity import framemd5
from preserve.fixity.digest import digest_file
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.describe import Described, identify_format
from preserve.pipeline.steps.receive import Staged
from preserve.pipeline.steps.validate import framemd5_path
from preserve.tools import ffprobe, mediaconch, mediainfo


@dataclass(frozen=True)
class Masters:
    """The preservation masters kept: their payload files, the original each was made from, their
    probes and PRONOM formats (keyed by the master's payload path)."""

    files: tuple[PayloadFile, ...] = ()
    master_of: Mapping[str, str] = field(default_factory=dict)  # master path -> original path
    probes: Mapping[str, ffprobe.ProbeReport] = field(default_factory=dict)
    formats: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # path -> (format name, PUID)


def normalise(ctx: IngestContext, staged: Staged, described: Described) -> Masters:
    """Preservation masters under the normalization policy: an uncompressed or lossless-intended
    video gets an FFV1 level 3 / Matroska master beside its original (which is always kept), kept
    only if framemd5 proves it lossless on every video and audio stream and it passes the shipped
    MediaConch policy. Every decision is an event; a master that fails is not kept, and says why."""
    settings, timeout = ctx.settings, ctx.settings.ingest.tool_timeout_seconds
    ffmpeg_agent = tools.agent("ffmpeg")
    taken = {f.path for f in staged.files}
    masters: list[PayloadFile] = []
    master_of: dict[str, str] = {}
    probes: dict[str, ffprobe.ProbeReport] = {}
    formats: dict[str, tuple[str, str]] = {}
    for f in staged.files:
        probe = described.probes.get(f.path)
        if probe is None or not probe.has_video:
            continue
        decision = normalization.decide(probe, described.infos.get(f.path), settings.normalization)
        if not decision.normalise:
            ctx.log.record(
                EventType.NORMALIZATION,
                Outcome.NOT_PERFORMED,
                tools.preserve_agent(),
                f"no preservation master: {decision.reason} (policy {settings.normalization.policy})",
                subject=f.path,
            )
            continue
        rel = f"{f.path}.ffv1.mkv"
        n = 2
        while rel in taken:
            rel, n = f"{f.path}.{n}.ffv1.mkv", n + 1
        work = ctx.work_dir / "normalise"
        work.mkdir(exist_ok=True)
        made = work / "master.mkv"
        why_not = ""
        proof: normalization.LosslessProof | None = None
        try:
            normalization.make_master(staged.path_of(f.path), made, probe, settings.normalization, timeout=timeout)
            master_probe = ffprobe.probe(made, timeout=min(timeout, 600))
            source_manifest = _source_manifest(ctx, staged, f.path, probe, work, timeout)
            proof = normalization.prove_lossless(
                source_manifest, probe, made, master_probe, timeout=timeout, scratch=work / "master.framemd5"
            )
            if not proof.lossless:
                why_not = proof.detail
            else:
                policy = mediaconch.check_policy(made, timeout=timeout)
                ctx.log.record(
                    EventType.VALIDATION,
                    Outcome.PASS if policy.ok else Outcome.FAIL,
                    mediaconch.agent(),
                    policy.describe(),
                    subject=rel,
                )
                if not policy.ok:
                    why_not = f"the master fails the preservation-master policy: {'; '.join(policy.failures[:5])}"
        except PreserveError as exc:
            why_not, proof = f"the master could not be made or checked: {exc}", None
        if why_not:
            made.unlink(missing_ok=True)
            ctx.log.record(
                EventType.NORMALIZATION,
                Outcome.FAIL,
                ffmpeg_agent,
                f"FFV1/Matroska master NOT kept: {why_not}; the original is preserved as it is",
                subject=f.path,
            )
            continue
        digests = digest_file(made)
        (ctx.bag_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(made, ctx.bag_dir / rel)
        masters.append(PayloadFile(path=rel, digests=digests, role=f.role))
        master_of[rel] = f.path
        taken.add(rel)
        probes[rel] = master_probe
        skipped = normalization.left_out(probe)
        ctx.log.record(
            EventType.NORMALIZATION,
            Outcome.PASS,
            ffmpeg_agent,
            f"FFV1 level 3 / Matroska master {rel} ({decision.reason}; -slicecrc 1, GOP 1, every audio track "
            f"at its own bit depth); {proof.detail if proof else ''}"
            + (f"; not carried (kept in the original): {', '.join(skipped)}" if skipped else ""),
            subject=f.path,
            master=rel,
        )
        ctx.log.record(
            EventType.MESSAGE_DIGEST_CALCULATION,
            Outcome.PASS,
            tools.preserve_agent(),
            f"sha256={digests.sha256} size={digests.size}",
            subject=rel,
        )
        formats[rel] = identify_format(ctx, rel, ctx.bag_dir / rel, mediainfo.extract(ctx.bag_dir / rel), master_probe)
    return Masters(files=tuple(masters), master_of=master_of, probes=probes, formats=formats)


def _source_manifest(
    ctx: IngestContext, staged: Staged, path: str, probe: ffprobe.ProbeReport, work: Path, timeout: float
) -> framemd5.Manifest:
    """The original's framemd5: the sidecar `validate` wrote, or a fresh one."""
    written = ctx.bag_dir / framemd5_path(path)
    if written.exists():
        return framemd5.parse(written.read_text(encoding="utf-8"))
    return framemd5.manifest(staged.path_of(path), probe, timeout=timeout, scratch=work / "source.framemd5")
