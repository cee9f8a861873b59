"""Steps 9 and 10, record and accession: write the record of truth (the catalog), last and in one
transaction; only then move the source out of the ingest folder. Side effects: catalog writes;
renames the source into done/; removes the ingest's work directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from preserve import tools
from preserve.catalog import NewAip
from preserve.core.model import Event, EventType, Outcome
from preserve.intake import disposition
from preserve.intake.submission import Submission
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.describe import Described
from preserve.pipeline.steps.normalise import Masters
from preserve.pipeline.steps.package import Packaged
from preserve.pipeline.steps.publish import Published
from preserve.pipeline.steps.receive import Staged
from preserve.pipeline.steps.replicate import Replicated


def record(
    ctx: IngestContext,
    staged: Staged,
    described: Described,
    masters: Masters,
    packaged: Packaged,
    replicated: Replicated,
    published: Published,
) -> None:
    """Write the record of truth, last and in one transaction."""
    ctx.log.record(
        EventType.INGESTION,
        Outcome.PASS,
        tools.preserve_agent(),
        f"stored with {len(replicated.replicas)} verified replica(s)",
    )
    meta = staged.metadata
    for key in replicated.keys:  # an encrypted replica is only as good as its key: kept first
        ctx.catalog.record_key(key)
    ctx.catalog.record_aip(
        NewAip(
            id=ctx.aip_id,
            title=meta.title or meta.original_title or staged.submission.name,
            submission_name=ctx.name,
            access_level=published.level,
            payload_oxum=packaged.payload_oxum,
            files=list(packaged.files),
            replicas=list(replicated.replicas),
            access=list(published.copies),
            events=list(ctx.log.events),
            formats={
                **{p: (f.format_name, "") for p, f in described.facts.items()},
                **described.formats,
                **masters.formats,
            },
            content_key=staged.content_key,
        ),
        claimed_by=ctx.worker,
    )


def accession(ctx: IngestContext, submission: Submission) -> Path:
    """Only now, with every replica verified and recorded, does the source leave the ingest folder.
    Returns where it went (under done/)."""
    destination = disposition.move_to_done(ctx.source, submission.companions)
    ctx.catalog.add_events(
        ctx.aip_id,
        [Event(EventType.ACCESSION, Outcome.PASS, tools.preserve_agent(), f"source moved to {destination}")],
    )
    ctx.catalog.finish_submission(ctx.name)
    shutil.rmtree(ctx.work_dir, ignore_errors=True)
    return destination
