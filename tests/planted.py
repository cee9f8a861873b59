"""Submissions that carry identifying text where a submitter really puts it (issue 18): a sidecar
whose invalid values name a person and a place (a home-directory path, a name in the year field,
a place in a free-text field, a name as the pseudonym) and a folder with a symbolic link to a
named path; and a check that none of that text is anywhere but the local REPORT.txt."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: what must never leave the quarantine folder's REPORT.txt (and the pseudonym: not even that)
PLANTED = ("zhangsan", "Zhang Sanfeng", "Kunming", "Wujiaba", "lisi", "Dali-Xizhou", "zhang-san-wukan")
#: what the archivist's REPORT.txt still shows, to fix the submission
IN_REPORT = {"sidecar": ("zhangsan", "Zhang Sanfeng", "Kunming", "Wujiaba"), "link": ("lisi", "Dali-Xizhou")}

SIDECAR = (
    "title: Night Train\n"
    "poster: /home/zhangsan/Desktop/poster.jpg\n"  # an unknown field, and a path leaving the submission
    "year: Zhang Sanfeng\n"  # a name in the year field
    "synopsis: ../../Kunming/Wujiaba\n"  # a place in a free-text field that fails validation
    "contributor_id: zhang-san-wukan\n"  # a name where a pseudonym belongs
)
LINK_TARGET = "/home/lisi/Dali-Xizhou/poster.jpg"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def plant(ingest_dir: Path, tag: str) -> dict[str, Path]:
    """Two submissions in ``ingest_dir``: `night train <tag>` (the sidecar) and `linked <tag>`
    (the link). Returns them by kind."""
    sidecar = ingest_dir / f"night train {tag}"
    sidecar.mkdir()
    (sidecar / "notes.pdf").write_bytes(PDF)
    (sidecar / "metadata.yaml").write_text(SIDECAR, encoding="utf-8")
    linked = ingest_dir / f"linked {tag}"
    linked.mkdir()
    (linked / "notes.pdf").write_bytes(PDF)
    (linked / "poster.jpg").symlink_to(LINK_TARGET)
    return {"sidecar": sidecar, "link": linked}


def leaks(where: str, text: str | bytes | Any) -> list[str]:
    """``where: <planted string>`` for each planted string found in ``text`` (a str, bytes, or
    anything JSON-serialisable, e.g. a pydantic dump)."""
    if isinstance(text, bytes):
        blob = text.decode("utf-8", "replace")
    elif isinstance(text, str):
        blob = text
    else:
        blob = json.dumps(text, ensure_ascii=False, default=str)
    return [f"{where}: {p!r}" for p in PLANTED if p in blob]


def assert_reports_keep_them(failed_dir: Path, names: Iterable[tuple[str, str]]) -> None:
    """REPORT.txt in failed/<name>/ still says what is wrong, values included (the pseudonym
    excepted: a refused pseudonym is probably a name, and is quoted nowhere)."""
    for kind, name in names:
        report = (failed_dir / name / "REPORT.txt").read_text(encoding="utf-8")
        for value in IN_REPORT[kind]:
            assert value in report, (name, value)
        assert "zhang-san-wukan" not in report


def files_under(*roots: Path) -> list[Path]:
    """Every regular file under ``roots`` (not following links), for a byte scan."""
    out: list[Path] = []
    for root in roots:
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out += [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return out
