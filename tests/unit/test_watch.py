"""The watcher's decisions, driven by a fake clock: what is a submission, when it is complete
(unchanged for stable_seconds, or a READY marker), what is ignored, and that a pass survives a
crashing ingest function."""

from __future__ import annotations

import os
from pathlib import Path

from preserve.intake import watch
from preserve.intake.watch import WatchState, look


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def _names(items) -> list[str]:
    return sorted(i.name for i in items)


def test_a_growing_file_is_taken_only_once_unchanged_for_stable_seconds(tmp_path: Path) -> None:
    state, clock = WatchState(), FakeClock()
    film = tmp_path / "film.mov"
    film.write_bytes(b"x")
    for i in range(5):  # grows between every poll: never ready
        assert look(tmp_path, state, clock(), 10).ready == ()
        with open(film, "ab") as fh:
            fh.write(b"more")
        os.utime(film, ns=(0, 10**9 * (i + 2)))
        clock.sleep(6)
    assert look(tmp_path, state, clock(), 10).waiting[0].reason == "changing"
    clock.sleep(9)
    assert look(tmp_path, state, clock(), 10).ready == ()  # 9 s unchanged
    clock.sleep(1)
    assert [r.path for r in look(tmp_path, state, clock(), 10).ready] == [film]


def test_a_folder_is_stable_only_when_nothing_below_it_changes(tmp_path: Path) -> None:
    state, clock = WatchState(), FakeClock()
    folder = tmp_path / "流浪北京"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.srt").write_text("1")
    look(tmp_path, state, clock(), 5)
    clock.sleep(4)
    (folder / "sub" / "b.srt").write_text("2")  # a new file deep inside
    assert look(tmp_path, state, clock(), 5).ready == ()
    clock.sleep(4)
    assert look(tmp_path, state, clock(), 5).ready == ()
    clock.sleep(1)
    assert _names(look(tmp_path, state, clock(), 5).ready) == ["流浪北京"]


def test_ready_markers_make_an_entry_ready_at_once(tmp_path: Path) -> None:
    state, clock = WatchState(), FakeClock()
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.mov").write_bytes(b"1")
    (tmp_path / "folder" / "READY").write_bytes(b"")
    (tmp_path / "film.mp4").write_bytes(b"1")
    (tmp_path / "film.mp4.READY").write_bytes(b"")
    (tmp_path / "other.mp4").write_bytes(b"1")
    seen = look(tmp_path, state, clock(), 3600)
    assert {(r.name, r.reason) for r in seen.ready} == {("folder", "READY marker"), ("film.mp4", "READY marker")}
    assert _names(seen.waiting) == ["other.mp4"]


def test_ignored_hidden_own_folders_and_companions(tmp_path: Path) -> None:
    state, clock = WatchState(), FakeClock()
    for name in (
        ".DS_Store",
        "Thumbs.db",
        "._film.mov",
        "big.mov.part",
        "x.crdownload",
        "~$notes.docx",
        ".film.mov.Xa9z3",
        "READY",
    ):
        (tmp_path / name).write_bytes(b"1")
    (tmp_path / "done").mkdir()
    (tmp_path / "failed").mkdir()
    (tmp_path / "film.mov").write_bytes(b"1")
    (tmp_path / "film.mov.yaml").write_text("title: x\n")
    (tmp_path / "film.mov.md5").write_text("0" * 32)
    (tmp_path / "late.mov.yaml").write_text("title: y\n")  # its film has not arrived yet
    seen = look(tmp_path, state, clock(), 0)
    assert _names(seen.ignored) == sorted(
        [
            ".DS_Store",
            "Thumbs.db",
            "._film.mov",
            "big.mov.part",
            "x.crdownload",
            "~$notes.docx",
            ".film.mov.Xa9z3",
            "READY",
        ]
    )
    assert _names(seen.ready) == ["film.mov"]
    assert [(w.name, w.reason) for w in seen.waiting] == [
        ("late.mov.yaml", "waiting for 'late.mov', the file it belongs to")
    ]


def test_a_companion_still_changing_holds_back_its_file(tmp_path: Path) -> None:
    state, clock = WatchState(), FakeClock()
    (tmp_path / "film.mov").write_bytes(b"1")
    side = tmp_path / "film.mov.yaml"
    side.write_text("title: x\n")
    look(tmp_path, state, clock(), 5)
    clock.sleep(5)
    side.write_text("title: x\nyear: 1990\n")
    assert look(tmp_path, state, clock(), 5).ready == ()


def test_settle_waits_for_stability_and_gives_up_on_growing_entries(tmp_path: Path) -> None:
    clock = FakeClock()
    (tmp_path / "still.mov").write_bytes(b"1")
    growing = tmp_path / "growing.mov"
    growing.write_bytes(b"1")

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        with open(growing, "ab") as fh:
            fh.write(b"1")

    seen = watch.settle(tmp_path, WatchState(), stable_seconds=10, poll_seconds=2, timeout=60, clock=clock, sleep=sleep)
    assert _names(seen.ready) == ["still.mov"]
    assert [(w.name, w.reason) for w in seen.waiting] == [("growing.mov", "changing")]
    assert clock.t - 1000 < 20  # it stopped as soon as everything was decided, not at the timeout


def test_a_pass_goes_on_after_an_ingest_function_crashes(tmp_path: Path, monkeypatch) -> None:
    from preserve.config import DEFAULT_CONFIG, load

    settings = load(
        DEFAULT_CONFIG,
        env={},
        overrides={
            "archive": {"var_dir": str(tmp_path / "var"), "ingest_dir": str(tmp_path / "in")},
            "ingest": {"stable_seconds": 0},
        },
    )
    settings.ingest_dir.mkdir(parents=True)
    for name in ("a.mov", "b.mov", "c.mov"):
        (settings.ingest_dir / name).write_bytes(b"1")
    from preserve.catalog import Catalog

    catalog = Catalog(settings.catalog_url)
    calls: list[str] = []

    def ingest_fn(path: Path) -> watch.Handled:
        calls.append(path.name)
        if path.name == "b.mov":
            raise RuntimeError("boom")
        return watch.Handled(path.name, "stored", "x")

    state, clock = WatchState(), FakeClock()
    report = watch.watch_once(settings, catalog, ingest_fn, state=state, wait=False, clock=clock)
    assert sorted(calls) == ["a.mov", "b.mov", "c.mov"]
    assert {h.submission: h.status for h in report.handled} == {"a.mov": "stored", "b.mov": "error", "c.mov": "stored"}
    error = next(h.detail for h in report.handled if h.status == "error")
    # reported by kind and place; its message stays out (an unexpected error may quote the submission)
    assert not report.ok and error.startswith("RuntimeError") and "test_watch.py" in error and "boom" not in error
    # the crashing one is retried after a back-off, not at every poll
    calls.clear()
    watch.watch_once(settings, catalog, ingest_fn, state=state, wait=False, clock=clock)
    assert "b.mov" not in calls
    clock.sleep(watch.BACKOFF_FIRST_SECONDS)
    watch.watch_once(settings, catalog, ingest_fn, state=state, wait=False, clock=clock)
    assert "b.mov" in calls
    catalog.close()


def test_ignored_entries_are_recorded_once_across_runs(tmp_path: Path) -> None:
    from preserve.catalog import Catalog
    from preserve.config import DEFAULT_CONFIG, load

    settings = load(
        DEFAULT_CONFIG,
        env={},
        overrides={"archive": {"var_dir": str(tmp_path / "var"), "ingest_dir": str(tmp_path / "in")}},
    )
    settings.ingest_dir.mkdir(parents=True)
    (settings.ingest_dir / ".DS_Store").write_bytes(b"1")
    catalog = Catalog(settings.catalog_url)
    for _ in range(3):  # three separate runs, each with fresh state
        report = watch.watch_once(settings, catalog, lambda p: None, wait=False)
        assert _names(report.ignored) == [".DS_Store"]
    events = catalog.submission_events(".DS_Store")
    assert len(events) == 1 and "system or partial file" in events[0].detail
    catalog.close()
