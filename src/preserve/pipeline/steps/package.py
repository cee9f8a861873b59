"""Step 6, package: write the PREMIS record of every event so far, and finish the staging bag
(BagIt 1.0: manifests, bag-info.txt, tag manifests), validated. A bag built in place holds only
what preserve wrote: its manifests list the originals, which stay in the ingest folder, with the
digests of their one read, and it is checked without reading them again (the uploads hash them
again). In copy mode the staged copies are re-read first, to prove no tool changed them. Side
effects: copy mode reads the staged originals again; writes premis.xml and the bag's tag files."""

from __future__ import annotations

from dataclasses import dataclass

from preserve import tools
from preserve.core.errors import PreserveError
from preserve.core.model import EventType, Outcome, PayloadFile, utcnow
from preserve.fixity.digest import digest_file
from preserve.packaging import bag, premis
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.describe import Described
from preserve.pipeline.steps.normalise import Masters
from preserve.pipeline.steps.receive import Staged, raise_if_changed
from preserve.pipeline.steps.validate import Validated


@dataclass(frozen=True)
class Packaged:
    """The finished staging bag: every payload file with its digests (originals, masters, then the
    metadata preserve wrote, premis.xml last) and its Payload-Oxum."""

    files: tuple[PayloadFile, ...]
    payload_oxum: str


def package(
    ctx: IngestContext, staged: Staged, described: Described, validated: Validated, masters: Masters
) -> Packaged:
    """Write the events so far into the bag, then bagit.txt (1.0), manifests, bag-info.txt and tag
    manifests, and validate the result (fast: our digests are from the one read of each original;
    in place, the bag's tag files and manifests are checked against what is on disk and those
    digests, see `bag.check`)."""
    meta = staged.metadata
    info = {
        "Source-Organization": ctx.settings.archive.organization,
        "External-Identifier": ctx.aip_id,
        "Bagging-Date": utcnow().date().isoformat(),
        "Bag-Software-Agent": f"preserve {tools.preserve_agent().version} (bagit-python {tools.python_agent('bagit').version})",
        "Title": meta.title or meta.original_title,
        "Contributor-Identifier": meta.contributor_id,  # a pseudonym only: tag files travel everywhere
        "Access-Level": meta.access.level,
    }
    if staged.in_place:
        _fingerprints_unchanged(ctx, staged)
    else:
        _recheck_fixity(ctx, staged)
    document = premis.document(ctx.aip_id, premis_files(staged, described, masters), list(ctx.log.events))
    problems = premis.validate(document)
    if problems:
        raise PreserveError(f"the PREMIS record does not validate against the PREMIS 3.0 schema: {problems[:3]}")
    record = bag.add_payload_bytes(ctx.bag_dir, bag.payload_path(bag.METADATA_DIR, "premis.xml"), document)
    files = (*staged.files, *masters.files, *described.metadata_files, *validated.metadata_files, record)
    elsewhere = {f.path for f in staged.files} if staged.in_place else set()
    payload_oxum = bag.finalize(ctx.bag_dir, list(files), info, elsewhere=elsewhere)
    if staged.in_place:
        report = bag.check(ctx.bag_dir, files, elsewhere=elsewhere)
    else:
        report = bag.validate(ctx.bag_dir, fast=True)
    if not report.valid:
        raise PreserveError(f"the bag does not validate: {'; '.join(report.errors[:5])}")
    ctx.log.record(
        EventType.PACKING,
        Outcome.PASS,
        tools.python_agent("bagit"),
        f"BagIt {report.version} bag, Payload-Oxum {payload_oxum}"
        + (f"; built in place around the {len(elsewhere)} original(s) in the ingest folder" if elsewhere else ""),
    )
    return Packaged(files=files, payload_oxum=payload_oxum)


def premis_files(staged: Staged, described: Described, masters: Masters) -> list[premis.PremisFile]:
    """The originals and preservation masters, as PREMIS file objects."""
    formats = {**described.formats, **masters.formats}
    out = []
    for f in (*staged.files, *masters.files):
        name, puid = formats.get(f.path, ("", ""))
        out.append(
            premis.PremisFile(
                f.path, f.size, f.digests.sha256, f.digests.sha512, name, puid, masters.master_of.get(f.path, "")
            )
        )
    return out


def _fingerprints_unchanged(ctx: IngestContext, staged: Staged) -> None:
    """In place, the bag's own record says what stands for the re-read of copy mode: every original
    is as it was at its first read by its file-system fingerprint (checked after every step), and
    its bytes are hashed again by each upload, which refuses any mismatch (the later fixity event
    in the catalog records that outcome)."""
    raise_if_changed(staged, "found before packing")
    ctx.log.record(
        EventType.FIXITY_CHECK,
        Outcome.PASS,
        tools.preserve_agent(),
        f"all {len(staged.files)} original(s) unchanged in the ingest folder since their first read (size, "
        "modification time, inode, device); each upload hashes their bytes again and refuses a mismatch",
    )


def _recheck_fixity(ctx: IngestContext, staged: Staged) -> None:
    """Re-read every original in the staging bag and compare it with the digest taken as it was
    copied in: proof that no tool run since (ffprobe, MediaInfo, decoding, normalization) changed
    a byte. A mismatch stops the ingest."""
    originals = staged.files
    changed = [
        f.path
        for f in originals
        if digest_file(staged.path_of(f.path), ("sha256",)).values["sha256"] != f.digests.sha256
    ]
    ctx.log.record(
        EventType.FIXITY_CHECK,
        Outcome.FAIL if changed else Outcome.PASS,
        tools.preserve_agent(),
        (
            f"changed in staging: {', '.join(changed)}"
            if changed
            else f"all {len(originals)} original(s) re-read before packing; SHA-256 unchanged since they were copied in"
        ),
    )
    if changed:
        raise PreserveError(f"originals changed in staging: {changed[:5]}")
