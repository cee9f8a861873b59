"""The one redaction at the boundary: what may be said about a failure beyond the local quarantine
report (REPORT.txt and report.json keep the complete text, for the archivist). Everything else
(catalog events and reasons, the ingest result, Prefect states, logs and artifacts, alerts, the
command line's stderr and `status`) says only this. Pure: no I/O.

- a PreserveError says its ``public`` text (see preserve.core.errors): never a value of the
  sidecar or a link's target, at most file names of the submission;
- an OSError says its errno and strerror, not the file name it carries;
- any other exception (a fault in preserve) says its class and where it was raised in the code,
  never its message: ``KeyError('Zhang San')`` would otherwise quote a sidecar key.
"""

from __future__ import annotations

import copy
import traceback
from pathlib import PurePath

from preserve.core.errors import PreserveError, ToolError


def public_text(exc: BaseException) -> str:
    """The failure, without its message where that can quote what a submitter sent."""
    if isinstance(exc, PreserveError):
        return exc.public
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"[Errno {exc.errno}] {exc.strerror}"
    name = type(exc).__name__
    return f"unexpected {name} in preserve{_where(exc)}; its message is withheld (it could quote the submission)"


def code_of(exc: BaseException) -> str:
    """The error's stable name: ``SidecarError``, ``MediaError``, ``KeyError``..."""
    return exc.code if isinstance(exc, PreserveError) else type(exc).__name__


def describe(exc: BaseException) -> str:
    """One shareable line: ``<code>: <public text>``."""
    return f"{code_of(exc)}: {public_text(exc)}"


def redacted_copy(exc: BaseException) -> BaseException:
    """An exception to raise where the original must not go (a Prefect task's or flow's state and
    log): of the same class when it can be copied (so a dashboard still says ``SidecarError``),
    with the public text as its only message, and no cause, context or traceback to quote the
    original. Raise it outside the ``except`` block that caught the original."""
    text = public_text(exc)
    clone: BaseException
    if isinstance(exc, PreserveError):
        try:
            clone = copy.copy(exc)
            clone.args = (text,)
            if isinstance(clone, ToolError):
                clone.stderr = ""  # the tool's own output, kept with the original
        except Exception:  # noqa: BLE001 - a subclass that cannot be copied: a plain one will do
            clone = PreserveError(text, advice=exc.advice)
    else:
        clone = RuntimeError(describe(exc))
    clone.__cause__ = None
    clone.__context__ = None
    clone.__suppress_context__ = True
    clone.__traceback__ = None
    return clone


def _where(exc: BaseException) -> str:
    """`` at intake/sidecar.py:123 (parse)``: the innermost frame of the traceback, our code's own
    coordinates (never a value)."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    if not frames:
        return ""
    last = frames[-1]
    path = PurePath(last.filename)
    short = "/".join(path.parts[-2:])
    return f" at {short}:{last.lineno} ({last.name})"
