"""BagIt 1.0 bags built from our digests validate with bagit-python; damage is reported."""

import os
from pathlib import Path

import bagit

from preserve.core.model import Role
from preserve.packaging import bag


def _make(tmp_path: Path, names: list[str]) -> tuple[Path, list]:
    src = tmp_path / "src"
    src.mkdir()
    bag_dir = tmp_path / "bag"
    files = []
    for i, name in enumerate(names):
        p = src / f"f{i}"
        p.write_bytes(os.urandom(1000 + i))
        files.append(bag.add_payload_file(bag_dir, bag.payload_path("objects", name), p, Role.VIDEO))
    files.append(bag.add_payload_bytes(bag_dir, bag.payload_path("metadata", "x.json"), b"{}"))
    oxum = bag.finalize(bag_dir, files, {"Source-Organization": "Test", "External-Identifier": "aip-1", "Title": ""})
    return bag_dir, files, oxum


def test_bag_is_version_1_and_valid_with_bagit_python(tmp_path: Path) -> None:
    bag_dir, files, oxum = _make(tmp_path, ["流浪北京 1990.mov", "-dash.srt", "line\nbreak.txt", "100%.pdf"])
    assert (bag_dir / "bagit.txt").read_text().startswith("BagIt-Version: 1.0\n")
    b = bagit.Bag(str(bag_dir))
    assert b.version_info == (1, 0)
    b.validate()  # full: every digest recomputed
    assert oxum == f"{sum(f.size for f in files)}.{len(files)}"
    info = (bag_dir / "bag-info.txt").read_text()
    assert "External-Identifier: aip-1" in info and "Payload-Oxum: " + oxum in info
    assert "Title:" not in info  # empty values are left out
    assert (bag_dir / "tagmanifest-sha256.txt").exists() and (bag_dir / "tagmanifest-sha512.txt").exists()
    assert "line%0Abreak.txt" in (bag_dir / "manifest-sha256.txt").read_text()
    assert bag.validate(bag_dir).valid


def test_flipped_byte_is_reported_not_raised(tmp_path: Path) -> None:
    bag_dir, files, _ = _make(tmp_path, ["film.mov"])
    target = bag_dir / files[0].path
    data = bytearray(target.read_bytes())
    data[500] ^= 0x01
    target.write_bytes(bytes(data))
    report = bag.validate(bag_dir)
    assert not report.valid and any("film.mov" in e for e in report.errors)
    assert bag.validate(bag_dir, fast=True).valid  # same size: only a full check sees it


def test_tag_file_tampering_is_reported(tmp_path: Path) -> None:
    bag_dir, _, _ = _make(tmp_path, ["film.mov"])
    with open(bag_dir / "bag-info.txt", "a") as fh:
        fh.write("Contact-Name: someone\n")
    assert not bag.validate(bag_dir).valid


def test_payload_path_refuses_traversal_and_long_names() -> None:
    import pytest

    from preserve.core.errors import UnsafeSubmission

    for bad in ("..", "", "a/../../b", "."):
        with pytest.raises(UnsafeSubmission):
            bag.payload_path("objects", bad)
    with pytest.raises(UnsafeSubmission):
        bag.payload_path("objects", "流" * 86)  # 258 bytes
    assert bag.payload_path("objects", "流" * 85).endswith("流")  # 255 bytes is fine


def test_parse_manifest_reads_what_finalize_writes_and_what_others_write() -> None:
    """One parser for every manifest preserve reads (audit, amend, journal, rebuild): lines end at
    LF only (a name may hold U+2028, which str.splitlines splits on), CR LF endings, tabs or
    several spaces between digest and path, upper-case digests, percent-encoded CR/LF, a path's
    trailing space kept."""
    text = (
        f"{'A' * 64}  data/objects/line%0Abreak.mov\r\n"
        f"{'b' * 64}\tdata/objects/para\u2028graph.mov\n"
        f"{'c' * 64}    data/objects/ends with space \n"
        "\n"
    )
    assert bag.parse_manifest(text) == {
        "data/objects/line\nbreak.mov": "a" * 64,
        "data/objects/para\u2028graph.mov": "b" * 64,
        "data/objects/ends with space ": "c" * 64,
    }


def test_parse_manifest_round_trips_a_finalized_bag(tmp_path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    d = tmp_path / "bag"
    f = bag.add_payload_file(d, bag.payload_path("objects", "a\u2028b.txt"), src)
    bag.finalize(d, [f], {"Title": "t"})
    assert bag.parse_manifest((d / "manifest-sha256.txt").read_text(encoding="utf-8")) == {f.path: f.digests.sha256}


def test_parse_bag_info_takes_the_first_value_and_joins_continuations() -> None:
    text = "Title: River\r\n  Town\nContact-Name: a\nContact-Name: b\n  more of b\nPayload-Oxum: 10.2\n"
    assert bag.parse_bag_info(text) == {"Title": "River Town", "Contact-Name": "a", "Payload-Oxum": "10.2"}
