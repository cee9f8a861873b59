"""Alerts to the operators: a failed (quarantined) ingest, damage found by an audit, an AIP at
risk. Each alert is written to the catalog first (so one that cannot be delivered is still seen
by `preserve status` and retried by the next sweep), then sent to a webhook (generic JSON, or a
Slack-compatible body) and by email over SMTP. Sending never raises: a broken mail server must
not lose an ingest or hide the failure being reported. Side effects: catalog writes, one HTTP
POST and one SMTP session per alert, log records.

Privacy: alerts leave the archive (chat, mail), so they carry only the submission name or AIP
id, the failing step, the error class, advice and storage facts; never sidecar metadata
(titles, directors, locations) or media tags. An error's message is the one
`preserve.core.redact` lets out (``message`` of `ingest_failed`): never a sidecar's values or a
link's target, which stay in the local REPORT.txt."""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from preserve.catalog import Catalog
from preserve.config import AlertSettings, Settings
from preserve.core.model import utcnow

log = logging.getLogger(__name__)

INGEST_FAILED, DAMAGE, AT_RISK, TEST = "ingest-failed", "damage", "at-risk", "test"
WITHDRAWN, WITHDRAWAL_INCOMPLETE = "withdrawn", "withdrawal-incomplete"
#: kinds raised elsewhere, named here so every alert has a title a person can read
ACCESS_WITHHELD, WITHHELD_AS_RELATED = "access-withheld", "withheld-as-related"
ACCESS_CHANGE_FAILED = "access-change-failed"
_TITLES = {
    INGEST_FAILED: "Ingest failed",
    DAMAGE: "Damage found",
    AT_RISK: "AIP at risk",
    TEST: "Test alert",
    WITHDRAWN: "Film withdrawn",
    WITHDRAWAL_INCOMPLETE: "Withdrawal NOT complete",
    ACCESS_WITHHELD: "Access copies withheld (privacy check)",
    WITHHELD_AS_RELATED: "Stored dark: the same film was taken down",
    ACCESS_CHANGE_FAILED: "Access change NOT complete",
}


@dataclass(frozen=True)
class Alert:
    kind: str  # ingest-failed | damage | at-risk | test | withdrawn | withdrawal-incomplete
    key: str  # the condition's identity: the same key is announced once
    subject: str  # submission name or AIP id
    summary: str  # one line for a person
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"[preserve] {_TITLES.get(self.kind, self.kind)}: {self.subject}"


@dataclass(frozen=True)
class Delivery:
    channel: str  # webhook | email
    ok: bool
    error: str = ""


# -- the alerts ----------------------------------------------------------------------------------
def ingest_failed(
    submission: str,
    *,
    step: str,
    error_code: str,
    message: str,
    advice: str,
    quarantine_dir: str = "",
    attempt: int = 0,
) -> Alert:
    return Alert(
        INGEST_FAILED,
        f"{INGEST_FAILED}:{submission}:{attempt}",
        submission,
        f"{submission} was quarantined at step {step}: {error_code}",
        {
            "submission": submission,
            "step": step,
            "error": error_code,
            "message": message[:2000],
            "advice": advice,
            "quarantine_dir": quarantine_dir,
            "attempt": attempt,
        },
    )


def damage_found(aip_id: str, objects: Sequence[dict[str, Any]]) -> Alert:
    """``objects``: dicts with target, key, status (damaged | missing); keyed on exactly those, so
    new damage alerts again and the same damage does not."""
    ident = ",".join(sorted(f"{o['target']}:{o['key']}:{o['status']}" for o in objects))
    targets = sorted({o["target"] for o in objects})
    return Alert(
        DAMAGE,
        f"{DAMAGE}:{aip_id}:{_short_hash(ident)}",
        aip_id,
        f"{len(objects)} object(s) of AIP {aip_id} damaged or missing on {', '.join(targets)}",
        {"aip_id": aip_id, "objects": [dict(o) for o in objects][:200]},
    )


def at_risk(aip_id: str, reasons: Sequence[str], verified_replicas: int) -> Alert:
    return Alert(
        AT_RISK,
        f"{AT_RISK}:{aip_id}:{_short_hash('|'.join(sorted(reasons)))}",
        aip_id,
        f"AIP {aip_id} is at risk: {'; '.join(reasons)}",
        {"aip_id": aip_id, "reasons": list(reasons), "verified_replicas": verified_replicas},
    )


def withdrawn(aip_id: str, change_id: int, removed: int, locations: Sequence[str]) -> Alert:
    """A withdrawal carried out: every access copy verified gone. The operator's reason stays in
    the catalog (it may say why a person is at risk)."""
    where = ", ".join(locations) or "no access location"
    return Alert(
        WITHDRAWN,
        f"{WITHDRAWN}:{aip_id}:{change_id}",
        aip_id,
        f"AIP {aip_id} is withdrawn (dark): {removed} object version(s) removed; no version of any access copy "
        f"remains at {where}",
        {"aip_id": aip_id, "removed_versions": removed, "locations": list(locations)},
    )


def withdrawal_incomplete(aip_id: str, change_id: int, remaining: Sequence[str], advice: str) -> Alert:
    """A withdrawal that could not remove everything: ``remaining`` says what is still there
    (location and key, or a location that could not be reached); keyed on exactly that."""
    return Alert(
        WITHDRAWAL_INCOMPLETE,
        f"{WITHDRAWAL_INCOMPLETE}:{aip_id}:{change_id}:{_short_hash('|'.join(sorted(remaining)))}",
        aip_id,
        f"AIP {aip_id} is NOT yet withdrawn: {len(remaining)} thing(s) remain ({'; '.join(list(remaining)[:5])})",
        {"aip_id": aip_id, "remaining": list(remaining)[:200], "advice": advice},
    )


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- bodies ----------------------------------------------------------------------------------------
def webhook_body(alert: Alert, config: AlertSettings, organization: str) -> dict[str, Any]:
    """The POSTed JSON: preserve's own shape, or Slack's incoming-webhook ``{"text": ...}``."""
    if config.webhook_format == "slack":
        lines = [f"*{alert.title}*", alert.summary]
        advice = alert.detail.get("advice")
        if advice:
            lines.append(f"_What to do:_ {advice}")
        return {"text": "\n".join(lines)}
    return {
        "source": "preserve",
        "organization": organization,
        "kind": alert.kind,
        "key": alert.key,
        "subject": alert.subject,
        "title": alert.title,
        "summary": alert.summary,
        "detail": alert.detail,
        "at": utcnow().isoformat(),
    }


def email_message(alert: Alert, config: AlertSettings, organization: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = alert.title
    msg["From"] = config.smtp_from
    msg["To"] = ", ".join(config.smtp_to)
    body = [alert.summary, ""]
    for k, v in alert.detail.items():
        body.append(f"{k}: {json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v}")
    body += ["", f"-- preserve, {organization}. `preserve status` shows everything that needs attention."]
    msg.set_content("\n".join(body))
    return msg


# -- delivery ----------------------------------------------------------------------------------------
def channels(config: AlertSettings) -> list[str]:
    return (["webhook"] if config.webhook_url else []) + (["email"] if config.smtp_host and config.smtp_to else [])


def post_webhook(alert: Alert, config: AlertSettings, organization: str) -> None:
    """Raise OSError/ValueError when the receiver does not accept it (any non-2xx answer)."""
    data = json.dumps(webhook_body(alert, config, organization), ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(
        config.webhook_url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "preserve-alerts"},
    )
    with urllib.request.urlopen(req, timeout=config.timeout_seconds) as resp:
        if not 200 <= resp.status < 300:
            raise ValueError(f"webhook answered HTTP {resp.status}")


def send_email(alert: Alert, config: AlertSettings, organization: str, login: tuple[str, str] | None) -> None:
    msg = email_message(alert, config, organization)
    timeout = config.timeout_seconds
    if config.smtp_security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            config.smtp_host, config.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=timeout)
    with smtp:
        if config.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if login:
            smtp.login(*login)
        smtp.send_message(msg)


def deliver(
    alert: Alert, config: AlertSettings, organization: str, login: tuple[str, str] | None = None
) -> list[Delivery]:
    """Send one alert on every configured channel; failures are returned, never raised."""
    out: list[Delivery] = []
    for channel in channels(config):
        try:
            if channel == "webhook":
                post_webhook(alert, config, organization)
            else:
                send_email(alert, config, organization, login)
            out.append(Delivery(channel, True))
        except (OSError, ValueError, smtplib.SMTPException, urllib.error.URLError) as exc:
            out.append(Delivery(channel, False, f"{type(exc).__name__}: {exc}"))
            log.warning("alert %s not delivered by %s: %s", alert.key, channel, exc)
    return out


def send(settings: Settings, catalog: Catalog, alert: Alert) -> list[Delivery]:
    """Record the alert in the catalog, then deliver it unless it was delivered before. Never
    raises (a failure is logged and left in the catalog for the next sweep)."""
    try:
        if not catalog.record_alert(alert.key, alert.kind, alert.subject, alert.summary, alert.detail):
            return []
    except Exception as exc:  # noqa: BLE001 - an alert must never break what it reports on
        log.error("alert %s could not be recorded: %s", alert.key, exc)
        # still try to tell someone: the catalog being down is worth an email
        return deliver(alert, settings.alerts, settings.archive.organization, settings.alerts.smtp_login())
    if not channels(settings.alerts):
        return []
    try:
        result = deliver(alert, settings.alerts, settings.archive.organization, settings.alerts.smtp_login())
        errors = "; ".join(f"{d.channel}: {d.error}" for d in result if not d.ok)
        catalog.alert_attempted(alert.key, errors)
        return result
    except Exception as exc:  # noqa: BLE001
        log.error("alert %s failed: %s", alert.key, exc)
        return [Delivery("internal", False, str(exc))]


def pending(settings: Settings, catalog: Catalog) -> list[Alert]:
    """Alerts that the catalog's state calls for: damaged or missing objects (per AIP) and AIPs
    at risk. Already-delivered ones are filtered by `send` through their keys."""
    by_aip: dict[str, list[dict[str, Any]]] = {}
    for o in catalog.damaged_objects():
        by_aip.setdefault(o.aip_id, []).append({"target": o.target, "key": o.key, "status": o.status})
    found = [damage_found(aip, objs) for aip, objs in by_aip.items()]
    status = catalog.status(
        audit_interval_days=settings.audit.audit_interval_days,
        min_verified_replicas=settings.replication.min_verified_replicas,
    )
    found += [at_risk(a.aip_id, a.reasons, a.verified_replicas) for a in status.at_risk]
    return found


def sweep(settings: Settings, catalog: Catalog) -> list[tuple[Alert, list[Delivery]]]:
    """Send what the catalog's state calls for, and retry undelivered alerts (up to
    alerts.max_attempts). Run after audits and by the served deployments. Never raises."""
    sent: list[tuple[Alert, list[Delivery]]] = []
    try:
        done: set[str] = set()
        for alert in pending(settings, catalog):
            done.add(alert.key)
            result = send(settings, catalog, alert)
            if result:  # [] when it was delivered before, or no channel is configured
                sent.append((alert, result))
        for rec in catalog.alerts(undelivered_only=True):
            if rec.key in done or rec.attempts >= settings.alerts.max_attempts or not channels(settings.alerts):
                continue
            alert = Alert(rec.kind, rec.key, rec.subject, rec.summary, rec.detail)
            sent.append((alert, send(settings, catalog, alert)))
    except Exception as exc:  # noqa: BLE001
        log.error("alert sweep failed: %s", exc)
    return sent
