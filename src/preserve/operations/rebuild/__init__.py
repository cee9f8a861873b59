"""A catalog rebuilt from one replica alone (`preserve catalog rebuild --from TARGET`): every AIP on
the source target, from its version inventories, its event records (the newest one's state) and,
where those cannot be read, its bag; then an inventory pass (HEAD: presence, size, stored
checksum) over every configured target, which marks an object verified only when a recorded check
vouches for it. Foreign objects, damaged records and replicas that disagree are reported, never
merged or deleted. One transaction per AIP, so a rebuild killed half-way resumes. Side effects:
reads every target; writes the catalog (AIPs, events, journal bookkeeping, the rebuild's record)
and, through the journal flush, the rebuild's own events beside each AIP.

Its modules, each importing only those before it: `report` (the report's values and
`format_report`), `records` (what a target's journal holds of one AIP: its version inventories and
event records, the union of their events, two replicas' journals compared), `fallback` (the bag
itself, where the journal cannot tell: versions, files, content key), `inventory_pass` (the HEAD
pass over one target and the rules of what counts as verified), `run` (`rebuild`, and the build of
one AIP)."""

from preserve.operations.rebuild.records import Identity, identity, union_events
from preserve.operations.rebuild.report import (
    DamagedRecord,
    Disagreement,
    Fallback,
    InventoryCount,
    NotPreserve,
    ObjectFinding,
    RebuildReport,
    format_report,
)
from preserve.operations.rebuild.run import rebuild

__all__ = [
    "DamagedRecord",
    "Disagreement",
    "Fallback",
    "Identity",
    "InventoryCount",
    "NotPreserve",
    "ObjectFinding",
    "RebuildReport",
    "format_report",
    "identity",
    "rebuild",
    "union_events",
]
