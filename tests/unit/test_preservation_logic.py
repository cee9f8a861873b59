"""Pure logic of issue 6: PREMIS documents and their XSD validation, argv builders (framemd5,
FFV1 master, MediaConch, clamscan), the normalization decision, format cross-checks, report
parsers, access levels and embargo dates. No external programs run here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from preserve.access import policy
from preserve.access.policy import effective_access
from preserve.characterise import identify
from preserve.characterise import normalise as normalization
from preserve.config import DEFAULT_CONFIG, NormalizationSettings, load
from preserve.core.errors import ConfigError, ToolError
from preserve.core.model import Agent, Event, EventType, Outcome
from preserve.fixity import framemd5
from preserve.operations import embargo
from preserve.packaging import premis
from preserve.tools import clamav as virus
from preserve.tools import ffprobe, mediaconch
from preserve.tools.mediainfo import MediaInfoReport


def _probe(*streams: dict, fmt: str = "mov,mp4,m4a,3gp,3g2,mj2") -> ffprobe.ProbeReport:
    return ffprobe.parse(
        {
            "format": {"format_name": fmt, "duration": "2.0"},
            "streams": [dict(s, index=i) for i, s in enumerate(streams)],
        }
    )


V210 = {"codec_type": "video", "codec_name": "v210", "pix_fmt": "yuv422p10le", "width": 320, "height": 240}
S24 = {"codec_type": "audio", "codec_name": "pcm_s24le", "sample_fmt": "s32", "bits_per_raw_sample": "24"}
S16 = {"codec_type": "audio", "codec_name": "pcm_s16le", "sample_fmt": "s16"}
FLT = {"codec_type": "audio", "codec_name": "pcm_f32le", "sample_fmt": "flt"}


# -- PREMIS ---------------------------------------------------------------------------------------
def _doc(events: list[Event]) -> bytes:
    files = [
        premis.PremisFile("data/objects/film.mov", 10, "a" * 64, "b" * 128, "Quicktime", "x-fmt/384"),
        premis.PremisFile(
            "data/objects/film.mov.ffv1.mkv",
            5,
            "c" * 64,
            "d" * 128,
            "Matroska",
            "fmt/569",
            derived_from="data/objects/film.mov",
        ),
    ]
    return premis.document("7d7f7d7f-0000-4000-8000-000000000001", files, events)


def test_premis_document_validates_and_links_agents_objects_and_the_master() -> None:
    events = [
        Event(
            EventType.NORMALIZATION,
            Outcome.PASS,
            Agent("ffmpeg", "5.1.9"),
            "lossless on every stream",
            subject="data/objects/film.mov",
            extra={"master": "data/objects/film.mov.ffv1.mkv"},
        ),
        Event(
            EventType.VIRUS_CHECK,
            Outcome.NOT_PERFORMED,
            Agent("ClamAV clamscan", "1.4.6"),
            "no database",
            subject="data/objects/film.mov",
        ),
        Event(EventType.ACCESS_DECISION, Outcome.PASS, Agent("preserve", "0.1.0"), "dark\x01 control char"),
        Event(EventType.VALIDATION, Outcome.WARNING, Agent("archivist", "", "person"), "accepted as it is"),
    ]
    xml = _doc(events)
    assert premis.validate(xml) == []
    text = xml.decode()
    assert "<formatRegistryKey>fmt/569</formatRegistryKey>" in text and "<relationshipSubType>has source<" in text
    assert text.count("<event>") == 4 and text.count("<agent>") == 4
    assert "<agentVersion>1.4.6</agentVersion>" in text and "<eventOutcome>not performed</eventOutcome>" in text
    assert 'authority="eventType"' in text  # LoC vocabulary terms carry their authority
    assert "<linkingObjectRole>outcome</linkingObjectRole>" in text  # the master, from the normalization
    assert "\x01" not in text
    # the same events give the same identifiers in every export
    assert premis.event_id("x", events[0]) == premis.event_id("x", events[0])


def test_premis_validation_can_fail() -> None:
    xml = _doc([])
    assert premis.validate(xml.replace(b"<size>10</size>", b"<sizes>10</sizes>"))
    assert premis.validate(b"<premis") and premis.validate(xml.replace(b'version="3.0"', b'version="9"'))


def test_premis_schema_is_shipped_and_loads_offline() -> None:
    assert (premis.SCHEMA_DIR / "premis.xsd").exists() and (premis.SCHEMA_DIR / "xlink.xsd").exists()
    assert premis.schema() is not None


# -- framemd5 and the lossless proof --------------------------------------------------------------
def test_framemd5_hashes_audio_at_full_precision_in_fixed_blocks(tmp_path: Path) -> None:
    argv = framemd5.framemd5_argv(tmp_path / "-a.mov", "-", _probe(V210, S24, S16, FLT))
    joined = " ".join(argv)
    assert "-c:a:0 pcm_s32le" in joined and "-c:a:1 pcm_s16le" in joined and "-c:a:2 pcm_f32le" in joined
    assert f"asetnsamples=n={framemd5.AUDIO_BLOCK_SAMPLES}:p=0" in joined
    assert argv.count("-map") == 4 and "file:" + str(tmp_path / "-a.mov") in argv
    forced = framemd5.framemd5_argv(
        tmp_path / "m.mkv", "-", _probe(V210, S24), pix_fmt="uyvy422", sample_fmts={0: "s32"}
    )
    assert "-pix_fmt" in forced and "-sample_fmt:a:0" in forced


def test_framemd5_parse_and_compare() -> None:
    head = "#media_type 0: video\n#media_type 1: audio\n#stream#, dts, pts, duration, size, hash\n"
    a = framemd5.parse(head + "0, 0, 0, 1, 100, aa\n1, 0, 0, 4800, 9600, bb\n1, 4800, 4800, 4800, 9600, cc\n")
    b = framemd5.parse(head + "0, 0, 0, 512, 100, aa\n1, 0, 0, 4800, 9600, bb\n1, 4800, 4800, 4800, 9600, XX\n")
    assert framemd5.compare(a, a).identical
    result = framemd5.compare(a, b)  # timestamps differ (ignored), audio block 1 differs (caught)
    assert not result.identical and "stream 1 (audio)" in result.summary() and "block 1" in result.summary()
    shorter = framemd5.parse(head + "0, 0, 0, 1, 100, aa\n1, 0, 0, 4800, 9600, bb\n")
    assert not framemd5.compare(a, shorter).identical


def test_master_argv_is_ffv1_level3_with_every_audio_track_at_its_depth(tmp_path: Path) -> None:
    argv = normalization.master_argv(
        tmp_path / "in.mov", tmp_path / "out.mkv", _probe(V210, S24, S16, FLT), NormalizationSettings()
    )
    joined = " ".join(argv)
    for part in ("-c:v ffv1", "-level 3", "-g 1", "-slicecrc 1", "-slices 16", "-f matroska"):
        assert part in joined
    assert argv.count("-map") == 4
    assert "-c:a:0 flac" in joined and "-c:a:1 flac" in joined and "-c:a:2 copy" in joined  # float PCM is copied
    assert "-sample_fmt" not in joined and "-pix_fmt" not in joined  # nothing forced, no 16-bit audio


def _mediainfo_ffv1(version: str) -> MediaInfoReport:
    return MediaInfoReport(
        {
            "media": {
                "track": [
                    {"@type": "General", "Format": "Matroska"},
                    {"@type": "Video", "Format": "FFV1", "Format_Version": version},
                ]
            }
        },
        "",
    )


def test_normalization_decision() -> None:
    policy = NormalizationSettings()
    assert normalization.decide(_probe(V210, S24), None, policy).normalise
    assert normalization.decide(_probe({**V210, "codec_name": "rawvideo"}), None, policy).normalise
    for lossy in ("h264", "hevc", "prores"):
        d = normalization.decide(_probe({**V210, "codec_name": lossy}), None, policy)
        assert not d.normalise and "lossy" in d.reason
    ffv1 = _probe({**V210, "codec_name": "ffv1"}, fmt="matroska,webm")
    assert normalization.decide(ffv1, _mediainfo_ffv1("1"), policy).normalise
    assert not normalization.decide(ffv1, _mediainfo_ffv1("3.4"), policy).normalise
    assert not normalization.decide(_probe(V210), None, NormalizationSettings(policy="never")).normalise
    assert not normalization.decide(_probe(S24), None, policy).normalise  # audio only


# -- format identification -------------------------------------------------------------------------
def _mi(fmt: str, profile: str = "", codec_id: str = "") -> MediaInfoReport:
    return MediaInfoReport(
        {"media": {"track": [{"@type": "General", "Format": fmt, "Format_Profile": profile, "CodecID": codec_id}]}}, ""
    )


def test_fido_extension_guess_that_contradicts_the_container_is_a_recorded_disagreement() -> None:
    guess = [identify.FidoMatch("fmt/596", "Apple Lossless Audio Codec", "", "extension")]
    ident = identify.cross_check(guess, _mi("MPEG-4", "Base Media", "isom"), _probe(V210))
    assert ident.puid == "fmt/199" and not ident.consistent and "fmt/596" in ident.disagreement
    assert ident.basis.startswith("container")
    sure = [identify.FidoMatch("fmt/569", "Matroska", "", "signature")]
    ok = identify.cross_check(sure, _mi("Matroska"), _probe(V210, fmt="matroska,webm"))
    assert ok.puid == "fmt/569" and ok.consistent
    qt = identify.cross_check(
        [identify.FidoMatch("x-fmt/384", "Quicktime", "", "signature")], _mi("MPEG-4", "QuickTime", "qt"), _probe(V210)
    )
    assert qt.puid == "x-fmt/384" and qt.consistent
    clash = identify.cross_check(sure, _mi("MPEG-4", "QuickTime", "qt"), _probe(V210))
    assert not clash.consistent and clash.puid == "fmt/569"  # a signature match is kept, with the warning


# -- MediaConch and clamscan reports ---------------------------------------------------------------
def test_mediaconch_reports_without_a_verdict_are_errors_never_passes() -> None:
    with pytest.raises(ToolError):
        mediaconch.parse(b"", "policy")
    empty = b'<MediaConch xmlns="https://mediaarea.net/mediaconch" version="0.3"><media ref="x"/></MediaConch>'
    with pytest.raises(ToolError):
        mediaconch.parse(empty, "policy")
    with pytest.raises(ToolError):
        mediaconch.parse(empty, "implementation")
    argv = mediaconch.policy_argv(Path("-x.mkv"))
    assert "--force" in argv and argv[-1].startswith("/") and str(mediaconch.MASTER_POLICY) in argv
    assert b"<!--" not in mediaconch.MASTER_POLICY.read_bytes()  # MediaConch 23.03 ignores such a policy


def test_clamscan_argv_and_parse(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mov", tmp_path / "-b.txt"
    argv = virus.scan_argv([a, b], tmp_path / "db", 100 * 1024 * 1024)
    assert "--max-filesize=100M" in argv and "--alert-exceeds-max=yes" in argv and argv[-1] == str(b)
    out = f"{a}: OK\n{b}: Eicar-Signature FOUND\n"
    assert virus.parse(out, [a, b]) == {a: ("OK", ""), b: ("FOUND", "Eicar-Signature")}


def test_virus_check_is_never_a_silent_skip(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    missing = virus.scan([f], clamscan="no-such-clamscan")
    assert missing[0].outcome is Outcome.NOT_PERFORMED and "not installed" in missing[0].detail


# -- access levels and embargo dates ---------------------------------------------------------------
def test_access_locations_never_lie_under_the_public_prefix(tmp_path: Path) -> None:
    s = load(DEFAULT_CONFIG, env={})
    assert policy.access_location(s, "open") == s.access_target
    restricted, held = policy.access_location(s, "restricted"), policy.access_location(s, "embargoed")
    assert (restricted.prefix, held.prefix) == ("restricted", "embargoed")
    assert restricted.bucket == s.access_target.bucket and policy.access_location(s, "dark") is None
    assert policy.target(s, "access-embargoed") == held
    assert restricted.env_names() == s.access_target.env_names()  # same bucket, same credentials
    with pytest.raises(ConfigError):
        load(DEFAULT_CONFIG, env={}, overrides={"access": {"restricted_prefix": "open/private"}})


def test_an_access_location_may_not_be_a_replica_target() -> None:
    """A retry sweeps <aip-id>/ at every access location: on a replica's own bucket+prefix (or
    path) that would delete the replica just uploaded, so such a configuration is refused."""
    s = load(DEFAULT_CONFIG, env={})
    seaweed = s.target("seaweed")
    same = {"name": "access", "kind": "s3", "embedded": True, "bucket": seaweed.bucket, "prefix": seaweed.prefix + "/"}
    with pytest.raises(ConfigError, match="same place as replica target 'seaweed'"):
        load(DEFAULT_CONFIG, env={}, overrides={"access_target": same})
    with pytest.raises(ConfigError, match="replica target 'seaweed'"):  # the embargo prefix, same bucket
        load(
            DEFAULT_CONFIG,
            env={},
            overrides={"access_target": {**same, "prefix": "open"}, "access": {"embargo_prefix": seaweed.prefix}},
        )
    local = {"name": "access", "kind": "filesystem", "path": str(s.target("local").path)}
    with pytest.raises(ConfigError, match="replica target 'local'"):
        load(DEFAULT_CONFIG, env={}, overrides={"access_target": local})
    load(DEFAULT_CONFIG, env={}, overrides={"access_target": {**same, "prefix": "open"}})  # its own prefix: fine


def test_effective_access_and_embargo_dates() -> None:
    day = dt.date(2030, 1, 1)
    assert effective_access("embargoed", day, dt.date(2029, 12, 31))[0] == "embargoed"
    assert effective_access("embargoed", day, day)[0] == "open"
    assert effective_access("restricted", None, day)[0] == "restricted"
    decision = Event(
        EventType.ACCESS_DECISION, Outcome.PASS, Agent("preserve"), "held", extra={"embargo_until": "2030-01-01"}
    )
    assert embargo.embargo_until([decision]) == day
    assert embargo.embargo_until([]) is None
