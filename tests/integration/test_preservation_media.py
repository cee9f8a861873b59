"""Issue 6 tools on real files (ffmpeg, fido, MediaConch, MediaInfo; ClamAV when installed): format
identification, the decode check against MediaConch on a flipped FFV1 slice bit, FFV1
normalization proven lossless on every stream (and a lossy variant caught), framemd5 sidecars,
the privacy of proxy, poster and contact sheet, and the virus check's honest outcomes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from preserve.access import contactsheet, proxy, scrub
from preserve.characterise import decode, identify
from preserve.characterise import normalise as normalization
from preserve.config import NormalizationSettings, ProxySettings
from preserve.core.model import Outcome
from preserve.fixity import framemd5
from preserve.tools import clamav as virus
from preserve.tools import ffprobe, mediaconch, mediainfo
from tests.mediafactory import ffmpeg, make_clip

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("mediaconch") is None, reason="ffmpeg or mediaconch not installed"
)

LOCATION = "+39.9042+116.4074/"
SECRET = "Secret Title 秘密"


def make_v210_two_tracks(path: Path, *, duration: float = 1.0) -> Path:
    """A v210 MOV with two audio tracks: 24-bit PCM whose low bits are used (not a padded 16-bit
    signal), and 16-bit stereo."""
    ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x240:rate=25:duration={duration}",
            "-f",
            "lavfi",
            "-i",
            f"aevalsrc=0.6*sin(2*PI*440*t)+0.0001*random(0):s=48000:d={duration}",
            "-f",
            "lavfi",
            "-i",
            f"aevalsrc=0.5*sin(2*PI*880*t)|0.3*sin(2*PI*660*t):s=48000:d={duration}",
            "-map",
            "0",
            "-map",
            "1",
            "-map",
            "2",
            "-c:v",
            "v210",
            "-c:a:0",
            "pcm_s24le",
            "-c:a:1",
            "pcm_s16le",
            "file:" + str(path),
        ]
    )
    return path


def flip_bit_in_video_packet(path: Path) -> int:
    """Flip one bit in the middle of a middle video packet (an FFV1 slice); returns the offset."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_packets",
            "-show_entries",
            "packet=pos,size",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    packets = [p for p in json.loads(out.stdout)["packets"] if p.get("pos") not in (None, "N/A")]
    packet = packets[len(packets) // 2]
    offset = int(packet["pos"]) + int(packet["size"]) // 2
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0x10]))
    return offset


@pytest.fixture(scope="module")
def v210(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_v210_two_tracks(tmp_path_factory.mktemp("v210") / "scan.mov")


# -- format identification -----------------------------------------------------------------------
def test_format_ids_for_mkv_mp4_and_mov(tmp_path: Path) -> None:
    big = "640x480"  # big enough that a non-faststart moov lies beyond fido's 128 KB buffer
    clips = {
        "mkv": make_clip(tmp_path / "film.mkv", vcodec="ffv1", acodec="flac"),
        "mp4": make_clip(tmp_path / "fast.mp4", size=big, duration=2.0, movflags="+faststart"),
        "mp4-slow": make_clip(tmp_path / "slow.mp4", size=big, duration=2.0),
        "mov": make_clip(tmp_path / "film.mov", vcodec="prores_aw"),
    }
    expected = {"mkv": "fmt/569", "mp4": "fmt/199", "mp4-slow": "fmt/199", "mov": "x-fmt/384"}
    for key, path in clips.items():
        ident = identify.identify(path, mediainfo.extract(path), ffprobe.probe(path))
        assert ident.puid == expected[key], (key, ident.describe())
        assert ident.format_name, key
    slow = identify.identify(clips["mp4-slow"], mediainfo.extract(clips["mp4-slow"]), ffprobe.probe(clips["mp4-slow"]))
    # fido itself guesses Apple Lossless from the extension: the cross-check catches and records it
    assert slow.fido[0].puid == "fmt/596" and slow.fido[0].match_type == "extension"
    assert not slow.consistent and "fmt/596" in slow.disagreement
    assert identify.agent().version.startswith("1.6.1")


# -- validation ----------------------------------------------------------------------------------
def test_flipped_bit_in_an_ffv1_slice_is_caught_by_the_decode_check_not_by_mediaconch(tmp_path: Path) -> None:
    master = make_clip(tmp_path / "master.mkv", vcodec="ffv1", acodec="flac", duration=1.0)
    assert decode.decode_check(master, timeout=120).ok
    flip_bit_in_video_packet(master)
    conch = mediaconch.check_implementation(master, timeout=120)
    assert conch.ok and conch.checks_run > 0  # MediaConch passes the damaged file...
    report = decode.decode_check(master, timeout=120)
    assert not report.ok and report.error_count >= 1  # ...the full decode does not
    assert any("CRC" in line or "slice" in line.lower() for line in report.errors), report.errors


def test_mediaconch_implementation_checks_can_fail(tmp_path: Path) -> None:
    master = make_clip(tmp_path / "m.mkv", vcodec="ffv1", acodec="flac", duration=1.0)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(master.read_bytes()[: master.stat().st_size // 2])
    report = mediaconch.check_implementation(cut, timeout=120)
    assert not report.ok and any("TRUNCATED" in f for f in report.failures)


# -- normalization -------------------------------------------------------------------------------
def test_ffv1_normalization_of_v210_with_two_audio_tracks_is_lossless_on_every_stream(
    tmp_path: Path, v210: Path
) -> None:
    probe = ffprobe.probe(v210)
    assert normalization.decide(probe, mediainfo.extract(v210), NormalizationSettings()).normalise
    sidecar = framemd5.write(v210, tmp_path / "scan.mov.framemd5", probe, timeout=120)
    assert sorted(sidecar.manifest.streams.values()) == ["audio", "audio", "video"]
    assert "#codec_id 1: pcm_s32le" in sidecar.path.read_text()  # 24-bit hashed at full precision
    master = normalization.make_master(v210, tmp_path / "scan.mkv", probe, NormalizationSettings(), timeout=120)
    mprobe = ffprobe.probe(master)
    assert [s["codec_name"] for s in mprobe.raw["streams"]] == ["ffv1", "flac", "flac"]
    assert mprobe.audio_streams[0].get("bits_per_raw_sample") == "24"
    proof = normalization.prove_lossless(sidecar.manifest, probe, master, mprobe, timeout=120)
    assert proof.lossless, proof.detail
    assert [s.kind for s in proof.comparison.streams] == ["video", "audio", "audio"]
    policy = mediaconch.check_policy(master, timeout=120)
    assert policy.ok, policy.failures

    # a deliberately lossy variant: the 24-bit track squeezed to 16 bits; the video is untouched
    lossy = tmp_path / "lossy.mkv"
    ffmpeg(
        [
            "-i",
            str(v210),
            "-map",
            "0",
            "-c:v",
            "ffv1",
            "-level",
            "3",
            "-g",
            "1",
            "-slicecrc",
            "1",
            "-c:a",
            "flac",
            "-sample_fmt:a:0",
            "s16",
            str(lossy),
        ]
    )
    bad = normalization.prove_lossless(sidecar.manifest, probe, lossy, ffprobe.probe(lossy), timeout=120)
    assert not bad.lossless and "NOT lossless" in bad.detail
    by_kind = {(s.stream, s.kind): s.identical for s in bad.comparison.streams}
    assert by_kind == {(0, "video"): True, (1, "audio"): False, (2, "audio"): True}
    # and a master that dropped the second audio track is not lossless either
    short = tmp_path / "short.mkv"
    ffmpeg(["-i", str(v210), "-map", "0:0", "-map", "0:1", "-c:v", "ffv1", "-level", "3", "-c:a", "flac", str(short)])
    assert not normalization.prove_lossless(sidecar.manifest, probe, short, ffprobe.probe(short), timeout=120).lossless


def test_shipped_policy_rejects_what_is_not_our_master(v210: Path) -> None:
    report = mediaconch.check_policy(v210, timeout=120)
    assert not report.ok and any("FFV1" in f for f in report.failures)


# -- privacy of every access copy ---------------------------------------------------------------
def test_nothing_identifying_survives_in_proxy_poster_or_contact_sheet(tmp_path: Path) -> None:
    tags = {"title": SECRET, "location": LOCATION, "make": "CanonSecretMake", "model": "EOS Secret Model"}
    clips = {
        # MP4: location becomes a binary loci atom; title, make, model; two chapters
        "mp4": make_clip(
            tmp_path / "loci.mp4",
            metadata=tags,
            duration=2.0,
            chapters=[(0.0, 1.0, "Chapter Secret"), (1.0, 2.0, "End")],
        ),
        # QuickTime: ISO6709 location and Apple make/model as mdta keys, plus ©xyz, and a chapter
        "mov": make_clip(
            tmp_path / "iso6709.mov",
            vcodec="prores_aw",
            movflags="+use_metadata_tags",
            duration=2.0,
            metadata={
                "com.apple.quicktime.location.ISO6709": LOCATION,
                "com.apple.quicktime.make": "CanonSecretMake",
                "com.apple.quicktime.model": "EOS Secret Model",
                "title": SECRET,
            },
            chapters=[(0.0, 2.0, "Chapter Secret")],
        ),
        "xyz": make_clip(tmp_path / "xyz.mov", vcodec="prores_aw", metadata=tags, duration=2.0),
    }
    forbidden = [SECRET, LOCATION, "CanonSecretMake", "EOS Secret Model", "Chapter Secret"]
    settings = ProxySettings(preset="ultrafast")
    for name, src in clips.items():
        probe = ffprobe.probe(src)
        assert not scrub.check_clean(src, forbidden_values=forbidden).ok, name  # the source does carry it
        made = [
            proxy.make_proxy(src, tmp_path / f"{name}.proxy.mp4", probe, settings, timeout=120),
            proxy.make_poster(src, tmp_path / f"{name}.poster.jpg", probe, settings, timeout=60),
            contactsheet.make_contact_sheet(
                src, tmp_path / f"{name}.sheet.jpg", probe, frames=6, columns=3, tile_width=96, timeout=120
            ),
        ]
        for copy in made:
            leak = scrub.check_clean(copy, forbidden_values=forbidden)
            assert leak.ok, (name, copy.name, leak.findings)
            raw = copy.read_bytes()
            for needle in (
                b"loci",
                b"\xa9xyz",
                b"ISO6709",
                b"+39.9042",
                b"CanonSecretMake",
                b"Chapter Secret",
                SECRET.encode(),
            ):
                assert needle not in raw, (name, copy.name, needle)
    sheet = ffprobe.probe(tmp_path / "mp4.sheet.jpg")
    assert sheet.kind == "image" and sheet.width == 3 * 96 + 4 * 4  # 3 tiles and their margins


# -- virus check ---------------------------------------------------------------------------------
def test_virus_check_outcomes_are_real(tmp_path: Path) -> None:
    clean = tmp_path / "notes.txt"
    clean.write_text("nothing to see\n")
    empty_db = tmp_path / "no-db"
    empty_db.mkdir()
    results = virus.scan([clean], database=empty_db)
    assert results[0].outcome is Outcome.NOT_PERFORMED
    assert ("no signature database" in results[0].detail) or ("not installed" in results[0].detail)
    if shutil.which("clamscan") is None:
        pytest.skip("clamscan not installed: only the 'not performed' outcome can be shown here")
    infected = tmp_path / "infected.txt"
    infected.write_text("xx PRESERVE-TEST-SIGNATURE xx\n")
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (2 * 1024 * 1024 + 1))
    db = tmp_path / "test.ndb"
    db.write_text("PreserveTestSignature:0:*:" + b"PRESERVE-TEST-SIGNATURE".hex() + "\n")
    ok, bad, large = virus.scan([clean, infected, big], database=db, max_bytes=2 * 1024 * 1024)
    assert ok.outcome is Outcome.PASS
    assert bad.outcome is Outcome.FAIL and "PreserveTestSignature" in bad.detail
    assert large.outcome is Outcome.NOT_PERFORMED and "scan limit" in large.detail
