"""The catalog: the archive's record of truth, behind one interface (`Catalog`, a context manager).
`engine` opens the database (sessions, transactions, SQLite locking, migrations on open); one
repository module per aggregate (`submissions`, `aips` with `events`, `alerts`) writes and reads it;
`records` holds the plain values they take and return; `views` is the status summary; `models`
and `migrations/` are the schema."""

from preserve.catalog.access_changes import AccessChangeRecord
from preserve.catalog.aips import content_key
from preserve.catalog.records import (
    AccessCopy,
    AipKeyRecord,
    AipView,
    AlertRecord,
    FileView,
    NewAip,
    NewVersion,
    RebuiltAip,
    ReplicaRecord,
    StoredObject,
    SubmissionState,
    VersionRecord,
)
from preserve.catalog.repository import Catalog

__all__ = [
    "AccessChangeRecord",
    "AccessCopy",
    "AipKeyRecord",
    "AipView",
    "AlertRecord",
    "Catalog",
    "FileView",
    "NewAip",
    "NewVersion",
    "RebuiltAip",
    "ReplicaRecord",
    "StoredObject",
    "SubmissionState",
    "VersionRecord",
    "content_key",
]
