"""BagIt 1.0 (RFC 8493) bags built around bagit-python without re-reading the payload: payload
digests come from the one streaming copy into staging, bagit-python writes bag-info.txt and the
tag manifests, and validates. Side effects: writes under the bag directory; bagit-python calls
os.chdir, so every call into it holds one process-wide lock."""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from collections.abc import Mapping, Sequence
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
    algorithms = (*BAG_ALGORITHMS, *(a for a in extra_algorithms if a not in BAG_ALGORITHMS))
    digests = copy_with_digests(source, dest, algorithms, durable=False)
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


def finalize(bag_dir: Path, files: Sequence[PayloadFile], info: Mapping[str, str]) -> str:
    """Write bagit.txt (1.0), the payload manifests from the digests we already have, and let
    bagit-python write bag-info.txt and the tag manifests. Returns the Payload-Oxum."""
    on_disk = {p.relative_to(bag_dir).as_posix() for p in (bag_dir / "data").rglob("*") if p.is_file()}
    declared = {f.path for f in files}
    if on_disk != declared:
        raise PackagingError(f"payload on disk and manifest differ: {sorted(on_disk ^ declared)[:5]}")
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


def _encode_path(path: str) -> str:
    """CR and LF in manifest paths are percent-encoded (RFC 8493 §2.1.3). The RFC also asks for
    ``%`` -> ``%25``, but bagit-python 1.9 does not decode that, and a bag it cannot validate is
    worse for us than a ``%`` left literal, which strict readers also accept when no hex follows."""
    return path.replace("\r", "%0D").replace("\n", "%0A")
