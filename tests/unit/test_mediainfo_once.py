"""MediaInfo parses each file once for both its reports: `mediainfo.extract` gives, byte for byte,
the JSON and XML that two `pymediainfo.MediaInfo.parse` calls (what it did before issue 13) give,
on real files ffmpeg makes; and it reads the file once (counted in /proc/self/io `rchar`, the bytes
this process read, not a timing)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from pymediainfo import MediaInfo

from preserve.core.errors import ToolError
from preserve.tools import mediainfo
from tests.mediafactory import ffmpeg, make_clip, make_still


def _two_parses(path: Path) -> tuple[str, str]:
    """The reports as `extract` made them before: one full parse of the file for each output."""
    text = MediaInfo.parse(path, output="JSON", full=True, encoding_errors="replace")
    xml = MediaInfo.parse(path, output="XML", full=True, encoding_errors="replace")
    return text, xml


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mediainfo")
    film = d / "流浪北京 1990"
    film.mkdir()
    audio = d / "tone.flac"
    ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=1", "-c:a", "flac", str(audio)])
    text = d / "notes.srt"
    text.write_text("1\n00:00:00,000 --> 00:00:00,900\n北京\n", encoding="utf-8")
    unknown = d / "unknown.bin"
    unknown.write_bytes(os.urandom(2 * 1024 * 1024))
    return {
        "video": make_clip(d / "clip.mp4", size="160x120", metadata={"title": "标题 Secret"}),
        "mov": make_clip(d / "clip.mov", vcodec="prores_aw", size="64x48", acodec="pcm_s16le"),
        "audio": audio,
        "image": make_still(d / "still.png"),
        "text": text,
        "cjk": make_clip(film / "流浪北京 1990.mkv", vcodec="ffv1", size="64x48", acodec="flac"),
        "unknown": unknown,
        "empty": (d / "empty.dat", (d / "empty.dat").write_bytes(b""))[0],
    }


@pytest.mark.parametrize("kind", ["video", "mov", "audio", "image", "text", "cjk", "unknown", "empty"])
def test_one_parse_gives_both_reports_byte_for_byte(files: dict[str, Path], kind: str) -> None:
    path = files[kind]
    report = mediainfo.extract(path)
    text, xml = _two_parses(path)
    assert report.xml == xml
    assert report.data == json.loads(text)
    # the JSON text itself, not only its value: what the bag stores is json.dumps(report.data)
    assert mediainfo._inform_both(path) == (text, xml)
    assert report.xml.lstrip().startswith("<?xml")
    assert report.general.get("CompleteName") == str(path)


def test_the_cjk_name_and_the_tags_come_through(files: dict[str, Path]) -> None:
    report = mediainfo.extract(files["cjk"])
    assert report.general["FileName"] == "流浪北京 1990" and "<FileName>流浪北京 1990</FileName>" in report.xml
    assert mediainfo.extract(files["video"]).general["Title"] == "标题 Secret"


def _rchar() -> int:
    with open("/proc/self/io", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _bytes_read(fn: object, path: Path) -> int:
    assert callable(fn)
    before = _rchar()
    fn(path)
    return _rchar() - before


def test_the_file_is_read_once(files: dict[str, Path]) -> None:
    """On a file of no known format libmediainfo reads it dozens of times over trying its parsers
    (a 2 MiB random file: about 80 MB per parse); the two reports must cost one parse's reading,
    not two. ``rchar`` counts every read of this process, other threads' too: the margin (5 % of
    a parse, about 4 MB) is far above what a background thread reads meanwhile, far below a
    second parse."""
    path = files["unknown"]
    one_parse = _bytes_read(lambda p: MediaInfo.parse(p, output="JSON", full=True), path)
    two_parses = _bytes_read(_two_parses, path)
    extract = _bytes_read(mediainfo.extract, path)
    assert one_parse >= path.stat().st_size  # the counter sees libmediainfo's reads at all
    assert two_parses >= 2 * one_parse * 0.95
    assert extract <= one_parse * 1.05 + 4096, (extract, one_parse, two_parses)


def test_errors_are_tool_errors(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="could not read"):
        mediainfo.extract(tmp_path / "does-not-exist.mp4")
    with pytest.raises(ToolError):
        mediainfo.extract(tmp_path)  # a folder: libmediainfo opens nothing


def test_threads_get_their_own_reports(files: dict[str, Path]) -> None:
    """Inform (JSON, then XML) lives in libmediainfo's process-wide config: extracts running in
    parallel threads (uploads overlap the transcode) must each get their own file's JSON and XML."""
    paths = [files[k] for k in ("video", "audio", "image", "text", "cjk", "mov")] * 3
    expected = {p: _two_parses(p) for p in set(paths)}
    got: dict[int, tuple[Path, mediainfo.MediaInfoReport]] = {}
    errors: list[BaseException] = []

    def work(i: int, p: Path) -> None:
        try:
            got[i] = (p, mediainfo.extract(p))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, p)) for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == len(paths)
    for p, report in got.values():
        assert report.xml == expected[p][1]
        assert report.general["CompleteName"] == str(p)
