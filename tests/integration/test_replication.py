"""Replication you can trust (issue 5), against real servers: the session's SeaweedFS, servers of
a test's own (to kill and restart them), a filesystem target, real subprocesses killed with
SIGKILL, and a corrupting TCP proxy. moto appears in one place only: as a server that silently
ignores a requested feature (test_ignored_features_are_detected)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preserve.catalog import Catalog
from preserve.config import Settings, TargetSettings
from preserve.core.errors import FeatureNotHonoured, ObjectLocked, StorageUnavailable, VerificationError
from preserve.core.model import EventType, Outcome
from preserve.dev import services
from preserve.operations import restore
from preserve.pipeline import ingest_submission
from preserve.storage import open_store, replication
from preserve.storage.credentials import credentials_for
from preserve.storage.s3 import S3Store
from preserve.storage.s3.multipart import composite_sha256
from tests.faultproxy import FaultProxy
from tests.support import isolated_settings, kill_once_parts_are_stored, parts_on_server, raw_s3

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
GiB = 1 << 30


def tuned(settings: Settings, **replication_values: Any) -> Settings:
    return settings.model_copy(update={"replication": settings.replication.model_copy(update=replication_values)})


def random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def run() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def own_server(make_storage_settings: Callable[..., Settings]) -> Iterator[Settings]:
    """A SeaweedFS of this test's own, to kill and restart; its data is removed afterwards (pytest
    keeps the temporary directories of the last runs, and this one may hold gigabytes)."""
    settings = make_storage_settings()
    services.up(settings)
    try:
        yield settings
    finally:
        services.down(settings, timeout=5)
        shutil.rmtree(settings.var_dir, ignore_errors=True)


# -- 6 GB: multipart, bounded memory, killed midway and resumed -----------------------------------
WORKER = """
import json, resource, sys
sys.path.insert(0, {src!r})
from pathlib import Path
from preserve.config import Settings
from preserve.storage import open_store
settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
with open_store(settings, settings.target("seaweed")) as store:
    info = store.put_file(sys.argv[2], Path(sys.argv[3]), sha256=sys.argv[4], size=int(sys.argv[5]))
print(json.dumps({{"parts": info.upload.parts, "reused": info.upload.parts_reused, "retries": info.upload.retries,
                  "checksum": info.checksum_raw}}))
"""


def _put_in_subprocess(settings_file: Path, key: str, path: Path, sha: str, size: int) -> subprocess.Popen[str]:
    code = WORKER.format(src=str(ROOT / "src"))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(settings_file), key, str(path), sha, str(size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _sparse_film(path: Path, size: int) -> str:
    """A sparse file (no disk used for its holes) with a random MiB every GiB, so parts differ;
    returns its SHA-256."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in range(0, size - MiB, GiB):
            f.seek(offset + 12345)
            f.write(os.urandom(MiB))
    return sha256_of(path)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_six_gigabytes_in_parts_killed_midway_and_resumed(own_server: Settings, tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    if free < 20 * 10**9:
        pytest.skip(f"needs 20 GB free for the server's copy of a 6 GB object; {free / 10**9:.1f} GB free here")
    settings = own_server
    size = 6 * GiB
    film = tmp_path / "film.mkv"
    sha = _sparse_film(film, size)
    assert os.stat(film).st_blocks * 512 < 64 * MiB  # sparse: no disk blow-up on our side
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(settings.model_dump_json())
    key = "aip-6g/data/objects/film.mkv"

    # first run: a real process, killed with SIGKILL once a few parts are on the server
    first = _put_in_subprocess(settings_file, key, film, sha, size)
    uploaded = kill_once_parts_are_stored(first, settings, "seaweed", key)
    assert 4 <= uploaded < 96

    # second run, also a real process: it resumes, and its peak memory stays far below the file
    started = time.monotonic()
    second = _put_in_subprocess(settings_file, key, film, sha, size)
    _, status, usage = os.wait4(second.pid, 0)
    seconds = time.monotonic() - started
    second.returncode = os.waitstatus_to_exitcode(status)
    out, err = second.communicate()
    assert second.returncode == 0, err
    result = json.loads(out)
    assert result["parts"] == 96  # 64 MiB parts
    assert result["reused"] == uploaded > 0  # every part on the server was kept; none sent twice
    peak_rss = usage.ru_maxrss * 1024
    assert peak_rss < 1 * GiB, f"peak memory {peak_rss / MiB:.0f} MiB for a 6 GiB upload"
    print(
        f"\n6 GiB resumed upload: {uploaded} parts reused, {96 - result['reused']} sent in {seconds:.1f} s "
        f"({(96 - result['reused']) * 64 / seconds:.1f} MiB/s with checksums and verification), "
        f"peak RSS {peak_rss / MiB:.0f} MiB"
    )

    with open_store(settings, settings.target("seaweed")) as store:
        assert isinstance(store, S3Store)
        assert store.pending_uploads(key) == []  # nothing orphaned
        head = store.head(key)
        assert head is not None and head.size == size and head.checksum_raw == result["checksum"]
        # the composite the server keeps is the one of our own file's parts
        digests = []
        with open(film, "rb") as f:
            while part := f.read(64 * MiB):
                digests.append(hashlib.sha256(part).digest())
        assert head.checksum_raw == composite_sha256(digests)
    film.unlink()


def test_interrupted_upload_that_does_not_fit_is_aborted_not_orphaned(
    s3_settings: Settings, run: str, tmp_path: Path
) -> None:
    """An interrupted upload of another file under the same key (other size) is aborted; one of
    the same file is adopted, and a part whose bytes differ from ours is sent again."""
    settings = tuned(s3_settings, multipart_threshold_mb=5)
    src = tmp_path / "f"
    sha = random_file(src, 18 * MiB)
    key = f"{run}/f"
    client, bucket, prefix = raw_s3(settings, "seaweed")
    try:
        stale = client.create_multipart_upload(Bucket=bucket, Key=prefix + key)["UploadId"]
        client.upload_part(Bucket=bucket, Key=prefix + key, UploadId=stale, PartNumber=1, Body=os.urandom(7 * MiB))
        mine = client.create_multipart_upload(Bucket=bucket, Key=prefix + key, ChecksumAlgorithm="SHA256")["UploadId"]
        data = src.read_bytes()
        for n, body in ((1, data[: 5 * MiB]), (2, os.urandom(5 * MiB)), (3, data[10 * MiB : 15 * MiB])):
            client.upload_part(
                Bucket=bucket,
                Key=prefix + key,
                UploadId=mine,
                PartNumber=n,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=__import__("base64").b64encode(hashlib.sha256(body).digest()).decode(),
            )
    finally:
        client.close()
    with open_store(settings, settings.target("seaweed")) as store:
        assert isinstance(store, S3Store)
        info = store.put_file(key, src, sha256=sha, size=len(data))
        assert info.upload is not None and (info.upload.parts, info.upload.parts_reused) == (4, 2)
        assert store.pending_uploads(key) == []
        assert store.get_file(key, tmp_path / "back") == sha


# -- retries --------------------------------------------------------------------------------------
def test_server_stopped_mid_upload_then_started_again(own_server: Settings, tmp_path: Path) -> None:
    settings = tuned(own_server, multipart_threshold_mb=5, max_attempts=8, retry_backoff_seconds=0.5)
    src = tmp_path / "film.mov"
    size = 200 * MiB
    sha = random_file(src, size)
    key = "aip-restart/film.mov"
    result: dict[str, Any] = {}

    def upload() -> None:
        try:
            with open_store(settings, settings.target("seaweed")) as store:
                result["info"] = store.put_file(key, src, sha256=sha, size=size)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    worker = threading.Thread(target=upload)
    worker.start()
    while parts_on_server(settings, "seaweed", key) < 3:
        assert worker.is_alive(), result
        time.sleep(0.05)
    pid = services.status(settings).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the server dies mid-upload
    time.sleep(2)
    assert worker.is_alive(), "the upload ended while the server was down"
    services.up(settings)  # ... and comes back (same data, same ports)
    worker.join(timeout=300)
    assert not worker.is_alive()
    assert "error" not in result, result.get("error")
    info = result["info"]
    assert info.sha256 == sha and info.upload.retries > 0
    with open_store(settings, settings.target("seaweed")) as store:
        assert store.get_file(key, tmp_path / "back") == sha
        assert store.pending_uploads(key) == []  # type: ignore[attr-defined]


def _via_proxy(settings: Settings, proxy: FaultProxy, name: str = "seaweed") -> TargetSettings:
    return settings.target(name).model_copy(
        update={"name": "proxied", "endpoint": proxy.endpoint, "access_key_env": "", "secret_key_env": ""}
    )


@contextlib.contextmanager
def _proxied(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, **faults: Any
) -> Iterator[tuple[FaultProxy, TargetSettings]]:
    """A FaultProxy in front of the session's SeaweedFS, and a target "proxied" that goes through
    it with the seaweed target's credentials (given the way production gives them: env vars)."""
    host, port = settings.services.s3_endpoint.removeprefix("http://").split(":")
    creds = credentials_for(settings, settings.target("seaweed"), env={})
    with FaultProxy((host, int(port)), **faults) as proxy:
        target = _via_proxy(settings, proxy)
        key_env, secret_env = target.env_names()
        monkeypatch.setenv(key_env, creds["aws_access_key_id"])
        monkeypatch.setenv(secret_env, creds["aws_secret_access_key"])
        yield proxy, target


@pytest.mark.parametrize("size_mb", [1, 12])  # one PUT; three parts
def test_corrupting_proxy_nothing_marked_verified(
    s3_settings: Settings, run: str, tmp_path: Path, size_mb: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request body has one byte flipped in transit: the server rejects each one (it
    checks our SHA-256), the retries fail the same way, and no replica is recorded as verified,
    while the filesystem target beside it verifies."""
    settings = tuned(s3_settings, multipart_threshold_mb=5, max_attempts=3, retry_backoff_seconds=0.05)
    src = tmp_path / "film.mov"
    sha = random_file(src, size_mb * MiB)
    with _proxied(settings, monkeypatch, corrupt=-1) as (proxy, target):
        local = TargetSettings(name="local", kind="filesystem", path=tmp_path / "replica")
        outcomes = replication.upload_all(
            settings, [target, local], run, [replication.Upload(f"{run}/film.mov", src, sha, size_mb * MiB)]
        )
        assert proxy.corrupted >= 3  # the first try and every retry were damaged
    proxied, fs = outcomes
    assert isinstance(proxied.error, VerificationError), proxied.error
    assert proxied.objects == [] and not proxied.ok
    assert fs.ok and [o.sha256 for o in fs.objects] == [sha]
    with open_store(settings, settings.target("seaweed")) as store:
        assert store.head(f"{run}/film.mov") is None  # nothing damaged was stored
        assert store.pending_uploads(f"{run}/film.mov") == []  # type: ignore[attr-defined]


def test_one_corrupted_part_is_sent_again(
    s3_settings: Settings, run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tuned(s3_settings, multipart_threshold_mb=5, max_attempts=3, retry_backoff_seconds=0.05)
    src = tmp_path / "film.mov"
    sha = random_file(src, 12 * MiB)
    with _proxied(settings, monkeypatch) as (proxy, target):
        with open_store(settings, target) as store:
            store.check_reachable()  # the server has answered: later failures are retried
            proxy.corrupt = 1
            info = store.put_file(f"{run}/film.mov", src, sha256=sha, size=12 * MiB)
        assert proxy.corrupted == 1
    assert info.sha256 == sha and info.upload is not None and info.upload.retries == 1


# -- Object Lock ------------------------------------------------------------------------------------
def _document_submission(folder: Path, files: int = 3) -> Path:
    folder.mkdir(parents=True)
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
    for i in range(files - 1):
        (folder / f"letter-{i}.txt").write_text(f"letter {i} {uuid.uuid4()}\n" * 50, encoding="utf-8")
    return folder


def test_object_lock_set_verified_recorded_and_delete_refused(s3_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        targets=[
            {
                "name": "vault",
                "kind": "s3",
                "embedded": True,
                "bucket": "preserve-locked",
                "prefix": f"t-{uuid.uuid4().hex[:8]}",
                "object_lock_mode": "GOVERNANCE",
                "object_lock_days": 2,
                "read_back": True,
            },
            {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")},
        ],
    )
    catalog = Catalog(settings.catalog_url)
    try:
        o = ingest_submission(settings, catalog, _document_submission(settings.ingest_dir / "letters"))
        assert o.status == "stored", o.detail
        objects = catalog.objects(aip_id=o.aip_id, target="vault")
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, hours=23)
        assert objects and all(
            ob.lock_mode == "GOVERNANCE" and ob.lock_until and ob.lock_until > soon and ob.version_id for ob in objects
        )
        event = next(
            e for e in catalog.get_aip(o.aip_id).events if e.type is EventType.REPLICATION and e.subject == "vault"
        )
        assert event.outcome is Outcome.PASS and "Object Lock GOVERNANCE until" in event.detail
        assert "read back" in event.detail
        with open_store(settings, settings.target("vault")) as store:
            with pytest.raises(ObjectLocked) as refused:
                store.delete(objects[0].key)
            assert "Object Lock (GOVERNANCE) until" in str(refused.value) and "nothing was deleted" in str(
                refused.value
            )
            assert "s3:BypassGovernanceRetention" in refused.value.advice
            assert store.head(objects[0].key) is not None  # still there
    finally:
        catalog.close()


def test_filesystem_target_refuses_object_lock(s3_settings: Settings, tmp_path: Path) -> None:
    from preserve.core.errors import ConfigError

    target = TargetSettings(
        name="disk", kind="filesystem", path=tmp_path / "d", object_lock_mode="COMPLIANCE", object_lock_days=30
    )
    with pytest.raises(ConfigError, match="cannot enforce Object Lock"):
        open_store(s3_settings, target)


# -- a server that silently ignores a feature (the one place moto is used) ----------------------------
@pytest.fixture
def moto_server() -> Iterator[tuple[str, int]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield server.get_host_and_port()
    finally:
        server.stop()


def test_ignored_features_are_detected(
    moto_server: tuple[str, int], s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    host, port = moto_server
    monkeypatch.setenv("PRESERVE_MOTO_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("PRESERVE_MOTO_SECRET_ACCESS_KEY", "testing")
    raw = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    raw.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    raw.create_bucket(Bucket="plain")
    settings = tuned(s3_settings, multipart_threshold_mb=5, max_attempts=1)
    src = tmp_path / "film.mov"
    sha = random_file(src, 6 * MiB)

    # (b) Object Lock. moto 5.2.5 enforces retention asked for on a single PUT, but silently drops
    # the retention asked for when a multipart upload is created: the object completes with no
    # lock at all. That is exactly a server ignoring a requested feature, so a 6 MiB file (two
    # parts at a 5 MiB threshold) must be refused.
    locked = TargetSettings(
        name="moto",
        kind="s3",
        endpoint=f"http://{host}:{port}",
        bucket="locked",
        object_lock_mode="COMPLIANCE",
        object_lock_days=1,
    )
    with open_store(settings, locked) as store:
        with pytest.raises(FeatureNotHonoured, match="Object Lock|retention") as caught:
            store.put_file("film.mov", src, sha256=sha, size=6 * MiB)
        assert "NOT counted as verified" in str(caught.value)
        assert store.head("film.mov").lock_mode is None  # the server really did ignore it
        # the same server honours it on a single PUT: the check accepts a server that does its job
        small = tmp_path / "small"
        small_sha = random_file(small, 1000)
        info = store.put_file("small", small, sha256=small_sha, size=1000)
        assert info.lock_mode == "COMPLIANCE"

    # (a) checksums. moto keeps the SHA-256 it is sent, so to make it absent we put a gateway in
    # front that drops the x-amz-checksum-* / x-amz-sdk-checksum-* headers it does not know, as
    # some S3 gateways do (moto does not check request signatures, so the stripped request is
    # still accepted). The server then has no checksum to report, and the copy is refused.
    with FaultProxy((host, port), drop_headers=("x-amz-checksum-", "x-amz-sdk-checksum-")) as proxy:
        plain = TargetSettings(name="moto", kind="s3", endpoint=proxy.endpoint, bucket="plain")
        with open_store(settings, plain) as store:
            with pytest.raises(FeatureNotHonoured, match="no SHA-256 checksum"):
                store.put_file("film.mov", src, sha256=sha, size=6 * MiB)
            local = TargetSettings(name="local", kind="filesystem", path=tmp_path / "replica")
            outcomes = replication.upload_all(
                settings, [plain, local], "aip", [replication.Upload("aip/small", small, small_sha, 1000)]
            )
        assert isinstance(outcomes[0].error, FeatureNotHonoured) and outcomes[0].objects == []
        assert outcomes[1].ok

    # read-back: moto also does not check the SHA-256 it is sent, so bytes damaged on the way are
    # stored under our checksum and the HEAD check cannot see it; reading the object back does.
    with FaultProxy((host, port), corrupt=-1) as proxy:
        careful = TargetSettings(name="moto", kind="s3", endpoint=proxy.endpoint, bucket="plain", read_back=True)
        with open_store(settings, careful) as store:
            with pytest.raises(VerificationError, match="read back"):
                store.put_file("damaged", small, sha256=small_sha, size=1000)
        assert proxy.corrupted == 1
    raw.close()


# -- parallel ingest, back-fill, restore fallback -------------------------------------------------------
def test_parallel_replication_backfill_and_restore_fallback(
    s3_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ingest to two targets with parallel uploads; add a third target later and back-fill it
    with `preserve replicate`; damage the preferred replica and restore from the next one."""
    from preserve import cli
    from tests.support import write_config

    run = uuid.uuid4().hex[:8]
    two = [
        {"name": "seaweed", "kind": "s3", "embedded": True, "bucket": "preserve-aips", "prefix": f"t-{run}"},
        {"name": "local", "kind": "filesystem", "path": str(tmp_path / "replica-local")},
    ]
    settings = isolated_settings(
        s3_settings, tmp_path, replication={"parallel_uploads": 3, "min_verified_replicas": 2}, targets=two
    )
    catalog = Catalog(settings.catalog_url)
    try:
        o = ingest_submission(settings, catalog, _document_submission(settings.ingest_dir / "letters", files=8))
        assert o.status == "stored", o.detail
        aip = catalog.get_aip(o.aip_id)
        assert {r.target: r.status for r in aip.replicas} == {"seaweed": "verified", "local": "verified"}
    finally:
        catalog.close()

    # a third target (a second bucket) is added to the config later, then back-filled
    third = {"name": "second", "kind": "s3", "embedded": True, "bucket": "preserve-access", "prefix": f"bf-{run}"}
    later = isolated_settings(s3_settings, tmp_path, replication={"min_verified_replicas": 2}, targets=[*two, third])
    config = write_config(later, tmp_path / "preserve.toml")
    assert cli.main(["--config", str(config), "replicate", "--target", "second"]) == 0
    assert "copied" in capsys.readouterr().out
    catalog = Catalog(later.catalog_url)
    try:
        aip = catalog.get_aip(o.aip_id)
        assert {r.target: r.status for r in aip.replicas} == {
            "seaweed": "verified",
            "local": "verified",
            "second": "verified",
        }
        assert any(
            e.type is EventType.REPLICATION and e.subject == "second" and "back-filled" in e.detail for e in aip.events
        )
        second = next(r for r in aip.replicas if r.target == "second")
        with open_store(later, later.target("second")) as store:
            for obj in second.objects:
                assert hashlib.sha256(b"".join(store.read_chunks(obj.key))).hexdigest() == obj.sha256
        # again: nothing to do
        assert cli.main(["--config", str(config), "replicate"]) == 0
        assert "copied" not in capsys.readouterr().out

        # damage the preferred replica behind preserve's back: restore falls back and says so
        victim = next(ob for ob in second.objects if ob.key.endswith(".txt"))
        client, bucket, prefix = raw_s3(later, "seaweed")
        client.put_object(Bucket=bucket, Key=prefix + victim.key, Body=b"damaged")
        client.close()
        result = restore.restore(later, catalog, o.aip_id, tmp_path / "restored")
        assert result.ok and result.replica == "local"
        assert len(result.attempts) == 1 and result.attempts[0].startswith("seaweed:")
        events = [e for e in catalog.get_aip(o.aip_id).events if e.type is EventType.RESTORE]
        assert [(e.subject, e.outcome) for e in events[-2:]] == [("seaweed", Outcome.FAIL), ("local", Outcome.PASS)]
        assert "after 1 replica(s) failed" in events[-1].detail
    finally:
        catalog.close()


def test_download_dropped_midway_continues_where_it_stopped(
    s3_settings: Settings, run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = tuned(s3_settings, max_attempts=3, retry_backoff_seconds=0.05)
    src = tmp_path / "film.mov"
    sha = random_file(src, 20 * MiB)
    with open_store(settings, settings.target("seaweed")) as store:
        store.put_file(f"{run}/film.mov", src, sha256=sha, size=20 * MiB)
    with _proxied(settings, monkeypatch, cut_response_after=7 * MiB) as (proxy, target):
        with caplog.at_level("WARNING", logger="preserve.storage.s3"), open_store(settings, target) as store:
            assert store.get_file(f"{run}/film.mov", tmp_path / "back.mov") == sha
        assert proxy.cuts == 1
    assert "dropped after" in caplog.text and "dropped after 0 bytes" not in caplog.text
    assert (tmp_path / "back.mov").read_bytes() == src.read_bytes()


def test_uploads_run_in_parallel_across_targets(
    s3_settings: Settings, run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`parallel_uploads` uploads (put_source calls) are under way at once (the real ones,
    counted on the way in and out), and every object on both targets verifies."""
    from preserve.storage.local import LocalStore

    settings = tuned(s3_settings, parallel_uploads=3)
    uploads = []
    for i in range(6):
        path = tmp_path / f"reel-{i}.mov"
        uploads.append(replication.Upload(f"{run}/reel-{i}.mov", path, random_file(path, 256 * 1024), 256 * 1024))
    active, peak, lock = 0, 0, threading.Lock()

    def counting(real: Callable[..., Any]) -> Callable[..., Any]:
        def put_source(self: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            try:
                time.sleep(0.2)  # long enough for the pool to start the others
                return real(self, *args, **kwargs)
            finally:
                with lock:
                    active -= 1

        return put_source

    # put_file is a call of put_source: wrapping put_source counts each upload once, by either way in
    monkeypatch.setattr(S3Store, "put_source", counting(S3Store.put_source))
    monkeypatch.setattr(LocalStore, "put_source", counting(LocalStore.put_source))
    targets = [settings.target("seaweed"), TargetSettings(name="disk", kind="filesystem", path=tmp_path / "disk")]
    outcomes = replication.upload_all(settings, targets, run, uploads)
    assert peak == 3
    assert all(o.ok and [ob.key for ob in o.objects] == sorted(u.key for u in uploads) for o in outcomes)
    with open_store(settings, targets[0]) as store:
        assert all(store.get_file(u.key, tmp_path / "back") == u.sha256 for u in uploads)


def test_server_errors_are_retried_with_backoff(
    s3_settings: Settings, run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two 503 answers in a row with max_attempts=3: preserve's one retry layer (botocore's own
    retries are off) carries the part through with backoff, and counts both retries; the object
    then verifies."""
    settings = tuned(s3_settings, multipart_threshold_mb=5, max_attempts=3, retry_backoff_seconds=0.05)
    src = tmp_path / "film.mov"
    sha = random_file(src, 12 * MiB)
    with _proxied(settings, monkeypatch) as (proxy, target):
        with open_store(settings, target) as store:
            store.check_reachable()
            proxy.unavailable = 2
            info = store.put_file(f"{run}/film.mov", src, sha256=sha, size=12 * MiB)
        assert proxy.refused == 2
    assert info.sha256 == sha and info.upload is not None and info.upload.retries == 2
    with open_store(settings, settings.target("seaweed")) as store:
        assert store.get_file(f"{run}/film.mov", tmp_path / "back") == sha


def test_each_request_is_tried_max_attempts_times_in_all(
    s3_settings: Settings, run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One retry layer: a PUT the server keeps refusing with 503 reaches it exactly max_attempts
    times (with botocore's retries stacked under preserve's it was 4 x max_attempts), then fails
    as StorageUnavailable and nothing is stored."""
    settings = tuned(s3_settings, max_attempts=3, retry_backoff_seconds=0.05)
    src = tmp_path / "film.mov"
    sha = random_file(src, 1 * MiB)  # one PUT
    with _proxied(settings, monkeypatch) as (proxy, target):
        with open_store(settings, target) as store:
            store.check_reachable()
            proxy.unavailable = 10
            with pytest.raises(StorageUnavailable, match="still failing after retries"):
                store.put_file(f"{run}/film.mov", src, sha256=sha, size=1 * MiB)
        assert proxy.refused == 3
    with open_store(settings, settings.target("seaweed")) as store:
        assert store.head(f"{run}/film.mov") is None
