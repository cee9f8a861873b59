"""Files only for the archive's user, end to end (issue 18): `preserve ingest` and `preserve access`
run as an operator runs them, from a shell whose umask is the usual 022, and afterwards every
folder of the var directory, the filesystem replica, done/, failed/ and the access copies is 0700
and every file 0600 (objects of the filesystem replica: 0400, read-only for the archive's user).
The films moved to done/ and failed/ keep their bytes. Modes are checked, not ownership (the tests
run as root)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

from preserve.config import Settings
from tests.mediafactory import make_clip, truncated_copy
from tests.support import isolated_settings, write_config


def _walk(top: Path) -> list[Path]:
    return [top, *sorted(top.rglob("*"))]


def _not_private(top: Path, *, file_mode: int = 0o600) -> list[str]:
    bad = []
    for p in _walk(top):
        st = os.lstat(p)
        want = 0o700 if stat.S_ISDIR(st.st_mode) else file_mode
        if stat.S_IMODE(st.st_mode) != want:
            bad.append(f"{p.relative_to(top.parent)} {stat.S_IMODE(st.st_mode):o}")
    return bad


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, started with umask 022 (as from a login shell)."""
    return subprocess.run(
        [sys.executable, "-m", "preserve.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        umask=0o022,
    )


def test_an_ingest_leaves_only_private_files(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(s3_settings, tmp_path)
    config = write_config(settings, tmp_path / "preserve.toml")
    good = make_clip(settings.ingest_dir / "good film.mp4", duration=1.0)
    good.chmod(0o644)
    folder = settings.ingest_dir / "a folder"
    folder.mkdir(mode=0o755)
    (folder / "notes.txt").write_text("notes\n")
    (folder / "notes.txt").chmod(0o644)
    bad = truncated_copy(make_clip(tmp_path / "whole.mp4", duration=2.0), settings.ingest_dir / "broken.mp4", 0.5)
    bad.chmod(0o644)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (good, bad)}

    done = _cli(config, "ingest", "--direct", str(good), str(folder), str(bad))
    assert done.returncode == 1, done.stdout + done.stderr  # two stored, one quarantined
    assert done.stdout.count("stored") == 2 and "quarantined" in done.stdout, done.stdout
    assert hashlib.sha256((settings.done_dir / "good film.mp4").read_bytes()).hexdigest() == digests["good film.mp4"]
    broken = settings.failed_dir / "broken.mp4" / "broken.mp4"
    assert hashlib.sha256(broken.read_bytes()).hexdigest() == digests["broken.mp4"]
    aip_id = next(line.split()[0] for line in done.stdout.splitlines() if "good film.mp4" in line and "stored" in line)

    access = tmp_path / "access-out"
    fetched = _cli(config, "access", aip_id, str(access))
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert any(p.suffix == ".mp4" for p in access.rglob("*")), fetched.stdout

    replica = settings.target_path(settings.target("local"))
    assert any(p.is_file() for p in replica.rglob("*"))
    problems = (
        _not_private(settings.var_dir)
        + _not_private(replica, file_mode=0o400)
        + _not_private(settings.done_dir)
        + _not_private(settings.failed_dir)
        + _not_private(access)
    )
    assert problems == [], "\n".join(problems)
    assert (settings.var_dir / "catalog.sqlite").is_file()
