"""Crash safety for real: an ingest in a child process SIGKILLs itself at a named point (after the
bag is built, in the middle of the upload, before the catalog commit, ...), then a watcher pass
restarts it. Every case must end with exactly one verified AIP, the source byte-identical in
done/, no unrecorded object (or object version) under the AIP's prefix on any target, and
staging empty. And two watcher processes over the same folder never take the same submission."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.intake import watch
from preserve.operations import journal, restore
from preserve.pipeline import ingest_submission
from preserve.storage import open_store
from preserve.storage.credentials import credentials_for
from tests.mediafactory import make_clip
from tests.support import isolated_settings

ROOT = Path(__file__).resolve().parents[2]

#: the child: runs ingest_submission with a StepRunner (or a wrapped store, or a wrapped
#: disposition) that kills its own process, uncatchably, at the point named in argv[3]
CHILD = r"""
import os, signal, sys
from pathlib import Path
from preserve.intake import disposition
from preserve.pipeline import ingest_submission
from preserve.catalog import Catalog
from preserve.config import Settings

settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
source = Path(sys.argv[2])
where, _, what = sys.argv[3].partition(":")

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def runner(step, ctx, *args):
    if where == "before" and step.__name__ == what:
        die()
    result = step(ctx, *args)
    if where == "after" and step.__name__ == what:
        die()
    return result

if where == "upload":  # inside replicate, after N objects have been stored (on any target)
    import threading
    from preserve.storage.local import LocalStore
    from preserve.storage.s3 import S3Store

    stored, lock = [0], threading.Lock()

    def killing(real):
        def put_source(self, *args, **kwargs):
            info = real(self, *args, **kwargs)
            with lock:
                stored[0] += 1
                if stored[0] >= int(what):
                    die()
            return info
        return put_source

    # put_file is a call of put_source: wrapping put_source counts every object once, by either way in
    for cls in (S3Store, LocalStore):
        cls.put_source = killing(cls.put_source)

if where == "accession":  # the source is in done/, the claim not yet released
    real_move = disposition.move_to_done
    def move_then_die(*args, **kwargs):
        real_move(*args, **kwargs)
        die()
    disposition.move_to_done = move_then_die

ingest_submission(settings, Catalog(settings.catalog_url), source, runner=runner)
sys.exit(3)  # not reached when the kill point is hit
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _child(settings: Settings, tmp_path: Path, source: Path, point: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "settings.json"
    cfg.write_text(settings.model_dump_json())
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(cfg), str(source), point],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _versions(settings: Settings, target_name: str, prefix: str) -> dict[str, list[str]]:
    """Every version of every key under the prefix, straight from the server (not the protocol)."""
    t = settings.target(target_name)
    client = boto3.client(
        "s3", endpoint_url=settings.endpoint_of(t), region_name=t.region, **credentials_for(settings, t)
    )
    full = f"{t.prefix}/{prefix}" if t.prefix else prefix
    out: dict[str, list[str]] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=t.bucket, Prefix=full):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            out.setdefault(v["Key"].removeprefix(f"{t.prefix}/"), []).append(v["VersionId"])
    return out


def assert_exactly_one_verified_aip(settings: Settings, catalog: Catalog, name: str, sha: str, tmp_path: Path) -> None:
    aips = catalog.list_aips()
    assert len(aips) == 1, [a.id for a in aips]
    aip = catalog.get_aip(aips[0].id)
    assert aip.submission_name == name and aip.status == "stored"
    assert {r.target: r.status for r in aip.replicas} == {t.name: "verified" for t in settings.targets}
    # nothing lost: the source is in done/, byte for byte, and nowhere else
    assert _sha256(settings.done_dir / name) == sha
    assert not (settings.ingest_dir / name).exists()
    assert not settings.failed_dir.exists() or not any(settings.failed_dir.iterdir())
    # nothing unrecorded under the AIP's prefix, on any target (all versions, for S3); the journal of
    # an AIP whose worker was killed after the catalog commit is written by housekeeping's catch-up
    journal.flush(settings, catalog)
    for replica in aip.replicas:
        recorded = {o.key for o in replica.objects}
        # the journal's event record and version inventory, recorded by the journal's bookkeeping
        beside = {key for _, _, key, _ in catalog.journal_records(aip.id, replica.target)}
        assert len(beside) == 2 and not beside & recorded, replica.target
        store = open_store(settings, settings.target(replica.target))
        assert {o.key for o in store.list(f"{aip.id}/")} == recorded | beside, replica.target
        if settings.target(replica.target).kind == "s3":
            versions = _versions(settings, replica.target, f"{aip.id}/")
            assert set(versions) == recorded | beside
            assert {k: v for k, v in versions.items() if len(v) != 1} == {}, "stale versions left behind"
            assert {k: v[0] for k, v in versions.items() if k in recorded} == {
                o.key: o.version_id for o in replica.objects
            }
    if settings.access_target is not None:
        access = open_store(settings, settings.access_target)
        assert {o.key for o in access.list(f"{aip.id}/")} == {a.key for a in aip.access}
    # verified: it restores into a valid bag holding the very bytes dropped
    result = restore.restore(settings, catalog, aip.id, tmp_path / "restored")
    assert result.ok
    assert _sha256(result.path / "data" / "objects" / name) == sha
    # staging cleaned, the claim released
    assert not settings.staging_dir.exists() or list(settings.staging_dir.iterdir()) == []
    assert catalog.submissions() == []


@pytest.mark.parametrize(
    "point",
    [
        "after:stage",
        "after:package",  # the bag is built in staging
        "upload:4",  # a few objects of the bag are stored
        "upload:16",  # most of the bag is stored on one replica or both
        "before:record",  # every replica verified, nothing in the catalog yet
        "after:record",  # recorded, but the source is still in the ingest folder
        "accession",  # the source is in done/, the claim not released
    ],
)
def test_kill_9_then_restart_gives_exactly_one_verified_aip(s3_settings: Settings, tmp_path: Path, point: str) -> None:
    settings = isolated_settings(  # published (the default is restricted): the check below looks at the public place
        s3_settings, tmp_path, ingest={"stable_seconds": 0.2, "poll_seconds": 0.1}, access={"default_level": "open"}
    )
    catalog = Catalog(settings.catalog_url)
    film = make_clip(settings.ingest_dir / "夜行 night.mp4", duration=0.5)
    sha = _sha256(film)
    killed = _child(settings, tmp_path, film, point)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-3000:])
    if point.startswith("upload"):
        assert any(open_store(settings, t).list("") for t in settings.targets)  # it really was mid-upload
    report = watch.watch_once(settings, catalog, lambda p: ingest_submission(settings, catalog, p))
    if point != "accession":
        assert [(h.submission, h.status) for h in report.handled] == [("夜行 night.mp4", "stored")], report
    assert_exactly_one_verified_aip(settings, catalog, "夜行 night.mp4", sha, tmp_path)
    catalog.close()


WATCHER = r"""
import json, sys, time
from pathlib import Path
from preserve.pipeline import ingest_submission
from preserve.intake import watch
from preserve.catalog import Catalog
from preserve.config import Settings

settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
start_at = float(sys.argv[2])
catalog = Catalog(settings.catalog_url)
time.sleep(max(0.0, start_at - time.time()))  # both watchers start together
report = watch.watch_once(settings, catalog, lambda p: ingest_submission(settings, catalog, p))
print(json.dumps([h.__dict__ for h in report.handled]))
"""


def test_two_watchers_never_take_the_same_submission(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(s3_settings, tmp_path, ingest={"stable_seconds": 0.3, "poll_seconds": 0.1})
    Catalog(settings.catalog_url).close()  # create the schema before the race
    names = [f"document {i}.pdf" for i in range(8)]
    for i, name in enumerate(names):
        (settings.ingest_dir / name).write_bytes(b"%PDF-1.4\n% document " + str(i).encode() + b"\n%%EOF\n")
    cfg = tmp_path / "settings.json"
    cfg.write_text(settings.model_dump_json())
    start_at = time.time() + 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WATCHER, str(cfg), str(start_at)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    stored = [h["submission"] for r in results for h in r if h["status"] == "stored"]
    others = [h for r in results for h in r if h["status"] not in ("stored", "skipped")]
    assert others == []
    assert sorted(stored) == sorted(names)  # each exactly once, between the two of them
    catalog = Catalog(settings.catalog_url)
    assert sorted(a.submission_name for a in catalog.list_aips()) == sorted(names)
    assert sorted(p.name for p in settings.done_dir.iterdir()) == sorted(names)  # no "name.2" copies
    catalog.close()


def test_a_film_made_dark_after_a_crash_leaves_no_published_proxy(s3_settings: Settings, tmp_path: Path) -> None:
    """Killed after its access copy was published, then re-submitted as `dark`: the redo removes
    the earlier attempt's proxy and poster (all versions) before anything is recorded."""
    settings = isolated_settings(s3_settings, tmp_path, ingest={"stable_seconds": 0.2, "poll_seconds": 0.1})
    catalog = Catalog(settings.catalog_url)
    folder = settings.ingest_dir / "夜行"
    folder.mkdir()
    make_clip(folder / "night.mp4", duration=0.5)
    (folder / "metadata.yaml").write_text("title: Night\naccess: open\n")
    killed = _child(settings, tmp_path, folder, "before:record")
    assert killed.returncode == -9, killed.stderr[-3000:]
    access = open_store(settings, settings.access_target)
    assert [o.key for o in access.list("")], "the proxy had been published before the kill"
    (folder / "metadata.yaml").write_text("title: Night\naccess: dark\n")  # the filmmaker asks for dark
    report = watch.watch_once(settings, catalog, lambda p: ingest_submission(settings, catalog, p))
    assert [(h.submission, h.status) for h in report.handled] == [("夜行", "stored")]
    aip = catalog.get_aip(catalog.list_aips()[0].id)
    assert aip.access == () and aip.access_level == "dark"
    assert list(access.list("")) == []
    assert _versions(settings, "access", "") == {}  # no older version of the proxy either
    catalog.close()
