"""The embedded SeaweedFS lifecycle (`preserve.dev.services`): status, idempotent up, loopback-only
binding, private credentials, stale pid files, restarts that keep data."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from preserve.config import Settings
from preserve.core.errors import StorageUnavailable
from preserve.dev import services
from preserve.storage import open_store
from preserve.storage.credentials import embedded_credentials

pytestmark = pytest.mark.timeout(120)


def test_status_reports_running(s3_settings: Settings) -> None:
    st = services.status(s3_settings)
    assert st.running and st.pid is not None
    assert st.endpoint == f"http://127.0.0.1:{s3_settings.services.port_base}"
    assert st.directory == s3_settings.services_dir / "seaweedfs"


def test_up_when_up_is_a_no_op(s3_settings: Settings) -> None:
    before = services.status(s3_settings)
    again = services.up(s3_settings)
    assert again.running and not again.started
    assert again.pid == before.pid


def test_credentials_are_private_and_reused(s3_settings: Settings) -> None:
    d = s3_settings.services_dir / "seaweedfs"
    for name in ("credentials.json", "s3.json"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    first = services.ensure_credentials(s3_settings)
    assert services.ensure_credentials(s3_settings) == first
    assert s3_settings.target("seaweed").credentials({}) is None  # no key of its own: the server's keys
    creds = embedded_credentials(s3_settings)
    assert creds["aws_access_key_id"] == first["access_key"]


def _listeners(path: str) -> list[tuple[str, int]]:
    out = []
    with open(path) as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            addr, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A":  # LISTEN
                out.append((addr, int(port_hex, 16)))
    return out


def test_binds_loopback_only_without_telemetry(s3_settings: Settings) -> None:
    ours = set(services.ports(s3_settings).values())
    v4 = [(a, p) for a, p in _listeners("/proc/net/tcp") if p in ours]
    v6 = [(a, p) for a, p in _listeners("/proc/net/tcp6") if p in ours] if os.path.exists("/proc/net/tcp6") else []
    assert v4, "no listening sockets found for the server's ports"
    assert all(addr == "0100007F" for addr, _ in v4), v4  # 127.0.0.1
    assert v6 == []
    pid = services.status(s3_settings).pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"-master.telemetry=false" in argv and b"-ip.bind=127.0.0.1" in argv


def test_buckets_exist_with_versioning_and_lock(s3_settings: Settings) -> None:
    store = open_store(s3_settings, s3_settings.target("seaweed"))
    client = store._client  # type: ignore[attr-defined]
    for bucket in ("preserve-aips", "preserve-access", "preserve-locked"):
        assert client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    cfg = client.get_object_lock_configuration(Bucket="preserve-locked")
    assert cfg["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"


def test_port_in_use_is_reported_without_starting(make_storage_settings: Callable[[], Settings]) -> None:
    settings = make_storage_settings()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", settings.services.port_base + 4))
        blocker.listen()
        with pytest.raises(StorageUnavailable, match="volume.port="):
            services.up(settings)
    assert not services.status(settings).running


def test_start_failure_reports_the_log_tail(
    make_storage_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_storage_settings()
    real_argv = services._argv
    monkeypatch.setattr(services, "_argv", lambda s: [*real_argv(s), "-no.such.flag=1"])
    with pytest.raises(StorageUnavailable, match="(?s)exited with status.*no.such.flag"):
        services.up(settings)
    assert not services.status(settings).running
    assert not (settings.services_dir / "seaweedfs" / "weed.pid").exists()


def test_lifecycle_stale_pid_and_restart_keeps_data(
    make_storage_settings: Callable[[], Settings], tmp_path: Path
) -> None:
    """Its own server: stop, stale pid file, start again; an object survives the restart."""
    settings = make_storage_settings()
    pid_file = settings.services_dir / "seaweedfs" / "weed.pid"
    try:
        first = services.up(settings)
        assert first.running and first.started

        src = tmp_path / "reel.mov"
        src.write_bytes(os.urandom(50_000))
        sha = hashlib.sha256(src.read_bytes()).hexdigest()
        store = open_store(settings, settings.target("seaweed"))
        store.put_file("keep/reel.mov", src, sha256=sha, size=50_000)
        assert store.get_file("keep/reel.mov", tmp_path / "back.mov") == sha
        # after a GET, an open keep-alive connection stalls weed's shutdown for ~30 s
        store.close()

        t0 = time.monotonic()
        services.down(settings)
        assert time.monotonic() - t0 < 9, "SIGTERM took long enough to be followed by SIGKILL"
        assert not services.status(settings).running
        assert not pid_file.exists()
        services.down(settings)  # down when down is a no-op

        pid_file.write_text(f"{os.getpid()}\n")  # alive, but not our weed: stale
        st = services.status(settings)
        assert not st.running and "stale" in st.detail

        second = services.up(settings)
        assert second.running and second.started and second.pid != os.getpid()
        head = store.head("keep/reel.mov")
        assert head is not None and head.sha256 == sha
    finally:
        services.down(settings)


def test_daemon_lifecycle_term_then_kill(tmp_path: Path) -> None:
    """The one start/health/stop helper (SeaweedFS and the Prefect server both use it): a detached
    process with a pid file and a log; a health check that fails once the process is gone; a
    process that ignores SIGTERM is killed after the timeout, and its pid file removed."""
    import signal
    import sys

    from preserve.dev import daemon

    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    pid_file, log = tmp_path / "stubborn.pid", tmp_path / "stubborn.log"
    started = daemon.start([sys.executable, "-c", stubborn], log_path=log, pid_file=pid_file)
    try:
        assert daemon.read_pid(pid_file) == started.pid and daemon.alive(started.pid)
        assert os.getsid(started.pid) == started.pid  # its own session: a terminal's Ctrl-C does not reach it
        assert daemon.wait_healthy(started.pid, lambda: "up" in log.read_text(), timeout=30)
        t0 = time.monotonic()
        daemon.stop(started.pid, name="stubborn", timeout=0.5, kill_timeout=5.0, pid_file=pid_file)
        assert time.monotonic() - t0 < 5
        assert not daemon.alive(started.pid) and not pid_file.exists()
        assert started.returncode == -signal.SIGKILL
    finally:
        if daemon.alive(started.pid):
            os.kill(started.pid, signal.SIGKILL)

    quitter = daemon.start([sys.executable, "-c", "raise SystemExit(3)"], log_path=log)
    assert not daemon.wait_healthy(quitter.pid, lambda: False, timeout=30)  # gone: no waiting out the timeout
    assert quitter.returncode == 3 and quitter.log_start > 0
