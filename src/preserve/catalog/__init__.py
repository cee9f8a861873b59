"""The catalog: the archive's record of truth, behind one interface (`Catalog`)."""

from preserve.catalog.repository import (
    AccessCopy,
    AipView,
    Catalog,
    FileView,
    NewAip,
    ReplicaRecord,
    StoredObject,
    SubmissionState,
    content_key,
)

__all__ = [
    "AccessCopy",
    "AipView",
    "Catalog",
    "FileView",
    "NewAip",
    "ReplicaRecord",
    "StoredObject",
    "SubmissionState",
    "content_key",
]
