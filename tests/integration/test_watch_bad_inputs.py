"""Every bad input the issue lists, dropped into a real ingest folder and taken by the real watcher
(polling, stability, the library ingest on ffmpeg, SeaweedFS and SQLite). Each test asserts the
quarantine report, that the source in failed/ is byte-for-byte what was dropped, and that the
watcher went on: a good submission dropped in the same pass is stored."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import bagit
import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.core.errors import UnsafeSubmission
from preserve.core.model import EventType, Outcome
from preserve.intake import submission, watch
from preserve.operations import restore
from preserve.pipeline import ingest_submission
from tests.mediafactory import corrupt_range, make_clip, truncated_copy
from tests.support import isolated_settings

GOOD = "zz good notes.pdf"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> Any:
    settings = isolated_settings(s3_settings, tmp_path, ingest={"stable_seconds": 0.3, "poll_seconds": 0.1})
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def fingerprint(path: Path) -> dict[str, str]:
    """SHA-256 of every file under path (links by their target, never followed)."""

    def one(p: Path) -> str:
        if p.is_symlink():
            return "link:" + os.readlink(p)
        if not p.is_file():
            return f"special:{os.lstat(p).st_mode:o}"
        return hashlib.sha256(p.read_bytes()).hexdigest()

    if path.is_dir() and not path.is_symlink():
        return {
            os.fsdecode(os.fsencode(p.relative_to(path))): one(p)
            for p in sorted(path.rglob("*"))
            if not p.is_dir() or p.is_symlink()
        }
    return {"": one(path)}


def watch_pass(settings: Settings, catalog: Catalog, *, with_good: bool = True) -> dict[str, watch.Handled]:
    """Drop a good submission next to what the test dropped, run one watcher pass, and check the
    watcher went on to store the good one."""
    if with_good:
        (settings.ingest_dir / GOOD).write_bytes(PDF)
    report = watch.watch_once(settings, catalog, lambda p: ingest_submission(settings, catalog, p))
    handled = {h.submission: h for h in report.handled}
    assert all(h.status != "error" for h in report.handled), report
    if with_good:
        assert handled[GOOD].status == "stored", handled[GOOD]
        assert (settings.done_dir / GOOD).exists()
    return handled


def assert_quarantined(
    settings: Settings,
    catalog: Catalog,
    name: str,
    before: dict[str, str],
    *,
    code: str,
    step: str,
    says: tuple[str, ...],
) -> dict[str, Any]:
    folder = settings.failed_dir / name
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    text = (folder / "REPORT.txt").read_text(encoding="utf-8")
    assert report["code"] == code, report
    assert report["step"] == step, report
    for phrase in says:
        assert phrase in report["message"], (phrase, report["message"])
        assert phrase in text
    assert report["advice"] and "What to do" in text and "preserve retry" in text
    assert fingerprint(folder / name) == before  # untouched
    assert not os.path.lexists(settings.ingest_dir / name)
    assert catalog.submission(submission.key_for(folder / name)).status == "quarantined"
    return report


# -- the files themselves ------------------------------------------------------------------------
def test_zero_byte_file(env) -> None:
    settings, catalog = env
    empty = settings.ingest_dir / "empty.mov"
    empty.write_bytes(b"")
    before = fingerprint(empty)
    handled = watch_pass(settings, catalog)
    assert handled["empty.mov"].status == "quarantined"
    assert_quarantined(
        settings, catalog, "empty.mov", before, code="SubmissionError", step="stage", says=("zero-byte",)
    )


def test_mp4_truncated_without_moov_atom(env, tmp_path: Path) -> None:
    settings, catalog = env
    whole = make_clip(tmp_path / "whole.mp4", duration=2.0)  # not faststart: the moov atom is at the end
    assert b"moov" not in whole.read_bytes()[: int(whole.stat().st_size * 0.6)]
    cut = truncated_copy(whole, settings.ingest_dir / "cut.mp4", 0.6)
    before = fingerprint(cut)
    watch_pass(settings, catalog)
    report = assert_quarantined(
        settings, catalog, "cut.mp4", before, code="MediaError", step="characterise", says=("ffprobe cannot read it",)
    )
    assert "--accept-invalid" in report["advice"]


def test_pdf_without_video_is_preserved_not_quarantined(env) -> None:
    settings, catalog = env
    (settings.ingest_dir / "statement.pdf").write_bytes(PDF + b"% a director's statement\n")
    handled = watch_pass(settings, catalog)
    assert handled["statement.pdf"].status == "stored"
    aip = catalog.get_aip(handled["statement.pdf"].aip_id)
    assert aip.access == ()
    assert any(
        e.type is EventType.CREATION and e.outcome is Outcome.NOT_PERFORMED and "no video" in e.detail
        for e in aip.events
    )
    assert not settings.failed_dir.exists() or not any(settings.failed_dir.iterdir())


def test_corrupted_bitstream_in_the_middle(env, tmp_path: Path) -> None:
    settings, catalog = env
    clip = make_clip(tmp_path / "clip.mp4", duration=2.0, audio=False)
    bad = corrupt_range(clip, settings.ingest_dir / "damaged.mp4", at=0.5, length=4000)
    before = fingerprint(bad)
    watch_pass(settings, catalog)
    assert_quarantined(
        settings,
        catalog,
        "damaged.mp4",
        before,
        code="MediaError",
        step="validate",
        says=("does not decode cleanly", "decode error"),
    )


# -- names -----------------------------------------------------------------------------------------
def test_hostile_and_foreign_names(env, tmp_path: Path) -> None:
    """NFD Chinese, emoji and a leading '-' are not bad input: they are stored under their own
    (NFC) names, the original bytes recorded, and never reach ffmpeg as options. A newline in a
    name is stored too (percent-encoded in manifests and object keys) and restored exactly."""
    settings, catalog = env
    clip = make_clip(tmp_path / "c.mp4", duration=0.5)
    nfd = unicodedata.normalize("NFD", "北京的夏天 Café.mp4")
    names = {nfd: "北京的夏天 Café.mp4", "🎬 电影 2019.mp4": "🎬 电影 2019.mp4", "-i.mp4": "-i.mp4"}
    for i, name in enumerate(names):  # different bytes each, or they would be duplicates
        (settings.ingest_dir / name).write_bytes(clip.read_bytes() + bytes([i]))
    names["new\nline\t.mp4"] = "new\nline\t.mp4"
    (settings.ingest_dir / "new\nline\t.mp4").write_bytes(clip.read_bytes() + b"\n")
    handled = watch_pass(settings, catalog)
    for on_disk, nfc in names.items():
        o = handled[nfc]
        assert o.status == "stored", (nfc, o.detail)
        aip = catalog.get_aip(o.aip_id)
        assert {f.path for f in aip.files if f.role == "video"} == {f"data/objects/{nfc}"}
        assert aip.access, nfc  # the proxy was made from it: ffmpeg read the right file
        assert os.path.lexists(settings.done_dir / on_disk)  # the source keeps its own bytes
    restored = restore.restore(settings, catalog, handled["new\nline\t.mp4"].aip_id, tmp_path / "back")
    assert (
        restored.ok
        and (restored.path / "data" / "objects" / "new\nline\t.mp4").read_bytes() == clip.read_bytes() + b"\n"
    )
    nfd_events = catalog.get_aip(handled["北京的夏天 Café.mp4"].aip_id).events
    assert any(e.type is EventType.FILENAME_CHANGE and nfd.encode().hex() in e.detail for e in nfd_events)


def test_name_limits_in_bytes(env) -> None:
    """ext4 refuses a single name over 255 bytes, so a 300-byte name cannot be dropped on this
    machine: the per-name limit is checked on the raw bytes, and a real submission exceeds the S3
    key budget with a path of several shorter (legal) components."""
    settings, catalog = env
    with pytest.raises(UnsafeSubmission, match="300 bytes"):
        submission.safe_name(("长" * 100).encode(), "x")  # 300 bytes of Chinese: 100 characters
    deep = settings.ingest_dir / "深 long path"
    parts = ["长" * 80] * 4  # 240 bytes each, 960 bytes in all: over the S3 key budget
    leaf = deep.joinpath(*parts)
    leaf.mkdir(parents=True)
    (leaf / "film.mov").write_bytes(b"bytes")
    before = fingerprint(deep)
    watch_pass(settings, catalog)
    assert_quarantined(
        settings,
        catalog,
        "深 long path",
        before,
        code="UnsafeSubmission",
        step="stage",
        says=("bytes; the storage key limit",),
    )


def test_name_that_is_not_utf8(env) -> None:
    settings, catalog = env
    raw = os.path.join(os.fsencode(settings.ingest_dir), b"caf\xe9.mov")  # Latin-1, not UTF-8
    with open(raw, "wb") as fh:
        fh.write(b"bytes")
    name = os.fsdecode(b"caf\xe9.mov")
    before = fingerprint(Path(os.fsdecode(raw)))
    handled = watch_pass(settings, catalog)
    assert handled["caf\\xe9.mov"].status == "quarantined"
    assert_quarantined(
        settings, catalog, name, before, code="UnsafeSubmission", step="stage", says=("not valid UTF-8",)
    )


# -- safety ----------------------------------------------------------------------------------------
def test_symlink_to_etc_passwd(env) -> None:
    settings, catalog = env
    passwd_before = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    link = settings.ingest_dir / "passwd.mov"
    link.symlink_to("/etc/passwd")
    folder = settings.ingest_dir / "folder with link"
    folder.mkdir()
    (folder / "film.mov").write_bytes(b"bytes")
    (folder / "extra.mov").symlink_to("/etc/passwd")
    before_link, before_folder = fingerprint(link), fingerprint(folder)
    watch_pass(settings, catalog)
    assert_quarantined(
        settings,
        catalog,
        "passwd.mov",
        before_link,
        code="UnsafeSubmission",
        step="stage",
        says=("symbolic link", "never followed"),
    )
    assert_quarantined(
        settings,
        catalog,
        "folder with link",
        before_folder,
        code="UnsafeSubmission",
        step="stage",
        says=("symbolic link",),
    )
    assert os.readlink(settings.failed_dir / "passwd.mov" / "passwd.mov") == "/etc/passwd"
    assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() == passwd_before
    assert catalog.list_aips()[0].submission_name == GOOD and len(catalog.list_aips()) == 1


def test_hard_link_and_fifo(env, tmp_path: Path) -> None:
    settings, catalog = env
    linked = settings.ingest_dir / "linked.mov"
    linked.write_bytes(b"bytes")
    os.link(linked, tmp_path / "elsewhere.mov")
    os.mkfifo(settings.ingest_dir / "pipe.mov")
    before, before_fifo = fingerprint(linked), fingerprint(settings.ingest_dir / "pipe.mov")
    watch_pass(settings, catalog)  # the FIFO is never opened, or this would hang
    assert_quarantined(
        settings, catalog, "linked.mov", before, code="UnsafeSubmission", step="stage", says=("hard-linked",)
    )
    assert_quarantined(
        settings, catalog, "pipe.mov", before_fifo, code="UnsafeSubmission", step="stage", says=("not a regular file",)
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything: an unreadable file cannot be made")
def test_unreadable_file(env) -> None:
    settings, catalog = env
    folder = settings.ingest_dir / "locked"
    folder.mkdir()
    (folder / "film.mov").write_bytes(b"bytes")
    (folder / "film.mov").chmod(0)
    watch_pass(settings, catalog)
    report = json.loads((settings.failed_dir / "locked" / "report.json").read_text())
    assert report["code"] == "SubmissionError" and "cannot be read" in report["message"]


def test_sidecar_malformed_yaml_and_escaping_path(env, tmp_path: Path) -> None:
    settings, catalog = env
    clip = make_clip(tmp_path / "c.mp4", duration=0.5, audio=False)
    bad_yaml = settings.ingest_dir / "bad yaml"
    bad_yaml.mkdir()
    (bad_yaml / "film.mp4").write_bytes(clip.read_bytes())
    (bad_yaml / "metadata.yaml").write_text("title: ok\noriginal_title: 电影\n  director: [unclosed\n")
    escaping = settings.ingest_dir / "escape.mp4"
    escaping.write_bytes(clip.read_bytes() + b"\0")
    (settings.ingest_dir / "escape.mp4.yaml").write_text("title: Escape\nfiles: ../../x\n")
    before_yaml, before_escape = fingerprint(bad_yaml), fingerprint(escaping)
    watch_pass(settings, catalog)
    assert_quarantined(
        settings,
        catalog,
        "bad yaml",
        before_yaml,
        code="SidecarError",
        step="stage",
        says=("metadata.yaml: not valid YAML at line 3",),
    )
    assert_quarantined(
        settings,
        catalog,
        "escape.mp4",
        before_escape,
        code="SidecarError",
        step="stage",
        says=("line 2: files", "'../../x' is a path outside the submission"),
    )
    assert (settings.failed_dir / "escape.mp4" / "escape.mp4.yaml").exists()  # the sidecar went with it


# -- supplied checksums --------------------------------------------------------------------------
def test_wrong_supplied_md5(env, tmp_path: Path) -> None:
    settings, catalog = env
    clip = make_clip(tmp_path / "c.mp4", duration=0.5, audio=False)
    film = settings.ingest_dir / "film.mp4"
    film.write_bytes(clip.read_bytes())
    (settings.ingest_dir / "film.mp4.md5").write_text(f"{'0' * 32}  film.mp4\n")
    right = settings.ingest_dir / "right.mp4"
    right.write_bytes(clip.read_bytes() + b"\0")
    (settings.ingest_dir / "right.mp4.md5").write_text(hashlib.md5(right.read_bytes()).hexdigest() + "\n")
    before = fingerprint(film)
    handled = watch_pass(settings, catalog)
    report = assert_quarantined(
        settings,
        catalog,
        "film.mp4",
        before,
        code="SuppliedChecksumMismatch",
        step="stage",
        says=("film.mp4: md5 supplied " + "0" * 32, "film.mp4.md5 line 1"),
    )
    assert (settings.failed_dir / "film.mp4" / "film.mp4.md5").exists()
    assert any(e["type"] == "fixity check" and e["outcome"] == "fail" for e in report["events"])
    # a right one is verified on receipt, recorded, and the checksum file is preserved with the film
    aip = catalog.get_aip(handled["right.mp4"].aip_id)
    assert any(
        e.type is EventType.FIXITY_CHECK and e.outcome is Outcome.PASS and "1 of 1 file(s) match" in e.detail
        for e in aip.events
    )
    assert {f.path for f in aip.files} >= {"data/objects/right.mp4", "data/objects/right.mp4.md5"}


def test_supplied_manifest_escaping_the_submission(env) -> None:
    settings, catalog = env
    folder = settings.ingest_dir / "manifest escape"
    folder.mkdir()
    (folder / "film.mov").write_bytes(b"bytes")
    (folder / "manifest-sha256.txt").write_text(f"{'a' * 64}  ../../etc/passwd\n")
    before = fingerprint(folder)
    watch_pass(settings, catalog)
    assert_quarantined(
        settings,
        catalog,
        "manifest escape",
        before,
        code="UnsafeSubmission",
        step="stage",
        says=("'../../etc/passwd' climbs out",),
    )


def test_submitted_bagit_bag_valid_and_tampered(env, tmp_path: Path) -> None:
    settings, catalog = env
    for name in ("good bag", "bad bag"):
        d = settings.ingest_dir / name
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "interview 采访.txt").write_text("transcript\n", encoding="utf-8")
        (d / "still.jpg").write_bytes(b"\xff\xd8\xff" + name.encode())
        bagit.make_bag(str(d), checksums=["md5", "sha256"])
    bad_file = settings.ingest_dir / "bad bag" / "data" / "still.jpg"
    bad_file.write_bytes(bad_file.read_bytes()[:-1] + b"X")  # same size: only the digest tells
    before = fingerprint(settings.ingest_dir / "bad bag")
    handled = watch_pass(settings, catalog)
    assert handled["good bag"].status == "stored"
    aip = catalog.get_aip(handled["good bag"].aip_id)
    assert any(
        e.type is EventType.VALIDATION and "full validation" in e.detail and e.outcome is Outcome.PASS
        for e in aip.events
    )
    assert sum(e.type is EventType.FIXITY_CHECK and e.outcome is Outcome.PASS for e in aip.events) >= 2
    assert aip.access == ()  # a bag of documents: preserved, no access copy
    assert_quarantined(
        settings,
        catalog,
        "bad bag",
        before,
        code="SuppliedChecksumMismatch",
        step="stage",
        says=("does not validate", "still.jpg"),
    )


# -- completeness --------------------------------------------------------------------------------
def test_a_growing_file_is_not_taken_until_stable(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(s3_settings, tmp_path, ingest={"stable_seconds": 1.5, "poll_seconds": 0.1})
    catalog = Catalog(settings.catalog_url)
    growing = settings.ingest_dir / "arriving.pdf"
    growing.write_bytes(PDF)
    stop = threading.Event()
    writes = 0

    def writer() -> None:  # a slow network copy: a little more every 50 ms
        nonlocal writes
        with open(growing, "ab") as fh:
            while not stop.is_set() and writes < 60:
                fh.write(b"% more bytes\n" * 100)
                fh.flush()
                writes += 1
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    state = watch.WatchState()
    taken: list[watch.Handled] = []
    try:
        while thread.is_alive():  # the watcher polls the whole time the copy runs
            seen = watch.look(settings.ingest_dir, state, time.monotonic(), settings.ingest.stable_seconds)
            if thread.is_alive():
                assert seen.ready == (), f"taken while still growing after {writes} writes"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
    final = hashlib.sha256(growing.read_bytes()).hexdigest()
    report = watch.watch_once(settings, catalog, lambda p: ingest_submission(settings, catalog, p), state=state)
    taken = [h for h in report.handled if h.submission == "arriving.pdf"]
    assert [h.status for h in taken] == ["stored"]
    stored = catalog.get_aip(taken[0].aip_id)
    assert [f.sha256 for f in stored.files if f.path == "data/objects/arriving.pdf"] == [final]
    catalog.close()
