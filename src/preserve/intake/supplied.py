"""Checksums supplied by the submitter (`*.md5`, `*.sha1`, `*.sha256`, `*.sha512`, `manifest-*.txt`,
or a submission that is itself a BagIt bag): found, parsed and path-checked before any byte is
copied, then compared with the digests of the one copying read. Side effects: reads the small
checksum files; `validate_bag` reads every file of a submitted bag (bagit-python, full)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from preserve import tools
from preserve.core.errors import SubmissionError, SuppliedChecksumMismatch, UnsafeSubmission
from preserve.core.model import Digests, Event, EventType, Outcome
from preserve.intake.submission import Submission

#: checksum file extension -> hashlib algorithm
EXTENSIONS = {".md5": "md5", ".sha1": "sha1", ".sha256": "sha256", ".sha512": "sha512"}
HEX_LENGTH = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_MANIFEST = re.compile(r"^(tag)?manifest-(md5|sha1|sha256|sha512)\.txt$")
_BSD = re.compile(r"^\\?(MD5|SHA1|SHA256|SHA512|SHA-1|SHA-256|SHA-512) ?\((.*)\) ?= ?([0-9A-Fa-f]+)$")
#: a checksum file bigger than this is not a checksum list
MAX_CHECKSUM_FILE_BYTES = 64 << 20
#: how many mismatches a message lists (the report counts all)
MAX_LISTED = 10


@dataclass(frozen=True)
class Expected:
    """One supplied checksum: the submission-relative file it is for, and where it was written."""

    rel: str  # NFC, POSIX, relative to the submission root (a single file: its name)
    algorithm: str
    digest: str  # lower-case hex
    source: str  # "<checksum file> line N"


@dataclass(frozen=True)
class ChecksumFile:
    rel: str  # the checksum file, submission-relative (or the companion's name)
    algorithm: str
    entries: tuple[Expected, ...]


@dataclass(frozen=True)
class SuppliedChecksums:
    """Everything the submitter vouched for; empty when nothing was supplied."""

    files: tuple[ChecksumFile, ...] = ()
    is_bag: bool = False

    def algorithms_for(self, rel: str) -> tuple[str, ...]:
        """Extra algorithms the copying read must compute for this file (sorted, no repeats)."""
        return tuple(sorted({e.algorithm for f in self.files for e in f.entries if e.rel == rel}))

    @property
    def entries(self) -> tuple[Expected, ...]:
        return tuple(e for f in self.files for e in f.entries)


@dataclass(frozen=True)
class Mismatch:
    expected: Expected
    found: str  # hex, or "" when the file is missing


@dataclass(frozen=True)
class SuppliedReport:
    """A finding: which supplied checksums matched, which did not, which files were missing."""

    checked: tuple[Expected, ...]
    mismatches: tuple[Mismatch, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        lines = []
        for m in self.mismatches[:MAX_LISTED]:
            e = m.expected
            lines.append(
                f"{e.rel}: listed in {e.source} but missing from the submission"
                if not m.found
                else f"{e.rel}: {e.algorithm} supplied {e.digest}, computed {m.found} ({e.source})"
            )
        more = len(self.mismatches) - MAX_LISTED
        return "\n  ".join(lines + ([f"... and {more} more"] if more > 0 else []))


# -- discovery and parsing -------------------------------------------------------------------
def checksum_algorithm(name: str) -> str | None:
    """The algorithm a file name says it holds checksums of, or None if it is no checksum file."""
    m = _MANIFEST.match(name)
    if m:
        return m.group(2)
    return EXTENSIONS.get(PurePosixPath(name).suffix.lower())


def find(sub: Submission) -> SuppliedChecksums:
    """Parse every supplied checksum file of a submission. Raises UnsafeSubmission for a path that
    would leave the submission, SubmissionError for a checksum file that cannot be read."""
    present = {f.rel for f in sub.files}
    files: list[ChecksumFile] = []
    if sub.is_dir:
        is_bag = "bagit.txt" in present
        for f in sub.files:
            name = PurePosixPath(f.rel).name
            alg = checksum_algorithm(name)
            if alg is None:
                continue
            if _MANIFEST.match(name) and not is_bag and name.startswith("tag"):
                continue  # a tag manifest only means something inside a bag
            base = str(PurePosixPath(f.rel).parent) if "/" in f.rel else ""
            files.append(_parse_file(f.path, f.rel, alg, base, present, bagit_style=bool(_MANIFEST.match(name))))
        return SuppliedChecksums(tuple(files), is_bag)
    for c in sub.companions:
        alg = checksum_algorithm(c.name)
        if alg is not None:
            files.append(_parse_file(c, c.name, alg, "", present, bagit_style=False))
    return SuppliedChecksums(tuple(files), False)


def _read_text(path: Path, rel: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_CHECKSUM_FILE_BYTES:
            raise SubmissionError(f"{rel} is {size} bytes: too big to be a checksum file")
        raw = path.read_bytes()
    except OSError as exc:
        raise SubmissionError(
            f"{rel} cannot be read: {exc}", advice="Make the checksum file readable by the ingest user and retry."
        ) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubmissionError(
            f"{rel} is not UTF-8 text, so the file names it lists cannot be trusted",
            advice="Write the checksum file as UTF-8 (md5sum and sha256sum do) and retry.",
        ) from exc


def _parse_file(
    path: Path, rel: str, algorithm: str, base: str, present: set[str], *, bagit_style: bool
) -> ChecksumFile:
    text = _read_text(path, rel)
    n = HEX_LENGTH[algorithm]
    lines = [(i + 1, line.rstrip("\r")) for i, line in enumerate(text.split("\n"))]
    content = [(no, line) for no, line in lines if line.strip() and not line.lstrip().startswith(("#", ";"))]
    entries: list[Expected] = []
    if len(content) == 1 and re.fullmatch(rf"[0-9A-Fa-f]{{{n}}}", content[0][1].strip()):
        # the single-hash-only format: `film.mov.md5` holds nothing but film.mov's digest
        target = _single_target(rel, present)
        entries.append(Expected(target, algorithm, content[0][1].strip().lower(), f"{rel} line {content[0][0]}"))
        return ChecksumFile(rel, algorithm, tuple(entries))
    for no, line in content:
        where = f"{rel} line {no}"
        digest, listed = _parse_line(line, algorithm, n, bagit_style, where)
        target = _resolve(listed, base, where, present)
        if target == rel:
            continue  # a checksum file cannot list itself
        entries.append(Expected(target, algorithm, digest.lower(), where))
    if not entries:
        raise SubmissionError(
            f"{rel} lists no {algorithm} checksums",
            advice="Remove the empty checksum file or write the checksums into it, then retry.",
        )
    return ChecksumFile(rel, algorithm, tuple(entries))


def _parse_line(line: str, algorithm: str, n: int, bagit_style: bool, where: str) -> tuple[str, str]:
    """One line in md5sum/sha256sum (text, binary `*`, backslash-escaped), BSD `MD5 (x) = …`, or
    BagIt manifest form. Returns (hex digest, the listed path as written)."""
    bsd = _BSD.match(line)
    if bsd and not bagit_style:
        if bsd.group(1).replace("-", "").lower() != algorithm or len(bsd.group(3)) != n:
            raise SubmissionError(f"{where}: a {bsd.group(1)} checksum in a {algorithm} file")
        listed = bsd.group(2)
        return bsd.group(3), (_unescape(listed, where) if line.startswith("\\") else listed)
    escaped = line.startswith("\\") and not bagit_style
    body = line[1:] if escaped else line
    sep = r"[ \t]+" if bagit_style else r"(?: \*|  |[ \t]+\*?)"
    m = re.match(rf"^([0-9A-Fa-f]{{{n}}}){sep}(.+)$", body)
    if not m:
        raise SubmissionError(
            f"{where} is not a {algorithm} checksum line (`<{n} hex digits>  <file>`): {line[:80]!r}",
            advice="Correct the supplied checksum file (or remove it) and retry.",
        )
    listed = m.group(2)
    if bagit_style:
        listed = (
            listed.replace("%0A", "\n")
            .replace("%0a", "\n")
            .replace("%0D", "\r")
            .replace("%0d", "\r")
            .replace("%25", "%")
        )
    elif escaped:
        listed = _unescape(listed, where)
    return m.group(1), listed


def _unescape(listed: str, where: str) -> str:
    """GNU coreutils escapes `\\` and newlines in names as `\\\\` and `\\n` (and the line starts with
    a backslash)."""
    out, i = [], 0
    while i < len(listed):
        ch = listed[i]
        if ch == "\\" and i + 1 < len(listed):
            nxt = listed[i + 1]
            out.append({"\\": "\\", "n": "\n", "r": "\r"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _resolve(listed: str, base: str, where: str, present: set[str]) -> str:
    """The submission-relative path of a listed file. Absolute paths and any `..` are refused:
    a supplied manifest never points outside the submission."""
    if listed.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", listed) or "\0" in listed:
        raise UnsafeSubmission(
            f"{where}: the path {listed!r} is absolute; supplied checksums may only name files inside the submission",
            advice="Write the checksum file with paths relative to where it lies, and retry.",
        )
    if ".." in re.split(r"[\\/]", listed):
        raise UnsafeSubmission(
            f"{where}: the path {listed!r} climbs out with '..'; supplied checksums "
            "may only name files inside the submission",
            advice="Write the checksum file with paths relative to where it lies, and retry.",
        )
    candidates = [listed] + ([listed.replace("\\", "/")] if "\\" in listed else [])
    for cand in candidates:
        parts = [p for p in cand.split("/") if p not in ("", ".")]
        rel = unicodedata.normalize("NFC", "/".join([*([base] if base else []), *parts]))
        if rel in present:
            return rel
    parts = [p for p in listed.split("/") if p not in ("", ".")]
    return unicodedata.normalize("NFC", "/".join([*([base] if base else []), *parts]))  # missing: reported later


def _single_target(rel: str, present: set[str]) -> str:
    """`film.mov.md5` → `film.mov`; `film.md5` → the one `film.*` file beside it."""
    p = PurePosixPath(rel)
    stem = str(p.with_suffix("")) if p.parent != PurePosixPath(".") else p.stem
    if stem in present:
        return stem
    siblings = [
        r
        for r in present
        if str(PurePosixPath(r).with_suffix("")) == stem and checksum_algorithm(PurePosixPath(r).name) is None
    ]
    if len(siblings) == 1:
        return siblings[0]
    raise SubmissionError(
        f"{rel} holds a bare checksum, but there is no single file {stem!r} it could be for",
        advice="Name the checksum file after the file it is for (film.mov.md5), or list the "
        "file name after the checksum, and retry.",
    )


# -- verification ----------------------------------------------------------------------------
def verify(supplied: SuppliedChecksums, digests: Mapping[str, Digests]) -> SuppliedReport:
    """Compare the supplied checksums with the digests of the copy (keyed by submission-relative
    path). Pure: a finding, never an exception."""
    checked: list[Expected] = []
    mismatches: list[Mismatch] = []
    for e in supplied.entries:
        d = digests.get(e.rel)
        if d is None:
            mismatches.append(Mismatch(e, ""))
            continue
        found = d.values.get(e.algorithm, "")
        checked.append(e)
        if found != e.digest:
            mismatches.append(Mismatch(e, found))
    return SuppliedReport(tuple(checked), tuple(mismatches))


def events(supplied: SuppliedChecksums, report: SuppliedReport) -> list[Event]:
    """One `fixity check` event per supplied checksum file."""
    agent = tools.preserve_agent()
    out = []
    for f in supplied.files:
        bad = [m for m in report.mismatches if m.expected in f.entries]
        ok = len(f.entries) - len(bad)
        detail = f"supplied {f.algorithm} checksums in {f.rel}: {ok} of {len(f.entries)} file(s) match" + (
            ": "
            + "; ".join(
                f"{m.expected.rel} " + ("missing" if not m.found else f"expected {m.expected.digest} found {m.found}")
                for m in bad[:MAX_LISTED]
            )
            if bad
            else ""
        )
        out.append(
            Event(
                EventType.FIXITY_CHECK,
                Outcome.FAIL if bad else Outcome.PASS,
                agent,
                detail,
                subject=f.rel,
                extra={"algorithm": f.algorithm, "files": len(f.entries), "mismatches": len(bad)},
            )
        )
    return out


def raise_on_mismatch(report: SuppliedReport) -> None:
    if not report.ok:
        raise SuppliedChecksumMismatch(
            f"{len(report.mismatches)} supplied checksum(s) do not match what arrived:\n  {report.summary()}"
        )


def validate_bag(path: Path) -> tuple[Event, bool, str]:
    """Full bagit-python validation of a submitted bag (every digest of every manifest). Returns
    its event, whether it is valid, and the errors as text."""
    from preserve.packaging import bag

    report = bag.validate(path, fast=False)
    errors = "; ".join(report.errors[:MAX_LISTED])
    detail = (
        f"the submission is a BagIt {report.version} bag; full validation (completeness, Payload-Oxum, "
        f"every manifest digest): " + ("valid" if report.valid else f"INVALID: {errors}")
    )
    event = Event(
        EventType.VALIDATION,
        Outcome.PASS if report.valid else Outcome.FAIL,
        tools.python_agent("bagit"),
        detail,
        extra={"payload_oxum": report.payload_oxum},
    )
    return event, report.valid, errors
