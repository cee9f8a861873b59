"""Virus check with ClamAV's clamscan (optional), always with its real outcome: pass, fail (a
signature matched), or "not performed" with the reason (clamscan missing, no signature database,
a file too large to be really scanned). Never a silent skip. Runs clamscan via tools.run once for
all files (it loads its database on every start); writes nothing.

ClamAV facts this relies on: Debian ships no signature database (freshclam needs the internet);
by default clamscan answers "OK" for files over 100 MB without scanning them; it cannot scan files
of 2 GiB or more at all."""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from preserve import tools
from preserve.core.errors import ToolError
from preserve.core.model import Agent, Outcome

DEFAULT_DATABASE = Path("/var/lib/clamav")
#: ClamAV cannot scan a file this large or larger
CLAMAV_HARD_LIMIT = 2 * 1024**3
#: files in a database directory that clamscan loads
DATABASE_SUFFIXES = (
    ".cvd",
    ".cld",
    ".cud",
    ".ndb",
    ".hdb",
    ".hsb",
    ".ldb",
    ".cdb",
    ".mdb",
    ".msb",
    ".ndu",
    ".ldu",
    ".hdu",
    ".idb",
    ".yar",
    ".yara",
    ".ign2",
    ".fp",
    ".sfp",
    ".pdb",
    ".wdb",
)


@dataclass(frozen=True)
class VirusResult:
    path: Path
    outcome: Outcome  # PASS | FAIL | NOT_PERFORMED
    detail: str


def database_files(database: Path) -> list[Path]:
    if database.is_file():
        return [database] if database.suffix in DATABASE_SUFFIXES else []
    if not database.is_dir():
        return []
    return sorted(p for p in database.iterdir() if p.suffix in DATABASE_SUFFIXES and p.stat().st_size > 0)


def scan_argv(paths: Sequence[Path], database: Path, max_bytes: int, clamscan: str = "clamscan") -> list[str]:
    """clamscan over absolute paths (so no name is an option), with its size limits raised to our
    limit and limits that are still exceeded reported as findings instead of a silent OK."""
    mb = max(1, max_bytes // (1024 * 1024))
    return [
        clamscan,
        "--stdout",
        "--no-summary",
        f"--database={database}",
        f"--max-filesize={mb}M",
        f"--max-scansize={mb}M",
        "--alert-exceeds-max=yes",
        *(str(Path(p).absolute()) for p in paths),
    ]


_LINE = re.compile(r"^(?P<path>.*): (?P<what>.+?) ?(?P<verdict>FOUND|OK|ERROR)$")


def parse(stdout: str, paths: Sequence[Path]) -> dict[Path, tuple[str, str]]:
    """Per file (verdict, signature or message) from clamscan's lines (pure)."""
    by_name = {str(Path(p).absolute()): Path(p) for p in paths}
    out: dict[Path, tuple[str, str]] = {}
    for line in stdout.splitlines():
        line = line.rstrip()
        if line.endswith(": OK"):
            name, verdict, what = line[:-4], "OK", ""
        else:
            m = _LINE.match(line)
            if not m:
                continue
            name, verdict, what = m.group("path"), m.group("verdict"), m.group("what")
        if name in by_name:
            out[by_name[name]] = (verdict, what.strip())
    return out


def scan(
    paths: Sequence[Path],
    *,
    database: Path | None = None,
    max_bytes: int = 100 * 1024 * 1024,
    clamscan: str = "clamscan",
    timeout: float | None = 6 * 3600,
) -> list[VirusResult]:
    """Scan files; one result per path, in order. Raises nothing for a missing scanner or database
    (those are "not performed" results); raises ToolTimeout if clamscan hangs."""
    paths = [Path(p) for p in paths]
    db = Path(database) if database else DEFAULT_DATABASE
    if shutil.which(clamscan) is None:
        return [VirusResult(p, Outcome.NOT_PERFORMED, "clamscan (ClamAV) is not installed") for p in paths]
    if not database_files(db):
        return [
            VirusResult(
                p,
                Outcome.NOT_PERFORMED,
                f"ClamAV has no signature database in {db} (Debian ships none; freshclam needs the internet)",
            )
            for p in paths
        ]
    limit = min(max_bytes, CLAMAV_HARD_LIMIT - 1)
    results: dict[Path, VirusResult] = {}
    todo = []
    for p in paths:
        size = p.stat().st_size
        if size >= CLAMAV_HARD_LIMIT:
            results[p] = VirusResult(
                p, Outcome.NOT_PERFORMED, f"file of {size} bytes: ClamAV cannot scan files of 2 GiB or more"
            )
        elif size > limit:
            results[p] = VirusResult(
                p,
                Outcome.NOT_PERFORMED,
                f"file of {size} bytes is over the scan limit of {limit} bytes "
                "(validation.virus_scan_max_mb); ClamAV would answer OK without scanning it",
            )
        else:
            todo.append(p)
    if todo:
        argv = scan_argv(todo, db, limit, clamscan)
        res = tools.run(argv, timeout=timeout, check=False)
        verdicts = parse(res.stdout.decode("utf-8", errors="replace"), todo)
        for p in todo:
            verdict, what = verdicts.get(p, ("", ""))
            if verdict == "OK":
                results[p] = VirusResult(p, Outcome.PASS, f"no virus found ({_db_label(db)})")
            elif verdict == "FOUND" and what.startswith("Heuristics.Limits.Exceeded"):
                results[p] = VirusResult(p, Outcome.NOT_PERFORMED, f"ClamAV could not scan all of it ({what})")
            elif verdict == "FOUND":
                results[p] = VirusResult(p, Outcome.FAIL, f"ClamAV found {what}")
            else:
                tail = " ".join(res.stderr.strip().splitlines()[-2:])
                results[p] = VirusResult(
                    p, Outcome.NOT_PERFORMED, f"clamscan gave no verdict (status {res.returncode}): {tail or what}"
                )
    return [results[p] for p in paths]


def _db_label(db: Path) -> str:
    files = database_files(db)
    return "signatures: " + ", ".join(f.name for f in files[:4]) + (" ..." if len(files) > 4 else "")


@functools.lru_cache(maxsize=4)
def version(clamscan: str = "clamscan") -> str:
    if shutil.which(clamscan) is None:
        return ""
    try:
        res = tools.run([clamscan, "--version"], timeout=60, check=False)
    except ToolError:
        return ""
    m = re.search(r"ClamAV\s+([\w.]+)", res.stdout.decode("utf-8", "replace"))
    return m.group(1) if m else ""


def agent(clamscan: str = "clamscan") -> Agent:
    return Agent("ClamAV clamscan", version(clamscan))
