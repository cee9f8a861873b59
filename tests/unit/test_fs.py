"""core.fs: the one atomic write helper."""

import os
import stat
from pathlib import Path

import pytest

from preserve.core.fs import atomic_target, atomic_write


def test_atomic_write_replaces_whole_file_private(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    atomic_write(target, "新的 content")
    assert target.read_text(encoding="utf-8") == "新的 content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["report.json"]  # no temporary left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "proxy.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_target(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("tool died")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["proxy.mp4"]
