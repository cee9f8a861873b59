"""A bag built in place: its originals are not under the bag directory, its manifests list them
with the digests of their one read, and `bag.check` validates it without reading them: tag files
against the tag manifests, manifests against the declared digests, the payload on disk against
the declared files. Damage to any of these is reported, not raised."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from preserve.core.errors import PackagingError
from preserve.core.model import Digests, PayloadFile, Role
from preserve.fixity.digest import digest_file
from preserve.packaging import bag

INFO = {"Source-Organization": "Test", "External-Identifier": "aip-1"}


def _in_place(tmp_path: Path) -> tuple[Path, list[PayloadFile], set[str], Path]:
    source = tmp_path / "ingest" / "film.mov"
    source.parent.mkdir()
    source.write_bytes(os.urandom(5000))
    original = PayloadFile(bag.payload_path("objects", "film.mov"), digest_file(source), Role.VIDEO)
    bag_dir = tmp_path / "bag"
    meta = bag.add_payload_bytes(bag_dir, bag.payload_path("metadata", "premis.xml"), b"<premis/>")
    files = [original, meta]
    return bag_dir, files, {original.path}, source


def test_a_bag_built_in_place_checks_valid_without_its_originals(tmp_path: Path) -> None:
    bag_dir, files, away, source = _in_place(tmp_path)
    oxum = bag.finalize(bag_dir, files, INFO, elsewhere=away)
    assert oxum == f"{5000 + len(b'<premis/>')}.2"
    assert not (bag_dir / "data" / "objects").exists()  # nothing of the original under the bag
    manifest = (bag_dir / "manifest-sha512.txt").read_text()
    assert f"{files[0].digests.sha512}  data/objects/film.mov" in manifest
    report = bag.check(bag_dir, files, elsewhere=away)
    assert report.valid, report.errors
    assert report.version == "1.0" and report.payload_oxum == oxum
    # the full bag (the original put where the restore puts it) validates with bagit-python itself
    (bag_dir / "data" / "objects").mkdir()
    (bag_dir / "data" / "objects" / "film.mov").write_bytes(source.read_bytes())
    assert bag.validate(bag_dir).valid


def test_check_reports_every_kind_of_damage(tmp_path: Path) -> None:
    bag_dir, files, away, _ = _in_place(tmp_path)
    bag.finalize(bag_dir, files, INFO, elsewhere=away)
    # a digest other than the one taken at the first read
    other = PayloadFile(files[0].path, Digests(5000, {**files[0].digests.values, "sha256": "0" * 64}), Role.VIDEO)
    report = bag.check(bag_dir, [other, files[1]], elsewhere=away)
    assert not report.valid and any("sha256 in the manifest" in e for e in report.errors)
    # a tag file changed after its tag manifest was written
    info = bag_dir / "bag-info.txt"
    kept = info.read_bytes()
    info.write_bytes(kept + b"Contact-Name: someone\n")
    report = bag.check(bag_dir, files, elsewhere=away)
    assert not report.valid and any("bag-info.txt" in e for e in report.errors)
    info.write_bytes(kept)
    assert bag.check(bag_dir, files, elsewhere=away).valid
    # what preserve wrote is cut short on disk
    premis = bag_dir / "data" / "metadata" / "premis.xml"
    premis.write_bytes(b"<premis")
    report = bag.check(bag_dir, files, elsewhere=away)
    assert not report.valid and any("premis.xml" in e and "bytes on disk" in e for e in report.errors)
    premis.write_bytes(b"<premis/>")
    # a file nobody declared appears in the payload
    (bag_dir / "data" / "metadata" / "stray.txt").write_bytes(b"x")
    report = bag.check(bag_dir, files, elsewhere=away)
    assert not report.valid and any("stray.txt" in e for e in report.errors)
    (bag_dir / "data" / "metadata" / "stray.txt").unlink()
    # a manifest line lost: the declared original is no longer listed
    manifest = bag_dir / "manifest-sha256.txt"
    manifest.write_text("".join(line for line in manifest.read_text().splitlines(True) if "film.mov" not in line))
    report = bag.check(bag_dir, files, elsewhere=away)
    assert not report.valid


def test_finalize_refuses_an_original_both_elsewhere_and_on_disk_or_undeclared(tmp_path: Path) -> None:
    bag_dir, files, away, source = _in_place(tmp_path)
    with pytest.raises(PackagingError):
        bag.finalize(bag_dir, files, INFO, elsewhere={"data/objects/other.mov"})
    with pytest.raises(PackagingError):
        bag.finalize(bag_dir, files, INFO)  # declared, but neither on disk nor said to be elsewhere
    (bag_dir / "data" / "objects").mkdir()
    (bag_dir / "data" / "objects" / "film.mov").write_bytes(source.read_bytes())
    with pytest.raises(PackagingError):
        bag.finalize(bag_dir, files, INFO, elsewhere=away)


def test_payload_algorithms_add_the_supplied_ones_once() -> None:
    assert bag.payload_algorithms(("md5", "sha256")) == ("sha256", "sha512", "md5")
    assert hashlib.new(bag.payload_algorithms()[1]).name == "sha512"
