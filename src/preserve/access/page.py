"""The page that plays a film: a static ``index.html`` beside its access copies, written from a
`Presentation`, and its check. Pure: no I/O.

The page is HTML5 with no script at all and links only to the files of its own folder, by
relative URL (`presentation.PROXY_NAME`, ..., each track's `TrackRef.name`), so it plays wherever
the folder is served or copied (the access location, or `preserve access AIP DEST`). It shows
the title, the original title (in its language), the year and, only when the sidecar marked the
credits public, the directors; a ``<video>`` with the poster, the proxy and one ``<track>`` per
WebVTT access track; links to the IIIF manifest and the contact sheet.

Its Content Security Policy (a ``<meta http-equiv>``, as the folder may be served by anything)
allows nothing but the folder's own files: no script of any kind, no plugin, no ``<base>``, no
form. The one stylesheet is inline and allowed by its SHA-256 hash rather than by
``'unsafe-inline'``: the hash admits exactly this constant stylesheet, whereas ``'unsafe-inline'``
would admit any inline style or ``style`` attribute that found its way into the page."""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

from preserve.access.presentation import (
    CONTACT_SHEET_NAME,
    MANIFEST_NAME,
    POSTER_NAME,
    PROXY_NAME,
    Presentation,
    fold,
    forbidden_search,
    own_texts,
)

#: the page's only stylesheet; its hash is in the CSP, so any change here is allowed with it
STYLE = """
:root { color-scheme: dark; }
body { margin: 0; background: #111; color: #eee; font: 16px/1.5 system-ui, sans-serif; }
main { max-width: 960px; margin: 0 auto; padding: 24px; }
h1 { margin: 0; font-size: 2rem; font-weight: 600; }
.original { margin: 0; font-size: 1.5rem; color: #ccc; }
.about { margin: 4px 0 16px; color: #aaa; }
.about > span + span::before { content: " \\00b7  "; }
video { display: block; width: 100%; height: auto; background: #000; }
nav ul { list-style: none; display: flex; gap: 24px; padding: 0; }
a { color: #9cf; }
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
#: every script and every resource from outside the folder is refused; the stylesheet by hash
CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    f"form-action 'none'; style-src '{STYLE_HASH}'"
)
#: the page's own words (English, the page's language)
DIRECTED_BY, MANIFEST_LINK, SHEET_LINK = "Directed by", "IIIF manifest", "Contact sheet"
NO_VIDEO, DOWNLOAD = "This browser does not play the video:", "download it"
WORDS = frozenset({DIRECTED_BY, MANIFEST_LINK, SHEET_LINK, NO_VIDEO, DOWNLOAD, ",", "."})
#: every attribute value the page writes besides the presentation's texts, file names and sizes
ATTRIBUTE_VALUES = frozenset(
    {
        "en",
        "utf-8",
        "Content-Security-Policy",
        CSP,
        "referrer",
        "no-referrer",
        "viewport",
        "width=device-width, initial-scale=1",
        "original",
        "about",
        "year",
        "credits",
        "director",
        "auto",
        "video/mp4",
        "subtitles",
        "application/ld+json",
    }
)
#: the elements and attributes the page is made of; anything else is a finding
ELEMENTS = frozenset(
    {"html", "head", "meta", "title", "style", "body", "main", "header", "h1", "p", "span"}
    | {"video", "source", "track", "nav", "ul", "li", "a"}
)
ATTRIBUTES = frozenset(
    {"lang", "charset", "http-equiv", "content", "name", "class", "controls", "preload", "poster"}
    | {"width", "height", "src", "type", "kind", "srclang", "label", "default", "href"}
)
#: attributes that hold a URL (HTML's list, with the legacy ones a browser still follows)
URL_ATTRIBUTES = frozenset(
    {"href", "src", "poster", "action", "formaction", "data", "cite", "srcset", "background", "ping", "manifest"}
    | {"codebase", "longdesc", "icon", "xlink:href", "imagesrcset"}
)
#: element names a finding may quote (others could be any text the page was made to hold)
_NAMED = ELEMENTS | {"script", "iframe", "frame", "object", "embed", "img", "link", "base", "form", "svg", "math"}


def _e(text: str) -> str:
    """Escaped for an HTML text node or a double-quoted attribute value."""
    return html.escape(text, quote=True)


def _href(name: str) -> str:
    """The relative URL of a file of the folder; ValueError for anything but a plain file name."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or ":" in name:
        raise ValueError("an access file must be named by a plain file name")
    return quote(name)


def _default_track(p: Presentation) -> int:
    """The index of the track shown by default: the first English one, else the first."""
    for i, track in enumerate(p.tracks):
        if track.language == "en" or track.language.startswith("en-"):
            return i
    return 0


def _heading(p: Presentation) -> list[str]:
    """The title, the original title in its language, the year and (when public) the directors."""
    if p.title:
        lines = [f"<h1>{_e(p.title)}</h1>"]
        if p.original_title:
            lines.append(f'<p class="original" lang="{_e(p.original_language)}">{_e(p.original_title)}</p>')
    elif p.original_title:
        lines = [f'<h1 lang="{_e(p.original_language)}">{_e(p.original_title)}</h1>']
    else:
        lines = [f"<h1>{_e(p.aip_id)}</h1>"]
    about = []
    if p.year is not None:
        about.append(f'<span class="year">{p.year}</span>')
    if p.credits:
        names = ", ".join(f'<span class="director">{_e(name)}</span>' for name in p.credits)
        about.append(f'<span class="credits">{DIRECTED_BY} {names}</span>')
    if about:
        lines.append(f'<p class="about">{"".join(about)}</p>')
    return lines


def _video(p: Presentation) -> list[str]:
    """The player: poster, proxy, one subtitle track per access track, a download link."""
    poster = f' poster="{_href(POSTER_NAME)}"' if p.poster is not None else ""
    lines = [
        f'<video controls preload="auto"{poster} width="{p.width}" height="{p.height}">',
        f'<source src="{_href(PROXY_NAME)}" type="video/mp4">',
    ]
    default = _default_track(p)
    for i, track in enumerate(p.tracks):
        flag = " default" if i == default else ""
        lines.append(
            f'<track kind="subtitles" src="{_href(track.name)}" srclang="{_e(track.language)}"'
            f' label="{_e(track.label)}"{flag}>'
        )
    lines += [f'<p>{NO_VIDEO} <a href="{_href(PROXY_NAME)}">{DOWNLOAD}</a>.</p>', "</video>"]
    return lines


def _title(p: Presentation) -> str:
    return p.title or p.original_title or p.aip_id


def render(p: Presentation) -> bytes:
    """The page of ``p`` as UTF-8 bytes (deterministic). Every text is escaped; ValueError for a
    track whose name is not a plain file name (its link would not be relative)."""
    links = [f'<li><a href="{_href(MANIFEST_NAME)}" type="application/ld+json">{MANIFEST_LINK}</a></li>']
    if p.contact_sheet:
        links.append(f'<li><a href="{_href(CONTACT_SHEET_NAME)}">{SHEET_LINK}</a></li>')
    lines = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(_title(p))}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<header>",
        *_heading(p),
        "</header>",
        *_video(p),
        "<nav>",
        "<ul>",
        *links,
        "</ul>",
        "</nav>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


# -- the check ------------------------------------------------------------------------------------
class _Checker(HTMLParser):
    """Walks the page once and notes every finding with its line, never quoting a value."""

    def __init__(self, p: Presentation, forbidden: Sequence[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[str] = []
        self.search = forbidden_search(forbidden, p)
        self.texts = {t.strip() for t in own_texts(p)} | WORDS
        self.files = {_href(n) for n in (PROXY_NAME, MANIFEST_NAME)} | {_href(t.name) for t in p.tracks}
        if p.poster is not None:
            self.files.add(_href(POSTER_NAME))
        if p.contact_sheet:
            self.files.add(_href(CONTACT_SHEET_NAME))
        self.values = ATTRIBUTE_VALUES | own_texts(p) | self.files | {p.original_language, str(p.width), str(p.height)}
        self.open: list[str] = []
        self.doctype = False
        self.csp = self.referrer = False
        self.hit = False  # a forbidden value was found in a node

    def note(self, what: str) -> None:
        line, _ = self.getpos()
        self.findings.append(f"line {line}: {what}")

    def forbidden(self, text: str, where: str) -> None:
        folded = fold(text)
        if any(v in folded for v in self.search):
            self.hit = True
            self.note(f"{where} holds a forbidden value")

    def handle_decl(self, decl: str) -> None:
        if decl.strip().lower() != "doctype html" or self.doctype:
            self.note("a declaration that is not the one <!doctype html>")
        self.doctype = True

    def unknown_decl(self, data: str) -> None:
        self.note("a marked section (CDATA)")

    def handle_pi(self, data: str) -> None:
        self.note("a processing instruction")

    def handle_comment(self, data: str) -> None:
        self.note("a comment")
        self.forbidden(data, "a comment")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = f"<{tag}>" if tag in _NAMED else "an unknown element"
        if tag == "script":
            self.note("a <script> element")
        elif tag not in ELEMENTS:
            self.note(f"{name}, not an element the page is made of")
        for attr, value in attrs:
            self.attribute(tag, name, attr, value)
        if tag == "meta":
            found = dict(attrs)
            self.csp |= found.get("http-equiv") == "Content-Security-Policy" and found.get("content") == CSP
            self.referrer |= found.get("name") == "referrer" and found.get("content") == "no-referrer"
        if tag not in {"meta", "source", "track"}:  # the void elements the page has
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self.open and self.open[-1] == tag:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            while self.open.pop() != tag:
                pass

    def attribute(self, tag: str, name: str, attr: str, value: str | None) -> None:
        """An attribute must be one the page has, with a value the page writes; a URL must be
        relative, to a file of the folder."""
        self.forbidden(attr, f"an attribute name of {name}")
        if attr.startswith("on"):
            self.note(f"an event-handler attribute on {name}")
            return
        if attr not in ATTRIBUTES:
            self.note(f"an attribute of {name} that the page does not have")
        if value is None:
            return
        self.forbidden(value, f"an attribute of {name}")
        if attr in URL_ATTRIBUTES:
            parts = urlsplit(value.strip())
            if parts.scheme or parts.netloc or value.strip().startswith(("/", "\\")):
                self.note(f"an absolute URL in {name} {attr}")
            elif value not in self.files:
                self.note(f"a link in {name} {attr} to a file that is not the AIP's")
        elif value not in self.values:
            self.note(f"a value of {name} {attr} that is not the presentation's own")

    def handle_data(self, data: str) -> None:
        self.forbidden(data, "a text")
        inside = self.open[-1] if self.open else ""
        if inside == "style":
            if data != STYLE:
                self.note("a stylesheet that is not the page's")
            return
        if data.strip() and data.strip() not in self.texts:
            self.note("a text that is not the presentation's own")


def check_clean(html_bytes: bytes, p: Presentation, forbidden: Sequence[str] = ()) -> list[str]:
    """The check of a page of ``p``, an allow-list: the one doctype; only the elements and
    attributes `render` writes; no ``<script>``, no ``on*`` attribute, no comment; every URL
    relative and to a file of the AIP's folder; every text and attribute value one of the
    presentation's own texts (`presentation.own_texts`: directors only when their credits are public) or
    the page's own words; the stylesheet the CSP's hash allows; the CSP and the no-referrer
    policy present; no ``forbidden`` value anywhere (`presentation.forbidden_search`). Findings name
    the line and the kind of thing, never a value. Empty means clean."""
    try:
        text = html_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return ["the page is not UTF-8"]
    checker = _Checker(p, forbidden)
    checker.feed(text)
    checker.close()
    findings = checker.findings
    if not checker.doctype:
        findings.append("no <!doctype html>")
    if not checker.csp:
        findings.append("no Content-Security-Policy, or not the page's")
    if not checker.referrer:
        findings.append("no no-referrer policy")
    if not checker.hit and any(v in fold(html.unescape(text)) for v in checker.search):
        findings.append("the page holds a forbidden value")  # split across nodes, or in the markup
    return findings
