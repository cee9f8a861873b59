"""Quarantine and done/: sources renamed intact, readable reports, nothing overwritten."""

import json
from pathlib import Path

from preserve.core.errors import MediaError
from preserve.intake import disposition


def test_quarantine_keeps_source_and_writes_reports(tmp_path: Path) -> None:
    src = tmp_path / "film.mov"
    src.write_bytes(b"\x00\x01data")
    side = tmp_path / "film.mov.yaml"
    side.write_text("title: x\n")
    folder = disposition.quarantine(
        src, MediaError("film.mov does not decode"), step="characterise", companions=[side], files=["film.mov"]
    )
    assert folder == tmp_path / "failed" / "film.mov"
    assert (folder / "film.mov").read_bytes() == b"\x00\x01data" and (folder / "film.mov.yaml").exists()
    text = (folder / "REPORT.txt").read_text()
    assert "does not decode" in text and "--accept-invalid" in text and "preserve retry 'film.mov'" in text
    data = json.loads((folder / "report.json").read_text())
    assert data["code"] == "MediaError" and data["step"] == "characterise"
    # a second failure of the same name never overwrites the first
    src.write_bytes(b"second")
    second = disposition.quarantine(src, RuntimeError("bug"), step="package")
    assert second.name == "film.mov.2" and "fault in preserve" in (second / "REPORT.txt").read_text()
    assert (folder / "film.mov").read_bytes() == b"\x00\x01data"


def test_move_to_done_unique(tmp_path: Path) -> None:
    for content in (b"1", b"2"):
        src = tmp_path / "a.mp4"
        src.write_bytes(content)
        dest = disposition.move_to_done(src)
    assert (tmp_path / "done" / "a.mp4").read_bytes() == b"1" and dest.read_bytes() == b"2"
