"""What a rebuild reports: the findings (foreign prefixes, damaged records, fallbacks to the bag,
objects not as their inventory says, replicas that disagree), the counts of the inventory pass per
target, and `format_report`, the report for a person. Values only: no side effects."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class NotPreserve:
    """A top-level prefix of the source that is not a preserve AIP: ignored, never deleted."""

    prefix: str
    objects: int
    bytes: int
    reason: str


@dataclass(frozen=True)
class DamagedRecord:
    """An event record or version inventory that could not be read (the rest were used)."""

    aip_id: str
    target: str
    key: str
    reason: str


@dataclass(frozen=True)
class Fallback:
    """Something of an AIP rebuilt from its bag (or left at a default), not from its journal."""

    aip_id: str
    reason: str


@dataclass(frozen=True)
class ObjectFinding:
    """An object that is not as the source's inventory says, on one target."""

    aip_id: str
    target: str
    key: str
    problem: str  # missing | size | checksum | recorded (the last recorded check of it failed)
    expected: str
    found: str


@dataclass(frozen=True)
class Disagreement:
    """Where another replica differs from the source (reported, not merged: the source's inventory
    stays the truth, and the other replica's object is marked so the next audit repairs it)."""

    aip_id: str
    target: str
    what: str  # object | version | events | replica | state | catalog
    detail: str


@dataclass(frozen=True)
class InventoryCount:
    """What the inventory pass found on one target."""

    target: str
    replicas: int = 0
    objects: int = 0
    verified: int = 0
    pending: int = 0
    missing: int = 0
    damaged: int = 0


@dataclass(frozen=True)
class RebuildReport:
    source: str
    rebuild_id: int
    resumed: bool
    imported: tuple[str, ...]
    #: already in the catalog (imported by an interrupted run of this rebuild, or there before a merge)
    skipped: tuple[str, ...]
    fallbacks: tuple[Fallback, ...]
    not_preserve: tuple[NotPreserve, ...]
    damaged_records: tuple[DamagedRecord, ...]
    #: objects on the source that are not as its own inventory says
    damage: tuple[ObjectFinding, ...]
    disagreements: tuple[Disagreement, ...]
    #: keys under an AIP's prefix that belong to none of its versions (left in place)
    unexpected: tuple[tuple[str, str], ...]
    targets: tuple[InventoryCount, ...]
    #: operational: a target other than the source that could not be reached
    errors: tuple[str, ...]
    seconds: float

    @property
    def clean(self) -> bool:
        """Nothing to report: every AIP from its journal, every object where its inventory says."""
        return not (
            self.fallbacks
            or self.not_preserve
            or self.damaged_records
            or self.damage
            or self.disagreements
            or self.unexpected
            or self.errors
        )

    @property
    def exit_code(self) -> int:
        """0 clean; 1 something reported; 2 a target was unreachable."""
        return 2 if self.errors else 0 if self.clean else 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["unexpected"] = [{"target": t, "key": k} for t, k in self.unexpected]
        data["clean"] = self.clean
        return data


def format_report(report: RebuildReport) -> str:
    """The report for a person: what was imported, the counts per target, then every finding."""
    lines = [
        f"catalog rebuilt from {report.source}{' (resumed)' if report.resumed else ''} in {report.seconds:.1f} s: "
        f"{len(report.imported)} AIP(s) imported, {len(report.skipped)} already in the catalog"
    ]
    lines += [
        f"  {c.target:<16} {c.replicas} replica(s), {c.objects} objects: {c.verified} verified, "
        f"{c.pending} pending a re-read, {c.missing} missing, {c.damaged} damaged"
        for c in report.targets
    ]
    lines += [
        f"NOT PRESERVE {p.prefix}/ ({p.objects} objects, {p.bytes} bytes): {p.reason}; ignored, left in place"
        for p in report.not_preserve
    ]
    lines += [f"DAMAGED RECORD {d.target}:{d.key}: {d.reason}" for d in report.damaged_records]
    lines += [f"FALLBACK {f.aip_id}: {f.reason}" for f in report.fallbacks]
    lines += [f"DAMAGE {f.target}:{f.key}: {f.problem} (expected {f.expected}, found {f.found})" for f in report.damage]
    lines += [f"DISAGREES {d.target} {d.aip_id} ({d.what}): {d.detail}" for d in report.disagreements]
    lines += [f"UNEXPECTED {t}:{k} (in no version of the AIP; left in place)" for t, k in report.unexpected]
    lines += [f"ERROR {e}" for e in report.errors]
    if report.clean:
        lines.append("nothing to report")
    if report.damage or report.disagreements or any(c.pending for c in report.targets):
        lines.append("next: `preserve audit` re-reads what is pending and repairs what is missing or damaged")
    return "\n".join(lines)
