"""Files only for the archive's user (issue 18): what the library creates is private by its own
explicit modes (folders 0700, files 0600, stored replica objects 0400), not only thanks to the
entry points' umask. Every test here runs under a permissive umask (022), as a library caller
might. Modes are checked, not ownership (the tests run as root)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from preserve.catalog import Catalog
from preserve.core.errors import MediaError
from preserve.core.fs import make_private, private_dir, private_umask
from preserve.intake import disposition
from tests.conftest import storage_settings


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_private_umask_tightens_and_never_loosens() -> None:
    assert private_umask() == 0o022
    assert os.umask(0o277) == 0o077  # it was 077 ...
    private_umask()
    assert os.umask(0o022) == 0o277  # ... and a stricter one stays


def test_private_dir_makes_each_new_folder_0700_and_leaves_existing_ones(tmp_path: Path) -> None:
    shared = tmp_path / "share"
    shared.mkdir(mode=0o755)
    deep = private_dir(shared / "var" / "staging" / "x")
    assert deep.is_dir()
    assert [mode(p) for p in (shared / "var", shared / "var" / "staging", deep)] == [0o700] * 3
    assert mode(shared) == 0o755  # not ours to change
    assert private_dir(deep) == deep  # already there: fine


def test_make_private_takes_group_and_other_away_without_touching_bytes(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"elsewhere")
    outside.chmod(0o644)
    tree = tmp_path / "film"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub").chmod(0o755)
    (tree / "a.mov").write_bytes(b"frames")
    (tree / "a.mov").chmod(0o644)
    (tree / "sub" / "ro.srt").write_bytes(b"subs")
    (tree / "sub" / "ro.srt").chmod(0o444)
    (tree / "link").symlink_to(outside)
    os.link(outside, tree / "hard")  # another name of a file outside: left alone
    make_private(tree)
    assert mode(tree) == 0o700 and mode(tree / "sub") == 0o700
    assert mode(tree / "a.mov") == 0o600 and (tree / "a.mov").read_bytes() == b"frames"
    assert mode(tree / "sub" / "ro.srt") == 0o400  # read-only stays read-only, for its owner only
    assert mode(outside) == 0o644  # neither the symlink nor the hard link changed it
    single = tmp_path / "single.mp4"
    single.write_bytes(b"x")
    make_private(single)
    assert mode(single) == 0o600


def test_done_and_failed_are_private_and_keep_the_bytes(tmp_path: Path) -> None:
    film = tmp_path / "film.mov"
    film.write_bytes(b"\x00film bytes")
    side = tmp_path / "film.mov.yaml"
    side.write_text("title: x\n")
    dest = disposition.move_to_done(film, companions=[side])
    done = tmp_path / "done"
    assert mode(done) == 0o700 and mode(dest) == 0o600 and mode(done / "film.mov.yaml") == 0o600
    assert dest.read_bytes() == b"\x00film bytes"

    bad = tmp_path / "broken"
    (bad / "reels").mkdir(parents=True)
    (bad / "reels" / "r1.mov").write_bytes(b"not a film")
    folder = disposition.quarantine(bad, MediaError("does not decode"), step="validate")
    assert mode(tmp_path / "failed") == 0o700 and mode(folder) == 0o700
    for p in (folder / "broken", folder / "broken" / "reels"):
        assert mode(p) == 0o700, p
    for p in (folder / "broken" / "reels" / "r1.mov", folder / "REPORT.txt", folder / "report.json"):
        assert mode(p) == 0o600, p
    assert (folder / "broken" / "reels" / "r1.mov").read_bytes() == b"not a film"


def test_sqlite_catalog_and_its_wal_are_private(tmp_path: Path) -> None:
    var = tmp_path / "var"
    url = f"sqlite:///{var / 'catalog.sqlite'}"
    with Catalog(url) as catalog:
        catalog.objects()  # opened, migrated, read: the WAL and shared-memory files exist now
        files = sorted(p.name for p in var.iterdir())
        assert {"catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"} <= set(files), files
        assert mode(var) == 0o700
        for name in files:
            assert mode(var / name) == 0o600, name

    # a catalog made before this rule is tightened when opened
    old = tmp_path / "old"
    old.mkdir()
    (old / "catalog.sqlite").touch(mode=0o644)
    Catalog(f"sqlite:///{old / 'catalog.sqlite'}").close()
    assert mode(old / "catalog.sqlite") == 0o600


def test_filesystem_replica_is_private(tmp_path: Path) -> None:
    import hashlib

    from preserve.storage import open_store

    settings = storage_settings(tmp_path / "var", 20000)
    store = open_store(settings, settings.target("local"))
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1000))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    store.check_reachable()
    store.put_file("aip-1/data/objects/film.bin", src, sha256=sha, size=1000)
    root = tmp_path / "var" / "replicas" / "local"
    for d in (root, root / "aip-1", root / "aip-1" / "data", root / "aip-1" / "data" / "objects"):
        assert mode(d) == 0o700, d
    assert mode(root / "aip-1" / "data" / "objects" / "film.bin") == 0o400
    back = tmp_path / "restored" / "film.bin"
    assert store.get_file("aip-1/data/objects/film.bin", back) == sha
    assert mode(back) == 0o600 and mode(back.parent) == 0o700
