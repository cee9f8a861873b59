"""Step 1, receive: scan the submission, read its sidecar, and copy every original into the staging
bag while hashing it, verifying the checksums the submitter supplied in that same read. Side
effects: reads the source (read-only) and writes the staging bag under var/staging/<AIP id>."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.catalog import content_key
from preserve.core.errors import SuppliedChecksumMismatch
from preserve.core.fs import private_dir
from preserve.core.model import Digests, EventType, Outcome, PayloadFile, Role
from preserve.intake import sidecar, supplied
from preserve.intake import submission as submissions
from preserve.packaging import bag
from preserve.pipeline.context import IngestContext


@dataclass(frozen=True)
class Staged:
    """The submission as received: its scan, its descriptive metadata, and the originals (and the
    sidecar files) as they now sit in the staging bag's ``data/objects/``."""

    submission: submissions.Submission
    metadata: sidecar.Sidecar
    files: tuple[PayloadFile, ...]
    #: payload path -> where its bytes can be read now (the staging copy, or the original in the
    #: ingest folder when the bag is built in place)
    where: Mapping[str, Path] = field(default_factory=dict)

    def path_of(self, path: str) -> Path:
        """Where the bytes of the payload file at ``path`` can be read (read-only, always)."""
        return self.where[path]

    @property
    def content_key(self) -> str:
        """Identity of the content (names and bytes): the same content gives the same key."""
        return content_key(self.files)


def stage(ctx: IngestContext) -> Staged:
    """Scan the submission (refusing links, special files and hostile names), read its sidecar,
    and copy every original into the staging bag while
    computing SHA-256 and SHA-512 in the same read. The source is opened read-only. Checksums the
    submitter supplied are verified on receipt: their algorithms are computed in that same read
    (a submitted BagIt bag is also fully validated first), and a mismatch stops the ingest here."""
    sub = submissions.scan(ctx.source)
    expected = supplied.find(sub)  # parsed and path-checked before a byte is copied
    metadata = sidecar.load(
        sub.sidecar, default_level=ctx.settings.access.default_level, rules=sidecar.Rules.of(ctx.settings.ingest)
    )
    if ctx.work_dir.exists():  # a crashed or retried attempt: redo from scratch
        shutil.rmtree(ctx.work_dir)
    private_dir(ctx.bag_dir)  # 0700, like everything of the archive's
    me = tools.preserve_agent()
    for ignored in sub.ignored:
        ctx.log.record(
            EventType.VALIDATION, Outcome.WARNING, me, f"ignored system/partial file {ignored!r}", subject=ignored
        )
    if expected.is_bag:
        bag_event, bag_valid, bag_errors = supplied.validate_bag(sub.path)
        ctx.log.add(bag_event)
        if not bag_valid:
            raise SuppliedChecksumMismatch(f"the submitted BagIt bag does not validate: {bag_errors}")
    files: list[PayloadFile] = []
    where: dict[str, Path] = {}
    ctx.meter.expect(sum(sf.size for sf in sub.files) * (1 + len(ctx.settings.targets)))
    received: dict[str, Digests] = {}
    sources: list[tuple[str, Role, bytes | None, Path]] = [
        (sf.rel, sf.role, sf.original_name_bytes, sf.path) for sf in sub.files
    ]
    for companion in sub.sidecar_files:
        rel, _ = submissions.safe_name(os.fsencode(companion.name), companion.name)
        sources.append((rel, Role.SIDECAR, None, companion))
    for rel, role, orig, src in sources:
        payload = bag.add_payload_file(
            ctx.bag_dir,
            bag.payload_path(bag.OBJECTS_DIR, *rel.split("/")),
            src,
            role,
            orig,
            extra_algorithms=expected.algorithms_for(rel),
        )
        files.append(payload)
        where[payload.path] = ctx.bag_dir / payload.path
        ctx.meter.advance(payload.size)
        received[rel] = payload.digests
        ctx.log.record(
            EventType.MESSAGE_DIGEST_CALCULATION,
            Outcome.PASS,
            me,
            f"sha256={payload.digests.sha256} size={payload.size}",
            subject=payload.path,
        )
        if orig is not None:
            ctx.log.record(
                EventType.FILENAME_CHANGE,
                Outcome.PASS,
                me,
                f"name normalised to NFC; original bytes (hex) {orig.hex()}",
                subject=payload.path,
            )
    report = supplied.verify(expected, received)
    ctx.log.add(*supplied.events(expected, report))
    supplied.raise_on_mismatch(report)
    return Staged(submission=sub, metadata=metadata, files=tuple(files), where=where)
