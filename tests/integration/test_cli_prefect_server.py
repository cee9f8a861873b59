"""A killed `preserve ingest` leaves no Prefect server behind (issue 18). Prefect's own temporary
API server is stopped only by an atexit hook, which neither SIGTERM nor SIGKILL runs; the CLI now
starts its own, tied to it (`preserve.dev.daemon.start_tied`), and the kernel ends it with the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preserve.config import Settings
from preserve.dev import daemon
from tests.support import isolated_settings, write_config

pytestmark = pytest.mark.timeout(600)

#: the bounded wait for a process to disappear: generous, since two cores are shared; not a timing claim
GONE_WITHIN = 60.0


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry), cmdline))
    return found


def _wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def _gone(pid: int) -> bool:
    return not daemon.alive(pid)  # a zombie waiting for init to reap it counts as gone


@pytest.mark.parametrize("where", ["main thread", "other thread"])
def test_a_tied_child_dies_with_its_parent(where: str, tmp_path: Path) -> None:
    """The mechanism alone, with a small server (http.server): started from the main thread
    (parent-death signal and pipe watch) or from a thread that has ended (pipe watch only, since
    the kernel's signal would follow the thread), the child outlives the thread but not a SIGKILL
    of its parent."""
    port = daemon.free_loopback_port()
    parent_code = (
        "import sys, threading, time\n"
        "from preserve.dev import daemon\n"
        f"args = ['--bind', '127.0.0.1', '{port}']\n"
        "box = []\n"
        "start = lambda: box.append(daemon.start_tied('http.server', args))\n"
        + ("start()\n" if where == "main thread" else "t = threading.Thread(target=start); t.start(); t.join()\n")
        + "print(box[0].pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        _wait_for(lambda: daemon.answers(f"http://127.0.0.1:{port}/"), 60, "the tied server did not answer")
        assert [pid for pid, _ in _children(parent.pid)] == [child]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        _wait_for(lambda: _gone(child), GONE_WITHIN, f"the tied child {child} still runs after its parent was killed")
    finally:
        parent.kill()
        parent.wait()


@pytest.fixture()
def cli_env(s3_settings: Settings, tmp_path: Path) -> tuple[Settings, Path, dict[str, str]]:
    settings = isolated_settings(s3_settings, tmp_path)
    config = write_config(settings, tmp_path / "preserve.toml")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    return settings, config, env


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_ingest_leaves_no_prefect_server(cli_env, sig: signal.Signals) -> None:
    """`preserve ingest` through the flow (not --direct) on a small file: once its temporary
    Prefect API answers, the CLI is killed; that server is gone soon after."""
    settings, config, env = cli_env
    src = settings.ingest_dir / "notes.pdf"
    src.write_bytes(b"%PDF-1.4\n" + os.urandom(200_000) + b"\n%%EOF\n")
    cli = subprocess.Popen(
        [sys.executable, "-m", "preserve.cli", "--config", str(config), "ingest", str(src)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def server() -> tuple[int, int] | None:
            for pid, cmdline in _children(cli.pid):
                if "prefect.server.api.server:create_app" in cmdline:
                    argv = cmdline.split()
                    return pid, int(argv[argv.index("--port") + 1])
            return None

        server_pid, port = _wait_for(server, 120, "no temporary Prefect server was started by the CLI")
        _wait_for(lambda: daemon.answers(f"http://127.0.0.1:{port}/api/health"), 180, "it never answered")
        assert cli.poll() is None, "the CLI finished before it could be killed: the test proved nothing"
        cli.send_signal(sig)
        cli.wait(timeout=60)
        _wait_for(lambda: _gone(server_pid), GONE_WITHIN, f"Prefect server {server_pid} outlived the killed CLI")
        assert not daemon.answers(f"http://127.0.0.1:{port}/api/health")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert src.exists()  # killed mid-ingest: the source is still where it was dropped
