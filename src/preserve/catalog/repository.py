"""The catalog interface, `Catalog`: one object over the per-aggregate repositories (submissions,
AIPs with their replicas, objects, access copies and events, alerts, access changes, deaccessions,
versions, the journal's bookkeeping, state snapshots and rebuilt AIPs, the keys of AIPs on
encrypted targets) and the status summary. It takes and returns plain values
(`preserve.catalog.records`); ORM rows never leave the catalog package. Side effects: database
reads and writes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from preserve.catalog.access_changes import AccessChangeRepository
from preserve.catalog.aips import AipRepository
from preserve.catalog.alerts import AlertRepository
from preserve.catalog.deaccessions import DeaccessionRepository
from preserve.catalog.journal import JournalRepository
from preserve.catalog.keys import KeyRepository
from preserve.catalog.snapshot import SnapshotRepository
from preserve.catalog.submissions import SubmissionRepository
from preserve.catalog.versions import VersionRepository
from preserve.catalog.views import CatalogStatus, summarize
from preserve.core.model import AipStatus, utcnow


class Catalog(
    SubmissionRepository,
    AipRepository,
    AlertRepository,
    AccessChangeRepository,
    DeaccessionRepository,
    VersionRepository,
    JournalRepository,
    SnapshotRepository,
    KeyRepository,
):
    """Repository over the catalog database (SQLite by default, PostgreSQL at scale); a context
    manager that closes the database at the end of its ``with`` block."""

    def withheld_sharing(self, sha256s: Sequence[str], *, exclude: str = "") -> list[str]:
        """The AIPs (other than ``exclude``) holding a video or audio file with one of these
        SHA-256s that the archive took down: withdrawn by an operator (or a withdrawal pending), or
        deaccessioned. A film submitted again with a changed sidecar is a new AIP, and must not bring
        back what was taken down. A film that is dark only because its submission said so does not
        count: a later submission's own access decision is as much the submitter's word."""
        return [
            aip_id
            for aip_id, _level, status in self.sharing_media(sha256s, exclude=exclude)
            if status == AipStatus.DEACCESSIONED.value or self.publication_withheld(aip_id)
        ]

    def status(
        self, *, audit_interval_days: int = 90, min_verified_replicas: int = 1, now: dt.datetime | None = None
    ) -> CatalogStatus:
        """Everything `preserve status` shows, from aggregate queries."""
        with self._session() as s:
            st = summarize(s, now or utcnow(), audit_interval_days, min_verified_replicas)
        return dataclasses.replace(st, journal_pending=len(self.journal_aips_pending()))
