"""The `ingest` flow: one Prefect task per library step (see preserve.pipeline.run), so the dashboard
shows where a submission is and how long each step took. Retries on the I/O steps; no caching
anywhere (a checksum must never come from a cache). Each run is tagged `ingest` and the target
names, leaves a keyed markdown artifact `ingest-report` (files, codecs, SHA-256, replicas,
warnings, poster link), a progress artifact while bytes are staged and uploaded, and another for
the transcode (percent of the film's duration).

Privacy: what a task or the flow raises goes into Prefect's database (task and flow states, their
log lines, events). A step that fails raises, out of its task, only a redacted copy
(`preserve.core.redact`: no sidecar value, no link target); the pipeline gets the original back
once the task has ended, so the quarantine's local report is complete."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed, State

from preserve import config as settings_mod
from preserve.catalog import Catalog
from preserve.core import redact
from preserve.core.fs import private_umask
from preserve.core.progress import MediaMeter, MediaProgress, Progress, percent_of
from preserve.pipeline import IngestContext, IngestStatus, ingest_submission
from preserve.report import dashboard

#: steps that touch storage or the network, and are safe to run again
RETRIED_STEPS = {"replicate": 2, "publish": 2, "record": 2}
RETRY_DELAY_SECONDS = 5
P = ParamSpec("P")
R = TypeVar("R")

_TASKS: dict[str, Task[Any, Any]] = {}
#: the original failure behind each redacted copy a task raised, until the runner takes it back
_ORIGINALS: weakref.WeakKeyDictionary[BaseException, BaseException] = weakref.WeakKeyDictionary()


def _redacting(step: Callable[..., R]) -> Callable[..., R]:
    """``step``, raising only a redacted copy of what it raises (the original is kept aside for
    `run_as_task`): the task's state, its log line and its events then quote nothing submitted."""

    @functools.wraps(step)
    def redacted_step(*args: Any, **kwargs: Any) -> R:
        try:
            return step(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is redacted, none is swallowed
            original: BaseException | None = exc
        public = redact.redacted_copy(original)
        _ORIGINALS[public] = original
        del original
        raise public  # outside the except block: no __context__ pointing at the original

    return redacted_step


def _task_for(step: Callable[..., Any]) -> Task[Any, Any]:
    """One Prefect task per library step, made on first use: retries on the I/O steps, no cache."""
    name = step.__name__
    if name not in _TASKS:
        _TASKS[name] = task(
            _redacting(step),
            name=name,
            retries=RETRIED_STEPS.get(name, 0),
            retry_delay_seconds=RETRY_DELAY_SECONDS,
            cache_policy=NO_CACHE,
            persist_result=False,
        )
    return _TASKS[name]


def run_as_task(
    step: Callable[Concatenate[IngestContext, P], R], ctx: IngestContext, /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """The pipeline's step runner in a flow: each step is a task run named after it and the
    submission. A step's failure comes back as the original exception (Prefect saw a redacted copy)."""
    name = step.__name__
    tags = {"ingest", *(t.name for t in ctx.settings.targets)} if name == "replicate" else {"ingest"}
    runnable = _task_for(step).with_options(task_run_name=f"{name} · {ctx.name}", tags=tags)
    original: BaseException | None = None
    try:
        result: R = runnable(ctx, *args, **kwargs)
        return result
    except Exception as exc:
        original = _ORIGINALS.pop(exc, None)
        if original is None:
            raise
    raise original  # outside the except block: its context is its own, not the redacted copy


#: a process-local listener for ingest progress (the CLI's progress bar), beside the artifact
_listener: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("preserve_progress", default=None)
#: the same for the transcode's progress (the CLI's second bar)
_media_listener: contextvars.ContextVar[MediaProgress | None] = contextvars.ContextVar(
    "preserve_media_progress", default=None
)


@contextlib.contextmanager
def progress_listener(progress: Progress | None, media: MediaProgress | None = None) -> Iterator[None]:
    """While inside, ingest flows run in this process also report ``progress(done, total)`` and
    ``media(position, duration, speed)`` here."""
    token, media_token = _listener.set(progress), _media_listener.set(media)
    try:
        yield
    finally:
        _media_listener.reset(media_token)
        _listener.reset(token)


class ProgressArtifact:
    """A Prefect progress artifact for one long operation, created on the first report and
    updated at most every ``interval`` seconds; failures to publish are ignored (decoration)."""

    def __init__(self, description: str, interval: float = 2.0, also: Progress | None = None) -> None:
        self.description, self.interval, self.also = description, interval, also
        self._id: Any = None
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.also is not None:
            self.also(done, total)
        pct = 100.0 * done / total if total else 0.0
        now = time.monotonic()
        if self._id is not None and now - self._last < self.interval and done < total:
            return
        self._last = now
        try:
            if self._id is None:
                self._id = create_progress_artifact(progress=pct, description=self.description)
            else:
                update_progress_artifact(self._id, progress=pct)
        except Exception:  # noqa: BLE001 - never fail the work for a progress display
            pass


class MediaProgressArtifact:
    """A Prefect progress artifact for the transcode of a submission's films: percent of the film's
    duration, created on the first report that knows the duration, updated at most every
    ``interval`` seconds and when the film's end is reached (`finish` publishes the end of the
    ingest). ``also`` hears every report, on the caller's thread (the CLI's bar).

    Reports come from the thread that reads ffmpeg's stdout, so nothing here may wait for the
    server: each report is left in a one-slot buffer (the latest wins; the caller never blocks) for
    a publishing thread of this artifact's own, started at the first report and ended by `finish`.
    That thread runs in the context of the run that made this artifact, so what it publishes
    belongs to that flow run. Failures to publish are ignored (decoration)."""

    #: how long `finish` waits for the publishing thread to send its last value (s)
    FINISH_WAIT_SECONDS = 60.0

    def __init__(self, description: str, interval: float = 2.0, also: MediaProgress | None = None) -> None:
        self.description, self.also = description, also
        self._meter = MediaMeter(self._publish, interval)
        self._id: Any = None
        self._run_context = contextvars.copy_context()
        self._wake = threading.Condition()
        self._slot: tuple[float, float, float | None] | None = None  # the latest report not yet taken
        self._closed = False
        self._complete = False
        self._publisher: threading.Thread | None = None

    def __call__(self, position: float, duration: float, speed: float | None) -> None:
        if self.also is not None:
            try:
                self.also(position, duration, speed)
            except Exception:  # noqa: BLE001 - never fail the work for a progress display
                pass
        with self._wake:
            if self._closed:
                return
            self._slot = (position, duration, speed)
            if self._publisher is None:
                self._publisher = threading.Thread(
                    target=self._run_context.copy().run, args=(self._publish_loop,), name="media-progress", daemon=True
                )
                self._publisher.start()
            self._wake.notify()

    def finish(self, complete: bool) -> None:
        """The ingest is over: 100 % when it is ``complete`` (stored: every transcode ran to the
        film's end, which ffmpeg's last report may miss by a frame), else the last report held back.
        Later reports are ignored. Waits (at most FINISH_WAIT_SECONDS) for the publishing thread."""
        with self._wake:
            if self._closed:
                return
            self._closed, self._complete = True, complete
            publisher = self._publisher
            self._wake.notify()
        if publisher is not None:
            publisher.join(self.FINISH_WAIT_SECONDS)

    def _publish_loop(self) -> None:
        """The publishing thread: the latest report to the meter (which throttles it), until `finish`."""
        while True:
            with self._wake:
                while self._slot is None and not self._closed:
                    self._wake.wait()
                report, self._slot = self._slot, None
                closing, complete = self._closed, self._complete
            if report is not None:
                self._meter(*report)
            if closing:
                if not (complete and self._id is not None):
                    self._meter.flush()  # the last report held back (it may create the artifact)
                if complete and self._id is not None:
                    self._in_run(100.0)
                return

    def _publish(self, position: float, duration: float, speed: float | None) -> None:
        pct = percent_of(position, duration)
        if pct is not None:
            self._in_run(pct)

    def _in_run(self, pct: float) -> None:
        if FlowRunContext.get() is None:
            self._run_context.copy().run(self._send, pct)
        else:
            self._send(pct)

    def _send(self, pct: float) -> None:
        try:
            if self._id is None:
                self._id = create_progress_artifact(progress=pct, description=self.description)
            else:
                update_progress_artifact(self._id, progress=pct)
        except Exception:  # noqa: BLE001 - never fail the work for a progress display
            pass


def tag_this_run(*tags: str) -> None:
    """Add tags to the current flow run (a directly called flow has no deployment tags)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, tags=sorted({*ctx.flow_run.tags, *tags}))
    except Exception:  # noqa: BLE001 - tags are for people; the ingest goes on
        pass


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"ingest · {Path(flow_run.parameters.get('path', '?')).name}"


def _withdrawn(settings: settings_mod.Settings, aip_id: str) -> bool:
    """A re-submission of a film an operator withdrew (the same AIP, or a new AIP of the same film,
    say with a corrected sidecar): it gets no report (title, poster link), and its run is removed
    from the dashboard by the next housekeeping round (flows/withdraw.py)."""
    if not aip_id:
        return False
    with Catalog(settings.catalog_url) as catalog:
        aip = catalog.get_aip(aip_id)
        media = [f.sha256 for f in aip.files if f.role in ("video", "audio")] if aip else []
        if not catalog.publication_withheld(aip_id) and not catalog.withheld_sharing(media, exclude=aip_id):
            return False
        catalog.request_dashboard_cleanup(aip_id)
        return True


@flow(name="ingest", flow_run_name=_run_name, log_prints=False, persist_result=False)
def ingest_flow(path: str, config: str | None = None, accept_invalid: bool = False) -> State:
    """Ingest one submission. The run ends Failed (visible on the dashboard) when the submission
    was quarantined; the source is then in failed/ with its report."""
    private_umask()  # what this run and its tools create is for the archive's user only
    settings = settings_mod.load(config)
    tag_this_run("ingest", *(t.name for t in settings.targets))
    progress = ProgressArtifact(f"ingest of {Path(path).name}: bytes staged and uploaded", also=_listener.get())
    media = MediaProgressArtifact(
        f"ingest of {Path(path).name}: transcode, percent of the film's duration", also=_media_listener.get()
    )
    failure: BaseException | None = None
    try:
        with Catalog(settings.catalog_url) as catalog:
            outcome = ingest_submission(
                settings,
                catalog,
                Path(path),
                runner=run_as_task,
                accept_invalid=accept_invalid,
                progress=progress,
                media_progress=media,
            )
    except Exception as exc:  # noqa: BLE001 - a fault of the archive itself (the catalog is down): redacted
        failure = exc
    media.finish(complete=failure is None and outcome.status is IngestStatus.STORED)
    if failure is not None:
        raise redact.redacted_copy(failure)  # the flow's state and log quote only what may be told
    if outcome.status is not IngestStatus.SKIPPED and not _withdrawn(settings, outcome.aip_id):
        try:
            create_markdown_artifact(
                markdown=dashboard.ingest_report(outcome),
                key=dashboard.INGEST_REPORT_KEY,
                description=f"{outcome.submission}: {outcome.status}",
            )
        except Exception as exc:  # noqa: BLE001 - the AIP is stored; a missing report must not say otherwise
            get_run_logger().warning("could not publish the ingest report: %s", redact.describe(exc))
    data = outcome.to_dict()
    if outcome.status is IngestStatus.QUARANTINED:
        return Failed(message=f"{outcome.submission} quarantined: {outcome.detail}", data=data)
    return Completed(message=f"{outcome.submission}: {outcome.status} {outcome.aip_id}", data=data)
