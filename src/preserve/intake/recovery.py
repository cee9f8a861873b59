"""What a restart does after a crash (kill -9, power loss) before it takes new work: settle the
catalog rows of ingests that died after their source had already left the ingest folder, and
remove staging left by ingests that are no longer running. Everything else is redone by the
normal claim (same AIP id) when the submission is next picked up. Side effects: catalog writes,
deletes directories under var/staging."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.model import SubmissionStatus, utcnow
from preserve.intake import submission as submissions


@dataclass(frozen=True)
class Recovered:
    """One thing a restart tidied up: a finding for the log, not an error."""

    subject: str
    action: str


def recover(settings: Settings, catalog: Catalog) -> list[Recovered]:
    """Finish what interrupted ingests left. Safe to run at any time, next to live workers: it
    never touches the staging of a submission that a live worker holds."""
    from preserve.intake.claims import holder_is_dead

    done: list[Recovered] = []
    present = _entries(settings.ingest_dir)
    now = utcnow()
    for st in catalog.submissions():
        if st.name in present:
            continue  # still in the ingest folder: the next pass redoes or completes it
        if st.status in ("stored", "duplicate"):
            # killed between moving the source to done/ and forgetting the claim
            catalog.finish_submission(st.name)
            done.append(Recovered(st.name, f"{st.status}: the source had reached done/; claim released"))
        elif st.status == "ingesting" and (
            (st.lease_until is not None and st.lease_until < now) or holder_is_dead(st.claimed_by)
        ):
            # its worker died after the source left (it was being quarantined): say where it is
            if os.path.lexists(settings.failed_dir / st.name):
                catalog.mark_quarantined(
                    st.name, "the worker stopped while quarantining it; see failed/", [], aip_id=st.aip_id
                )
                done.append(Recovered(st.name, "worker died while quarantining; marked quarantined"))
            else:
                catalog.finish_submission(st.name)
                done.append(Recovered(st.name, "worker died after the source left; claim released"))
    done += _clean_staging(settings, catalog)
    return done


def _entries(ingest_dir: Path) -> set[str]:
    try:
        return {submissions.key_for(Path(e.path)) for e in os.scandir(ingest_dir)}
    except FileNotFoundError:
        return set()


def _clean_staging(settings: Settings, catalog: Catalog) -> list[Recovered]:
    """Staging directories are named by AIP id; one whose submission is not being ingested
    belongs to nobody. The row is read again right before each removal, so a worker that has
    just claimed the submission keeps its staging."""
    staging = settings.staging_dir
    try:
        dirs = [d for d in staging.iterdir() if d.is_dir() and not d.is_symlink()]
    except FileNotFoundError:
        return []
    removed: list[Recovered] = []
    for d in dirs:
        busy = {st.aip_id for st in catalog.submissions(SubmissionStatus.INGESTING)}
        if d.name in busy:
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(Recovered(d.name, "removed staging left by an interrupted ingest"))
    return removed
