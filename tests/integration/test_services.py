"""The embedded SeaweedFS lifecycle (`preserve.dev.services`): status, idempotent up, loopback-only
binding, private credentials, stale pid files, restarts that keep data; and every port it opens
refusing anonymous reads, writes and deletes (mutual TLS and JWTs; S3 signed), tested port by port."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import ssl
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


# ==== issue 18: every door of the embedded store is locked ==========================================
#: Go's reply to plain HTTP on a TLS port: nothing past the TLS layer is reached
PLAIN_ON_TLS = b"HTTP request to an HTTPS server"
#: the HTTP/2 client preface and an empty SETTINGS frame: how a gRPC client opens a connection
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _weed_listeners(pid: int) -> tuple[set[int], set[str]]:
    """(TCP ports, Unix socket paths) the process listens on, from its fds and /proc/net."""
    import re

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
            if m:
                inodes.add(m.group(1))
    tcp: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and f[9] in inodes:
                    tcp.add(int(f[1].rsplit(":", 1)[1], 16))
    unix: set[str] = set()
    cwd = os.readlink(f"/proc/{pid}/cwd")
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[6] in inodes and int(f[3], 16) & 0x10000:  # __SO_ACCEPTCON: listening
            unix.add(os.path.join(cwd, f[7]))
    return tcp, unix


def _tls_files(settings: Settings) -> tuple[str, str, str]:
    tls = settings.services_dir / "seaweedfs" / "tls"
    return str(tls / "ca.crt"), str(tls / "weed.crt"), str(tls / "weed.key")


def _context(settings: Settings, *, client_cert: bool, alpn: str | None = None) -> ssl.SSLContext:
    """Trusts the server (so a failure can only be about the client); with or without the
    client certificate preserve generated."""
    ca, cert, key = _tls_files(settings)
    ctx = ssl.create_default_context(cafile=ca)
    if client_cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx


def _http(port: int, method: str, path: str, ctx: ssl.SSLContext | None = None) -> tuple[int, bytes] | None:
    """(status, body) of an unsigned request, or None when the connection is refused, reset or
    closed, or the TLS handshake fails."""
    conn = (
        http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        if ctx
        else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    )
    try:
        conn.request(method, path, body=b"rogue bytes" if method == "PUT" else None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):  # ssl.SSLError is an OSError
        return None
    finally:
        conn.close()


def _h2_settings_frame(port: int, ctx: ssl.SSLContext | None = None) -> bool:
    """Does the port answer a gRPC client's opening (HTTP/2 preface) with a SETTINGS frame?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1") if ctx else raw
            s.sendall(H2_PREFACE)
            head = s.recv(9)
            return len(head) == 9 and head[3] == 0x04
    except OSError:
        return False


def test_every_port_refuses_anonymous_reads_writes_and_deletes(s3_settings: Settings, tmp_path: Path) -> None:
    """Every TCP port the weed process listens on is one of the ten configured, and each refuses
    an anonymous GET, PUT and DELETE; the gRPC ports refuse an anonymous gRPC opening, plaintext
    or TLS without the client certificate. With preserve's own credentials everything works."""
    st = services.status(s3_settings)
    assert st.pid is not None
    tcp, _ = _weed_listeners(st.pid)
    configured = services.ports(s3_settings)
    assert tcp == set(configured.values()), f"unexpected listeners: {sorted(tcp - set(configured.values()))}"

    store = open_store(s3_settings, s3_settings.target("seaweed"))
    src = tmp_path / "kept.bin"
    src.write_bytes(os.urandom(4096))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    key = f"lockdown-{os.getpid()}/kept.bin"
    store.put_file(key, src, sha256=sha, size=4096)  # preserve's own S3 access works
    bucket_key = f"preserve-aips/aips/{key}"
    s3_port = configured["s3.port"]
    for method, path in (
        ("GET", "/"),  # ListBuckets
        ("GET", "/preserve-aips?list-type=2"),
        ("GET", f"/{bucket_key}"),
        ("PUT", f"/{bucket_key}.rogue"),
        ("PUT", f"/{bucket_key}"),
        ("DELETE", f"/{bucket_key}"),
    ):
        got = _http(s3_port, method, path)
        assert got is not None and got[0] == 403, (method, path, got)

    no_cert, with_cert = _context(s3_settings, client_cert=False), _context(s3_settings, client_cert=True)
    for flag, port in configured.items():
        if flag == "s3.port":
            continue
        for method in ("GET", "PUT", "DELETE"):
            for path in ("/", f"/buckets/{bucket_key}", "/dir/assign", "/status"):
                plain = _http(port, method, path)
                assert plain is None or (plain[0] == 400 and PLAIN_ON_TLS in plain[1]), (flag, method, path, plain)
                assert _http(port, method, path, no_cert) is None, (flag, method, path)
        if flag.endswith(".grpc"):
            assert not _h2_settings_frame(port), flag
            assert not _h2_settings_frame(port, _context(s3_settings, client_cert=False, alpn="h2")), flag
            # the control: the same opening with the certificate is answered, so the refusals are locks
            assert _h2_settings_frame(port, _context(s3_settings, client_cert=True, alpn="h2")), flag
        else:
            answer = _http(port, "GET", "/", with_cert)
            assert answer is not None, flag
            if flag in ("volume.port", "filer.port"):  # behind the TLS lock, a JWT is still needed
                assert answer[0] == 401, (flag, answer)

    head = store.head(key)
    assert head is not None and head.sha256 == sha  # nothing was deleted or overwritten
    assert store.head(f"{key}.rogue") is None
    assert store.get_file(key, tmp_path / "back.bin") == sha
    store.close()


def test_unix_sockets_and_secrets_are_for_the_archive_user_only(s3_settings: Settings) -> None:
    """weed's Unix sockets are 0700 or in the 0700 service folder; its keys, certificates and
    settings are 0600; the CA's key is not on disk. As root, a probe running as `nobody` can
    connect to none of the sockets and read none of the files."""
    import shutil
    import subprocess

    st = services.status(s3_settings)
    assert st.pid is not None
    _, unix = _weed_listeners(st.pid)
    d = s3_settings.services_dir / "seaweedfs"
    assert unix, "weed opened no Unix sockets (has SeaweedFS changed?)"
    for path in unix:
        inside = Path(path).resolve().is_relative_to(d.resolve())
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert inside or mode & 0o077 == 0, (path, oct(mode))
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "data").stat().st_mode) == 0o700
    for name in ("security.toml", "tls/ca.crt", "tls/weed.crt", "tls/weed.key", "s3.json", "weed.log", "weed.pid"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600, name
    private_keys = [p for p in d.rglob("*") if p.is_file() and not p.is_socket() and b"PRIVATE KEY" in p.read_bytes()]
    assert [p.name for p in private_keys] == ["weed.key"]  # no CA key: no other certificate can be made
    environ = Path(f"/proc/{st.pid}/environ").read_bytes().split(b"\0")
    assert sorted(e.split(b"=", 1)[0] for e in environ if e) == [b"HOME", b"PATH"]

    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or python is None:
        pytest.skip("the probe as another user needs root and /usr/bin/python3")
    probe = (
        "import json, socket, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        if p.endswith('.sock'):\n"
        "            s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(p); s.close()\n"
        "        else:\n"
        "            open(p, 'rb').read(1)\n"
        "        out[p] = 'open'\n"
        "    except OSError as e:\n"
        "        out[p] = type(e).__name__\n"
        "print(json.dumps(out))\n"
    )
    targets = [*sorted(unix), str(d / "tls" / "weed.key"), str(d / "credentials.json"), str(d / "security.toml")]
    done = subprocess.run(
        [python, "-I", "-c", probe, *targets], capture_output=True, text=True, timeout=60, user=65534, group=65534
    )
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout)
    assert result == {t: "PermissionError" for t in targets}


def test_callers_environment_cannot_open_a_door(
    make_storage_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_* in the caller's environment would make weed mini add an S3 identity, and WEED_*
    would override security.toml: weed gets neither."""
    import boto3
    import botocore.exceptions

    settings = make_storage_settings()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "INJECTEDKEY123456789")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "injected-secret")
    monkeypatch.setenv("WEED_JWT_FILER_SIGNING_KEY", "")
    try:
        services.up(settings)
        client = boto3.client(
            "s3",
            endpoint_url=settings.services.s3_endpoint,
            aws_access_key_id="INJECTEDKEY123456789",
            aws_secret_access_key="injected-secret",
            region_name="us-east-1",
        )
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.list_objects_v2(Bucket="preserve-aips")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        client.close()
        filer = services.ports(settings)["filer.port"]
        got = _http(filer, "GET", "/buckets/", _context(settings, client_cert=True))
        assert got is not None and got[0] == 401  # the filer still asks for its JWT
    finally:
        services.down(settings)


def test_a_server_started_open_is_restarted_locked(
    make_storage_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server left running by an earlier preserve (every port but S3 open) is not reused: `up`
    restarts it with the locks on, keeping its data."""
    settings = make_storage_settings()
    real_argv, real_security = services._argv, services.write_security
    monkeypatch.setattr(
        services,
        "_argv",
        lambda s: [a for a in real_argv(s) if not any(a.startswith(f"-{f}=") for f in services.LOCAL_SOCKET_FLAGS)],
    )
    monkeypatch.setattr(services, "write_security", lambda s: None)
    try:
        old = services.up(settings)
        filer = services.ports(settings)["filer.port"]
        open_door = _http(filer, "GET", "/")
        assert open_door is not None and open_door[0] == 200  # the old way: the filer answers anyone
        monkeypatch.setattr(services, "_argv", real_argv)
        monkeypatch.setattr(services, "write_security", real_security)
        new = services.up(settings)
        assert new.started and new.pid != old.pid
        plain = _http(filer, "GET", "/")
        assert plain is None or plain[0] == 400
    finally:
        services.down(settings)
