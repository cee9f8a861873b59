"""Alerts reach real receivers on 127.0.0.1: an HTTP server taking webhook POSTs and an SMTP
server (aiosmtpd). A quarantined ingest alerts at once; damage and AIPs at risk alert from the
catalog's state by a sweep, once per condition; an unreachable receiver loses nothing."""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from preserve.catalog import Catalog, NewAip, ReplicaRecord, StoredObject
from preserve.config import Settings
from preserve.core.model import Agent, Digests, Event, EventType, Outcome, PayloadFile, Role, utcnow
from preserve.operations import alerts
from preserve.pipeline import ingest_submission
from tests.mediafactory import make_clip, truncated_copy
from tests.support import isolated_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receivers:
    """A webhook receiver and an SMTP server on loopback, recording what they get."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.mails: list[email.message.EmailMessage] = []
        received = self.posts

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(
                    {"path": self.path, "content_type": self.headers["Content-Type"], "json": json.loads(body)}
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.webhook_url = f"http://127.0.0.1:{self.http.server_address[1]}/hooks/preserve"

        from aiosmtpd.controller import Controller

        mails = self.mails

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=policy.default)
                msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
                mails.append(msg)
                return "250 OK"

        self.smtp_port = _free_port()
        self.smtp = Controller(Handler(), hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()

    def settings(self, **over: Any) -> dict[str, Any]:
        return {
            "webhook_url": self.webhook_url,
            "smtp_host": "127.0.0.1",
            "smtp_port": self.smtp_port,
            "smtp_security": "none",
            "smtp_from": "preserve@archive.test",
            "smtp_to": ["ops@archive.test"],
            "timeout_seconds": 5,
            **over,
        }

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.smtp.stop()


@pytest.fixture()
def receivers() -> Iterator[Receivers]:
    r = Receivers()
    yield r
    r.close()


def test_a_quarantined_ingest_alerts_webhook_and_email(
    s3_settings: Settings, tmp_path: Path, receivers: Receivers
) -> None:
    settings = isolated_settings(s3_settings, tmp_path, alerts=receivers.settings())
    folder = settings.ingest_dir / "cut film"
    folder.mkdir()
    truncated_copy(make_clip(tmp_path / "x.mp4", duration=2.0), folder / "cut film.mp4", 0.5)
    (folder / "metadata.yaml").write_text("title: Cut\ndirector: Real Person Name\n", encoding="utf-8")
    catalog = Catalog(settings.catalog_url)

    outcome = ingest_submission(settings, catalog, folder)

    assert outcome.status == "quarantined"
    [post] = receivers.posts
    assert post["path"] == "/hooks/preserve" and post["content_type"].startswith("application/json")
    body = post["json"]
    assert body["kind"] == "ingest-failed" and body["subject"] == "cut film"
    assert body["detail"]["error"] == "MediaError" and body["detail"]["step"] == "characterise"
    assert body["detail"]["quarantine_dir"].endswith("failed/cut film") and body["detail"]["advice"]
    [mail] = receivers.mails
    assert mail["Subject"] == "[preserve] Ingest failed: cut film"
    assert mail["X-Envelope-To"] == "ops@archive.test" and mail["From"] == "preserve@archive.test"
    assert "MediaError" in mail.get_content()
    for leaked in (json.dumps(body, ensure_ascii=False), mail.as_string()):
        assert "Real Person Name" not in leaked  # sidecar metadata never leaves in an alert
    [rec] = catalog.alerts()
    assert rec.delivered is not None and rec.attempts == 1 and rec.last_error == ""
    catalog.close()


def test_an_invalid_sidecar_alert_quotes_none_of_its_values(
    s3_settings: Settings, tmp_path: Path, receivers: Receivers
) -> None:
    """The sidecar error names the bad values (for the archivist, in REPORT.txt); the alert,
    which leaves the archive, must not: a home-directory path carries a person's name."""
    settings = isolated_settings(s3_settings, tmp_path, alerts=receivers.settings(smtp_host=""))
    film = settings.ingest_dir / "film.mp4"
    film.write_bytes(b"not really a film")
    (settings.ingest_dir / "film.mp4.yaml").write_text(
        "title: T\nposter: /Users/zhangweiming/shoot/poster.jpg\nyear: Kunming 2019\n", encoding="utf-8"
    )
    catalog = Catalog(settings.catalog_url)

    outcome = ingest_submission(settings, catalog, film)

    assert outcome.status == "quarantined"
    report = (settings.failed_dir / "film.mp4" / "REPORT.txt").read_text(encoding="utf-8")
    assert "zhangweiming" in report and "Kunming" in report  # the archivist sees what to fix
    [post] = receivers.posts
    assert post["json"]["detail"]["error"] == "SidecarError" and "REPORT.txt" in post["json"]["detail"]["message"]
    sent = json.dumps(post["json"], ensure_ascii=False)
    assert "zhangweiming" not in sent and "Kunming" not in sent
    # the outcome (shown on the dashboard and in the watcher's log) does not quote them either
    assert outcome.detail.startswith("SidecarError") and "zhangweiming" not in outcome.detail
    catalog.close()


def test_unreachable_receivers_lose_neither_the_quarantine_nor_the_alert(
    s3_settings: Settings, tmp_path: Path, receivers: Receivers
) -> None:
    dead = _free_port()
    settings = isolated_settings(
        s3_settings,
        tmp_path,
        alerts={
            **receivers.settings(),
            "webhook_url": f"http://127.0.0.1:{dead}/x",
            "smtp_port": dead,
            "timeout_seconds": 2,
        },
    )
    bad = truncated_copy(make_clip(tmp_path / "x.mp4", duration=2.0), settings.ingest_dir / "cut.mp4", 0.5)
    catalog = Catalog(settings.catalog_url)

    outcome = ingest_submission(settings, catalog, bad)

    assert outcome.status == "quarantined" and "MediaError" in outcome.detail  # the original failure, unmasked
    assert (settings.failed_dir / "cut.mp4" / "REPORT.txt").exists()
    [rec] = catalog.alerts()
    assert rec.delivered is None and "webhook" in rec.last_error and "email" in rec.last_error
    assert catalog.status().undelivered_alerts == 1

    # the receivers are back: the next sweep delivers it, and only once
    fixed = isolated_settings(s3_settings, tmp_path, alerts=receivers.settings())
    sent = alerts.sweep(fixed, catalog)
    assert [a.kind for a, _ in sent] == ["ingest-failed"]
    assert len(receivers.posts) == 1 and len(receivers.mails) == 1
    assert alerts.sweep(fixed, catalog) == []
    assert catalog.alerts()[0].delivered is not None
    catalog.close()


def _stored_aip(catalog: Catalog, aip_id: str) -> None:
    now = utcnow()
    f = PayloadFile("data/objects/film.mkv", Digests(10, {"sha256": "a" * 64, "sha512": "b" * 128}), Role.VIDEO)
    replicas = [
        ReplicaRecord(
            t,
            f"{t}://{aip_id}/",
            "verified",
            now,
            (StoredObject(t, f"{aip_id}/data/objects/film.mkv", 10, "a" * 64, now),),
        )
        for t in ("seaweed", "local")
    ]
    catalog.record_aip(
        NewAip(
            id=aip_id,
            title="Film",
            submission_name=f"{aip_id}.mkv",
            access_level="open",
            payload_oxum="10.1",
            files=[f],
            replicas=replicas,
            access=[],
            events=[Event(EventType.INGESTION, Outcome.PASS, Agent("preserve"))],
        )
    )


def test_damage_and_at_risk_alert_once_from_the_catalog(tmp_path: Path, receivers: Receivers) -> None:
    from preserve import config as settings_mod

    settings = settings_mod.load(
        settings_mod.DEFAULT_CONFIG,
        env={},
        overrides={
            "archive": {"var_dir": str(tmp_path / "var")},
            "replication": {"min_verified_replicas": 2},
            "alerts": receivers.settings(webhook_format="slack"),
        },
    )
    catalog = Catalog(settings.catalog_url)
    _stored_aip(catalog, "aip-ok")
    _stored_aip(catalog, "aip-hurt")
    assert alerts.sweep(settings, catalog) == []  # all well: nothing to say

    catalog.record_object_check(
        "aip-hurt", "local", "aip-hurt/data/objects/film.mkv", status="damaged", verified_at=None
    )
    sent = alerts.sweep(settings, catalog)

    assert sorted(a.kind for a, _ in sent) == ["at-risk", "damage"]
    assert all(d.ok for _, ds in sent for d in ds)
    texts = [p["json"]["text"] for p in receivers.posts]  # Slack-compatible bodies
    assert all(set(p["json"]) == {"text"} for p in receivers.posts)
    assert any(t.startswith("*[preserve] Damage found: aip-hurt*") and "local" in t for t in texts)
    assert any(t.startswith("*[preserve] AIP at risk: aip-hurt*") and "1 verified replica(s)" in t for t in texts)
    assert sorted(m["Subject"] for m in receivers.mails) == [
        "[preserve] AIP at risk: aip-hurt",
        "[preserve] Damage found: aip-hurt",
    ]
    assert alerts.sweep(settings, catalog) == []  # the same damage is announced once

    catalog.record_object_check(
        "aip-hurt", "seaweed", "aip-hurt/data/objects/film.mkv", status="missing", verified_at=None
    )  # new damage: a new alert
    assert sorted(a.kind for a, _ in alerts.sweep(settings, catalog)) == ["at-risk", "damage"]
    catalog.close()
