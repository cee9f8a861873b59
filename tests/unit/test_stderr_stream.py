"""A tool's stderr read line by line as it comes, in bounded memory (issue 13): ``tools.run`` gives
each stderr line to ``on_stderr_line`` and keeps only a tail, and the decode check's classifier
sorts millions of lines keeping exact counts and a few lines. Real child processes (the Python
running the tests), no ffmpeg."""

from __future__ import annotations

import sys

import pytest

from preserve import tools
from preserve.characterise.decode import MAX_STORED_ERRORS, StderrClassifier
from preserve.core.errors import ToolError
from preserve.tools.run import MAX_LINE_BYTES, STDERR_TAIL_BYTES


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_stderr_lines_reach_the_callback_and_only_a_tail_is_kept() -> None:
    # 400,000 numbered lines (about 4.6 MB) on stderr, and stdout kept whole when it has no callback
    code = (
        "import sys\n"
        "sys.stderr.write(''.join(f'line {i:06d}\\n' for i in range(400000)))\n"
        "sys.stderr.write('last without newline')\n"
        "sys.stdout.write('out' * 50000)\n"
        "sys.exit(5)\n"
    )
    count, first = [0], list[bytes]()

    def on_line(line: bytes) -> None:
        if not first:
            first.append(line)
        count[0] += 1

    result = tools.run(_python(code), timeout=300, check=False, on_stderr_line=on_line)
    assert result.returncode == 5 and count[0] == 400001 and first == [b"line 000000\n"]
    assert result.stdout == b"out" * 50000
    assert len(result.stderr.encode()) <= STDERR_TAIL_BYTES
    assert result.stderr.startswith("line ") and result.stderr.endswith("line 399999\nlast without newline")
    with pytest.raises(ToolError) as err:  # a failure quotes the tail
        tools.run(_python(code), timeout=300, on_stderr_line=lambda line: None)
    assert err.value.returncode == 5 and "last without newline" in str(err.value)
    assert len(err.value.stderr.encode()) <= STDERR_TAIL_BYTES


def test_both_streams_line_by_line_and_a_line_too_long_comes_in_pieces() -> None:
    code = (
        "import sys\n"
        f"sys.stderr.write('x' * {2 * MAX_LINE_BYTES + 10} + '\\n')\n"
        "for i in range(20000):\n"
        "    sys.stdout.write('o\\n')\n"
        "    sys.stderr.write('e\\n')\n"
    )
    out: list[bytes] = []
    err: list[bytes] = []
    result = tools.run(_python(code), timeout=300, on_stdout_line=out.append, on_stderr_line=err.append)
    assert result.stdout == b"" and out == [b"o\n"] * 20000
    assert [len(piece) for piece in err[:3]] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 11]
    assert err[3:] == [b"e\n"] * 20000


def test_a_failing_stderr_callback_kills_the_tool_and_propagates() -> None:
    code = "import sys, time\nsys.stderr.write('one\\n'); sys.stderr.flush()\ntime.sleep(600)\n"

    def on_line(line: bytes) -> None:
        raise KeyError("classifier bug")

    with pytest.raises(KeyError, match="classifier bug"):
        tools.run(_python(code), timeout=600, on_stderr_line=on_line)
    with pytest.raises(ValueError, match="stdin"):
        tools.run(_python("pass"), stdin=b"x", on_stderr_line=lambda line: None)


def test_two_million_lines_are_classified_in_bounded_memory() -> None:
    # what a long quirky film can make ffmpeg print at warning level: per block of four lines one
    # timestamp complaint, one decoder error, one skipped warning and the second line of that warning
    block = (
        "[mpegts @ 0x55978c9b0100] [warning] DTS 127920 < 214320 out of order\n"
        "[h264 @ 0x55b958acb680] [error] error while decoding MB 11 14\n"
        "[mpegts @ 0x55978c9b0100] [warning] Could not find codec parameters for stream 1\n"
        "Consider increasing the value for the 'analyzeduration' (0) and 'probesize' (5000000) options\n"
    )
    code = f"import sys\nblock = {block!r} * 1000\nfor _ in range(500):\n    sys.stderr.write(block)\n"
    classifier = StderrClassifier()
    result = tools.run(_python(code), timeout=600, on_stderr_line=classifier.feed)
    found = classifier.findings()
    assert result.returncode == 0 and classifier.lines == 2_000_000
    assert (found.timestamp_warnings, found.decoder_errors) == (500_000, 500_000)  # exact
    assert len(found.timestamp_lines) == len(found.decoder_lines) == MAX_STORED_ERRORS  # bounded
    assert len(result.stderr.encode()) <= STDERR_TAIL_BYTES and result.stderr.endswith(block)
