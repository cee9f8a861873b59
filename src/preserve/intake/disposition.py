"""Where a submission goes when its ingest ends: `done/` once every replica is verified, or
`failed/<name>/` with a report a person can read. Sources are only ever renamed, never deleted
or rewritten; done/ and failed/ sit next to the submission so a move never crosses filesystems.
Both are private to the archive's user (folders 0700, files 0600): a source moved there loses its
group and other permissions (its bytes and its owner's access stay as they were), and the reports
are written 0600."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from preserve.core import redact
from preserve.core.errors import PreserveError
from preserve.core.fs import atomic_write, make_private, private_dir
from preserve.core.model import Event, utcnow
from preserve.intake.submission import printable

REPORT_TXT = "REPORT.txt"
REPORT_JSON = "report.json"
#: the reports' names when the submission itself is a file called REPORT.txt or report.json, so
#: the report never overwrites the one copy of what was sent
REPORT_TXT_ALT, REPORT_JSON_ALT = "REPORT (preserve).txt", "report (preserve).json"


def report_names(source_name: str) -> tuple[str, str]:
    """The names of the two reports beside a quarantined source of this name."""
    if source_name in (REPORT_TXT, REPORT_JSON):
        return REPORT_TXT_ALT, REPORT_JSON_ALT
    return REPORT_TXT, REPORT_JSON


def reports_in(folder: Path) -> tuple[str, str]:
    """The names of the reports a quarantine folder holds (see `report_names`)."""
    return (REPORT_TXT_ALT, REPORT_JSON_ALT) if (folder / REPORT_JSON_ALT).is_file() else (REPORT_TXT, REPORT_JSON)


@dataclass(frozen=True)
class QuarantineReport:
    submission: str
    step: str
    code: str
    message: str
    advice: str
    at: str
    events: tuple[dict[str, str], ...]
    files: tuple[str, ...]
    #: the problem as it may be told beyond this folder (preserve.core.redact); ``message`` is complete
    public: str = ""

    def as_text(self) -> str:
        lines = [
            f"Submission:  {self.submission}",
            f"Quarantined: {self.at}",
            f"Failed at:   {self.step}",
            f"Problem:     {self.code}",
            "",
            "What happened",
            "-------------",
            self.message,
            "",
            "What to do",
            "----------",
            self.advice,
            "",
            "The submission is kept here exactly as it arrived; nothing was deleted or changed.",
            "Once it is fixed, put it back with:   preserve retry " + _quote(self.submission),
        ]
        if self.files:
            lines += ["", "Files", "-----", *[f"  {f}" for f in self.files]]
        if self.events:
            lines += [
                "",
                "Steps recorded",
                "--------------",
                *[f"  {e['at']}  {e['type']}: {e['outcome']}  {e['detail']}".rstrip() for e in self.events],
            ]
        return "\n".join(lines) + "\n"


def _quote(name: str) -> str:
    return "'" + name.replace("'", "'\\''") + "'"


def unique_destination(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name.2``, ``name.3``... if taken: nothing is ever overwritten."""
    candidate = directory / name
    n = 2
    while os.path.lexists(candidate):
        candidate = directory / f"{name}.{n}"
        n += 1
    return candidate


def move_to_done(source: Path, companions: Sequence[Path] = ()) -> Path:
    """Rename the source (and its sidecar files) into ``done/`` beside it."""
    done = private_dir(source.parent / "done")
    dest = unique_destination(done, source.name)
    os.rename(source, dest)
    make_private(dest)
    for c in companions:
        if os.path.lexists(c):
            moved = unique_destination(done, c.name)
            os.rename(c, moved)
            make_private(moved)
    return dest


def quarantine(
    source: Path,
    error: BaseException,
    *,
    step: str,
    events: Sequence[Event] = (),
    companions: Sequence[Path] = (),
    files: Sequence[str] = (),
) -> Path:
    """Move the untouched source into ``failed/<name>/`` and write REPORT.txt and report.json
    beside it. Returns the quarantine folder."""
    failed = private_dir(source.parent / "failed")
    folder = unique_destination(failed, source.name)
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o700)
    if os.path.lexists(source):
        os.rename(source, folder / source.name)
    for c in companions:
        if os.path.lexists(c):
            os.rename(c, folder / c.name)
    make_private(folder)
    report = build_report(printable(source.name), error, step=step, events=events, files=files)
    txt_name, json_name = report_names(source.name)
    # a name that is not UTF-8 survives as \xNN escapes instead of making the report unwritable
    atomic_write(folder / txt_name, report.as_text().encode("utf-8", errors="backslashreplace"))
    payload = {**report.__dict__, "events": list(report.events), "files": list(report.files)}
    if not isinstance(error, PreserveError):
        payload["traceback"] = "".join(traceback.format_exception(error))
    atomic_write(
        folder / json_name,
        (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8", errors="backslashreplace"),
    )
    return folder


def build_report(
    name: str, error: BaseException, *, step: str, events: Sequence[Event] = (), files: Sequence[str] = ()
) -> QuarantineReport:
    if isinstance(error, PreserveError):
        code, advice = error.code, error.advice
    else:
        code = f"UnexpectedError ({type(error).__name__})"
        advice = (
            "This is a fault in preserve, not in the submission. Report it to the operator with "
            "report.json; the submission can be retried unchanged once it is fixed."
        )
    return QuarantineReport(
        submission=name,
        step=step,
        code=code,
        message=str(error) or type(error).__name__,
        advice=advice,
        at=utcnow().isoformat(timespec="seconds"),
        events=tuple(
            {
                "type": e.type.value,
                "outcome": e.outcome.value,
                "at": e.at.isoformat(timespec="seconds"),
                "detail": e.detail,
            }
            for e in events
        ),
        files=tuple(files),
        public=redact.describe(error),
    )


def read_report(folder: Path) -> dict[str, object]:
    """The report.json of a quarantine folder ({} when there is none: an archivist removed it)."""
    path = folder / reports_in(folder)[1]
    if not path.is_file():
        return {}
    report: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return report
