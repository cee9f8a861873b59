"""`replication.upload_all`'s skip and cancel, and `replication.Background` (the originals' early
uploads): real filesystem targets under tmp_path, no server needed."""

from __future__ import annotations

import contextvars
import hashlib
import os
import threading
from pathlib import Path

from preserve.config import Settings, TargetSettings
from preserve.core.errors import VerificationError
from preserve.storage import ObjectStore, open_store, replication
from tests.support import load_merged


def _settings(tmp_path: Path) -> Settings:
    return load_merged(
        {
            "archive": {"var_dir": str(tmp_path / "var")},
            "targets": [
                {"name": "disk", "kind": "filesystem", "path": str(tmp_path / "disk")},
                {"name": "other", "kind": "filesystem", "path": str(tmp_path / "other")},
            ],
            "access_target": {"name": "access", "kind": "filesystem", "path": str(tmp_path / "access")},
        }
    )


def _uploads(tmp_path: Path, n: int = 3) -> list[replication.Upload]:
    out = []
    for i in range(n):
        path = tmp_path / f"reel-{i}.mov"
        data = os.urandom(1000 + i)
        path.write_bytes(data)
        out.append(
            replication.Upload(f"aip/data/objects/reel-{i}.mov", path, hashlib.sha256(data).hexdigest(), len(data))
        )
    return out


def _keys(settings: Settings, target: TargetSettings) -> list[str]:
    with open_store(settings, target) as store:
        return sorted(o.key for o in store.list("aip/"))


def test_skip_leaves_out_what_a_target_already_holds(tmp_path: Path) -> None:
    settings, uploads = _settings(tmp_path), _uploads(tmp_path)
    disk, other = settings.targets
    outcomes = replication.upload_all(settings, settings.targets, "aip", uploads, skip={"disk": {uploads[0].key}})
    assert all(o.ok for o in outcomes)
    assert _keys(settings, disk) == [u.key for u in uploads[1:]]
    assert _keys(settings, other) == [u.key for u in uploads]


def test_a_set_cancel_begins_no_upload(tmp_path: Path) -> None:
    settings, uploads = _settings(tmp_path), _uploads(tmp_path)
    cancel = threading.Event()
    cancel.set()
    outcomes = replication.upload_all(settings, settings.targets, "aip", uploads, cancel=cancel)
    assert [o.objects for o in outcomes] == [[], []]
    assert _keys(settings, settings.targets[0]) == []


def test_background_uploads_report_outcomes_failures_and_progress_in_the_callers_context(tmp_path: Path) -> None:
    settings, uploads = _settings(tmp_path), _uploads(tmp_path)
    wrong = replication.Upload(uploads[2].key, uploads[2].path, "0" * 64, uploads[2].size)  # "changed since hashed"
    run = contextvars.ContextVar("run", default="none")
    run.set("this ingest")
    heard: list[tuple[str, int]] = []
    background = replication.Background(
        settings,
        settings.targets[:1],
        "aip",
        [*uploads[:2], wrong],
        on_uploaded=lambda n: heard.append((run.get(), n)),
    )
    (outcome,) = background.wait()
    assert not background.running
    assert not outcome.ok and isinstance(outcome.error, VerificationError) and outcome.failed == wrong
    assert [(t, u) for t, u, _ in background.failures] == [("disk", wrong)]
    assert sorted(o.key for o in outcome.objects) == [u.key for u in uploads[:2]]
    assert sorted(heard) == sorted(("this ingest", u.size) for u in uploads[:2])
    assert background.sent == sum(u.size for u in uploads[:2]) and background.total == sum(u.size for u in uploads)
    assert background.wait() == [outcome]  # asking again changes nothing


def test_stop_begins_no_further_upload(tmp_path: Path) -> None:
    settings, uploads = _settings(tmp_path), _uploads(tmp_path)
    release = threading.Event()
    prepared: list[str] = []

    def prepare(store: ObjectStore, target: TargetSettings) -> None:  # runs before the first upload
        prepared.append(target.name)
        release.wait(30)

    background = replication.Background(settings, settings.targets, "aip", uploads, prepare=prepare)
    background.stop(wait=False)
    release.set()
    outcomes = background.wait()
    assert prepared == ["disk", "other"]
    assert [o.objects for o in outcomes] == [[], []] and all(o.ok for o in outcomes)
    assert _keys(settings, settings.targets[0]) == [] and _keys(settings, settings.targets[1]) == []
