"""BagIt 1.0 (RFC 8493) bags built around bagit-python without re-reading the payload: payload
digests come from the one read of each original (a streaming copy into staging, or a hash where
it lies when the bag is built in place), bagit-python writes bag-info.txt and the tag manifests,
and validates. A bag built in place holds only what preserve wrote: its originals stay in the
ingest folder until they are uploaded under the bag's keys (`finalize`/`check` take them as
``elsewhere``). Side effects: writes under the bag directory; bagit-python calls os.chdir, so
every call into it holds one process-wide lock."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import bagit

from preserve.core.errors import PackagingError, UnsafeSubmission
from preserve.core.model import Digests, PayloadFile, Role
from preserve.fixity.digest import BAG_ALGORITHMS, copy_with_digests

BAGIT_VERSION = "1.0"
#: the AIP's payload layout: the originals (as received) and what preserve made about them
OBJECTS_DIR = "objects"  # data/objects/: originals, sidecar files, preservation masters beside their originals
METADATA_DIR = "metadata"  # data/metadata/: technical metadata, framemd5 manifests, premis.xml
#: bagit-python changes the process's working directory; never run two of its calls at once
_BAGIT_LOCK = threading.Lock()
MAX_COMPONENT_BYTES = 255


@dataclass(frozen=True)
class BagReport:
    """Outcome of validating a bag: findings, not exceptions."""

    path: Path
    valid: bool
    version: str
    errors: tuple[str, ...] = ()
    payload_oxum: str = ""


def payload_path(*parts: str) -> str:
    """A bag-relative payload path (``data/...``), NFC, checked component by component."""
    comps = [c for part in parts for c in part.split("/")]
    for comp in comps:
        if comp in ("", ".", "..") or "/" in comp or "\0" in comp:
            raise UnsafeSubmission(f"unsafe path component {comp!r} in {'/'.join(comps)!r}")
        if len(comp.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise UnsafeSubmission(f"name longer than {MAX_COMPONENT_BYTES} bytes: {comp[:40]}...")
    return unicodedata.normalize("NFC", str(PurePosixPath("data", *comps)))


def payload_algorithms(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The bag's algorithms, then any others wanted in the same read (a supplied md5, say)."""
    return (*BAG_ALGORITHMS, *(a for a in extra if a not in BAG_ALGORITHMS))


def add_payload_file(
    bag_dir: Path,
    rel: str,
    source: Path,
    role: Role = Role.OTHER,
    original_name_bytes: bytes | None = None,
    extra_algorithms: Sequence[str] = (),
) -> PayloadFile:
    """Copy one original into the bag's payload, hashing it in the same read. ``extra_algorithms``
    (e.g. md5 for a checksum the submitter supplied) are computed in that same read too. The copy
    is not fsynced: a staging bag is only read back by this ingest and is made again from the
    untouched source after a crash; the durable copies are the verified replicas."""
    dest = bag_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    digests = copy_with_digests(source, dest, payload_algorithms(extra_algorithms), durable=False)
    return PayloadFile(path=rel, digests=digests, role=role, original_name_bytes=original_name_bytes)


def add_payload_bytes(bag_dir: Path, rel: str, content: bytes, role: Role = Role.SIDECAR) -> PayloadFile:
    """Write a small generated file (technical metadata, PREMIS) into the payload."""
    dest = bag_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(content)
    values = {alg: hashlib.new(alg, content).hexdigest() for alg in BAG_ALGORITHMS}
    return PayloadFile(path=rel, digests=Digests(size=len(content), values=values), role=role)


def payload_oxum(files: Sequence[PayloadFile]) -> str:
    return f"{sum(f.size for f in files)}.{len(files)}"


def payload_on_disk(bag_dir: Path) -> set[str]:
    """The payload paths (``data/...``) of the files under the bag directory."""
    return {p.relative_to(bag_dir).as_posix() for p in (bag_dir / "data").rglob("*") if p.is_file()}


def finalize(
    bag_dir: Path, files: Sequence[PayloadFile], info: Mapping[str, str], *, elsewhere: Collection[str] = ()
) -> str:
    """Write bagit.txt (1.0), the payload manifests from the digests we already have, and let
    bagit-python write bag-info.txt and the tag manifests. Returns the Payload-Oxum.
    ``elsewhere`` names the payload files that are not under ``bag_dir`` (a bag built in place:
    the originals stay in the ingest folder); every other declared file must be on disk, and
    nothing else may be."""
    on_disk = payload_on_disk(bag_dir)
    declared = {f.path for f in files}
    away = set(elsewhere)
    if not away <= declared or on_disk & away:
        raise PackagingError(f"payload kept elsewhere is undeclared or also on disk: {sorted(away - declared)[:5]}")
    if on_disk != declared - away:
        raise PackagingError(f"payload on disk and manifest differ: {sorted(on_disk ^ (declared - away))[:5]}")
    (bag_dir / "bagit.txt").write_text(
        f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    for alg in BAG_ALGORITHMS:
        lines = [f"{f.digests.values[alg]}  {_encode_path(f.path)}\n" for f in sorted(files, key=lambda f: f.path)]
        (bag_dir / f"manifest-{alg}.txt").write_text("".join(lines), encoding="utf-8")
    oxum = payload_oxum(files)
    with _BAGIT_LOCK:
        try:
            bag = bagit.Bag(str(bag_dir))
            bag.info.clear()
            bag.info.update({k: v for k, v in info.items() if v})
            bag.info["Payload-Oxum"] = oxum
            bag.save(manifests=False)
        except bagit.BagError as exc:
            raise PackagingError(f"bagit-python could not write the bag: {exc}") from exc
    return oxum


def validate(bag_dir: Path, *, fast: bool = False) -> BagReport:
    """Validate with bagit-python: completeness, Payload-Oxum, and (unless ``fast``) every digest
    in every manifest. Returns a report; raises nothing for an invalid bag."""
    with _BAGIT_LOCK:
        try:
            bag = bagit.Bag(str(bag_dir))
        except bagit.BagError as exc:
            return BagReport(bag_dir, False, "", (f"not a bag: {exc}",))
        version = ".".join(str(v) for v in bag.version_info)
        oxum = str(bag.info.get("Payload-Oxum", ""))
        try:
            bag.validate(fast=fast)
        except bagit.BagValidationError as exc:
            details = tuple(str(d) for d in exc.details) or (str(exc),)
            return BagReport(bag_dir, False, version, details, oxum)
        except bagit.BagError as exc:
            return BagReport(bag_dir, False, version, (str(exc),), oxum)
    return BagReport(bag_dir, True, version, (), oxum)


def check(bag_dir: Path, files: Sequence[PayloadFile], *, elsewhere: Collection[str] = ()) -> BagReport:
    """Validate a bag whose payload files named in ``elsewhere`` are not under ``bag_dir`` (built in
    place), without reading any payload: bagit.txt and the structure as bagit-python parses them;
    every tag file against the tag manifests (re-hashed: they are small); every payload manifest
    against ``files`` (the digests of the one read of each original, and of what preserve wrote),
    path for path and algorithm for algorithm; the payload on disk against the declared files
    and their sizes; Payload-Oxum against the declared sizes. Returns a report; raises nothing
    for an invalid bag."""
    errors: list[str] = []
    declared = {f.path: f for f in files}
    away = set(elsewhere)
    with _BAGIT_LOCK:
        try:
            b = bagit.Bag(str(bag_dir))
        except bagit.BagError as exc:
            return BagReport(bag_dir, False, "", (f"not a bag: {exc}",))
        version = ".".join(str(v) for v in b.version_info)
        oxum = str(b.info.get("Payload-Oxum", ""))
        entries = {k.replace(os.sep, "/"): dict(v) for k, v in b.entries.items()}
        algorithms = list(b.algorithms)
        manifests = {os.path.basename(m) for m in b.manifest_files()}
        tag_manifests = {os.path.basename(m) for m in b.tagmanifest_files()}
    if version != BAGIT_VERSION:
        errors.append(f"bagit.txt says version {version}, not {BAGIT_VERSION}")
    if (bag_dir / "bagit.txt").read_bytes().startswith(b"\xef\xbb\xbf"):
        errors.append("bagit.txt starts with a byte-order mark")
    if not (bag_dir / "data").is_dir():
        errors.append("no data/ directory")
    for alg in BAG_ALGORITHMS:
        if f"manifest-{alg}.txt" not in manifests or f"tagmanifest-{alg}.txt" not in tag_manifests:
            errors.append(f"manifest-{alg}.txt or tagmanifest-{alg}.txt is missing")
    payload = {p: e for p, e in entries.items() if p.startswith("data/")}
    tags = {p: e for p, e in entries.items() if not p.startswith("data/")}
    for name in ("bagit.txt", "bag-info.txt", *sorted(manifests)):
        if name not in tags:
            errors.append(f"tag file {name} is not in the tag manifests")
    for rel, hashes in sorted(tags.items()):
        try:
            content = (bag_dir / rel).read_bytes()
        except OSError as exc:
            errors.append(f"tag file {rel}: {exc.strerror or exc}")
            continue
        for alg, listed in hashes.items():
            if hashlib.new(alg, content).hexdigest() != listed.lower():
                errors.append(f"tag file {rel}: {alg} differs from its tag manifest")
    if set(payload) != set(declared):
        errors.append(f"manifests and declared payload differ: {sorted(set(payload) ^ set(declared))[:5]}")
    for rel, hashes in sorted(payload.items()):
        f = declared.get(rel)
        if f is None:
            continue
        for alg in algorithms:
            if alg not in hashes and alg in f.digests.values:
                errors.append(f"{rel}: missing from manifest-{alg}.txt")
            elif alg in hashes and hashes[alg].lower() != f.digests.values.get(alg):
                errors.append(f"{rel}: {alg} in the manifest is not the digest taken when it was read")
    on_disk = payload_on_disk(bag_dir)
    if on_disk != set(declared) - away:
        errors.append(f"payload on disk is not what was declared: {sorted(on_disk ^ (set(declared) - away))[:5]}")
    for rel in sorted(on_disk & set(declared)):
        size = (bag_dir / rel).stat().st_size
        if size != declared[rel].size:
            errors.append(f"{rel}: {size} bytes on disk, {declared[rel].size} declared")
    if oxum != payload_oxum(files):
        errors.append(f"Payload-Oxum {oxum!r} is not {payload_oxum(files)!r}")
    return BagReport(bag_dir, not errors, version, tuple(errors), oxum)


def parse_manifest(text: str) -> dict[str, str]:
    """A payload or tag manifest as stored: path -> digest (lower-case), paths percent-decoded as
    `_encode_path` encodes them. Lines end at LF (a CR before it dropped): a name may hold any other
    character, U+2028 included, which `str.splitlines` would split on; digest and path are
    separated by one or more spaces or tabs (RFC 8493 §2.1.3), and the path is kept to its end."""
    entries: dict[str, str] = {}
    for line in text.split("\n"):
        m = re.match(r"([0-9A-Fa-f]+)[ \t]+(.+)$", line.removesuffix("\r"), re.DOTALL)
        if m:
            entries[m.group(2).replace("%0A", "\n").replace("%0D", "\r")] = m.group(1).lower()
    return entries


def parse_bag_info(text: str) -> dict[str, str]:
    """The labels of a bag-info.txt: the first value of each (a label may repeat), continuation
    lines (starting with a space or tab) joined to the value they continue."""
    info: dict[str, str] = {}
    current: str | None = None  # the label whose first value the next continuation line extends
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line[:1] in (" ", "\t"):
            if current is not None:
                info[current] += " " + line.strip()
            continue
        label, sep, value = line.partition(":")
        if not sep:
            current = None
            continue
        label = label.strip()
        current = label if label not in info else None
        info.setdefault(label, value.strip())
    return info


def _encode_path(path: str) -> str:
    """CR and LF in manifest paths are percent-encoded (RFC 8493 §2.1.3). The RFC also asks for
    ``%`` -> ``%25``, but bagit-python 1.9 does not decode that, and a bag it cannot validate is
    worse for us than a ``%`` left literal, which strict readers also accept when no hex follows."""
    return path.replace("\r", "%0D").replace("\n", "%0A")
