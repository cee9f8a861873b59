"""The pipeline: one submission from the ingest folder to verified replicas and a catalog record.

`run.ingest_submission` is the only place that knows the order of the steps (`steps/`); each step
takes the immutable `IngestContext` (settings, catalog, identity, event log) and the typed outputs
of the steps before it. `result.IngestResult` is the one result type, also across the Prefect flow
boundary. A step runner (`runner.StepRunner`) is how Prefect is injected: the library never imports
it. A failure ends in `quarantine`."""

from preserve.pipeline.context import EventLog, IngestContext
from preserve.pipeline.result import IngestResult, IngestStatus
from preserve.pipeline.run import ingest_submission
from preserve.pipeline.runner import StepRunner, run_directly

__all__ = [
    "EventLog",
    "IngestContext",
    "IngestResult",
    "IngestStatus",
    "StepRunner",
    "ingest_submission",
    "run_directly",
]
