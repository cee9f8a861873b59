"""An object written under an AIP's prefix behind preserve's back makes `preserve audit` exit 1,
whatever route wrote it: S3 with the archive's own key, or SeaweedFS's filer API (since issue 18
open only to the holder of the store's client certificate and a filer JWT). The audit leaves it in
place for a person, through the library, `preserve audit --direct` and the default flow route."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from preserve import cli
from preserve.config import Settings
from preserve.core.model import EventType
from preserve.dev import services
from tests.integration.test_audit import archive  # noqa: F401  (the fixture: two stored AIPs)
from tests.support import raw_s3, write_config


def _filer_jwt(settings: Settings) -> str:
    """A filer write token as SeaweedFS's S3 gateway makes them: HS256 over an expiry, signed
    with the [jwt.filer_signing] key of this start."""
    conf = tomllib.loads((settings.services_dir / "seaweedfs" / "security.toml").read_text())
    key = conf["jwt"]["filer_signing"]["key"].encode()

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"exp": int(time.time()) + 60}).encode())
    sig = b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def _filer_put(settings: Settings, bucket_key: str, data: bytes) -> int:
    """PUT through the filer's HTTP API, with the client certificate and a filer JWT."""
    tls = settings.services_dir / "seaweedfs" / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(tls / "weed.crt"), str(tls / "weed.key"))
    port = services.ports(settings)["filer.port"]
    req = urllib.request.Request(
        f"https://127.0.0.1:{port}/buckets/{bucket_key}",
        data=data,
        method="PUT",
        headers={"Authorization": f"Bearer {_filer_jwt(settings)}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    with opener.open(req, timeout=30) as resp:
        return int(resp.status)


def test_rogue_objects_by_any_route_make_the_audit_exit_1(archive, tmp_path: Path, capsys) -> None:  # noqa: F811
    settings, catalog, aips = archive
    client, bucket, prefix = raw_s3(settings, "seaweed")
    via_s3 = f"{aips[0]}/data/objects/rogue-s3.bin"
    via_filer = f"{aips[1]}/data/objects/rogue-filer.bin"
    client.put_object(Bucket=bucket, Key=prefix + via_s3, Body=b"written with the archive's own key")
    assert _filer_put(settings, f"{bucket}/{prefix}{via_filer}", b"written through the filer") == 201
    config = write_config(settings, tmp_path / "preserve.toml")

    assert cli.main(["--config", str(config), "audit", "--direct"]) == cli.EXIT_FINDING
    out = capsys.readouterr().out
    assert f"UNEXPECTED seaweed:{via_s3}" in out and f"UNEXPECTED seaweed:{via_filer}" in out
    for aip in aips:
        assert any("unexpected object" in e.detail for e in catalog.events(aip, EventType.FIXITY_CHECK))

    # the default route: the fixity-audit flow, in a CLI of its own (Prefect's state kept apart)
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "preserve.cli", "--config", str(config), "audit"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == cli.EXIT_FINDING, done.stdout + done.stderr
    assert f"UNEXPECTED seaweed:{via_filer}" in done.stdout
    body = client.get_object(Bucket=bucket, Key=prefix + via_filer)["Body"].read()
    assert body == b"written through the filer"  # left in place for a person
