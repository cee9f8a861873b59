"""The transcode's progress on the dashboard: the ingest flow publishes a Prefect progress artifact
for it (percent of the film's duration) beside the byte artifact, its description naming only the
submission's folder entry; the CLI's listener hears every report; a report from a thread with no
run context still lands on the flow run that made the artifact. Real Prefect (the shared harness),
real ffmpeg, the session's SeaweedFS."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from preserve.config import Settings
from tests.mediafactory import ffmpeg
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.prefect

TITLE = "Secret Title 秘密"


def _artifacts_of(flow_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

    async def read() -> list[Any]:
        async with get_client() as client:
            return list(
                await client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                        type=ArtifactFilterType(any_=["progress"]),
                    )
                )
            )

    return asyncio.run(read())


def test_the_ingest_flow_publishes_the_transcode_progress(
    prefect_harness: None, s3_settings: Settings, tmp_path: Path
) -> None:
    from flows.ingest import ingest_flow, progress_listener

    settings = isolated_settings(s3_settings, tmp_path)
    config = str(write_config(settings, tmp_path / "preserve.toml"))
    film = settings.ingest_dir / "progress film.mp4"
    ffmpeg(
        [
            "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=2:duration=600",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=600",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "1",
            "-metadata", f"title={TITLE}", "-metadata", "location=+39.9042+116.4074/",
            str(film),
        ]
    )  # fmt: skip
    heard: list[tuple[float, float, float | None]] = []
    with progress_listener(None, media=lambda p, d, s: heard.append((p, d, s))):
        state = ingest_flow(path=str(film), config=config, return_state=True)
    assert state.is_completed(), state.message

    assert heard, "the CLI's listener heard no transcode progress"
    assert all(d == pytest.approx(600, abs=1) for _, d, _ in heard if d > 0)
    assert max(p for p, _, _ in heard) >= 0.98 * 600

    progress = _artifacts_of(state.state_details.flow_run_id)
    transcode = [a for a in progress if "transcode" in (a.description or "")]
    byte = [a for a in progress if "bytes" in (a.description or "")]
    assert len(transcode) == 1 and len(byte) == 1, [a.description for a in progress]
    assert transcode[0].data == pytest.approx(100.0) and byte[0].data == pytest.approx(100.0)
    assert transcode[0].description == "ingest of progress film.mp4: transcode, percent of the film's duration"
    for a in progress:  # nothing of the film's own tags
        assert "Secret" not in a.description and "秘密" not in a.description and "39.9" not in a.description


def test_reports_from_another_thread_land_on_the_flow_run_throttled(prefect_harness: None) -> None:
    """ffmpeg's progress may be read on a thread of its own (no Prefect run context there): the
    artifact is still the flow run's. With a long interval only the first report, one that
    reaches the end, and what `finish` finds are published; the last value read back shows it."""
    from prefect import flow

    from flows.ingest import MediaProgressArtifact

    heard: list[float] = []

    @flow(name="media-progress-probe", persist_result=False)
    def probe(complete: bool) -> None:
        media = MediaProgressArtifact("probe: transcode", interval=3600.0, also=lambda p, d, s: heard.append(p))

        def report() -> None:
            for position in (100.0, 200.0, 300.0, 450.0):
                media(position, 1000.0, 2.0)

        worker = threading.Thread(target=report)
        worker.start()
        worker.join()
        media.finish(complete=complete)

    kept = probe(complete=False, return_state=True)
    done = probe(complete=True, return_state=True)
    assert heard == [100.0, 200.0, 300.0, 450.0] * 2  # the listener (the CLI's bar) hears every report
    (first,) = _artifacts_of(kept.state_details.flow_run_id)
    assert first.description == "probe: transcode" and first.data == pytest.approx(45.0)  # finish: the last one
    (second,) = _artifacts_of(done.state_details.flow_run_id)
    assert second.data == pytest.approx(100.0)
