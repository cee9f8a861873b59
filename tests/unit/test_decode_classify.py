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
    StderrClassifier,
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
# an MPEG-TS whose audio PID lost all its packets (its PMT still lists the stream), tagged: the
# demuxer's two-line warning (ffmpeg tags only its first line), then the filters' and ffmpeg's errors
NO_AUDIO_PACKETS_TAGGED = """\
[mpegts @ 0x55cedd27f900] [warning] start time for stream 1 is not set in estimate_timings_from_pts
[mpegts @ 0x55cedd27f900] [warning] stream 1 : no TS found at start of file, duration not set
[mpegts @ 0x55cedd27f900] [warning] Could not find codec parameters for stream 1 (Audio: mp3 (mp3float) \
([3][0][0][0] / 0x0003), 0 channels, fltp): unspecified frame size
Consider increasing the value for the 'analyzeduration' (0) and 'probesize' (5000000) options
[abuffer @ 0x55cedd63b0c0] [error] Value inf for parameter 'time_base' out of range [0 - 2.14748e+09]
    Last message repeated 1 times
[abuffer @ 0x55cedd63b0c0] [error] Error setting option time_base to value 1/0.
[graph_1_in_0_1 @ 0x55cedd629e80] [error] Error applying options to the filter.
[error] Error reinitializing filters!
[error] Error while filtering: Numerical result out of range
[warning] Finishing stream 0:1 without any data written to it.
[abuffer @ 0x55cedd625c00] [error] Value inf for parameter 'time_base' out of range [0 - 2.14748e+09]
    Last message repeated 1 times
[abuffer @ 0x55cedd625c00] [error] Error setting option time_base to value 1/0.
[graph_1_in_0_1 @ 0x55cedd638b40] [error] Error applying options to the filter.
[error] Error configuring filter graph
"""
# the muxers' two-line timestamp warnings as ffmpeg's log prints them, tags on the first line only
# (format strings of libavformat 59, filled in; no file made here provoked them)
POORLY_INTERLEAVED_TAGGED = (
    "[mp4 @ 0x55d1c0a3e400] [warning] Packets poorly interleaved, failed to avoid negative timestamp -1024 in "
    "stream 1.\nTry -max_interleave_delta 0 as a possible workaround.\n"
)
NEGATIVE_PTS_TAGGED = (
    "[matroska @ 0x55d1c0a3e400] [warning] failed to avoid negative pts -40 in stream 0.\n"
    "Try -avoid_negative_ts 1 as a possible workaround.\n"
)
# an MPEG-2 program stream with 3000 bytes scrambled in the middle, tagged: ffmpeg's own warning
# that the decoder returned a damaged frame
MPEG2_CORRUPT_FRAME_TAGGED = """\
[mpeg2video @ 0x55fd85f44580] [error] skipped MB in I-frame at 8 6
[mpeg2video @ 0x55fd85f44580] [error] Warning MVs not available
[warning] file:/tmp/h1x/bad0.5.mpeg2.mpg: corrupt decoded frame in stream 0
"""
# the same with an H.264 MP4
H264_CORRUPT_FRAME_TAGGED = """\
[h264 @ 0x560920835dc0] [error] out of range intra chroma pred mode
[h264 @ 0x560920835dc0] [error] error while decoding MB 2 13
[warning] file:/tmp/h1x/bad0.5.h264.mp4: corrupt decoded frame in stream 0
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


def test_an_untagged_line_after_a_tagged_one_is_the_rest_of_that_message() -> None:
    for two_lines in (POORLY_INTERLEAVED_TAGGED, NEGATIVE_PTS_TAGGED):
        found = classify_stderr(two_lines)
        assert (found.decoder_errors, found.decoder_lines, found.timestamp_warnings) == (0, [], 1), two_lines
        assert found.timestamp_lines == two_lines.splitlines()[:1]  # the message's first line, as kept
        assert report_from(ARGV, 0, two_lines, 2.0, 50).ok
    # a repeat of a two-line message counts to its kind; complaints between decoder errors keep theirs
    repeated = classify_stderr(POORLY_INTERLEAVED_TAGGED + "    Last message repeated 2 times\n")
    assert (repeated.decoder_errors, repeated.timestamp_warnings) == (0, 3)
    mixed = classify_stderr(SCRAMBLED_H264_TAGGED + NEGATIVE_PTS_TAGGED + POORLY_INTERLEAVED_TAGGED)
    assert (mixed.decoder_errors, mixed.timestamp_warnings) == (3, 2)
    # a skipped warning's second line is skipped with it: only the filters' errors count
    head = "".join(NO_AUDIO_PACKETS_TAGGED.splitlines(keepends=True)[:4])
    assert classify_stderr(head) == classify_stderr("")
    found = classify_stderr(NO_AUDIO_PACKETS_TAGGED)
    assert (found.decoder_errors, found.timestamp_warnings) == (11, 0)
    assert not any("Consider increasing" in line for line in found.decoder_lines)
    # a decoder error's second line is part of that one error
    error = classify_stderr("[h264 @ 0x1] [error] error while decoding MB 1 2\nthe rest of the message\n")
    assert (error.decoder_errors, error.decoder_lines) == (1, ["[h264 @ 0x1] [error] error while decoding MB 1 2"])


def test_an_untagged_line_with_no_tagged_message_before_it_stays_a_decoder_error() -> None:
    second_line = POORLY_INTERLEAVED_TAGGED.splitlines()[1]
    assert classify_stderr(second_line).decoder_errors == 1  # nothing before it
    # after a repeat, ffmpeg's next message starts with its tags: an untagged line is not a continuation
    after_repeat = classify_stderr(POORLY_INTERLEAVED_TAGGED + "    Last message repeated 1 times\n" + second_line)
    assert (after_repeat.decoder_errors, after_repeat.timestamp_warnings) == (1, 2)
    # a line with a library's context prefix starts a message of its own, untagged: a decoder error
    prefixed = classify_stderr(NEGATIVE_PTS_TAGGED + "[h264 @ 0x1] no frame!\n")
    assert (prefixed.decoder_errors, prefixed.decoder_lines, prefixed.timestamp_warnings) == (
        1,
        ["[h264 @ 0x1] no frame!"],
        1,
    )


def test_ffmpegs_corrupt_decoded_frame_warning_is_a_decoder_error() -> None:
    for stderr in (MPEG2_CORRUPT_FRAME_TAGGED, H264_CORRUPT_FRAME_TAGGED):
        found = classify_stderr(stderr)
        assert (found.decoder_errors, found.timestamp_warnings) == (3, 0)
        assert found.decoder_lines[-1] == stderr.splitlines()[-1]
    alone = "[warning] file:/ingest/film.ts: corrupt decoded frame in stream 1"
    assert classify_stderr(alone).decoder_errors == 1 and not report_from(ARGV, 0, alone, 2.0, 50).ok
    # its sibling about the demuxer's packets (a joined TS's continuity counters) stays skipped
    packet = "[warning] file:/ingest/film.ts: corrupt input packet in stream 0"
    assert classify_stderr(packet) == classify_stderr("")


ALL_STDERR = [
    JOINED_TS,
    BACKWARDS_MKV,
    JOINED_TS_TAGGED,
    JOINED_TS_FRAMEMD5_TAGGED,
    SCRAMBLED_H264_TAGGED,
    SCRAMBLED_H264,
    SCRAMBLED_MPEG2,
    JOINED_AND_DAMAGED,
    NO_AUDIO_PACKETS_TAGGED,
    POORLY_INTERLEAVED_TAGGED + NEGATIVE_PTS_TAGGED,
    MPEG2_CORRUPT_FRAME_TAGGED,
    "\n".join(JOINED_TS_WARNINGS),
    "\n".join(DECODER_LINES_THAT_MENTION_TIMESTAMPS),
]


@pytest.mark.parametrize("stderr", ALL_STDERR)
def test_the_streaming_classifier_sorts_line_by_line_as_classify_stderr_does(stderr: str) -> None:
    whole = classify_stderr(stderr)
    streamed = StderrClassifier()
    for line in stderr.encode("utf-8").splitlines(keepends=True):
        streamed.feed(line)
    assert streamed.findings() == whole
    at_once = StderrClassifier()
    at_once.feed(stderr.encode("utf-8"))
    assert at_once.findings() == whole
    assert report_from(ARGV, 0, "", 2.0, 50, findings=whole) == report_from(ARGV, 0, stderr, 2.0, 50)
