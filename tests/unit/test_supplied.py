"""Supplied checksums: md5sum/sha256sum (text, binary, escaped), BSD, bare-hash and BagIt manifest
formats; paths that would leave the submission are refused; verification is a finding."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pytest

from preserve.core.errors import SubmissionError, SuppliedChecksumMismatch, UnsafeSubmission
from preserve.core.model import Digests
from preserve.intake import submission, supplied

CONTENT = b"a film, or part of one\n"
MD5 = hashlib.md5(CONTENT).hexdigest()
SHA256 = hashlib.sha256(CONTENT).hexdigest()


def _digests(*algs: str) -> Digests:
    return Digests(len(CONTENT), {a: hashlib.new(a, CONTENT).hexdigest() for a in ("sha256", "sha512", *algs)})


def _folder(tmp_path: Path, files: dict[str, bytes | str]) -> submission.Submission:
    root = tmp_path / "sub"
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return submission.scan(root)


def test_md5sum_sha256sum_and_bsd_formats(tmp_path: Path) -> None:
    sub = _folder(
        tmp_path,
        {
            "film.mov": CONTENT,
            "sub/-dash.srt": CONTENT,
            "sub/back\\slash.txt": CONTENT,
            "checksums.md5": f"# made by md5sum\n{MD5}  film.mov\n{MD5} *sub/-dash.srt\n\\{MD5}  sub/back\\\\slash.txt\n",
            "sub/SHA256SUMS.sha256": f"SHA256 (-dash.srt) = {SHA256}\n",
        },
    )
    found = supplied.find(sub)
    assert not found.is_bag
    assert {(e.rel, e.algorithm) for e in found.entries} == {
        ("film.mov", "md5"),
        ("sub/-dash.srt", "md5"),
        ("sub/back\\slash.txt", "md5"),
        ("sub/-dash.srt", "sha256"),
    }
    assert found.algorithms_for("sub/-dash.srt") == ("md5", "sha256")
    digests = {rel: _digests("md5") for rel in ("film.mov", "sub/-dash.srt", "sub/back\\slash.txt")}
    report = supplied.verify(found, digests)
    assert report.ok and len(report.checked) == 4
    events = supplied.events(found, report)
    assert [e.outcome.value for e in events] == ["pass", "pass"]
    assert "3 of 3 file(s) match" in events[0].detail


def test_single_hash_only_file_next_to_a_single_file(tmp_path: Path) -> None:
    film = tmp_path / "电影 🎬.mp4"
    film.write_bytes(CONTENT)
    (tmp_path / "电影 🎬.mp4.md5").write_text(MD5.upper() + "\n")
    found = supplied.find(submission.scan(film))
    assert [(e.rel, e.digest) for e in found.entries] == [("电影 🎬.mp4", MD5)]
    wrong = Digests(len(CONTENT), {"md5": "0" * 32})
    report = supplied.verify(found, {"电影 🎬.mp4": wrong})
    assert not report.ok
    with pytest.raises(SuppliedChecksumMismatch, match="md5 supplied"):
        supplied.raise_on_mismatch(report)
    assert supplied.events(found, report)[0].outcome.value == "fail"


def test_nfd_names_in_the_checksum_file_match_nfc_files(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "北京 café.mov")
    sub = _folder(tmp_path, {"北京 café.mov": CONTENT, "x.md5": f"{MD5}  ./{nfd}\n"})
    assert [e.rel for e in supplied.find(sub).entries] == ["北京 café.mov"]


def test_listed_but_missing_file_is_a_mismatch(tmp_path: Path) -> None:
    sub = _folder(tmp_path, {"a.mov": CONTENT, "manifest-md5.txt": f"{MD5} a.mov\n{MD5} b.mov\n"})
    report = supplied.verify(supplied.find(sub), {"a.mov": _digests("md5")})
    assert [m.expected.rel for m in report.mismatches] == ["b.mov"]
    assert "missing from the submission" in report.summary()


@pytest.mark.parametrize("listed", ["../../x", "/etc/passwd", "sub/../../x", "..\\..\\x", "C:\\x.mov", "~/x"])
def test_paths_leaving_the_submission_are_refused(tmp_path: Path, listed: str) -> None:
    sub = _folder(tmp_path, {"a.mov": CONTENT, "manifest-sha256.txt": f"{SHA256}  {listed}\n"})
    with pytest.raises(UnsafeSubmission, match="inside the submission"):
        supplied.find(sub)


def test_malformed_checksum_file_reports_its_line(tmp_path: Path) -> None:
    sub = _folder(tmp_path, {"a.mov": CONTENT, "a.sha256": f"{SHA256}  a.mov\nnot a checksum\n"})
    with pytest.raises(SubmissionError, match="a.sha256 line 2"):
        supplied.find(sub)
    sub = _folder(tmp_path / "2", {"a.mov": CONTENT, "a.md5": f"{SHA256}  a.mov\n"})  # sha256 in an .md5
    with pytest.raises(SubmissionError, match="line 1"):
        supplied.find(sub)


def test_bag_is_detected_and_tag_manifests_count_only_in_bags(tmp_path: Path) -> None:
    sub = _folder(
        tmp_path,
        {
            "bagit.txt": "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
            "data/a.mov": CONTENT,
            "manifest-md5.txt": f"{MD5}  data/a.mov\n",
            "tagmanifest-md5.txt": f"{hashlib.md5(b'x').hexdigest()}  bagit.txt\n",
        },
    )
    found = supplied.find(sub)
    assert found.is_bag and {e.rel for e in found.entries} == {"data/a.mov", "bagit.txt"}
    plain = _folder(tmp_path / "p", {"a.mov": CONTENT, "tagmanifest-md5.txt": "junk\n"})
    assert supplied.find(plain).entries == ()
