"""A decode error is a decoder's error (issue 13): ffmpeg's stderr sorted into decoder errors and
demuxer/muxer timestamp complaints, and the verdict made from it. Pure. The stderr constants are
what ffmpeg 5.1.9 (Debian 12) really printed at ``-v error`` (or ``-v warning`` where said) for files
made with ffmpeg here; the single lines marked "format string" fill in a format string found in
ffmpeg 5.1's binaries, for messages no file made here provoked."""

from __future__ import annotations

from pathlib import Path

import pytest

from preserve.characterise.decode import (
    LOG_LEVEL,
    MAX_STORED_ERRORS,
    classify_stderr,
    decode_argv,
    is_timestamp_complaint,
    report_from,
)
from preserve.core.errors import ToolError

ARGV = decode_argv(Path("/abs/film.ts"))

# two copies of one H.264 + AAC MPEG-TS segment joined with `cat`: every frame decodes
JOINED_TS = (
    "[null @ 0x55cfd4a1d680] Application provided invalid, non monotonically increasing dts to muxer "
    "in stream 1: 89088 >= 88200\n"
)
# an MKV whose H.264 timestamps were set back 3 s from frame 25 on (the setts bitstream filter)
BACKWARDS_MKV = (
    "[null @ 0x560ca40fcbc0] Application provided invalid, non monotonically increasing dts to muxer "
    "in stream 0: 25 >= 25\n"
    "    Last message repeated 24 times\n"
)
# the same joined segments remuxed with `-c copy` at `-v warning`: the demuxer's and ffmpeg's words
JOINED_TS_WARNINGS = [
    "[mpegts @ 0x55cf66780880] DTS 128090 < 304490 out of order",
    "[mpegts @ 0x55cd6f6be8c0] DTS discontinuity in stream 0: packet 49 with DTS 9304490, packet 50 with DTS "
    "8590062682",
    "[matroska @ 0x55cf66904500] Non-monotonous DTS in output stream 0:1; previous: 2020, current: 2000; "
    "changing to 2020. This may result in incorrect timestamps in the output file.",
]
# the joined segments decoded with decode_argv (`-v +level+warning`): the demuxer's warnings, of which
# only the timestamp one is a finding (the "corrupt" ones are the continuity counter at the join,
# never shown at `-v error`), and the null muxer's error
JOINED_TS_TAGGED = """\
[mpegts @ 0x55978c9b0100] [warning] Packet corrupt (stream = 0, dts = 214320).
[mpegts @ 0x55978c9b0100] [warning] DTS 127920 < 214320 out of order
[mpegts @ 0x55978c9b0100] [warning] Packet corrupt (stream = 0, dts = 214320).
[mpegts @ 0x55978c9b0100] [warning] Packet corrupt (stream = 0, dts = 214320).
[warning] file:/tmp/h1/bt/test_a_joined_transport_stream0/ingest/done/joined tapes.ts: corrupt input packet in \
stream 0
[null @ 0x55978ca82ec0] [error] Application provided invalid, non monotonically increasing dts to muxer in stream 1: \
48128 >= 48000
"""
# the same into framemd5 (a real muxer: ffmpeg mends the DTS itself, at warning level)
JOINED_TS_FRAMEMD5_TAGGED = """\
[mpegts @ 0x565210495900] [warning] DTS 128090 < 304490 out of order
[warning] file:/tmp/h1/cat.ts: corrupt input packet in stream 0
[framemd5 @ 0x5652105ee4c0] [warning] Non-monotonous DTS in output stream 0:1; previous: 89088, current: 88200; \
changing to 89088. This may result in incorrect timestamps in the output file.
[swscaler @ 0x556f413be080] [swscaler @ 0x556f413cb340] [warning] deprecated pixel format used, make sure you did \
set range correctly
    Last message repeated 2 times
"""
# the scrambled H.264 below, tagged
SCRAMBLED_H264_TAGGED = """\
[h264 @ 0x55b958acb680] [error] Error splitting the input into NAL units.
[error] Error while decoding stream #0:0: Invalid data found when processing input
    Last message repeated 1 times
"""
# an H.264 MP4 with 2000 bytes overwritten in the middle of its frame data
SCRAMBLED_H264 = """\
[NULL @ 0x55d9305985c0] Invalid NAL unit size (-2013965813 > 649).
[NULL @ 0x55d9305985c0] missing picture in access unit with size 653
[NULL @ 0x55d9305985c0] Invalid NAL unit size (-2036167272 > 615).
[NULL @ 0x55d9305985c0] missing picture in access unit with size 619
[h264 @ 0x55d9305f2b80] Invalid NAL unit size (-2013965813 > 649).
[h264 @ 0x55d9305f2b80] Error splitting the input into NAL units.
[h264 @ 0x55d930607e00] Invalid NAL unit size (-2036167272 > 615).
[h264 @ 0x55d930607e00] Error splitting the input into NAL units.
[h264 @ 0x55d9305b6ac0] corrupted macroblock 11 14 (total_coeff=-1)
[h264 @ 0x55d9305b6ac0] error while decoding MB 11 14
[NULL @ 0x55d9305985c0] Invalid NAL unit size (-2121481268 > 661).
[NULL @ 0x55d9305985c0] missing picture in access unit with size 665
Error while decoding stream #0:0: Invalid data found when processing input
[h264 @ 0x55d9305b6ac0] Invalid NAL unit size (-2121481268 > 661).
[h264 @ 0x55d9305b6ac0] Error splitting the input into NAL units.
Error while decoding stream #0:0: Invalid data found when processing input
    Last message repeated 1 times
"""
# an MPEG-2 program stream with 4000 bytes overwritten in the middle
SCRAMBLED_MPEG2 = """\
[mpeg2video @ 0x55e616bdcb80] skipped MB in I-frame at 8 11
[mpeg2video @ 0x55e616bdcb80] Invalid mb type in I-frame at 0 3
[mpeg2video @ 0x55e616bdcb80] ac-tex damaged at 0 11
[mpeg2video @ 0x55e616bdcb80] Warning MVs not available
"""
# one H.264 TS, then the same with its AAC damaged, joined with `cat`
JOINED_AND_DAMAGED = """\
[null @ 0x555b38744700] Application provided invalid, non monotonically increasing dts to muxer in stream 1: \
89088 >= 88200
[aac @ 0x555b387399c0] Input buffer exhausted before END element found
Error while decoding stream #0:1: Invalid data found when processing input
[aac @ 0x555b387399c0] channel element 2.6 is not allocated
Error while decoding stream #0:1: Invalid data found when processing input
"""
# lines that name a timestamp but are the decoder's (or the demuxer's word that data is lost)
DECODER_LINES_THAT_MENTION_TIMESTAMPS = [
    "[ffv1 @ 0x56388d8cfe40] slice CRC mismatch 579F8AE9!at 1.640000 seconds",  # one bit flipped in FFV1
    "[flac @ 0x55d1] CRC error at PTS 88200",  # format string
    "[mpegts @ 0x560922cea8c0] Packet corrupt (stream = 0, dts = 304490).",  # -v warning, the joined TS
    "file:/tmp/h1/cat.ts: corrupt input packet in stream 0",  # -v warning, the joined TS
    "[h264 @ 0x5563] reference picture missing during reorder",  # format string
    "[h264 @ 0x5563] concealing 1200 DC, 1200 AC, 1200 MV errors in P frame",  # format string
    # a file name quoting a timestamp message never makes a line one
    "file:/ingest/DTS 1 < 2 out of order: Invalid data found when processing input",
    "[h264 @ 0x5563] something new in a later ffmpeg",  # unknown: conservative
]


def test_a_joined_transport_stream_has_only_timestamp_complaints() -> None:
    found = classify_stderr(JOINED_TS)
    assert (found.decoder_errors, found.decoder_lines) == (0, [])
    assert (found.timestamp_warnings, found.timestamp_lines) == (1, [JOINED_TS.strip()])
    report = report_from(ARGV, 0, JOINED_TS, 2.04, 100)
    assert report.ok and report.error_count == 0 and report.errors == []
    assert report.timestamp_warnings == 1 and report.duration == 2.04 and report.video_frames == 100


def test_level_tagged_output_warnings_count_only_when_they_are_timestamp_complaints() -> None:
    found = classify_stderr(JOINED_TS_TAGGED)
    assert (found.decoder_errors, found.decoder_lines, found.timestamp_warnings) == (0, [], 2)
    assert found.timestamp_lines == JOINED_TS_TAGGED.splitlines()[1:2] + JOINED_TS_TAGGED.splitlines()[-1:]
    assert report_from(ARGV, 0, JOINED_TS_TAGGED, 2.04, 50).ok
    mended = classify_stderr(JOINED_TS_FRAMEMD5_TAGGED)  # the repeat of an ignored warning is ignored too
    assert (mended.decoder_errors, mended.timestamp_warnings, len(mended.timestamp_lines)) == (0, 2, 2)
    damaged = classify_stderr(SCRAMBLED_H264_TAGGED)
    assert (damaged.decoder_errors, damaged.timestamp_warnings, len(damaged.decoder_lines)) == (3, 0, 2)
    assert ARGV[ARGV.index("-v") + 1] == LOG_LEVEL == "+level+warning"


def test_a_repeat_counts_to_the_kind_of_the_line_it_repeats() -> None:
    found = classify_stderr(BACKWARDS_MKV)
    assert (found.decoder_errors, found.timestamp_warnings, len(found.timestamp_lines)) == (0, 25, 1)
    damaged = classify_stderr(SCRAMBLED_H264)
    assert (damaged.decoder_errors, damaged.timestamp_warnings) == (16 + 1, 0)  # the repeat is a decoder's
    assert damaged.decoder_lines[-1] == "Error while decoding stream #0:0: Invalid data found when processing input"
    # a repeat with nothing before it is an error (conservative), and never a kept line
    alone = classify_stderr("    Last message repeated 3 times\n")
    assert (alone.decoder_errors, alone.decoder_lines, alone.timestamp_warnings) == (3, [], 0)


def test_the_warning_level_words_of_demuxers_and_ffmpeg_are_timestamp_complaints() -> None:
    for line in JOINED_TS_WARNINGS:
        assert is_timestamp_complaint(line), line
    found = classify_stderr("\n".join(JOINED_TS_WARNINGS))
    assert (found.decoder_errors, found.timestamp_warnings) == (0, 3)


@pytest.mark.parametrize(
    "message",
    [  # format strings, filled in
        "Invalid DTS: 1234 PTS: 1200 in output stream 0:0, replacing by guess",
        "[mov @ 0x1] pts has no value",
        "[matroska @ 0x1] Timestamps are unset in a packet for stream 0. This is deprecated and will stop working "
        "in the future. Fix your code to set the timestamps properly",
        "[mp4 @ 0x1] Packet with invalid duration -3 in stream 1",
        "Past duration 0.999992 too large",
        "[mpegts @ 0x1] Invalid timestamps stream=0, pts=NOPTS, dts=900, size=1200",
        "[mp4 @ 0x1] pts (0) < dts (1024) in stream 0",
        "DTS 90000, next:3600 st:0 invalid dropping",
        "PTS 90000, next:3600 invalid dropping st:1",
        "timestamp discontinuity for stream #0:1 (id=257, type=audio): -95443717689, new offset= 95443717689",
        "[mp4 @ 0x1] Packets poorly interleaved, failed to avoid negative timestamp -1024 in stream 1.",
        "[graph 0 input from stream 0:0 @ 0x7f] Discarding initial frame(s) with no timestamp.",
        "[libx264 @ 0x1] Invalid pts (25) <= last (25)",
    ],
)
def test_ffmpeg_51s_timestamp_format_strings_are_recognised(message: str) -> None:
    assert is_timestamp_complaint(message)


@pytest.mark.parametrize("stderr", [SCRAMBLED_H264, SCRAMBLED_MPEG2, *DECODER_LINES_THAT_MENTION_TIMESTAMPS])
def test_damage_is_a_decoder_error(stderr: str) -> None:
    found = classify_stderr(stderr)
    assert found.decoder_errors >= 1 and found.timestamp_warnings == 0, stderr
    report = report_from(ARGV, 0, stderr, 2.0, 50)
    assert not report.ok and report.error_count == found.decoder_errors and report.errors == found.decoder_lines


def test_both_kinds_in_one_file_fail_on_the_decoder_errors_and_keep_the_complaints() -> None:
    report = report_from(ARGV, 0, JOINED_AND_DAMAGED, 4.0, 100)
    assert not report.ok and (report.error_count, report.timestamp_warnings) == (4, 1)
    assert report.errors[0].startswith("[aac @") and "non monotonically" in report.timestamp_lines[0]


def test_the_exit_status_still_decides_and_a_signal_is_not_a_verdict() -> None:
    only_timestamps = report_from(ARGV, 1, JOINED_TS, None, None)
    assert not only_timestamps.ok and only_timestamps.errors == ["ffmpeg exited with status 1"]
    assert only_timestamps.timestamp_warnings == 1 and only_timestamps.returncode == 1
    with pytest.raises(ToolError, match="signal 9"):
        report_from(ARGV, -9, JOINED_TS, 1.0, 25)
    clean = report_from(ARGV, 0, "", None, None)
    assert clean.ok and (clean.error_count, clean.timestamp_warnings, clean.duration) == (0, 0, None)


def test_counts_are_exact_and_kept_lines_capped_per_kind() -> None:
    stderr = (
        (JOINED_TS * 70) + ("[h264 @ 0x1] error while decoding MB 1 2\n" * 60) + "    Last message repeated 5 times\n"
    )
    found = classify_stderr(stderr)
    assert (found.timestamp_warnings, found.decoder_errors) == (70, 65)
    assert len(found.timestamp_lines) == len(found.decoder_lines) == MAX_STORED_ERRORS
