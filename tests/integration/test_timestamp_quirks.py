"""A decode error is a decoder's error (issue 13): a film whose every frame decodes but whose
timestamps go backwards (two MPEG-TS segments joined with ``cat``, as capture boxes and
"concatenate the tapes" scripts make them) is stored, with one warning event counting the
demuxer's/muxer's complaints; a film with damaged pictures is still quarantined. Real ffmpeg,
the session's SeaweedFS on 127.0.0.1, a filesystem replica and a SQLite catalog per test."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from preserve import tools
from preserve.catalog import Catalog
from preserve.characterise import decode
from preserve.config import Settings
from preserve.core.model import EventType, Outcome
from preserve.pipeline import ingest_submission
from tests.mediafactory import corrupt_range, make_clip
from tests.support import isolated_settings


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def env(s3_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Catalog]]:
    settings = isolated_settings(s3_settings, tmp_path)
    catalog = Catalog(settings.catalog_url)
    yield settings, catalog
    catalog.close()


def _joined_segments(tmp_path: Path, dest: Path) -> Path:
    """Two copies of one H.264 + AAC MPEG-TS segment, byte for byte one after the other: every
    frame decodes, but the second segment's timestamps start again from the first one's."""
    segment = make_clip(tmp_path / "segment.ts", duration=1.0)
    dest.write_bytes(segment.read_bytes() * 2)
    return dest


def _damaged_h264(tmp_path: Path, dest: Path) -> Path:
    """An H.264 MP4 (no audio, so the damage is in the pictures) with 3000 bytes scrambled in the
    middle of its frame data."""
    good = make_clip(tmp_path / "good.mp4", duration=2.0, audio=False)
    return corrupt_range(good, dest, at=0.5, length=3000)


def test_timestamp_complaints_of_a_joined_transport_stream_are_not_decoder_errors(tmp_path: Path) -> None:
    joined = _joined_segments(tmp_path, tmp_path / "joined.ts")
    raw = tools.run(decode.decode_argv(joined), timeout=120, check=False)
    found = decode.classify_stderr(raw.stderr)
    assert raw.returncode == 0 and found.decoder_errors == 0, raw.stderr
    assert found.timestamp_warnings >= 1 and any("non monotonically increasing dts" in x for x in found.timestamp_lines)

    seen: list[tuple[float, float, float | None]] = []
    report = decode.decode_check(joined, timeout=120, progress=lambda *a: seen.append(a), duration=2.0)
    assert report.ok and report.error_count == 0 and report.errors == []
    assert report.timestamp_warnings == found.timestamp_warnings  # (the lines differ in ffmpeg's pointers)
    assert len(report.timestamp_lines) == len(found.timestamp_lines)
    assert report.video_frames == 50 and report.duration is not None and report.duration > 1.9  # both segments
    assert seen and seen[-1][0] == report.duration and seen[-1][1] == 2.0  # the progress listener heard the end


def test_scrambled_h264_pictures_are_decoder_errors(tmp_path: Path) -> None:
    damaged = _damaged_h264(tmp_path, tmp_path / "damaged.mp4")
    raw = tools.run(decode.decode_argv(damaged), timeout=120, check=False)
    found = decode.classify_stderr(raw.stderr)
    assert found.decoder_errors >= 1 and found.timestamp_warnings == 0, raw.stderr
    assert any("[h264 @" in x or "Error while decoding stream" in x for x in found.decoder_lines)
    report = decode.decode_check(damaged, timeout=120)
    assert not report.ok and report.error_count == found.decoder_errors and report.timestamp_warnings == 0


def test_a_joined_transport_stream_is_stored_with_a_warning_event(
    env: tuple[Settings, Catalog], tmp_path: Path
) -> None:
    settings, catalog = env
    src = _joined_segments(tmp_path, settings.ingest_dir / "joined tapes.ts")
    before = _sha256(src)
    o = ingest_submission(settings, catalog, src)
    assert o.status == "stored", o.detail
    assert _sha256(settings.ingest_dir / "done" / "joined tapes.ts") == before  # the source, byte for byte
    events = [
        e
        for e in catalog.get_aip(o.aip_id).events
        if e.type is EventType.VALIDATION and e.agent.name == "ffmpeg" and e.subject == "data/objects/joined tapes.ts"
    ]
    decoded = [e for e in events if "error_count" in e.extra]
    warned = [e for e in events if "timestamp_warnings" in e.extra]
    assert len(decoded) == 1 and decoded[0].outcome is Outcome.PASS and decoded[0].extra["error_count"] == 0
    assert len(warned) == 1 and warned[0].outcome is Outcome.WARNING  # one per file, however many complaints
    # the count of the run that gave the verdict (the decode check's own, or one pass that also made
    # the framemd5 and access copies: their muxers' complaints differ), and its lines as examples
    assert warned[0].extra["timestamp_warnings"] >= 1
    head, _, examples = warned[0].detail.partition("(not decoder errors): ")
    assert head.startswith(f"full decode: {warned[0].extra['timestamp_warnings']} timestamp complaint(s)")
    assert "DTS" in examples and decode.is_timestamp_complaint(examples.split("; ")[0]), examples
    assert "corrupt" not in examples  # the demuxer's other warnings are not findings
    assert warned[0].agent.version  # the agent carries ffmpeg's real version


def test_damaged_pictures_are_still_quarantined_as_undecodable(env: tuple[Settings, Catalog], tmp_path: Path) -> None:
    settings, catalog = env
    src = _damaged_h264(tmp_path, settings.ingest_dir / "damaged.mp4")
    before = _sha256(src)
    o = ingest_submission(settings, catalog, src)
    assert o.status == "quarantined" and "does not decode" in o.detail, o.detail
    assert _sha256(settings.ingest_dir / "failed" / "damaged.mp4" / "damaged.mp4") == before
    events = [e for e in o.events if e.type is EventType.VALIDATION and e.agent.name == "ffmpeg"]
    decoded = next(e for e in events if "error_count" in e.extra)
    assert decoded.outcome is Outcome.FAIL and decoded.extra["error_count"] >= 1
    assert not any("timestamp_warnings" in e.extra for e in events)
    assert catalog.list_aips() == []
