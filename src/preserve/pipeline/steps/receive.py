"""Step 1, receive: scan the submission, read its sidecar, and hash every original in one read,
verifying the checksums the submitter supplied in that same read. In place (`[ingest] staging =
"in-place"`, the default) the originals are hashed where they lie and stay there: the bag is built
around them. In copy mode each is copied into the staging bag while it is hashed. Side effects:
reads the source (read-only, never changed); creates the staging bag under var/staging/<AIP id>
(in copy mode, with a copy of every original)."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.catalog import content_key
from preserve.core.errors import SourceChanged, SuppliedChecksumMismatch
from preserve.core.fs import private_dir
from preserve.core.model import Digests, EventType, Outcome, PayloadFile, Role
from preserve.fixity.digest import digest_stream
from preserve.intake import sidecar, supplied
from preserve.intake import submission as submissions
from preserve.packaging import bag
from preserve.pipeline.context import IngestContext


@dataclass(frozen=True)
class Fingerprint:
    """What the file system says of a file without reading it: a write, an append, a truncation or
    a replacement changes at least one of these (a same-size overwrite that restores the mtime does
    not: the upload's own hashing is there for that). The change time is left out on purpose: a
    chmod, chown or extended attribute set on the ingest share changes it without touching a byte,
    and must not quarantine a good film. Reading changes none of them."""

    size: int
    mtime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, st: os.stat_result) -> Fingerprint:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)

    @classmethod
    def now(cls, path: Path) -> Fingerprint | None:
        """The fingerprint of what is at ``path`` now (a link is not followed); None when nothing is."""
        try:
            return cls.of(os.lstat(path))
        except FileNotFoundError:
            return None


@dataclass(frozen=True)
class Staged:
    """The submission as received: its scan, its descriptive metadata, and the originals (and the
    sidecar files) as payload files of the bag (``data/objects/...``) with the digests of their one
    read, where their bytes are, and the fingerprint each source file had when it was read."""

    submission: submissions.Submission
    metadata: sidecar.Sidecar
    files: tuple[PayloadFile, ...]
    #: payload path -> where its bytes can be read now (the staging copy, or the original in the
    #: ingest folder when the bag is built in place)
    where: Mapping[str, Path] = field(default_factory=dict)
    #: payload path -> the source file's fingerprint when it was read (both modes)
    fingerprints: Mapping[str, Fingerprint] = field(default_factory=dict)
    #: the originals were not copied: ``where`` is the ingest folder, and the bag is built around them
    in_place: bool = False

    def path_of(self, path: str) -> Path:
        """Where the bytes of the payload file at ``path`` can be read (read-only, always)."""
        return self.where[path]

    @property
    def content_key(self) -> str:
        """Identity of the content (names and bytes): the same content gives the same key."""
        return content_key(self.files)

    def changed(self) -> list[str]:
        """The payload paths whose source file no longer has the fingerprint it had when read
        (written to, cut, replaced or gone). Only a bag built in place reads its sources again:
        in copy mode nothing after the copy depends on them, and this is always empty."""
        if not self.in_place:
            return []
        return [p for p, fp in self.fingerprints.items() if Fingerprint.now(self.where[p]) != fp]


def changed_error(paths: Sequence[str], when: str) -> SourceChanged:
    """The quarantine reason for originals that changed in the ingest folder during the ingest."""
    shown = [p.removeprefix(f"data/{bag.OBJECTS_DIR}/") for p in paths[:5]]
    names = ", ".join(shown) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    message = f"{names} changed while being ingested ({when}); nothing was stored"
    return SourceChanged(message, public=message)


def raise_if_changed(staged: Staged, when: str) -> None:
    """Raise SourceChanged if a source of a bag built in place changed since it was read."""
    if staged.in_place:
        changed = staged.changed()
        if changed:
            raise changed_error(changed, when)


def stage(ctx: IngestContext) -> Staged:
    """Scan the submission (refusing links, special files and hostile names), read its sidecar,
    and read every original once, computing SHA-256 and SHA-512 in that read: where it lies
    (in place), or while copying it into the staging bag (copy mode). The source is opened
    read-only. Checksums the submitter supplied are verified on receipt: their algorithms are
    computed in that same read (a submitted BagIt bag is also fully validated first), and a
    mismatch stops the ingest here. A file that changes while it is read is SourceChanged."""
    sub = submissions.scan(ctx.source)
    expected = supplied.find(sub)  # parsed and path-checked before a byte is read
    metadata = sidecar.load(
        sub.sidecar, default_level=ctx.settings.access.default_level, rules=sidecar.Rules.of(ctx.settings.ingest)
    )
    in_place = ctx.settings.ingest.staging == "in-place"
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
    prints: dict[str, Fingerprint] = {}
    ctx.meter.expect(sum(sf.size for sf in sub.files) * (1 + len(ctx.settings.targets)))
    received: dict[str, Digests] = {}
    sources: list[tuple[str, Role, bytes | None, Path]] = [
        (sf.rel, sf.role, sf.original_name_bytes, sf.path) for sf in sub.files
    ]
    for companion in sub.sidecar_files:
        rel, _ = submissions.safe_name(os.fsencode(companion.name), companion.name)
        sources.append((rel, Role.SIDECAR, None, companion))
    for rel, role, orig, src in sources:
        path = bag.payload_path(bag.OBJECTS_DIR, *rel.split("/"))
        extra = expected.algorithms_for(rel)
        if in_place:
            digests, fingerprint = _hash_in_place(path, src, bag.payload_algorithms(extra))
            payload = PayloadFile(path=path, digests=digests, role=role, original_name_bytes=orig)
            where[path] = src
        else:
            seen = Fingerprint.now(src)
            payload = bag.add_payload_file(ctx.bag_dir, path, src, role, orig, extra_algorithms=extra)
            if seen is None or Fingerprint.now(src) != seen or seen.size != payload.size:
                raise changed_error([path], "while it was copied into staging")
            fingerprint = seen
            where[path] = ctx.bag_dir / path
        prints[path] = fingerprint
        files.append(payload)
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
    return Staged(
        submission=sub, metadata=metadata, files=tuple(files), where=where, fingerprints=prints, in_place=in_place
    )


def _hash_in_place(path: str, src: Path, algorithms: Sequence[str]) -> tuple[Digests, Fingerprint]:
    """Hash ``src`` where it lies, in one read, and the fingerprint of exactly the file read. The
    file is opened read-only without following a link (one swapped in since the scan is refused);
    if it changes while it is read, or what its name points to is no longer that file afterwards,
    the submission is still arriving: SourceChanged."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            raise changed_error([path], "it was removed or replaced before it could be read") from exc
        raise
    with open(fd, "rb", buffering=0) as fh:
        before = Fingerprint.of(os.fstat(fd))
        digests = digest_stream(fh, algorithms)
        after = Fingerprint.of(os.fstat(fd))
    if after != before or digests.size != before.size or Fingerprint.now(src) != before:
        raise changed_error([path], "while it was being read")
    return digests, before
