"""ffmpeg's ``-progress`` reports read as they come (ProgressReader, pure), and ``tools.run``
streaming a tool's stdout line by line (real child processes: the Python running the tests)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from preserve import tools
from preserve.core.errors import ToolError, ToolNotFound, ToolTimeout
from preserve.tools.ffprogress import ProgressReader

# ffmpeg 5.1.9's -progress pipe:1 for two joined 2 s MPEG-TS segments (two reports)
REAL = b"""frame=3
fps=0.00
stream_0_0_q=-0.0
bitrate=N/A
total_size=N/A
out_time_us=160000
out_time_ms=160000
out_time=00:00:00.160000
dup_frames=0
drop_frames=0
speed=56.6x
progress=continue
frame=100
fps=0.00
stream_0_0_q=-0.0
bitrate=N/A
total_size=N/A
out_time_us=4043356
out_time_ms=4043356
out_time=00:00:04.043356
dup_frames=0
drop_frames=0
speed= 242x
progress=end
"""

Heard = list[tuple[float, float, float | None]]


def _reader(duration: float | None = None) -> tuple[ProgressReader, Heard]:
    heard: Heard = []
    return ProgressReader(duration, lambda p, d, s: heard.append((p, d, s))), heard


def test_a_real_run_line_by_line() -> None:
    reader, heard = _reader(4.0)
    for line in REAL.splitlines(keepends=True):
        reader.feed(line)
    assert heard == [(0.16, 4.0, 56.6), (4.043356, 4.0, 242.0)]
    assert (reader.position, reader.frames, reader.speed, reader.reports, reader.ended) == (
        4.043356,
        100,
        242.0,
        2,
        True,
    )


def test_nothing_decoded_unknown_values_and_negative_times() -> None:
    reader, heard = _reader(None)
    reader.feed(b"frame=0\nout_time_us=N/A\nout_time_ms=N/A\nspeed=N/A\nprogress=continue\n")
    assert (reader.position, reader.frames, reader.speed) == (None, None, None)
    assert heard == [(0.0, 0.0, None)]  # the listener always gets floats
    reader.feed(b"out_time_us=-23220\nspeed=   0x\nprogress=continue\n")  # audio priming before 0
    assert (reader.position, reader.speed) == (None, 0.0)
    reader.feed(b"out_time_us=garbage\nout_time_ms=500000\nspeed=fast\nprogress=continue\n")
    assert (reader.position, reader.speed) == (0.5, None)  # out_time_ms (microseconds too in 5.1) as fallback


def test_lines_in_pieces_several_at_once_and_a_last_one_without_newline() -> None:
    reader, heard = _reader(10.0)
    for piece in (b"frame=1", b"2\nout_ti", b"me_us=5000", b"00\nspeed=1.23x\nprogress=contin", b"ue\n"):
        reader.feed(piece)
    assert heard == [(0.5, 10.0, 1.23)] and reader.frames == 12
    reader.feed(b"frame=13\nout_time_us=1000000\nprogress=end")  # no newline: waits for more
    assert reader.reports == 1
    reader.finish()
    assert (reader.reports, reader.position, reader.frames, reader.ended) == (2, 1.0, 13, True)


def test_a_block_cut_off_before_its_progress_line_is_not_a_report_and_junk_is_ignored() -> None:
    reader, heard = _reader(2.0)
    reader.feed(REAL.split(b"progress=end")[0])  # killed mid-block: the second report never ended
    assert (reader.position, reader.frames, len(heard)) == (0.16, 3, 1)
    reader.feed(b"\n\x00\xff\xfe not a key value\n=novalue\n" + b"x" * 10_000)  # an overlong piece without a newline
    reader.feed(b"\nout_time_us=250000\nprogress=continue\n")
    assert reader.position == 0.25 and len(heard) == 2


def test_a_failing_listener_never_stops_the_reading() -> None:
    calls: list[float] = []

    def broken(position: float, duration: float, speed: float | None) -> None:
        calls.append(position)
        raise RuntimeError("the terminal went away")

    reader = ProgressReader(4.0, broken)
    for line in REAL.splitlines(keepends=True):
        reader.feed(line)
    assert calls == [0.16, 4.043356] and reader.position == 4.043356
    silent = ProgressReader(None, None)
    silent.feed(REAL)
    assert (silent.position, silent.frames) == (4.043356, 100)


# -- tools.run(on_stdout_line=...) ---------------------------------------------------------------------


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_lines_reach_the_callback_while_the_tool_still_runs(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    # the child writes a line, then waits (at most 60 s) for the callback to answer by making a file:
    # if run() gave the lines only at the end, the child would give up and exit 3
    code = (
        "import os, sys, time\n"
        "print('first', flush=True)\n"
        f"deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    if time.monotonic() > deadline: sys.exit(3)\n"
        "    time.sleep(0.01)\n"
        "sys.stdout.write('second\\nlast without newline')\n"
    )
    lines: list[bytes] = []

    def on_line(line: bytes) -> None:
        lines.append(line)
        flag.touch()

    result = tools.run(_python(code), timeout=120, on_stdout_line=on_line)
    assert result.returncode == 0 and result.stdout == b""
    assert lines == [b"first\n", b"second\n", b"last without newline"]


def test_neither_pipe_can_fill_and_stderr_is_kept_whole() -> None:
    # 4 MB on each pipe, interleaved: far past a pipe's 64 KiB buffer on both at once
    code = (
        "import sys\n"
        "for i in range(40000):\n"
        "    sys.stdout.write('o' * 99 + '\\n')\n"
        "    sys.stderr.write('e' * 99 + '\\n')\n"
        "sys.exit(4)\n"
    )
    count = [0, 0]

    def on_line(line: bytes) -> None:
        count[0] += 1
        count[1] += len(line)

    result = tools.run(_python(code), timeout=300, check=False, on_stdout_line=on_line)
    assert result.returncode == 4 and count == [40000, 4_000_000] and len(result.stderr) == 4_000_000
    with pytest.raises(ToolError) as err:
        tools.run(_python(code), timeout=300, on_stdout_line=lambda line: None)
    assert err.value.returncode == 4 and len(err.value.stderr) == 4_000_000


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_timeout_kills_a_silent_tool(tmp_path: Path) -> None:
    code = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(600)\n"
    pids: list[int] = []
    with pytest.raises(ToolTimeout, match="longer than 1 s"):
        tools.run(_python(code), timeout=1, on_stdout_line=lambda line: pids.append(int(line)))
    assert len(pids) == 1 and _gone(pids[0])  # killed and reaped


def test_a_failing_callback_kills_the_tool_and_propagates() -> None:
    code = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(600)\n"
    pids: list[int] = []

    def on_line(line: bytes) -> None:
        pids.append(int(line))
        raise KeyError("listener bug")

    with pytest.raises(KeyError, match="listener bug"):
        tools.run(_python(code), timeout=600, on_stdout_line=on_line)
    assert len(pids) == 1 and _gone(pids[0])


def test_streaming_excludes_stdin_and_stdout_to_and_missing_tools_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stdout_to"):
        tools.run(_python("pass"), stdout_to=tmp_path / "out", on_stdout_line=lambda line: None)
    with pytest.raises(ValueError, match="stdin"):
        tools.run(_python("pass"), stdin=b"x", on_stdout_line=lambda line: None)
    with pytest.raises(ToolNotFound):
        tools.run(["no-such-tool-preserve-test"], on_stdout_line=lambda line: None)
    # the other modes are unchanged
    assert tools.run(_python("import sys; sys.stdout.write(sys.stdin.read())"), stdin=b"abc").stdout == b"abc"
    tools.run(_python("print('to a file')"), stdout_to=tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"to a file\n"
