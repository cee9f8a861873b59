"""The IIIF Presentation 3 manifest (`preserve.access.iiif`): it validates against the IIIF model
and the rules the model leaves out, reads back to the presentation it was written from, moves to
another base changing its ids and nothing else, names people only when the credits are public,
and its privacy check finds what it may not say without repeating it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from iiif_prezi3 import Manifest

from preserve.access import iiif
from preserve.access.presentation import (
    CONTACT_SHEET_NAME,
    MANIFEST_NAME,
    PAGE_NAME,
    POSTER_NAME,
    PROXY_NAME,
    Presentation,
    TrackRef,
    track_name,
)
from preserve.core.errors import PackagingError

DIRECTOR = "Zhang Plantedname"
PLACE = "Xiaoshancun Plantedplace"
HTTPS = "https://access.example.org/films/AIP-1/"
S3 = "s3://preserve-access/restricted/AIP-1/"
TRACKS = (
    TrackRef(track_name(1, "zh-Hans"), "zh-Hans", "中文（简体）"),
    TrackRef(track_name(2, "en"), "en", "English"),
    TrackRef(track_name(3, "und"), "und", "Subtitles 3"),
)
FULL = Presentation(
    aip_id="AIP-1",
    title="Bumming in Beijing",
    duration=3.008,
    width=640,
    height=360,
    original_title="流浪北京",
    year=1990,
    poster=(640, 360),
    contact_sheet=True,
    tracks=TRACKS,
)
PRESENTATIONS = {
    "full": FULL,
    "credited": replace(FULL, credits=(DIRECTOR,)),
    "two directors": replace(FULL, credits=(DIRECTOR, "Li Plantedtoo")),
    "bare": Presentation(aip_id="AIP-2", title="", duration=1.5, width=320, height=240),
    "original only": Presentation(aip_id="AIP-3", title="", duration=2.0, width=2, height=2, original_title="盲山"),
    "english original": replace(FULL, original_title="Bumming", original_language="en"),
    "english original only": replace(FULL, title="", original_title="Bumming", original_language="en"),
    "traditional": replace(FULL, original_title="流浪北京", original_language="zh-Hant-TW", year=None),
    "numeric region track": replace(FULL, tracks=(TrackRef(track_name(1, "es-419"), "es-419", "Español"),)),
}


def file_base(tmp_path: Path) -> str:
    folder = tmp_path / "访问 copy" / "AIP-1"
    return folder.as_uri() + "/"


def bases(tmp_path: Path) -> list[str]:
    return [HTTPS, S3, file_base(tmp_path)]


def doc(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(data)
    return out


def strings(node: Any) -> Iterator[str]:
    """Every string of a JSON value, keys included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


# -- writing and validating -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESENTATIONS))
def test_manifest_validates_and_reads_back(name: str, tmp_path: Path) -> None:
    p = PRESENTATIONS[name]
    for base in bases(tmp_path):
        data = iiif.manifest(p, base)
        assert iiif.validate(data) == []
        Manifest(**doc(data))  # the IIIF Presentation 3 model takes it as it is
        assert iiif.presentation_of(data) == (p, base)
        assert iiif.manifest(p, base) == data  # the same input, the same bytes
        assert iiif.check_clean(data, p, base) == []


def test_manifest_content() -> None:
    m = doc(iiif.manifest(FULL, HTTPS))
    assert m["@context"] == iiif.CONTEXT and m["id"] == HTTPS + MANIFEST_NAME and m["type"] == "Manifest"
    assert m["label"] == {"en": ["Bumming in Beijing"], "zh": ["流浪北京"]}
    entries = {e["label"]["en"][0]: e["value"] for e in m["metadata"]}
    assert entries == {
        "Identifier": {"none": ["AIP-1"]},
        "Original title": {"zh": ["流浪北京"]},
        "Year": {"none": ["1990"]},
    }
    assert "summary" not in m and "provider" not in m
    assert m["thumbnail"] == [
        {"id": HTTPS + POSTER_NAME, "type": "Image", "height": 360, "width": 640, "format": "image/jpeg"}
    ]
    assert [(r["id"], r["format"]) for r in m["rendering"]] == [
        (HTTPS + PAGE_NAME, "text/html"),
        (HTTPS + CONTACT_SHEET_NAME, "image/jpeg"),
    ]
    [canvas] = m["items"]
    assert (canvas["type"], canvas["duration"], canvas["width"], canvas["height"]) == ("Canvas", 3.008, 640, 360)
    [[painting]] = [page["items"] for page in canvas["items"]]
    assert painting["motivation"] == "painting" and painting["target"] == canvas["id"]
    assert painting["body"] == {
        "id": HTTPS + PROXY_NAME,
        "type": "Video",
        "height": 360,
        "width": 640,
        "duration": 3.008,
        "format": "video/mp4",
    }
    [supplementing] = canvas["annotations"]
    bodies = [(a["motivation"], a["target"], a["body"]) for a in supplementing["items"]]
    assert bodies == [
        (
            "supplementing",
            canvas["id"],
            {"id": HTTPS + t.name, "type": "Text", "language": t.language, "format": "text/vtt", "label": label},
        )
        for t, label in zip(
            TRACKS, [{"zh-Hans": ["中文（简体）"]}, {"en": ["English"]}, {"none": ["Subtitles 3"]}], strict=True
        )
    ]
    ids = [s for s in strings(m) if s.startswith(("http://", "https://"))]
    assert all(s.startswith(HTTPS) or s == iiif.CONTEXT for s in ids)  # stable ids under base, no uuid


def test_label_without_any_title_is_the_aip_id() -> None:
    m = doc(iiif.manifest(PRESENTATIONS["bare"], HTTPS))
    assert m["label"] == {"none": ["AIP-2"]}
    assert "thumbnail" not in m and "annotations" not in m["items"][0]


def test_original_title_alone_is_labelled_in_its_language() -> None:
    assert doc(iiif.manifest(PRESENTATIONS["original only"], HTTPS))["label"] == {"zh": ["盲山"]}
    assert doc(iiif.manifest(PRESENTATIONS["traditional"], HTTPS))["label"]["zh-Hant-TW"] == ["流浪北京"]


def test_language_with_numeric_region_keeps_its_tag_and_a_key_the_model_takes() -> None:
    m = doc(iiif.manifest(PRESENTATIONS["numeric region track"], HTTPS))
    body = m["items"][0]["annotations"][0]["items"][0]["body"]
    assert body["language"] == "es-419" and body["label"] == {"es": ["Español"]}


@pytest.mark.parametrize(
    "base",
    [
        "https://access.example.org/films/AIP-1",  # not a folder
        "films/AIP-1/",  # relative
        "ftp://access.example.org/AIP-1/",
        "https:///AIP-1/",  # no host
        "file:///tmp/a b/AIP-1/",  # not percent-encoded
        "https://Access.Example.org/AIP-1/",  # the model would lower-case the host
        "https://access.example.org/AIP-1/?x=1",
    ],
)
def test_manifest_refuses_a_base_that_is_not_a_folder_url(base: str) -> None:
    with pytest.raises(ValueError):
        iiif.manifest(FULL, base)


@pytest.mark.parametrize(
    "changes",
    [
        {"duration": 0.0},
        {"duration": float("nan")},
        {"width": 0},
        {"poster": (0, 360)},
        {"tracks": (TrackRef("../subtitles-1.en.vtt", "en", "English"),)},
        {"tracks": (TrackRef("https://elsewhere.example/x.vtt", "en", "English"),)},
    ],
)
def test_manifest_refuses_a_presentation_it_cannot_describe(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        iiif.manifest(replace(FULL, **changes), HTTPS)


# -- moving ---------------------------------------------------------------------------------------
def pairs(a: Any, b: Any, path: str = "$") -> Iterator[tuple[str, Any, Any]]:
    """The leaves of two documents of the same shape, side by side (fails on a different shape)."""
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            yield from pairs(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from pairs(x, y, f"{path}[{i}]")
    else:
        yield path, a, b


def test_rebase_changes_every_id_and_nothing_else(tmp_path: Path) -> None:
    here = iiif.manifest(FULL, HTTPS)
    for base in (S3, file_base(tmp_path)):
        there = iiif.rebase(here, base)
        assert there == iiif.manifest(FULL, base)
        changed = 0
        for path, old, new in pairs(doc(here), doc(there)):
            if path.endswith((".id", ".target")):
                assert old.startswith(HTTPS) and new == base + old[len(HTTPS) :], path
                changed += 1
            else:
                assert old == new, path
        assert changed == sum(1 for s in strings(doc(here)) if s.startswith(HTTPS))
        assert HTTPS not in there.decode()
        assert iiif.presentation_of(there) == (FULL, base)


def test_presentation_of_refuses_what_it_did_not_write() -> None:
    m = doc(iiif.manifest(FULL, HTTPS))
    m["metadata"] = [e for e in m["metadata"] if e["label"]["en"] != ["Identifier"]]
    with pytest.raises(PackagingError, match="Identifier"):
        iiif.presentation_of(json.dumps(m).encode())
    with pytest.raises(PackagingError):
        iiif.presentation_of(b"not json")
    m = doc(iiif.manifest(FULL, HTTPS))
    m["items"][0]["duration"] = 0
    with pytest.raises(PackagingError) as caught:
        iiif.presentation_of(json.dumps(m).encode())
    assert "Bumming" not in str(caught.value)


# -- people ---------------------------------------------------------------------------------------
def presentation_from_sidecar(directors: tuple[str, ...], credits_public: bool) -> Presentation:
    """What the pipeline hands over: the directors as credits only when the sidecar says so."""
    return replace(FULL, credits=directors if credits_public else ())


def test_directors_appear_only_when_credits_are_public() -> None:
    hidden = presentation_from_sidecar((DIRECTOR,), credits_public=False)
    data = iiif.manifest(hidden, HTTPS)
    assert DIRECTOR.encode() not in data and b"Director" not in data
    assert iiif.check_clean(data, hidden, HTTPS, forbidden=[DIRECTOR]) == []

    shown = presentation_from_sidecar((DIRECTOR,), credits_public=True)
    data = iiif.manifest(shown, HTTPS)
    entries = {e["label"]["en"][0]: e["value"] for e in doc(data)["metadata"]}
    assert entries["Director"] == {"none": [DIRECTOR]}
    assert iiif.check_clean(data, shown, HTTPS) == []
    # the same document is not clean for a presentation whose credits are not public
    findings = iiif.check_clean(data, hidden, HTTPS, forbidden=[DIRECTOR])
    assert "$.metadata[3].value.none[0]: holds a forbidden value" in findings
    assert not any(DIRECTOR in f for f in findings)

    two = doc(iiif.manifest(presentation_from_sidecar((DIRECTOR, "Li Plantedtoo"), True), HTTPS))
    assert {"label": {"en": ["Directors"]}, "value": {"none": [DIRECTOR, "Li Plantedtoo"]}} in two["metadata"]


# -- the privacy check ----------------------------------------------------------------------------
def planted(change: Any) -> bytes:
    m = doc(iiif.manifest(FULL, HTTPS))
    change(m)
    return json.dumps(m, ensure_ascii=False).encode()


PLANTS = {
    "metadata entry": lambda m: m["metadata"].append({"label": {"en": ["Place"]}, "value": {"none": [PLACE]}}),
    "summary": lambda m: m.update(summary={"en": [PLACE]}),
    "provider": lambda m: m.update(provider=[{"id": HTTPS + "p", "type": "Agent", "label": {"en": [PLACE]}}]),
    "track label": lambda m: m["items"][0]["annotations"][0]["items"][1]["body"].update(label={"en": [PLACE]}),
    "language key": lambda m: m["label"].update({PLACE: ["x"]}),
    "extra url under base": lambda m: m["rendering"].append({"id": HTTPS + PLACE.replace(" ", "-") + ".mp4"}),
    "escaped": lambda m: m["label"]["en"].append(PLACE),
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_check_clean_finds_a_planted_string_without_repeating_it(plant: str) -> None:
    data = planted(PLANTS[plant])
    findings = iiif.check_clean(data, FULL, HTTPS)
    assert findings
    assert all(f.startswith("$") for f in findings)
    assert not any(word in f for f in findings for word in ("Xiaoshancun", "Plantedplace", "Place"))
    assert any("forbidden" in f for f in iiif.check_clean(data, FULL, HTTPS, forbidden=["XIAOSHANCUN"]))


def test_check_clean_finds_a_forbidden_value_inside_the_presentations_own_text() -> None:
    data = iiif.manifest(FULL, HTTPS)
    assert iiif.check_clean(data, FULL, HTTPS, forbidden=["Bumming in Beijing", "流浪北京"]) == []  # are the title
    findings = iiif.check_clean(data, FULL, HTTPS, forbidden=["beijing"])  # is in the title
    assert "$.label.en[0]: holds a forbidden value" in findings
    assert iiif.check_clean(data, FULL, HTTPS.replace("films", "zhangsan"), forbidden=[]) != []  # other urls


def test_check_clean_of_what_is_not_json() -> None:
    assert iiif.check_clean(b"\xff", FULL, HTTPS) == ["$: not UTF-8 JSON, cannot be checked"]


# -- validation of what others might hand over ----------------------------------------------------
def broken(change: Any, p: Presentation = FULL) -> list[str]:
    m = doc(iiif.manifest(p, HTTPS))
    change(m)
    return iiif.validate(json.dumps(m, ensure_ascii=False).encode())


def canvas(m: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = m["items"][0]
    return c


def painting_body(m: dict[str, Any]) -> dict[str, Any]:
    b: dict[str, Any] = canvas(m)["items"][0]["items"][0]["body"]
    return b


def text_body(m: dict[str, Any]) -> dict[str, Any]:
    b: dict[str, Any] = canvas(m)["annotations"][0]["items"][0]["body"]
    return b


BREAKS = {
    "canvas duration zero": (lambda m: canvas(m).update(duration=0), "$.items[0].duration"),
    "canvas without duration": (lambda m: canvas(m).pop("duration"), "$.items[0].duration"),
    "painting not a video": (lambda m: painting_body(m).update(type="Image"), "a Video in video/mp4"),
    "painting not mp4": (lambda m: painting_body(m).update(format="video/webm"), "a Video in video/mp4"),
    "painting without size": (lambda m: painting_body(m).pop("width"), "width and height"),
    "painting without duration": (lambda m: painting_body(m).pop("duration"), "body.duration"),
    "no painting": (lambda m: canvas(m)["items"][0].update(items=[]), "no painting annotation"),
    "text not vtt": (lambda m: text_body(m).update(format="application/x-subrip"), "a Text in text/vtt"),
    "text without language": (lambda m: text_body(m).pop("language"), "body.language"),
    "duplicate id": (lambda m: text_body(m).update(id=HTTPS + PROXY_NAME), "not unique"),
    "relative id": (lambda m: text_body(m).update(id=track_name(1, "zh-Hans")), "not an absolute"),
    "ftp id": (lambda m: painting_body(m).update(id="ftp://x/proxy.mp4"), "not an absolute"),
    "label a string": (lambda m: m.update(label="Bumming"), "$.label"),
    "track label a string": (lambda m: text_body(m).update(label="English"), "label: not a language map"),
    "wrong context": (lambda m: m.update({"@context": "http://iiif.io/api/presentation/2/context.json"}), "@context"),
    "no id": (lambda m: m.pop("id"), "$.id: missing"),
    "bad target": (lambda m: canvas(m)["items"][0]["items"][0].update(target=HTTPS + "x"), "does not target"),
    "model: page type": (lambda m: canvas(m)["items"][0].update(type="Page"), "IIIF Presentation 3 model"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_validate_finds_each_broken_rule(name: str) -> None:
    change, expected = BREAKS[name]
    problems = broken(change)
    assert any(expected in p for p in problems), problems


def test_validate_names_paths_never_values() -> None:
    problems = broken(lambda m: m["label"].update({PLACE: [DIRECTOR]}))
    assert problems and not any("Planted" in p for p in problems)
    assert iiif.validate(b"\xff\xfe") == ["$: not UTF-8"]
    assert iiif.validate(b"[]") == ["$: not a JSON object"]
    assert iiif.validate(b"{") and iiif.validate(b"{")[0].startswith("$: not JSON")
