"""Step 8, publish: store the access copies where the film's access level says — published (open),
at the restricted location, or held under embargo — or nowhere for a dark film. Side effects:
uploads to the access locations (and, on a later attempt, sweeps what an earlier one left there)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from preserve import tools
from preserve.access import package, policy
from preserve.access.presentation import KIND_MANIFEST, KIND_PAGE
from preserve.catalog import AccessCopy
from preserve.core import redact
from preserve.core.errors import PreserveError
from preserve.core.model import AccessLevel, EventType, Outcome, Role, utcnow
from preserve.fixity.digest import digest_file
from preserve.operations import alerts
from preserve.pipeline.context import IngestContext
from preserve.pipeline.steps.derive import Derivatives
from preserve.pipeline.steps.receive import Staged
from preserve.pipeline.steps.replicate import sweep_unrecorded
from preserve.storage import open_store

#: alert kind: a submission's film is the film of an AIP the archive took down
WITHHELD_AS_RELATED = alerts.WITHHELD_AS_RELATED


@dataclass(frozen=True)
class Published:
    """The access copies stored, and the access level that applied (an embargo already over is
    open); the sidecar's level when nothing was stored."""

    copies: tuple[AccessCopy, ...]
    level: AccessLevel


def publish(ctx: IngestContext, staged: Staged, derivatives: Derivatives) -> Published:
    """Store the access copies at the location of the access level that applies today, each with
    its SHA-256, and record the access decision. A later attempt first sweeps the access locations
    of what an earlier attempt left there (a proxy from before the film went dark)."""
    settings, access = ctx.settings, staged.metadata.access
    target = settings.access_target
    if target is None:
        if derivatives.proxy is not None:
            ctx.log.record(
                EventType.ACCESS_DECISION,
                Outcome.NOT_PERFORMED,
                tools.preserve_agent(),
                "no access target is configured: the access copies were made and checked but not stored",
            )
        return Published(copies=(), level=AccessLevel(access.level))
    if ctx.attempt > 1:  # a first attempt has a fresh AIP id: nothing can be there yet
        with open_store(settings, target) as store:  # stores hold keep-alive connections: close them
            sweep_unrecorded(ctx, store, target.name)  # e.g. a proxy from an attempt before the film went dark
        for private in (
            policy.access_location(settings, AccessLevel.RESTRICTED),
            policy.access_location(settings, AccessLevel.EMBARGOED),
        ):
            if private is not None:
                with open_store(settings, private) as store:
                    sweep_unrecorded(ctx, store, private.name)
    if ctx.catalog.publication_withheld(ctx.aip_id):  # an operator withdrew it: nothing publishes it again
        ctx.log.record(
            EventType.ACCESS_DECISION,
            Outcome.PASS,
            tools.preserve_agent(),
            "withdrawn: an operator made this film dark (`preserve withdraw`); no access copy was stored",
            level=AccessLevel.DARK,
        )
        return Published(copies=(), level=AccessLevel.DARK)
    media = [f.digests.sha256 for f in staged.files if f.role in (Role.VIDEO, Role.AUDIO)]
    related = ctx.catalog.withheld_sharing(media, exclude=ctx.aip_id)
    if related:  # the same film, sent again (say with a corrected sidecar), must not undo a take-down
        _withhold_for(ctx, related)
        return Published(copies=(), level=AccessLevel.DARK)
    if derivatives.proxy is None:
        return Published(copies=(), level=AccessLevel(access.level))
    level, until, note = policy.effective_access(access.level, access.until, utcnow().date())
    if not access.decided:
        note += " (the archive's default, [access] default_level: the submission made no access decision)"
    location = policy.access_location(settings, level)
    assert location is not None
    copies: list[AccessCopy] = []
    with open_store(settings, location) as store:

        def put(kind: str, path: Path) -> None:
            d = digest_file(path, ("sha256",))
            key = f"{ctx.aip_id}/{path.name}"
            store.put_file(key, path, sha256=d.values["sha256"], size=d.size)
            copies.append(
                AccessCopy(
                    kind=kind, target=location.name, key=key, uri=store.uri(key), size=d.size, sha256=d.values["sha256"]
                )
            )

        for kind, path in derivatives.made():
            put(kind, path)
        # the manifest and the page last: they point at copies that are there
        for kind, path in _documents(ctx, derivatives, level, copies):
            put(kind, path)
    where = f"{location.name} ({copies[-1].uri.rsplit('/', 1)[0]}/)" if copies else location.name
    detail = {
        "open": f"access level open: access copies published to {where}",
        "restricted": f"access level restricted: access copies stored at the restricted location {where}, not published",
        "embargoed": f"access level embargoed until {until}: access copies held at {where} and NOT published; "
        "`preserve embargo-release` publishes them on or after that date",
    }[level]
    ctx.log.record(
        EventType.ACCESS_DECISION,
        Outcome.PASS,
        tools.preserve_agent(),
        detail + note,
        level=level,
        location=location.name,
        **({"embargo_until": until.isoformat()} if until else {}),
    )
    return Published(copies=tuple(copies), level=level)


def _documents(
    ctx: IngestContext, derivatives: Derivatives, level: AccessLevel, copies: list[AccessCopy]
) -> list[tuple[str, Path]]:
    """The IIIF manifest and the page of copies stored at ``level``'s location (open and restricted
    only: an embargoed film's are made when the embargo ends), with the manifest's ids under that
    location's URL. Documents that fail their check are a `fail` event, and the copies go without
    them."""
    p = derivatives.presentation
    if p is None or not copies or not policy.presented(level) or derivatives.proxy is None:
        return []
    base = policy.folder_url(ctx.settings, level, copies[0].uri)
    try:
        manifest, page = package.write_documents(p, base, derivatives.proxy.parent, forbidden=derivatives.forbidden)
    except PreserveError as exc:  # failed its check, or cannot be written for this base: the copies go on
        ctx.log.record(
            EventType.METADATA_MODIFICATION,
            Outcome.FAIL,
            tools.preserve_agent(),
            f"{redact.describe(exc)}; the access copies are stored without a IIIF manifest and a page",
        )
        return []
    ctx.log.record(
        EventType.CREATION,
        Outcome.PASS,
        tools.python_agent("iiif-prezi3"),
        f"IIIF Presentation 3 manifest (ids under {base}) and a static page written for the access copies "
        f"({len(p.tracks)} text track(s); "
        + ("credits named, as the sidecar allows" if p.credits else "no person named")
        + "); validated against the IIIF Presentation 3 model and checked against what they may say",
        base=base,
    )
    return [(KIND_MANIFEST, manifest), (KIND_PAGE, page)]


def _withhold_for(ctx: IngestContext, related: list[str]) -> None:
    """Record and tell that nothing is published because the same film is already an AIP that must
    not be public (withdrawn or deaccessioned): a person decides (`preserve set-access`)."""
    ctx.log.record(
        EventType.ACCESS_DECISION,
        Outcome.PASS,
        tools.preserve_agent(),
        f"the same video/audio (by SHA-256) is AIP {', '.join(related)}, which was withdrawn or deaccessioned: "
        "no access copy was stored; the film is preserved dark until a person decides (`preserve set-access`)",
        level=AccessLevel.DARK,
        related=related,
    )
    alerts.send(
        ctx.settings,
        ctx.catalog,
        alerts.Alert(
            WITHHELD_AS_RELATED,
            f"{WITHHELD_AS_RELATED}:{ctx.aip_id}",
            ctx.name,
            f"{ctx.name}: stored dark as AIP {ctx.aip_id}, not published: the same film is AIP "
            f"{', '.join(related)}, which was withdrawn or deaccessioned. A person must decide.",
            {"submission": ctx.name, "aip_id": ctx.aip_id, "related": related},
        ),
    )
