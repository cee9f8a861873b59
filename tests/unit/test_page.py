"""The page that plays (`preserve.access.page`): a static HTML5 page with no script, relative links
to its own folder only, everything escaped, people named only when the credits are public, a CSP
that admits exactly its stylesheet; and its check finds what it may not hold without repeating
it."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from preserve.access import page
from preserve.access.presentation import (
    CONTACT_SHEET_NAME,
    MANIFEST_NAME,
    POSTER_NAME,
    PROXY_NAME,
    Presentation,
    TrackRef,
    track_name,
)

DIRECTOR = "Zhang Plantedname"
PLACE = "Xiaoshancun Plantedplace"
FULL = Presentation(
    aip_id="AIP-1",
    title="Bumming in Beijing",
    duration=3.0,
    width=640,
    height=360,
    original_title="流浪北京",
    year=1990,
    poster=(640, 360),
    contact_sheet=True,
    tracks=(
        TrackRef(track_name(1, "zh-Hans"), "zh-Hans", "中文（简体）"),
        TrackRef(track_name(2, "en"), "en", "English"),
    ),
)


class Parsed(HTMLParser):
    """The elements of a page in order, with their attributes, and the text inside each."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, list[str]] = {}
        self.decls: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in {"meta", "source", "track"}:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if data.strip() and self.stack:
            self.text.setdefault(self.stack[-1], []).append(data.strip())

    def handle_decl(self, decl: str) -> None:
        self.decls.append(decl)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.elements if t == tag]


def parse(html: bytes) -> Parsed:
    parsed = Parsed()
    parsed.feed(html.decode("utf-8"))
    parsed.close()
    return parsed


def test_page_is_static_html5_with_its_policies() -> None:
    html = page.render(FULL)
    assert html.startswith(b"<!doctype html>\n")
    parsed = parse(html)
    assert parsed.decls == ["doctype html"]
    assert parsed.all("html") == [{"lang": "en"}]
    metas = parsed.all("meta")
    assert metas[0] == {"charset": "utf-8"}
    assert {"http-equiv": "Content-Security-Policy", "content": page.CSP} in metas
    assert {"name": "referrer", "content": "no-referrer"} in metas
    for directive in ("default-src 'self'", "script-src 'none'", "object-src 'none'", "base-uri 'none'"):
        assert directive in page.CSP.split("; ")
    assert "form-action 'none'" in page.CSP and "unsafe" not in page.CSP
    assert parsed.text["title"] == ["Bumming in Beijing"] and parsed.text["h1"] == ["Bumming in Beijing"]
    [original] = [a for t, a in parsed.elements if t == "p" and a.get("class") == "original"]
    assert original == {"class": "original", "lang": "zh"}
    assert "流浪北京" in parsed.text["p"]
    assert parsed.text["span"] == ["1990"]
    assert page.check_clean(html, FULL) == []


def test_the_stylesheet_is_the_one_the_csp_hash_admits() -> None:
    html = page.render(FULL).decode()
    [css] = re.findall(r"<style>(.*?)</style>", html, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in page.CSP.split("; ")
    assert "style=" not in html  # no style attribute: the hash would not admit it


def test_video_with_poster_proxy_and_tracks() -> None:
    parsed = parse(page.render(FULL))
    [video] = parsed.all("video")
    assert video == {"controls": None, "preload": "auto", "poster": POSTER_NAME, "width": "640", "height": "360"}
    assert parsed.all("source") == [{"src": PROXY_NAME, "type": "video/mp4"}]
    assert parsed.all("track") == [
        {"kind": "subtitles", "src": "subtitles-1.zh-Hans.vtt", "srclang": "zh-Hans", "label": "中文（简体）"},
        {"kind": "subtitles", "src": "subtitles-2.en.vtt", "srclang": "en", "label": "English", "default": None},
    ]
    links = [a["href"] for a in parsed.all("a")]
    assert links == [PROXY_NAME, MANIFEST_NAME, CONTACT_SHEET_NAME]


@pytest.mark.parametrize(
    ("languages", "default"),
    [(["zh-Hans", "en"], 1), (["zh-Hans", "zh-Hant"], 0), (["fr", "en-GB", "en"], 1), (["en"], 0)],
)
def test_default_track_is_the_first_english_one_else_the_first(languages: list[str], default: int) -> None:
    tracks = tuple(TrackRef(track_name(i, lang), lang, lang) for i, lang in enumerate(languages, 1))
    parsed = parse(page.render(replace(FULL, tracks=tracks)))
    flags = ["default" in t for t in parsed.all("track")]
    assert flags == [i == default for i in range(len(languages))]


def test_without_poster_sheet_or_tracks() -> None:
    bare = Presentation(aip_id="AIP-2", title="", duration=1.0, width=320, height=240)
    html = page.render(bare)
    parsed = parse(html)
    assert "poster" not in parsed.all("video")[0] and parsed.all("track") == []
    assert [a["href"] for a in parsed.all("a")] == [PROXY_NAME, MANIFEST_NAME]
    assert parsed.text["h1"] == ["AIP-2"]  # no title at all: the AIP's id
    assert page.check_clean(html, bare) == []
    original = replace(bare, original_title="盲山", original_language="zh-Hans")
    parsed = parse(page.render(original))
    assert parsed.text["h1"] == ["盲山"] and {"lang": "zh-Hans"} in parsed.all("h1")


def test_no_script_and_relative_links_only() -> None:
    html = page.render(FULL)
    assert b"<script" not in html.lower()
    parsed = parse(html)
    for tag, attrs in parsed.elements:
        assert tag != "script"
        assert not any(name.startswith("on") for name in attrs), tag
        for name in ("href", "src", "poster"):
            value = attrs.get(name)
            if value is not None:
                parts = urlsplit(value)
                assert not parts.scheme and not parts.netloc and "/" not in value, (tag, name)


def test_everything_is_escaped() -> None:
    evil = replace(
        FULL,
        title='<script>alert("x")</script> & Co',
        original_title="</p><img src=x onerror=alert(1)>",
        tracks=(TrackRef(track_name(1, "en"), "en", '"><script>alert(2)</script>'),),
    )
    html = page.render(evil)
    assert b"<script" not in html.lower() and b"<img" not in html.lower()
    assert b"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in html
    parsed = parse(html)
    assert parsed.text["h1"] == ['<script>alert("x")</script> & Co']
    assert parsed.all("track")[0]["label"] == '"><script>alert(2)</script>'
    assert page.check_clean(html, evil) == []


def test_render_refuses_a_track_name_that_is_not_a_plain_file_name() -> None:
    for name in ("../x.vtt", "https://elsewhere.example/x.vtt", "/x.vtt", "a/b.vtt", ".hidden.vtt"):
        with pytest.raises(ValueError):
            page.render(replace(FULL, tracks=(TrackRef(name, "en", "English"),)))


def test_directors_appear_only_when_credits_are_public() -> None:
    hidden = page.render(FULL)
    assert DIRECTOR.encode() not in hidden and page.DIRECTED_BY.encode() not in hidden
    assert page.check_clean(hidden, FULL, forbidden=[DIRECTOR]) == []
    credited = replace(FULL, credits=(DIRECTOR, "Li Plantedtoo"))
    shown = page.render(credited)
    parsed = parse(shown)
    assert parsed.text["span"] == ["1990", page.DIRECTED_BY, DIRECTOR, ",", "Li Plantedtoo"]
    assert page.check_clean(shown, credited) == []
    findings = page.check_clean(shown, FULL, forbidden=[DIRECTOR])
    assert findings and not any("Plantedname" in f or "Plantedtoo" in f for f in findings)


def _plant(html: bytes, markup: str) -> bytes:
    return html.replace(b"</main>", markup.encode() + b"\n</main>")


PLANTS = {
    "script": "<script>fetch('https://x.example/')</script>",
    "script src": '<script src="proxy.mp4"></script>',
    "event handler": '<p onclick="x()">Bumming in Beijing</p>',
    "absolute link": '<a href="https://elsewhere.example/">IIIF manifest</a>',
    "scheme-relative link": '<a href="//elsewhere.example/">IIIF manifest</a>',
    "rooted link": '<a href="/films/x">IIIF manifest</a>',
    "javascript link": '<a href="javascript:alert(1)">IIIF manifest</a>',
    "link to another file": '<a href="other.mp4">IIIF manifest</a>',
    "image": '<img src="poster.jpg">',
    "iframe": '<iframe src="index.html"></iframe>',
    "comment": "<!-- made by someone -->",
    "text": "<p>a stranger's words</p>",
    "attribute value": '<p class="x y">1990</p>',
    "style attribute": '<p style="color:red">1990</p>',
    "second stylesheet": "<style>body{background:url(https://x.example/t.gif)}</style>",
    "refresh": '<meta http-equiv="refresh" content="0;url=https://x.example/">',
    "base": '<base href="https://x.example/">',
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_check_clean_finds_what_the_page_may_not_hold(plant: str) -> None:
    findings = page.check_clean(_plant(page.render(FULL), PLANTS[plant]), FULL)
    assert findings, plant
    assert all(re.match(r"line [0-9]+: ", f) for f in findings)


def test_check_clean_finds_a_forbidden_value_without_repeating_it() -> None:
    html = page.render(FULL)
    for markup in (f"<p>{PLACE}</p>", f'<p class="{PLACE}">1990</p>', f"<!-- {PLACE} -->", "<p>Xiaoshancun&#32;x</p>"):
        findings = page.check_clean(_plant(html, markup), FULL, forbidden=["xiaoshancun"])
        assert any("forbidden" in f for f in findings), markup
        assert not any("iaoshancun" in f or "Planted" in f for f in findings)
    # a forbidden value that is the title itself is the title; one inside the title is not
    assert page.check_clean(html, FULL, forbidden=["Bumming in Beijing"]) == []
    assert any("forbidden" in f for f in page.check_clean(html, FULL, forbidden=["Beijing"]))


def test_check_clean_needs_the_policies() -> None:
    html = page.render(FULL)
    no_csp = re.sub(rb'<meta http-equiv="Content-Security-Policy"[^>]*>', b"", html)
    assert "no Content-Security-Policy, or not the page's" in page.check_clean(no_csp, FULL)
    weaker = html.replace(b"script-src &#x27;none&#x27;", b"script-src *")
    assert "no Content-Security-Policy, or not the page's" in page.check_clean(weaker, FULL)
    no_referrer = html.replace(b'content="no-referrer"', b'content="origin"')
    assert "no no-referrer policy" in page.check_clean(no_referrer, FULL)
    assert "no <!doctype html>" in page.check_clean(html.replace(b"<!doctype html>\n", b""), FULL)
    assert page.check_clean(b"\xff", FULL) == ["the page is not UTF-8"]
