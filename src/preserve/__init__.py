"""preserve: an ingest pipeline for an archive of independent films.

The library (this package) does the work and never imports Prefect; ``flows/`` orchestrates it.
The public surface is below, loaded on first use so that `import preserve` (and `preserve
--help`) stays light; the packages are listed, in pipeline order, in the README's architecture
table."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from preserve.catalog import Catalog
    from preserve.config import Settings
    from preserve.config import load as load_settings
    from preserve.core import errors
    from preserve.pipeline import IngestResult, IngestStatus, ingest_submission

#: public name -> (module, attribute); "" takes the module itself
_PUBLIC = {
    "ingest_submission": ("preserve.pipeline", "ingest_submission"),
    "IngestResult": ("preserve.pipeline", "IngestResult"),
    "IngestStatus": ("preserve.pipeline", "IngestStatus"),
    "load_settings": ("preserve.config", "load"),
    "Settings": ("preserve.config", "Settings"),
    "Catalog": ("preserve.catalog", "Catalog"),
    "errors": ("preserve.core.errors", ""),
}

__all__ = ["Catalog", "IngestResult", "IngestStatus", "Settings", "errors", "ingest_submission", "load_settings"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'preserve' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded
