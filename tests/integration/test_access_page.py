"""The access page plays, for real: a 3 s clip becomes a proxy and a poster (`preserve.access.proxy`),
two WebVTT tracks (English, and Simplified Chinese) are written beside them, and the page and the
IIIF manifest are rendered into the folder, which `http.server` serves on 127.0.0.1 (over file://
Chromium would refuse the text tracks). Headless Chromium, driven over the DevTools protocol,
opens the page: the video reaches HAVE_ENOUGH_DATA, both tracks load with every cue, the cue
shown at a time is the text written (the Chinese decoded as written), no console error, failed
request, request outside the folder or CSP violation occurs while the page's own files load, the
stylesheet the CSP allows by hash applies, and the CSP does refuse a script put into the page
afterwards. The server answers byte ranges, as S3 and web servers do (without them Chromium
cannot seek); every file the manifest names is there at its id. The screenshot goes to
test-artifacts/access-page.png, and to docs/images/access-page.png (the README's) when
PRESERVE_UPDATE_DOCS=1."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from preserve.access import iiif, page
from preserve.access.presentation import (
    MANIFEST_NAME,
    PAGE_NAME,
    POSTER_NAME,
    PROXY_NAME,
    Presentation,
    TrackRef,
    track_name,
)
from preserve.access.proxy import make_poster, make_proxy
from preserve.config import ProxySettings
from preserve.tools import ffprobe
from tests.mediafactory import make_clip

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
README_IMAGE = ROOT / "docs" / "images" / "access-page.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: tests/flows/test_serve.py's flags, without its --virtual-time-budget (that is for --screenshot
#: runs; here the protocol waits for the page), with autoplay allowed and a DevTools port
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
]
#: how long the browser may take to load, play and seek a 3 s clip before the test gives up
DEADLINE = 90.0

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI has it)"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"),
]

#: the tracks written by hand: (language, label, [(start s, end s, text)])
CUES: list[tuple[str, str, list[tuple[float, float, str]]]] = [
    ("en", "English", [(0.0, 1.4, "Beijing, 1990."), (1.5, 3.0, "Four artists, no residence permit.")]),
    ("zh-Hans", "中文（简体）", [(0.0, 1.4, "北京，一九九〇年。"), (1.5, 3.0, "四个艺术家，没有户口。")]),
]


def _timestamp(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{round((seconds - whole) * 1000):03d}"


def _webvtt(cues: list[tuple[float, float, str]]) -> bytes:
    blocks = [f"{_timestamp(a)} --> {_timestamp(b)}\n{text}" for a, b, text in cues]
    return ("WEBVTT\n\n" + "\n\n".join(blocks) + "\n").encode("utf-8")


class _Access(http.server.SimpleHTTPRequestHandler):
    """Serves the folder as an access location does (S3, a web server): with the media types of
    its files and byte ranges (without them a browser cannot seek), logging nothing."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".vtt": "text/vtt; charset=utf-8",
        ".mp4": "video/mp4",
        ".json": "application/ld+json",
        ".html": "text/html; charset=utf-8",
    }

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def send_head(self) -> Any:
        """A single ``Range: bytes=a-b`` request of a file is answered 206 with that slice."""
        wanted = re.fullmatch(r"bytes=([0-9]*)-([0-9]*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if wanted is None or not path.is_file() or wanted.groups() == ("", ""):
            return super().send_head()
        size = path.stat().st_size
        first, last = wanted.groups()
        start, end = (int(first), int(last or size - 1)) if first else (max(0, size - int(last)), size - 1)
        end = min(end, size - 1)
        if start > end:
            self.send_error(416)
            return None
        with path.open("rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _served(folder: Path) -> Iterator[str]:
    """The folder over HTTP on a free loopback port, in a thread; yields its URL (ending "/")."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Access, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def _chromium(tmp: Path) -> Iterator[int]:
    """Headless Chromium with a fresh profile; yields its DevTools port (from DevToolsActivePort)
    and stops the process group it started."""
    assert CHROMIUM is not None
    profile = Path(tempfile.mkdtemp(dir=tmp, prefix="chromium-"))
    proc = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + DEADLINE
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        yield int(port_file.read_text().splitlines()[0])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class _DevTools:
    """A minimal client of the Chrome DevTools protocol on one page: commands wait for their
    answer; the events that arrive meanwhile are kept in ``events``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=DEADLINE))
            if message.get("id") == self.next_id:
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools' own evaluation, which the
        page's CSP does not govern)."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in answer, answer["exceptionDetails"]
        return answer["result"].get("value")

    def poll(self, expression: str, done: Callable[[Any], bool], what: str) -> Any:
        """Evaluate ``expression`` until ``done`` holds for its value; fails after DEADLINE."""
        deadline = time.monotonic() + DEADLINE
        while True:
            value = self.evaluate(expression)
            if done(value):
                return value
            assert time.monotonic() < deadline, f"{what}: still {value!r}"
            time.sleep(0.1)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method}"
            self.events.append(json.loads(self.ws.recv(timeout=DEADLINE)))
        return next(e for e in self.events if e.get("method") == method)

    def drain(self) -> None:
        """Take in the events already sent (a short wait: the browser sends them as they occur)."""
        try:
            while True:
                self.events.append(json.loads(self.ws.recv(timeout=0.5)))
        except TimeoutError:
            pass


def _url(params: dict[str, Any]) -> str:
    """The URL an event is about, when it says."""
    for holder in (params, params.get("request", {}), params.get("response", {}), params.get("entry", {})):
        if isinstance(holder, dict) and isinstance(holder.get("url"), str):
            return str(holder["url"])
    return ""


def _problems(events: list[dict[str, Any]], base: str) -> list[str]:
    """What went wrong in the page, from the protocol's events: exceptions, console errors, log
    errors (a refused resource, a CSP violation), requests outside ``base``, failed requests
    and error responses. Not the page's: the browser's own request for /favicon.ico (the page
    names no icon), and the data: pictures of the player's built-in controls (a data: URL of the
    page itself would be a CSP violation, which `WATCH` records)."""
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if _url(params).endswith("/favicon.ico"):
            continue
        if method == "Runtime.exceptionThrown":
            out.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            out.append(f"console {params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent" and not _url(params).startswith((base, "data:")):
            out.append(f"a request outside the page's folder: {_url(params)}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            out.append(f"request failed: {params.get('errorText')} {params.get('blockedReason', '')}")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            out.append(f"HTTP {params['response']['status']} for {params['response']['url']}")
    return out


#: the state of the player and its tracks, as JSON; tracks not shown are set to load hidden
STATE = """(() => {
  const v = document.querySelector('video');
  for (const t of v.textTracks) if (t.mode === 'disabled') t.mode = 'hidden';
  return {
    ready: v.readyState, error: v.error && v.error.code, src: v.currentSrc,
    duration: v.duration, seeking: v.seeking, time: v.currentTime,
    loaded: [...document.querySelectorAll('track')].map(e => e.readyState),
    cues: [...v.textTracks].map(t => t.cues ? t.cues.length : -1),
    modes: [...v.textTracks].map(t => t.mode),
    languages: [...v.textTracks].map(t => t.language),
    active: [...v.textTracks].map(t => t.activeCues ? [...t.activeCues].map(c => c.text) : null),
    frame: v.videoWidth + 'x' + v.videoHeight,
  };
})()"""
#: records the page's CSP violations, from before its first byte is parsed
WATCH = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));"
)


def _folder(tmp: Path) -> tuple[Path, Presentation]:
    """The access folder of a film as the pipeline lays it out (no manifest or page yet)."""
    src = make_clip(tmp / "film.mp4", size="640x360", duration=3.0)
    folder = tmp / "AIP-PAGE-1"
    folder.mkdir()
    settings = ProxySettings(preset="ultrafast")
    probe = ffprobe.probe(src)
    proxy = make_proxy(src, folder / PROXY_NAME, probe, settings)
    poster = make_poster(src, folder / POSTER_NAME, probe, settings, duration=3.0)
    made, still = ffprobe.probe(proxy), ffprobe.probe(poster)
    assert made.duration and made.width and made.height and still.width and still.height
    tracks = []
    for number, (language, label, cues) in enumerate(CUES, 1):
        name = track_name(number, language)
        (folder / name).write_bytes(_webvtt(cues))
        tracks.append(TrackRef(name, language, label))
    presentation = Presentation(
        aip_id="AIP-PAGE-1",
        title="Bumming in Beijing",
        original_title="流浪北京",
        year=1990,
        duration=round(made.duration, 3),
        width=made.width,
        height=made.height,
        poster=(still.width, still.height),
        tracks=tuple(tracks),
    )
    return folder, presentation


def _screenshot(tools: _DevTools) -> None:
    """The page as it plays, with both tracks' cues shown at once (a viewer sees the one chosen),
    into test-artifacts/ and, with PRESERVE_UPDATE_DOCS=1, into the README's picture (which must
    then show the Chinese in a Chinese font, not as empty boxes)."""
    tools.evaluate("document.querySelector('video').textTracks[1].mode = 'showing'")
    tools.poll(STATE, lambda s: s["modes"] == ["showing", "showing"], "both tracks shown")
    shot = tools.send("Page.captureScreenshot", format="png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    picture = ARTIFACTS / "access-page.png"
    picture.write_bytes(base64.b64decode(shot["data"]))
    assert picture.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("PRESERVE_UPDATE_DOCS") == "1":
        fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False)
        assert fonts.stdout.strip(), (
            "no Chinese font (apt-get install fonts-wqy-microhei): the picture would show boxes"
        )
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(picture, README_IMAGE)


def _files_served(document: bytes) -> None:
    """Every file the manifest names (itself, the proxy, the poster, the tracks, the page) is
    there at its id."""
    doc = json.loads(document)
    urls = [doc["id"], *(t["id"] for t in doc.get("thumbnail", [])), *(r["id"] for r in doc.get("rendering", []))]
    for canvas in doc["items"]:
        for key in ("items", "annotations"):
            urls += [a["body"]["id"] for page_ in canvas.get(key, []) for a in page_["items"]]
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200, url


def test_page_plays_in_chromium(tmp_path: Path) -> None:
    folder, p = _folder(tmp_path)
    with _served(folder) as base, _chromium(tmp_path) as port:
        document = iiif.manifest(p, base)
        html = page.render(p)
        assert iiif.validate(document) == [] and iiif.check_clean(document, p, base) == []
        assert page.check_clean(html, p) == []
        (folder / MANIFEST_NAME).write_bytes(document)
        (folder / PAGE_NAME).write_bytes(html)
        _files_served(document)

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            target = next(t for t in json.load(resp) if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            tools = _DevTools(ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.send(f"{domain}.enable")
            tools.send("Emulation.setDeviceMetricsOverride", width=1280, height=800, deviceScaleFactor=1, mobile=False)
            tools.send("Page.addScriptToEvaluateOnNewDocument", source=WATCH)
            tools.send("Page.navigate", url=base + PAGE_NAME)
            tools.wait_for("Page.loadEventFired")

            state = tools.poll(
                STATE,
                lambda s: s["ready"] == 4 and s["loaded"] == [2, 2] and s["cues"] == [len(c) for _, _, c in CUES],
                "the video to have enough data and both tracks to load",
            )
            assert state["error"] is None and state["src"] == base + PROXY_NAME
            assert state["frame"] == f"{p.width}x{p.height}"
            assert abs(state["duration"] - p.duration) < 0.1
            assert state["languages"] == ["en", "zh-Hans"]
            assert state["modes"] == ["showing", "hidden"]  # the English track is the default

            # into the second cue, paused: the cue shown is the text written, in both languages
            tools.evaluate("(() => { const v = document.querySelector('video'); v.pause(); v.currentTime = 2.0; })()")
            expected = [cues[1][2] for _, _, cues in CUES]
            state = tools.poll(
                STATE,
                lambda s: not s["seeking"] and s["ready"] >= 2 and s["active"] == [[t] for t in expected],
                "the seek into the second cue",
            )
            # the stylesheet the CSP allows by its hash is applied
            assert tools.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(17, 17, 17)"
            tools.drain()
            assert _problems(tools.events, base) == []
            assert tools.evaluate("window.__violations") == []

            _screenshot(tools)

            # the policy is in force: a script put into the page afterwards does not run
            ran = tools.evaluate(
                "(() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                " document.body.append(s); return window.__ran === 1; })()"
            )
            assert ran is False
            violations = tools.poll("window.__violations", bool, "the CSP to refuse the script")
            assert any(v.startswith("script-src") for v in violations)
