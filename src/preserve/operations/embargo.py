"""Embargo release: the access copies of an embargoed film are made at ingest and held in the
private embargo location; once the embargo date has come they are copied to the public access
location (verified against their recorded SHA-256), the catalog records the new location and the
access level "open", and the held copies are removed. The date is passed in (`today`), never read
from a clock here, so the scheduled job and tests decide what "now" is. `release_due` then writes
the releases (and failures) beside each AIP on its replicas (`operations.journal`). Side effects:
object store reads, writes and deletes; catalog writes; event records; a scratch directory."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from preserve import tools
from preserve.access.policy import access_location
from preserve.catalog import AccessCopy, Catalog
from preserve.config import Settings, TargetSettings
from preserve.core import redact
from preserve.core.errors import ConfigError, PreserveError, StorageError, VerificationError
from preserve.core.model import AccessLevel, Event, EventType, Outcome
from preserve.operations import journal, presenting
from preserve.storage import open_store


@dataclass(frozen=True)
class Release:
    aip_id: str
    until: dt.date | None
    status: str  # released | not due | failed
    detail: str = ""
    published: tuple[AccessCopy, ...] = field(default_factory=tuple)


def embargo_until(events: list[Event]) -> dt.date | None:
    """The embargo date an AIP's access decision recorded (the latest one, if several)."""
    dates = [
        e.extra.get("embargo_until")
        for e in events
        if e.type is EventType.ACCESS_DECISION and e.extra.get("embargo_until")
    ]
    return dt.date.fromisoformat(str(dates[-1])) if dates else None


def release(settings: Settings, catalog: Catalog, aip_id: str, *, today: dt.date) -> Release:
    """Publish one embargoed AIP's held copies if its date has come. Returns what happened; raises
    ConfigError when there is no public access location, StorageError when a store fails (the
    catalog is then unchanged, so the next run tries again)."""
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise ConfigError(f"no AIP {aip_id!r} in the catalog")
    until = embargo_until(list(aip.events))
    if catalog.publication_withheld(aip.id):  # withdrawn, or another decision still being carried out
        return Release(
            aip.id, until, "not due", "an operator's decision holds it (withdrawn, or an access change pending)"
        )
    if aip.access_level != AccessLevel.EMBARGOED:
        return Release(aip.id, until, "not due", f"access level is {aip.access_level}, not embargoed")
    if until is None:
        return Release(aip.id, None, "not due", "no embargo date recorded: left embargoed for a person to decide")
    if until > today:
        return Release(aip.id, until, "not due", f"embargoed until {until}")
    public = access_location(settings, AccessLevel.OPEN)
    held = access_location(settings, AccessLevel.EMBARGOED)
    if public is None or held is None:
        raise ConfigError("no access target is configured: an embargo cannot be released")
    me = tools.preserve_agent()
    copies = presenting.media_copies([a for a in aip.access if a.target == held.name])
    others = [a for a in aip.access if a.target != held.name]
    documents: list[Event] = []
    published: list[AccessCopy] = []
    if copies:
        # stores hold keep-alive connections (S3 clients): close them
        with (
            open_store(settings, held) as source,
            open_store(settings, public) as dest,
            tempfile.TemporaryDirectory(prefix="preserve-embargo-", dir=settings.var_dir) as scratch,
        ):
            for copy in copies:
                local = Path(scratch) / Path(copy.key).name
                got = source.get_file(copy.key, local)
                if got != copy.sha256:
                    raise VerificationError(f"held access copy {copy.key} does not match its recorded SHA-256")
                dest.put_file(copy.key, local, sha256=copy.sha256, size=copy.size)
                published.append(
                    AccessCopy(copy.kind, public.name, copy.key, dest.uri(copy.key), copy.size, copy.sha256)
                )
            # the manifest and the page, with the ids of the public location, once the copies are there
            published += presenting.write_again(
                settings,
                aip,
                AccessLevel.OPEN,
                dest,
                published,
                Path(scratch),
                download=presenting.download_payload,
                events=documents,
            )
    if published and catalog.publication_withheld(aip.id):  # withdrawn while they were being copied
        _sweep_public(settings, public, aip.id)
        return Release(
            aip.id, until, "not due", "withdrawn while being released: the copies just published were removed"
        )
    detail = (
        f"embargo until {until} ended: {len(published)} access cop{'y' if len(published) == 1 else 'ies'} "
        f"published to {public.name}"
        + (f" ({published[0].uri.rsplit('/', 1)[0]}/)" if published else "")
        + "; access level now open"
    )
    recorded = catalog.replace_access(
        aip.id,
        [*others, *published],
        access_level=AccessLevel.OPEN,
        unless_withheld=True,  # re-checked with the AIP row locked: a withdrawal may have completed meanwhile
        events=[
            Event(
                EventType.ACCESS_DECISION,
                Outcome.PASS,
                me,
                detail,
                extra={"level": "open", "released_on": today.isoformat(), "embargo_until": until.isoformat()},
            ),
            *documents,
        ],
    )
    if not recorded:
        _sweep_public(settings, public, aip.id)
        return Release(
            aip.id,
            until,
            "not due",
            "withheld while being released (withdrawn, deaccessioned or an access change pending): nothing "
            "recorded, the public location swept",
        )
    _remove_held(settings, catalog, aip.id, copies)
    return Release(aip.id, until, "released", detail, tuple(published))


def _sweep_public(settings: Settings, public: TargetSettings, aip_id: str) -> None:
    """Every version of every object under the AIP's prefix removed from the public location (an
    operator's decision now withholds it); a failure raises: reported failed, and the withdrawal's
    own sweep (still pending then) or the next release removes it."""
    with open_store(settings, public) as dest:
        for key in sorted({v.key for v in dest.list_versions(f"{aip_id}/")}):
            dest.delete(key)  # every version


def _remove_held(settings: Settings, catalog: Catalog, aip_id: str, copies: list[AccessCopy]) -> None:
    """The held copies go once the published ones are recorded; a failure only leaves a private
    copy behind, and an event says so."""
    if not copies:
        return
    held = access_location(settings, AccessLevel.EMBARGOED)
    assert held is not None
    failed = []
    with open_store(settings, held) as store:
        for copy in copies:
            try:
                store.delete(copy.key)
            except StorageError as exc:
                failed.append(f"{copy.key}: {exc}")
    catalog.add_events(
        aip_id,
        [
            Event(
                EventType.DELETION,
                Outcome.WARNING if failed else Outcome.PASS,
                tools.preserve_agent(),
                (
                    f"held copies could not all be removed from {held.name}: {'; '.join(failed)}"
                    if failed
                    else f"{len(copies)} held cop{'y' if len(copies) == 1 else 'ies'} removed from {held.name} after publication"
                ),
                subject=held.name,
            )
        ],
    )


def release_due(settings: Settings, catalog: Catalog, *, today: dt.date) -> list[Release]:
    """Release every embargoed AIP whose date is on or before ``today``. One AIP's failure is
    reported in its Release and does not stop the others."""
    out = []
    for aip_id in catalog.aip_ids_with_access_level(AccessLevel.EMBARGOED):
        try:
            out.append(release(settings, catalog, aip_id, today=today))
        except PreserveError as exc:
            catalog.add_events(
                aip_id,
                [
                    Event(
                        EventType.ACCESS_DECISION,
                        Outcome.FAIL,
                        tools.preserve_agent(),
                        f"embargo release failed, will be tried again: {redact.describe(exc)}",
                    )
                ],
            )
            out.append(Release(aip_id, None, "failed", redact.describe(exc)))
    recorded = [r.aip_id for r in out if r.status != "not due"]  # "not due" records nothing
    if recorded:
        journal.flush(settings, catalog, recorded)
    return out
