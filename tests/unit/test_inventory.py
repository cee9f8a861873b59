"""Version inventories (preserve.packaging.inventory): deterministic bytes, lossless round trip, the
version record they give, and the refusal of every kind of damage or inconsistency."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from preserve.catalog.records import FileView, VersionRecord
from preserve.core.errors import PackagingError
from preserve.packaging import inventory
from preserve.packaging.inventory import Member, VersionInventory
from preserve.storage.base import object_key
from preserve.storage.layout import version_member_key

AIP = "0b7e3c1a-5d2f-4e8a-9c3b-1f2e3d4c5b6a"
T0 = dt.datetime(2026, 12, 1, 3, 4, 5, 123456, tzinfo=dt.UTC)


def _sha(s: str, n: int = 256) -> str:
    return hashlib.new(f"sha{n}", s.encode("utf-8", "surrogatepass")).hexdigest()


def _inv(number: int = 2) -> VersionInventory:
    paths = [
        "data/objects/独立电影 🎬.mov",
        "data/objects/film\nwith newline.mkv",  # a control character: percent-encoded in its key
        "data/objects/100% raw.mov",
        "data/metadata/premis.xml",
        "data/metadata/sidecar.json",
    ]
    files = tuple(
        FileView(
            p,
            1000 + i,
            _sha(p),
            _sha(p, 512),
            ["video", "video", "video", "other", "sidecar"][i],
            "QuickTime" if i < 3 else "",
            "x-fmt/384" if i < 3 else "",
            "e794b5e5bdb12e6d6f76" if i == 0 else "",
        )
        for i, p in enumerate(paths)
    )

    def key(member: str) -> str:  # what version ``number`` wrote itself, else version 1's object
        return version_member_key(AIP, number, member) if number > 1 else object_key(AIP, member)

    members = {f.path: Member(object_key(AIP, f.path), f.size, f.sha256) for f in files}
    members["data/metadata/premis.xml"] = Member(key("data/metadata/premis.xml"), files[3].size, files[3].sha256)
    for tag in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt", "tagmanifest-sha256.txt"):
        members[tag] = Member(key(tag), 55, _sha(tag))
    return VersionInventory(
        aip_id=AIP,
        number=number,
        created=T0.astimezone(dt.timezone(dt.timedelta(hours=8))),
        reason="correct the year: 2009, not 2019 \x01",
        operator="archivist 王",
        title="独立电影 🎬",
        submission_name="submission 2026-11",
        payload_oxum=f"{sum(f.size for f in files)}.{len(files)}",
        content_key=_sha("content"),
        files=tuple(sorted(files, key=lambda f: f.path)),
        members=members,
    )


# -- round trip -------------------------------------------------------------------------------------
def test_round_trip_and_deterministic_bytes() -> None:
    inv = _inv()
    data = inventory.build(inv)
    back = inventory.parse(data, aip_id=AIP)
    assert back == inv
    assert back.created == T0 and back.created.utcoffset() == dt.timedelta(hours=8)
    assert inventory.build(back) == data
    # the same value in another order gives the same bytes
    shuffled = dataclasses.replace(
        inv, files=tuple(reversed(inv.files)), members=dict(reversed(list(inv.members.items())))
    )
    assert inventory.build(shuffled) == data
    # UTF-8 (not \\u escapes) with sorted keys
    assert "独立电影 🎬".encode() in data
    doc = json.loads(data)
    assert list(doc) == sorted(doc) and list(doc["members"]) == sorted(doc["members"])
    assert doc["type"] == "preserve-aip-version" and doc["format"] == 1 and doc["version"] == 2
    assert doc["files"][0] == {
        "format": "",
        "original_name_hex": "",
        "path": "data/metadata/premis.xml",
        "puid": "",
        "role": "other",
        "sha256": _sha("data/metadata/premis.xml"),
        "sha512": _sha("data/metadata/premis.xml", 512),
        "size": 1003,
    }


def test_lone_surrogates_in_names_round_trip() -> None:
    inv = _inv()
    odd = "data/objects/not-utf8-\udce9.mov"
    f = FileView(odd, 7, _sha(odd), _sha(odd, 512), "video", original_name_hex="6e6f742d757466382de92e6d6f76")
    members = dict(inv.members) | {odd: Member(object_key(AIP, odd), 7, f.sha256)}
    files = tuple(sorted((*inv.files, f), key=lambda x: x.path))
    size, count = (int(x) for x in inv.payload_oxum.split("."))
    inv = dataclasses.replace(inv, files=files, members=members, payload_oxum=f"{size + 7}.{count + 1}")
    data = inventory.build(inv)
    data.decode("utf-8")  # strict: the surrogate is a JSON escape
    assert inventory.parse(data) == inv


def test_version_record() -> None:
    inv = _inv()
    rec = inv.to_version_record()
    assert isinstance(rec, VersionRecord)
    assert (rec.number, rec.created, rec.reason, rec.operator) == (2, inv.created, inv.reason, inv.operator)
    assert dict(rec.members) == {m: v.key for m, v in inv.members.items()}
    assert rec.members["bagit.txt"] == f"{AIP}/versions/v2/bagit.txt"
    assert rec.members["data/objects/film\nwith newline.mkv"] == f"{AIP}/data/objects/film%0Awith newline.mkv"


def test_version_one_of_an_empty_payload() -> None:
    inv = dataclasses.replace(
        _inv(1), files=(), payload_oxum="0.0", members={"bagit.txt": Member(f"{AIP}/bagit.txt", 55, _sha("b"))}
    )
    assert inventory.parse(inventory.build(inv)) == inv


# -- refusals ---------------------------------------------------------------------------------------
def _doc() -> dict[str, Any]:
    return json.loads(inventory.build(_inv()))  # type: ignore[no-any-return]


def _refused(change: Callable[[dict[str, Any]], object], match: str, **kw: str) -> None:
    doc = _doc()
    change(doc)
    with pytest.raises(PackagingError, match=match):
        inventory.parse(json.dumps(doc, ensure_ascii=False).encode(), **kw)


def _member(doc: dict[str, Any], name: str = "bagit.txt") -> dict[str, Any]:
    return doc["members"][name]  # type: ignore[no-any-return]


def test_bytes_that_are_not_an_inventory_are_refused() -> None:
    data = inventory.build(_inv())
    for bad, match in (
        (data[: len(data) // 2], "not JSON"),
        (data[:-3], "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe" + data, "not UTF-8"),
        (data.replace("独".encode(), b"\xe7\x8b"), "not UTF-8"),
        (b"[]", "the inventory is not a JSON object"),
        (data.replace(b'"size": 55', b'"size": NaN', 1), "NaN is not JSON"),
        (data.replace(b'{\n "aip"', b'{\n "aip": "x",\n "aip"', 1), "'aip' appears twice"),
    ):
        with pytest.raises(PackagingError, match=match):
            inventory.parse(bad)
    # a flipped byte anywhere either breaks the JSON or an invariant, or changes a free-text field
    i = data.index(b'"sha256": "') + 20
    with pytest.raises(PackagingError):
        inventory.parse(data[:i] + b"G" + data[i + 1 :])


def test_too_large_or_too_many_members_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert inventory.MAX_BYTES == 256 * 1024 * 1024 and inventory.MAX_MEMBERS == 200_000
    data = inventory.build(_inv())
    monkeypatch.setattr(inventory, "MAX_BYTES", len(data) - 1)  # the limit, not a fault: 256 MiB of test data is waste
    with pytest.raises(PackagingError, match="more than the"):
        inventory.parse(data)
    monkeypatch.setattr(inventory, "MAX_BYTES", len(data))
    inventory.parse(data)
    monkeypatch.setattr(inventory, "MAX_MEMBERS", len(_inv().members) - 1)
    with pytest.raises(PackagingError, match="members, more than"):
        inventory.parse(data)


def test_wrong_type_format_aip_or_version_is_refused() -> None:
    _refused(lambda d: d.update(type="preserve-aip"), "type is not")
    _refused(lambda d: d.update(format=2), "format 2, this preserve reads format 1")
    _refused(lambda d: d.update(format="1"), "format is not a int")
    _refused(lambda d: None, "not of 11111111", aip_id="11111111-2222-4333-8444-555555555555")
    _refused(lambda d: d.update(aip=""), "not an AIP id")
    _refused(lambda d: d.update(version=0), "version 0")
    _refused(lambda d: d.update(version=-1), "version -1")
    _refused(lambda d: d.update(version=2.0), "version is not a int")
    _refused(lambda d: d.update(version=True), "version is not a int")
    _refused(lambda d: d.update(created="2026-12-01T03:04:05"), "created has no UTC offset")
    _refused(lambda d: d.update(created="yesterday"), "not an ISO 8601 time")


def test_missing_unknown_or_mistyped_fields_are_refused() -> None:
    for name in ("title", "members", "files", "payload_oxum", "content_key", "created"):
        _refused(lambda d, n=name: d.pop(n), f"misses fields .*{name}")  # type: ignore[misc]
    _refused(lambda d: d.update(colour="red"), "unknown ones .*colour")
    _refused(lambda d: d.update(title=None), "title is not a str")
    _refused(lambda d: d.update(members=[]), "members is not a dict")
    _refused(lambda d: d.update(files={}), "files is not a list")
    _refused(lambda d: d["files"].__setitem__(0, "data/x"), "file 0 is not a JSON object")
    _refused(lambda d: d["files"][0].pop("puid"), "misses fields .*puid")
    _refused(lambda d: d["files"][0].update(size="1003"), "size is not a int")
    _refused(lambda d: _member(d).pop("sha256"), "misses fields .*sha256")
    _refused(lambda d: _member(d).update(size=55.0), "size is not a int")
    _refused(lambda d: _member(d).update(key=None), "key is not a str")


def test_members_outside_the_aip_or_the_bag_are_refused() -> None:
    other = "11111111-2222-4333-8444-555555555555"
    _refused(lambda d: _member(d).update(key=f"{other}/bagit.txt"), "outside the AIP's prefix")
    _refused(lambda d: _member(d).update(key=f"{AIP}/"), "outside the AIP's prefix")
    _refused(lambda d: _member(d).update(key=f"{AIP}bagit.txt"), "outside the AIP's prefix")
    for name in ("../../etc/passwd", "/etc/passwd", "data//x", "./bagit.txt", "", "data/objects/.."):
        _refused(lambda d, n=name: d["members"].update({n: _member(d)}), "not a relative path inside the bag")  # type: ignore[misc]


def test_digests_not_in_lower_case_hex_of_their_length_are_refused() -> None:
    _refused(lambda d: _member(d).update(sha256=_member(d)["sha256"].upper()), "SHA-256 not in lower-case hex")
    _refused(lambda d: _member(d).update(sha256=_member(d)["sha256"][:-1]), "SHA-256 not in lower-case hex")
    _refused(lambda d: _member(d).update(size=-1), "negative size")
    _refused(lambda d: d["files"][0].update(sha512=d["files"][0]["sha512"][:64]), "digest not in lower-case hex")
    _refused(lambda d: d["files"][0].update(sha256="g" * 64), "digest not in lower-case hex")
    _refused(lambda d: d["files"][0].update(original_name_hex="ABC"), "original name that is not lower-case hex")


def test_payload_files_and_data_members_must_agree() -> None:
    first = _inv().files[0].path
    _refused(lambda d: d["members"].pop(first), "is not a member under data/")
    _refused(lambda d: _member(d, first).update(size=_member(d, first)["size"] + 1), "differs from its member")
    _refused(lambda d: _member(d, first).update(sha256="0" * 64), "differs from its member")
    _refused(lambda d: d["files"].pop(0), "under data/ is not a payload file")
    _refused(lambda d: d["files"].append(dict(d["files"][0])), "listed twice")
    _refused(lambda d: d["files"][0].update(path="bagit.txt"), "not a member under data/")
    # the Payload-Oxum is the files' bytes and count
    _refused(lambda d: d.update(payload_oxum="1.1"), "Payload-Oxum is not the payload files'")
    _refused(lambda d: d.update(payload_oxum=d["payload_oxum"] + " "), "Payload-Oxum")


def test_build_refuses_what_parse_would_refuse() -> None:
    inv = _inv()
    with pytest.raises(PackagingError, match="Payload-Oxum"):
        inventory.build(dataclasses.replace(inv, payload_oxum="0.0"))
    with pytest.raises(PackagingError, match="outside the AIP's prefix"):
        inventory.build(dataclasses.replace(inv, members=dict(inv.members) | {"x.txt": Member("x.txt", 1, "0" * 64)}))
    with pytest.raises(PackagingError, match="no UTC offset"):
        inventory.build(dataclasses.replace(inv, created=dt.datetime(2026, 1, 1)))


def test_an_inventory_of_ten_thousand_files_round_trips() -> None:
    files = tuple(
        FileView(f"data/objects/reel {i:05d} 电影.mov", i, _sha(str(i)), _sha(str(i), 512), "video")
        for i in range(10_000)
    )
    members = {f.path: Member(object_key(AIP, f.path), f.size, f.sha256) for f in files}
    inv = dataclasses.replace(
        _inv(1), files=files, members=members, payload_oxum=f"{sum(f.size for f in files)}.{len(files)}"
    )
    assert inventory.parse(inventory.build(inv), aip_id=AIP) == inv
