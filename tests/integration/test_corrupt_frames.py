"""ffmpeg's own word that a decoder returned a damaged frame ("<url>: corrupt decoded frame in stream
N", at warning level) counts as a decoder error in the decode check (issue 13). Real ffmpeg, on
MPEG-2 and H.264 files made here with bytes scrambled in the middle of their picture data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from preserve import tools
from preserve.characterise import decode
from tests.mediafactory import corrupt_range, make_clip

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

WORDS = "corrupt decoded frame in stream 0"


@pytest.mark.parametrize(("name", "vcodec"), [("film.mpg", "mpeg2video"), ("film.mp4", "libx264")])
def test_a_corrupt_decoded_frame_is_a_decoder_error(tmp_path: Path, name: str, vcodec: str) -> None:
    good = make_clip(tmp_path / name, vcodec=vcodec, duration=2.0, audio=False)
    damaged = corrupt_range(good, tmp_path / f"damaged {name}", at=0.5, length=3000)
    raw = tools.run(decode.decode_argv(damaged), timeout=120, check=False)
    corrupt = [line for line in raw.stderr.splitlines() if line.endswith(WORDS)]
    assert corrupt and all(line.startswith("[warning] file:") for line in corrupt), raw.stderr

    report = decode.decode_check(damaged, timeout=120)
    assert not report.ok and any(line.endswith(WORDS) for line in report.errors)
    # counted once each, on top of the decoder's own errors
    without = "\n".join(line for line in raw.stderr.splitlines() if not line.endswith(WORDS))
    assert report.error_count == decode.classify_stderr(without).decoder_errors + len(corrupt)
    assert decode.decode_check(good, timeout=120).ok
