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


def test_a_submission_named_like_a_report_is_never_overwritten_and_goes_back_intact(tmp_path: Path) -> None:
    from preserve.catalog import Catalog
    from preserve.config import DEFAULT_CONFIG, load
    from preserve.intake import release

    settings = load(
        DEFAULT_CONFIG,
        env={},
        overrides={"archive": {"var_dir": str(tmp_path / "var"), "ingest_dir": str(tmp_path / "ingest")}},
    )
    settings.ingest_dir.mkdir(parents=True, exist_ok=True)
    with Catalog(settings.catalog_url) as catalog:
        for name, body in (("REPORT.txt", b"the filmmaker's own notes\n"), ("report.json", b'{"mine": true}\n')):
            src = settings.ingest_dir / name
            src.write_bytes(body)
            folder = disposition.quarantine(src, MediaError("bad"), step="stage", files=[name])
            assert (folder / name).read_bytes() == body  # the report went beside it, not over it
            assert "bad" in (folder / disposition.REPORT_TXT_ALT).read_text()
            assert json.loads((folder / disposition.REPORT_JSON_ALT).read_text())["submission"] == name
            back = release.release(settings, catalog, folder.name)
            assert back.source == settings.ingest_dir / name and back.source.read_bytes() == body
            assert not folder.exists()
            back.source.unlink()
