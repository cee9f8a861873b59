"""The one redaction at the boundary (preserve.core.redact): what may be said about a failure
beyond the local quarantine report, for every kind of exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from preserve.core import redact
from preserve.core.errors import (
    LOCAL_REPORT_HINT,
    MediaError,
    SidecarError,
    StorageUnavailable,
    SubmissionError,
    ToolError,
    UnsafeSubmission,
)
from preserve.intake import submission


def test_submission_errors_without_a_public_text_say_only_their_kind() -> None:
    for exc in (
        SidecarError("metadata.yaml: year: got 'Zhang San'"),
        SubmissionError("checksums.md5 line 1: /home/zhangsan/film.mov is absolute"),
        MediaError("film.mp4: ffprobe: Impossible to open '/home/zhangsan/seg1.ts'"),
    ):
        assert "zhang" not in redact.public_text(exc).lower()
        assert redact.public_text(exc).endswith(LOCAL_REPORT_HINT)
        assert redact.describe(exc).startswith(type(exc).__name__ + ": ")
    assert redact.public_text(SidecarError("x", public="metadata.yaml is invalid at line 3")) == (
        "metadata.yaml is invalid at line 3"
    )


def test_errors_about_our_own_machinery_stay_as_they_are() -> None:
    down = StorageUnavailable("target seaweed at http://127.0.0.1:8333 is unreachable")
    assert redact.public_text(down) == str(down)
    tool = ToolError("ffmpeg failed on film.mov", stderr="lots of output")
    assert redact.public_text(tool) == "ffmpeg failed on film.mov"


def test_other_exceptions_say_their_class_and_place_never_their_message() -> None:
    try:
        {"title": 1}["Zhang Sanfeng"]
    except KeyError as exc:
        text = redact.public_text(exc)
    assert "Zhang" not in text and "KeyError" in text and "test_redact.py:" in text
    try:
        open("/nonexistent/zhangsan/film.mov", "rb")
    except OSError as exc:
        text = redact.describe(exc)
    assert text == "FileNotFoundError: [Errno 2] No such file or directory"


def test_a_redacted_copy_carries_only_the_public_text() -> None:
    try:
        try:
            raise ValueError("Kunming")
        except ValueError as inner:
            raise SidecarError("full: Kunming", public="line 2 (year)") from inner
    except SidecarError as exc:
        original = exc
    copy = redact.redacted_copy(original)
    assert type(copy) is SidecarError and str(copy) == "line 2 (year)" and copy.args == ("line 2 (year)",)
    assert copy.advice == original.advice and copy.public == "line 2 (year)"
    assert copy.__cause__ is None and copy.__context__ is None and copy.__traceback__ is None
    assert str(original) == "full: Kunming" and original.__cause__ is not None  # the original is untouched
    tool = redact.redacted_copy(ToolError("ffmpeg failed", stderr="Kunming"))
    assert isinstance(tool, ToolError) and tool.stderr == ""
    try:
        raise KeyError("Kunming")
    except KeyError as exc:
        other = redact.redacted_copy(exc)
    assert isinstance(other, RuntimeError) and "Kunming" not in repr(other) and "KeyError" in str(other)


def test_a_link_is_told_by_where_it_points_never_by_its_target(tmp_path: Path) -> None:
    folder = tmp_path / "film"
    folder.mkdir()
    (folder / "film.mov").write_bytes(b"x")
    (folder / "notes.txt").symlink_to("/home/lisi/Dali/notes.txt")
    with pytest.raises(UnsafeSubmission) as err:
        submission.scan(folder)
    assert "/home/lisi/Dali/notes.txt" in str(err.value)  # the archivist's report
    assert (
        err.value.public
        == "film/notes.txt is a symbolic link pointing outside the submission; links are never followed"
    )
    (folder / "notes.txt").unlink()
    (folder / "notes.txt").symlink_to("../../etc/passwd")
    with pytest.raises(UnsafeSubmission) as err:
        submission.scan(folder)
    assert "pointing outside the submission" in err.value.public and "passwd" not in err.value.public
    (folder / "notes.txt").unlink()
    (folder / "notes.txt").symlink_to("film.mov")
    with pytest.raises(UnsafeSubmission) as err:
        submission.scan(folder)
    assert "a symbolic link to another entry of the submission" in err.value.public
    top = tmp_path / "top.mov"
    top.symlink_to(folder / "film.mov")
    with pytest.raises(UnsafeSubmission) as err:
        submission.scan(top)
    assert err.value.public == "top.mov is a symbolic link pointing outside the submission; links are never followed"
    assert os.fspath(folder) not in err.value.public


def test_errors_that_quote_only_file_names_are_public_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "empty.mov").write_bytes(b"")
    with pytest.raises(SubmissionError) as err:
        submission.scan(tmp_path / "empty.mov")
    assert err.value.public == str(err.value) and "empty.mov" in err.value.public
