"""A slow Prefect API never stalls ffmpeg (issue 13): the transcode's progress artifact takes each
report without waiting (a one-slot buffer, the latest report wins) and publishes it on a thread of
its own, which `finish` ends. The server is faked here, and only here, because its fault -- an API
call that hangs for as long as the test says -- cannot be caused on demand with a real one; the
real server's behaviour is tests/flows/test_ingest_progress.py's. No Prefect server is started."""

from __future__ import annotations

import threading
from typing import Any

import pytest

Api = tuple[list[tuple[str, float]], threading.Event, threading.Event]


@pytest.fixture()
def hanging_api(monkeypatch: pytest.MonkeyPatch) -> Api:
    """The artifact API's two calls, recorded; creating one hangs until ``release`` is set."""
    import flows.ingest as ingest

    sent: list[tuple[str, float]] = []
    calling, release = threading.Event(), threading.Event()

    def create(progress: float, description: str) -> Any:
        sent.append(("create", progress))
        calling.set()
        release.wait(300)
        return "artifact-id"

    def update(artifact_id: Any, progress: float) -> None:
        sent.append(("update", progress))

    monkeypatch.setattr(ingest, "create_progress_artifact", create)
    monkeypatch.setattr(ingest, "update_progress_artifact", update)
    return sent, calling, release


def _publishers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "media-progress"}


def test_reports_are_taken_while_the_server_hangs_and_the_latest_wins(hanging_api: Api) -> None:
    from flows.ingest import MediaProgressArtifact

    sent, calling, release = hanging_api
    before = _publishers()
    heard: list[float] = []
    media = MediaProgressArtifact("probe: transcode", interval=0.0, also=lambda p, d, s: heard.append(p))
    media(1.0, 1000.0, 1.0)
    assert calling.wait(120)  # the publisher is in its first call, which hangs
    read_all = threading.Event()

    def ffmpeg_reader() -> None:  # ffmpeg's stdout reader: 999 more reports
        for position in range(2, 1001):
            media(float(position), 1000.0, 1.0)
        read_all.set()

    reader = threading.Thread(target=ffmpeg_reader)
    reader.start()
    # if a report waited for the server, the reader would hang with it (until the release below)
    assert read_all.wait(120), "a report waited for the hanging progress API"
    assert heard == [float(p) for p in range(1, 1001)]  # the CLI's bar heard every report
    assert sent == [("create", 0.1)]  # still in its first call
    release.set()
    reader.join()
    media.finish(complete=False)
    # once the server answered, the publisher took only the latest report (the others were replaced)
    assert sent == [("create", 0.1), ("update", 100.0)]
    assert _publishers() == before  # its thread ended with finish
    media(500.0, 1000.0, 1.0)  # a report after finish is not published
    assert sent == [("create", 0.1), ("update", 100.0)] and _publishers() == before


def test_finish_publishes_the_end_of_a_stored_ingest_and_nothing_without_a_duration(hanging_api: Api) -> None:
    from flows.ingest import MediaProgressArtifact

    sent, _, release = hanging_api
    release.set()
    media = MediaProgressArtifact("probe: transcode", interval=3600.0)
    media(10.0, 0.0, None)  # no duration known yet: nothing to publish
    media(100.0, 1000.0, 2.0)  # the first with one: the artifact (whether or not the throttle held it)
    media.finish(complete=True)
    assert sent == [("create", 10.0), ("update", 100.0)]  # stored: 100 %
    sent.clear()
    unknown = MediaProgressArtifact("probe: no duration")
    unknown(5.0, 0.0, None)
    unknown.finish(complete=True)
    MediaProgressArtifact("probe: nothing").finish(complete=True)  # no report: no thread
    assert sent == []
