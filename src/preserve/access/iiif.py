"""The IIIF Presentation 3 manifest of one AIP's access copies (what Aviary, Universal Viewer and
the Wellcome stack load): written from a `Presentation` with iiif-prezi3, read back, moved to
another access location, validated, and checked for what it may not say. Pure: no I/O.

The manifest names files only by the names every step gives them (`presentation.PROXY_NAME`, ...,
each track's `TrackRef.name`) under ``base``, the URL of the AIP's folder at its access location
(ending with "/"). Its ids are derived from ``base`` alone (no uuids), so the same presentation at
the same base is the same bytes, and `rebase` changes every id and nothing else.

What it says of a film: the label (title in English, original title in its language), the
metadata entries Identifier, Original title, Year and, only when the sidecar marked the credits
public (``Presentation.credits`` not empty), Director(s); no summary, no provider, nothing else
about people. One canvas carries the proxy as a Video (painting) and each WebVTT track as a
supplementing annotation; the poster is the thumbnail; the page and the contact sheet are
renderings.

iiif-prezi3 is untyped; everything it returns is turned into plain JSON values here, so the rest
of the library stays typed."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pydantic
from iiif_prezi3 import Annotation, AnnotationBody, AnnotationPage, Canvas, KeyValueString, Manifest

from preserve.access.presentation import (
    CONTACT_SHEET_NAME,
    LANGUAGE_TAG,
    MANIFEST_NAME,
    PAGE_NAME,
    POSTER_NAME,
    PROXY_NAME,
    UNDETERMINED,
    Presentation,
    TrackRef,
    fold,
    forbidden_search,
    own_texts,
)
from preserve.core.errors import PackagingError

CONTEXT = "http://iiif.io/api/presentation/3/context.json"
#: the schemes an access location's URL may have (the web, an S3 bucket, a folder)
SCHEMES = frozenset({"http", "https", "s3", "file"})
#: the language of the manifest's own words, and of the title (`Presentation.title` is English)
ENGLISH = "en"
#: the key of a language map whose text has no language (IIIF: "none")
NO_LANGUAGE = "none"
#: the English labels of the metadata entries and renderings we write
IDENTIFIER, ORIGINAL_TITLE, YEAR = "Identifier", "Original title", "Year"
DIRECTOR, DIRECTORS = "Director", "Directors"
PAGE_LABEL, SHEET_LABEL = "Web page", "Contact sheet"
#: every other string the manifest may hold: its types, motivations, formats and labels
VOCABULARY = frozenset(
    {
        CONTEXT,
        "Manifest",
        "Canvas",
        "AnnotationPage",
        "Annotation",
        "Video",
        "Image",
        "Text",
        "painting",
        "supplementing",
        "video/mp4",
        "image/jpeg",
        "text/vtt",
        "text/html",
        IDENTIFIER,
        ORIGINAL_TITLE,
        YEAR,
        DIRECTOR,
        DIRECTORS,
        PAGE_LABEL,
        SHEET_LABEL,
    }
)
#: the properties (JSON keys) the manifest may have; language-map keys are allowed besides
PROPERTIES = frozenset(
    {
        "@context",
        "id",
        "type",
        "label",
        "value",
        "metadata",
        "rendering",
        "thumbnail",
        "items",
        "annotations",
        "motivation",
        "body",
        "target",
        "format",
        "language",
        "duration",
        "width",
        "height",
    }
)
#: a language map key the IIIF model accepts (it allows no digits: "es-419" cannot be a key)
_MAP_KEY = re.compile(r"[a-zA-Z-]+")
#: the resource types that must have an id (the model makes one up for a manifest without)
IDENTIFIED = frozenset({"Manifest", "Canvas", "AnnotationPage", "Annotation", "Video", "Sound", "Image", "Text"})
#: an access file's name, as `presentation.track_name` makes them: a URL path segment as it is
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: model errors listed by `validate` before the rest are only counted
MAX_MODEL_PROBLEMS = 20


# -- ids ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Ids:
    """The id of every resource of a manifest at ``base``: fixed paths under it, so they are
    stable and move with the folder."""

    base: str

    @property
    def manifest(self) -> str:
        return self.base + MANIFEST_NAME

    @property
    def canvas(self) -> str:
        return self.base + "canvas/1"

    @property
    def painting_page(self) -> str:
        return self.canvas + "/page/1"

    @property
    def painting(self) -> str:
        return self.painting_page + "/annotation/1"

    @property
    def supplementing_page(self) -> str:
        return self.canvas + "/annotations/1"

    def supplementing(self, number: int) -> str:
        """The id of the ``number``-th (from 1) supplementing annotation."""
        return f"{self.supplementing_page}/annotation/{number}"

    def file(self, name: str) -> str:
        return self.base + name

    def all(self, p: Presentation) -> frozenset[str]:
        """Every URL a manifest of ``p`` holds (ids and targets)."""
        urls = {self.manifest, self.canvas, self.painting_page, self.painting, self.file(PROXY_NAME)}
        urls.add(self.file(PAGE_NAME))
        if p.poster is not None:
            urls.add(self.file(POSTER_NAME))
        if p.contact_sheet:
            urls.add(self.file(CONTACT_SHEET_NAME))
        if p.tracks:
            urls.add(self.supplementing_page)
        for number, track in enumerate(p.tracks, 1):
            urls |= {self.supplementing(number), self.file(track.name)}
        return frozenset(urls)


def _check_base(base: str) -> None:
    """Raise ValueError unless ``base`` is an absolute URL of a folder (ending with "/") in one of
    `SCHEMES`, with no query or fragment, already in the form the IIIF model writes it
    (percent-encoded, lower-case host: `pathlib.Path.as_uri` gives that for a folder)."""
    parts = urlsplit(base)
    if parts.scheme not in SCHEMES or not base.endswith("/") or parts.query or parts.fragment:
        raise ValueError("base must be an http(s), s3 or file URL of a folder, ending with '/'")
    if parts.scheme != "file" and not parts.netloc:
        raise ValueError("base must name a host or a bucket")
    if str(pydantic.AnyUrl(base + MANIFEST_NAME)) != base + MANIFEST_NAME:
        raise ValueError("base must be percent-encoded, with a lower-case host (as Path.as_uri() writes it)")


# -- language maps --------------------------------------------------------------------------------
def map_key(language: str) -> str:
    """The language-map key of a BCP 47 tag: the tag itself; "none" for an undetermined language;
    a tag with a numeric region ("es-419") without it, since the IIIF model takes no digits."""
    if not language or language == UNDETERMINED:
        return NO_LANGUAGE
    if _MAP_KEY.fullmatch(language):
        return language
    kept = [part for part in language.split("-") if _MAP_KEY.fullmatch(part)]
    return "-".join(kept) or NO_LANGUAGE


def _label(p: Presentation) -> dict[str, list[str]]:
    """The manifest's label: the title in English and the original title in its language (in one
    list, title first, when that language is English too); the AIP id when there is neither."""
    label: dict[str, list[str]] = {}
    if p.title:
        label[ENGLISH] = [p.title]
    if p.original_title:
        label.setdefault(map_key(p.original_language), []).append(p.original_title)
    return label or {NO_LANGUAGE: [p.aip_id]}


def _entry(label: str, values: Sequence[str], language: str = NO_LANGUAGE) -> Any:
    """One metadata entry with an English label."""
    return KeyValueString(label={ENGLISH: [label]}, value={language: list(values)})


def _metadata(p: Presentation) -> list[Any]:
    """Identifier, Original title, Year and, when the credits are public, Director(s)."""
    entries = [_entry(IDENTIFIER, [p.aip_id])]
    if p.original_title:
        entries.append(_entry(ORIGINAL_TITLE, [p.original_title], map_key(p.original_language)))
    if p.year is not None:
        entries.append(_entry(YEAR, [str(p.year)]))
    if p.credits:
        entries.append(_entry(DIRECTOR if len(p.credits) == 1 else DIRECTORS, p.credits))
    return entries


# -- writing --------------------------------------------------------------------------------------
def _check_presentation(p: Presentation) -> None:
    """Raise ValueError for a presentation no manifest can describe (no picture, no length, a
    track whose name is not a plain file name and so no URL of a file of the folder)."""
    if not (p.duration > 0 and math.isfinite(p.duration)) or p.width < 1 or p.height < 1:
        raise ValueError("a presentation needs a positive duration, width and height")
    if p.poster is not None and min(p.poster) < 1:
        raise ValueError("a poster needs a positive width and height")
    if not all(_FILE_NAME.fullmatch(track.name) for track in p.tracks):
        raise ValueError("a text track must be named by a plain file name (`presentation.track_name`)")


def _canvas(p: Presentation, ids: _Ids) -> Any:
    """The one canvas: the proxy painted on it, each text track supplementing it."""
    duration = float(p.duration)
    video = AnnotationBody(
        id=ids.file(PROXY_NAME),
        type="Video",
        format="video/mp4",
        duration=duration,
        width=p.width,
        height=p.height,
    )
    painting = Annotation(id=ids.painting, motivation="painting", body=video, target=ids.canvas)
    annotations = None
    if p.tracks:
        supplementing = [
            Annotation(
                id=ids.supplementing(number),
                motivation="supplementing",
                body=AnnotationBody(
                    id=ids.file(track.name),
                    type="Text",
                    format="text/vtt",
                    language=track.language,
                    label={map_key(track.language): [track.label]},
                ),
                target=ids.canvas,
            )
            for number, track in enumerate(p.tracks, 1)
        ]
        annotations = [AnnotationPage(id=ids.supplementing_page, items=supplementing)]
    return Canvas(
        id=ids.canvas,
        duration=duration,
        width=p.width,
        height=p.height,
        items=[AnnotationPage(id=ids.painting_page, items=[painting])],
        annotations=annotations,
    )


def _renderings(p: Presentation, ids: _Ids) -> list[dict[str, Any]]:
    """The page that plays the film and, when there is one, the contact sheet."""
    out: list[dict[str, Any]] = [
        {"id": ids.file(PAGE_NAME), "type": "Text", "label": {ENGLISH: [PAGE_LABEL]}, "format": "text/html"}
    ]
    if p.contact_sheet:
        out.append(
            {
                "id": ids.file(CONTACT_SHEET_NAME),
                "type": "Image",
                "label": {ENGLISH: [SHEET_LABEL]},
                "format": "image/jpeg",
            }
        )
    return out


def _dump(document: dict[str, Any]) -> bytes:
    """The one serialisation: UTF-8, indented, keys in the model's order, a final newline."""
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def manifest(p: Presentation, base: str) -> bytes:
    """The IIIF Presentation 3 manifest of ``p`` with its files under ``base`` (the URL of the
    AIP's folder at its access location, ending with "/"; its id is base + "manifest.json").
    Deterministic: the same arguments give the same bytes. Raises ValueError for a base that is
    not such a URL or a presentation with no positive duration or size."""
    _check_base(base)
    _check_presentation(p)
    ids = _Ids(base)
    thumbnail = None
    if p.poster is not None:
        width, height = p.poster
        thumbnail = [
            AnnotationBody(id=ids.file(POSTER_NAME), type="Image", format="image/jpeg", width=width, height=height)
        ]
    model = Manifest(
        id=ids.manifest,
        label=_label(p),
        metadata=_metadata(p),
        rendering=_renderings(p, ids),
        thumbnail=thumbnail,
        items=[_canvas(p, ids)],
    )
    document: dict[str, Any] = json.loads(str(model.json()))
    return _dump(document)


# -- reading back ---------------------------------------------------------------------------------
def _not_ours(where: str) -> PackagingError:
    return PackagingError(
        f"the IIIF manifest is not one preserve wrote: {where}",
        advice="Regenerate the AIP's access copies (they are made again from the AIP).",
    )


def _load(data: bytes) -> dict[str, Any]:
    """The manifest as JSON, after `validate`; raises PackagingError naming the first problem."""
    problems = validate(data)
    if problems:
        raise _not_ours(f"{problems[0]} ({len(problems)} problem(s) in all)")
    document: dict[str, Any] = json.loads(data.decode("utf-8"))
    return document


def _first_value(language_map: dict[str, list[str]]) -> str:
    return next(iter(language_map.values()))[0]


def _metadata_of(document: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """The metadata entries by English label: (the value's language key, its values)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for i, entry in enumerate(document.get("metadata", [])):
        names = entry["label"].get(ENGLISH)
        if not names or len(entry["value"]) != 1:
            raise _not_ours(f"$.metadata[{i}] is not an entry preserve writes")
        key, values = next(iter(entry["value"].items()))
        out[names[0]] = (key, list(values))
    return out


def _language_of(key: str) -> str:
    return UNDETERMINED if key == NO_LANGUAGE else key


def _titles(label: dict[str, list[str]], original: tuple[str, list[str]] | None) -> tuple[str, str, str]:
    """(title, original title, original language) from the label and the Original title entry."""
    if original is None:
        english = label.get(ENGLISH, [])
        return (english[0] if english else ""), "", Presentation.original_language
    key, values = original
    if key == ENGLISH:  # the title and the original title share the English list, title first
        english = label.get(ENGLISH, [])
        return (english[0] if len(english) == 2 else ""), values[0], ENGLISH
    english = label.get(ENGLISH, [])
    return (english[0] if english else ""), values[0], _language_of(key)


def _tracks(canvas: dict[str, Any], base: str) -> tuple[TrackRef, ...]:
    """The text tracks, in order, from the canvas's supplementing annotations."""
    tracks: list[TrackRef] = []
    for page in canvas.get("annotations", []):
        for annotation in page.get("items", []):
            body = annotation["body"]
            if not body["id"].startswith(base):
                raise _not_ours("a text track lies outside the manifest's folder")
            tracks.append(TrackRef(body["id"][len(base) :], body["language"], _first_value(body["label"])))
    return tuple(tracks)


def presentation_of(data: bytes) -> tuple[Presentation, str]:
    """Read back a manifest `manifest` wrote: its presentation and its base, so that
    ``manifest(*presentation_of(data)) == data``. The original language is read back only with an
    original title (alone it says nothing and is not written). Raises PackagingError for a
    document that does not validate or is not in the shape this module writes (the message names
    JSON paths, never a value)."""
    document = _load(data)
    manifest_id: str = document["id"]
    if not manifest_id.endswith("/" + MANIFEST_NAME):
        raise _not_ours("$.id does not end with the manifest's file name")
    base = manifest_id[: -len(MANIFEST_NAME)]
    if len(document["items"]) != 1:
        raise _not_ours("$.items does not hold exactly one canvas")
    try:
        return _read(document, base), base
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, StopIteration) as exc:
        raise _not_ours(f"a property preserve writes is missing or malformed ({type(exc).__name__})") from None


def _read(document: dict[str, Any], base: str) -> Presentation:
    """The presentation of a valid manifest with one canvas whose files lie under ``base``."""
    canvas = document["items"][0]
    video = canvas["items"][0]["items"][0]["body"]
    metadata = _metadata_of(document)
    if IDENTIFIER not in metadata:
        raise _not_ours("$.metadata has no Identifier")
    title, original_title, original_language = _titles(document["label"], metadata.get(ORIGINAL_TITLE))
    year = metadata.get(YEAR)
    credits = metadata.get(DIRECTOR) or metadata.get(DIRECTORS)
    poster = None
    for thumb in document.get("thumbnail", []):
        if thumb["id"] == base + POSTER_NAME:
            poster = (int(thumb["width"]), int(thumb["height"]))
    return Presentation(
        aip_id=metadata[IDENTIFIER][1][0],
        title=title,
        duration=video["duration"],
        width=int(video["width"]),
        height=int(video["height"]),
        original_title=original_title,
        original_language=original_language,
        year=int(year[1][0]) if year else None,
        credits=tuple(credits[1]) if credits else (),
        poster=poster,
        contact_sheet=any(r["id"] == base + CONTACT_SHEET_NAME for r in document.get("rendering", [])),
        tracks=_tracks(canvas, base),
    )


def rebase(data: bytes, base: str) -> bytes:
    """The same manifest for the same files under another ``base`` (a copy moved to another
    access location, or written by `preserve access AIP DEST`): every id changes, nothing else.
    Raises PackagingError for a document `manifest` did not write, ValueError for a bad base."""
    presentation, _ = presentation_of(data)
    return manifest(presentation, base)


# -- validation -----------------------------------------------------------------------------------
def _path(parts: Sequence[str | int]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


@cache
def _model_words() -> frozenset[str]:
    """The property and class names of the IIIF model, the only words of a model error's location
    that are quoted (the others may be keys of the document, which may be anything)."""
    import iiif_prezi3.skeleton as skeleton

    words: set[str] = set()
    for name in dir(skeleton):
        cls = getattr(skeleton, name)
        if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
            words.add(cls.__name__)
            for field_name, info in cls.model_fields.items():
                words.add(field_name)
                if info.alias:
                    words.add(info.alias)
    return frozenset(words)


def _model_problems(document: dict[str, Any]) -> list[str]:
    """What the IIIF Presentation 3 model of iiif-prezi3 rejects, by location (never the value)."""
    try:
        Manifest(**document)
    except pydantic.ValidationError as exc:
        words = _model_words()
        problems = []
        for err in exc.errors(include_input=False, include_url=False, include_context=False):
            loc = [p if isinstance(p, int) or p in words else "*" for p in err["loc"]]
            problems.append(f"{_path(loc)}: {err['msg']} (IIIF Presentation 3 model)")
        if len(problems) > MAX_MODEL_PROBLEMS:
            more = len(problems) - MAX_MODEL_PROBLEMS
            problems = [*problems[:MAX_MODEL_PROBLEMS], f"$: {more} more problem(s) with the IIIF model"]
        return problems
    except (TypeError, ValueError) as exc:
        return [f"$: not a IIIF Presentation 3 manifest ({type(exc).__name__})"]
    return []


def _walk(node: Any, parts: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every value of a JSON document with its path, the document first."""
    yield parts, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*parts, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*parts, i))


def _safe(parts: Sequence[str | int], known: frozenset[str] = PROPERTIES) -> list[str | int]:
    """A path with every key that is not a ``known`` one replaced (a key may be anything)."""
    return [p if isinstance(p, int) or p in known else "*" for p in parts]


def _absolute(uri: Any) -> bool:
    """An absolute http(s), s3 or file URI, with a host (a bucket) unless it is a file URI."""
    if not isinstance(uri, str) or not uri or any(c.isspace() for c in uri):
        return False
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        return False
    return bool(parts.netloc) if parts.scheme != "file" else parts.path.startswith("/")


def _positive(value: Any, integer: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if integer and not isinstance(value, int):
        return False
    return math.isfinite(value) and value > 0


def _is_language_map(value: Any) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    for key, texts in value.items():
        if not (key == NO_LANGUAGE or LANGUAGE_TAG.fullmatch(key) or _MAP_KEY.fullmatch(key)):
            return False
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return False
    return True


def _bodies(annotation: dict[str, Any]) -> list[Any]:
    body = annotation.get("body")
    return body if isinstance(body, list) else [body]


def _annotations(canvas: dict[str, Any], key: str) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """The annotations of the canvas's ``key`` ("items" or "annotations") pages, with paths."""
    pages = canvas.get(key)
    for i, page in enumerate(pages if isinstance(pages, list) else []):
        items = page.get("items") if isinstance(page, dict) else None
        for j, annotation in enumerate(items if isinstance(items, list) else []):
            if isinstance(annotation, dict):
                yield (key, i, "items", j), annotation


def _annotation_problems(where: tuple[str | int, ...], annotation: dict[str, Any], canvas_id: Any) -> list[str]:
    """The rules for one annotation of a canvas: it targets the canvas; a painting body is an MP4
    Video with its duration and size; a supplementing body a WebVTT Text with its language."""
    problems = []
    target = annotation.get("target")
    if not isinstance(target, str) or target.split("#", 1)[0] != canvas_id:
        problems.append(f"{_path(where)}.target: does not target its canvas")
    motivation = annotation.get("motivation")
    for k, body in enumerate(_bodies(annotation)):
        at = _path((*where, "body", k) if isinstance(annotation.get("body"), list) else (*where, "body"))
        if not isinstance(body, dict):
            problems.append(f"{at}: no body")
            continue
        if motivation == "painting":
            if body.get("type") != "Video" or body.get("format") != "video/mp4":
                problems.append(f"{at}: a painting body must be a Video in video/mp4")
            if not _positive(body.get("duration")):
                problems.append(f"{at}.duration: missing or not greater than 0")
            if not (_positive(body.get("width"), True) and _positive(body.get("height"), True)):
                problems.append(f"{at}: width and height must be positive integers")
        elif motivation == "supplementing":
            if body.get("type") != "Text" or body.get("format") != "text/vtt":
                problems.append(f"{at}: a supplementing body must be a Text in text/vtt")
            language = body.get("language")
            if not isinstance(language, str) or not LANGUAGE_TAG.fullmatch(language):
                problems.append(f"{at}.language: missing or not a BCP 47 tag")
    return problems


def _canvas_problems(i: int, canvas: Any) -> list[str]:
    """The rules for the ``i``-th canvas: a positive duration and size, and at least one painting
    annotation; then each annotation's own rules."""
    at = _path(("items", i))
    if not isinstance(canvas, dict) or canvas.get("type") != "Canvas":
        return [f"{at}: not a Canvas"]
    problems = []
    if not _positive(canvas.get("duration")):
        problems.append(f"{at}.duration: missing or not greater than 0")
    if not (_positive(canvas.get("width"), True) and _positive(canvas.get("height"), True)):
        problems.append(f"{at}: width and height must be positive integers")
    painted = False
    for key in ("items", "annotations"):
        for where, annotation in _annotations(canvas, key):
            painted |= annotation.get("motivation") == "painting"
            problems += _annotation_problems(("items", i, *where), annotation, canvas.get("id"))
    if not painted:
        problems.append(f"{at}: no painting annotation")
    return problems


def _rule_problems(document: dict[str, Any]) -> list[str]:
    """The rules of the specification the model does not check."""
    problems = []
    context = document.get("@context")
    if not (context == CONTEXT or (isinstance(context, list) and context and context[-1] == CONTEXT)):
        problems.append("$.@context: not the IIIF Presentation 3 context")
    if document.get("type") != "Manifest":
        problems.append("$.type: not Manifest")
    for required in ("id", "label"):
        if required not in document:
            problems.append(f"$.{required}: missing")
    seen: set[str] = set()
    for parts, node in _walk(document):
        if not isinstance(node, dict):
            continue
        if "id" in node:
            if not _absolute(node["id"]):
                problems.append(f"{_path(_safe(parts))}.id: not an absolute http(s), s3 or file URI")
            elif node["id"] in seen:
                problems.append(f"{_path(_safe(parts))}.id: not unique")
            else:
                seen.add(node["id"])
        if node.get("type") in IDENTIFIED and "id" not in node:
            problems.append(f"{_path(_safe(parts))}: no id")
        for key in ("label", "value", "summary"):
            if key == "value" and parts[-2:-1] != ("metadata",):
                continue  # a metadata entry's value is a language map; other values are not
            if key in node and not _is_language_map(node[key]):
                problems.append(f"{_path(_safe(parts))}.{key}: not a language map")
    items = document.get("items")
    if not isinstance(items, list) or not items:
        problems.append("$.items: no canvas")
    else:
        for i, canvas in enumerate(items):
            problems += _canvas_problems(i, canvas)
    return problems


def validate(data: bytes) -> list[str]:
    """What is wrong with a manifest, as findings naming JSON paths (never a value): not UTF-8
    JSON; not valid against the IIIF Presentation 3 model (iiif-prezi3); and the rules the model
    cannot check: the Presentation 3 context, ids unique and absolute http(s)/s3/file URIs, labels
    language maps, each canvas with a positive duration and size and a painting annotation, each
    annotation targeting its canvas, each painting body an MP4 Video with duration, width and
    height, each supplementing body a WebVTT Text with its language. Empty means valid."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return ["$: not UTF-8"]
    except json.JSONDecodeError as exc:
        return [f"$: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"]
    if not isinstance(document, dict):
        return ["$: not a JSON object"]
    return _model_problems(document) + _rule_problems(document)


# -- privacy --------------------------------------------------------------------------------------
def check_clean(data: bytes, p: Presentation, base: str, forbidden: Sequence[str] = ()) -> list[str]:
    """The privacy check of a manifest of ``p`` at ``base``, an allow-list: every string in it
    (values and keys) must be one of the presentation's own texts (`own_texts`), a URL of one of
    its files or resources under ``base``, a language key of its own, or the fixed vocabulary this
    module writes; anything else, and any ``forbidden`` value (see `forbidden_search`) anywhere in
    a string, is a finding naming the JSON path, never the value. Empty means clean."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ["$: not UTF-8 JSON, cannot be checked"]
    allowed = VOCABULARY | own_texts(p) | _Ids(base).all(p)
    keys = PROPERTIES | {ENGLISH, NO_LANGUAGE, map_key(p.original_language)}
    keys |= frozenset(map_key(track.language) for track in p.tracks)
    search = forbidden_search(forbidden, p)
    findings: list[str] = []
    for parts, node in _walk(document):
        where = _path(_safe(parts, keys))
        if isinstance(node, dict):
            for key in node:
                if key not in keys:
                    findings.append(f"{where}: a key that is not one preserve writes")
                if any(v in fold(key) for v in search):
                    findings.append(f"{where}: a key holds a forbidden value")
        elif isinstance(node, str):
            if node not in allowed:
                findings.append(f"{where}: a string that is not the presentation's own")
            if any(v in fold(node) for v in search):
                findings.append(f"{where}: holds a forbidden value")
    return findings
