"""Scanning submissions: safe NFC names, ignored files, refusal of links and special files."""

import os
import unicodedata
from pathlib import Path

import pytest

from preserve.core.errors import SubmissionError, UnsafeSubmission
from preserve.core.model import Role
from preserve.intake import submission


def test_folder_with_chinese_nfd_and_system_files(tmp_path: Path) -> None:
    root = tmp_path / "流浪北京"
    (root / "subs").mkdir(parents=True)
    nfd = unicodedata.normalize("NFD", "café 流浪.mov")
    (root / nfd).write_bytes(b"x" * 10)
    (root / "subs" / "zh.srt").write_text("1\n")
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "film.mov.part").write_bytes(b"partial")
    (root / "metadata.yaml").write_text("title: x\n")
    sub = submission.scan(root)
    rels = {f.rel: f for f in sub.files}
    assert set(rels) == {"café 流浪.mov", "subs/zh.srt", "metadata.yaml"}
    assert rels["café 流浪.mov"].original_name_bytes == nfd.encode()
    assert rels["café 流浪.mov"].role is Role.VIDEO and rels["subs/zh.srt"].role is Role.SUBTITLE
    assert sorted(sub.ignored) == ["流浪北京/.DS_Store", "流浪北京/film.mov.part"]
    assert sub.sidecar == root / "metadata.yaml"


def test_symlink_refused(tmp_path: Path) -> None:
    link = tmp_path / "passwd.mov"
    link.symlink_to("/etc/passwd")
    with pytest.raises(UnsafeSubmission, match="symbolic link"):
        submission.scan(link)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeSubmission):
        submission.scan(folder)


def test_hardlink_and_fifo_refused(tmp_path: Path) -> None:
    a = tmp_path / "a.mov"
    a.write_bytes(b"1")
    os.link(a, tmp_path / "b.mov")
    with pytest.raises(UnsafeSubmission, match="hard-linked"):
        submission.scan(a)
    folder = tmp_path / "d"
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    with pytest.raises(UnsafeSubmission, match="regular"):
        submission.scan(folder)


def test_names_over_255_bytes_and_empty_files(tmp_path: Path) -> None:
    # ext4 itself refuses names over 255 bytes, so the check is exercised on the raw name
    with pytest.raises(UnsafeSubmission, match="256 bytes"):
        submission.safe_name(b"a" * 250 + "流流".encode(), "x")
    name, orig = submission.safe_name(b"a" * 252 + "流".encode(), "x")  # exactly 255 bytes
    assert orig is None and len(name.encode()) == 255
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(SubmissionError, match="zero-byte"):
        submission.scan(empty)


def test_hostile_names_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    for name in ("-i.mov", "--help", "emoji 🎬.mp4", 'it\'s "quoted" $(x) `y`.txt'):
        (folder / name).write_bytes(b"1")
    rels = {f.rel for f in submission.scan(folder).files}
    assert rels == {"-i.mov", "--help", "emoji 🎬.mp4", 'it\'s "quoted" $(x) `y`.txt'}


@pytest.mark.parametrize("name", ["new\nline.txt", "tab\there.mov", "esc\x1b[31m.mov", "del\x7f.mov", "100%.mov"])
def test_control_characters_are_kept_and_keys_encode_them_reversibly(tmp_path: Path, name: str) -> None:
    from preserve.storage.base import check_key, member_path, object_key

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / name).write_bytes(b"1")
    (rel,) = [f.rel for f in submission.scan(folder).files]
    assert rel == name
    key = object_key("aip", f"data/objects/{rel}")
    assert check_key(key) == key  # a key every store accepts
    assert member_path("aip", key) == f"data/objects/{name}"


def test_invalid_utf8_name_refused(tmp_path: Path) -> None:
    bad = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.mov")
    with open(bad, "wb") as fh:
        fh.write(b"1")
    with pytest.raises(UnsafeSubmission, match="UTF-8"):
        submission.scan(Path(os.fsdecode(bad)))


def test_single_file_sidecars_travel_with_it(tmp_path: Path) -> None:
    film = tmp_path / "film.mp4"
    film.write_bytes(b"1")
    (tmp_path / "film.mp4.yaml").write_text("title: t\n")
    (tmp_path / "film.mp4.md5").write_text("x  film.mp4\n")
    sub = submission.scan(film)
    assert sub.sidecar == tmp_path / "film.mp4.yaml"
    assert set(sub.companions) == {tmp_path / "film.mp4.yaml", tmp_path / "film.mp4.md5"}
