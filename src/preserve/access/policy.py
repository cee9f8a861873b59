"""Access policy: which access level applies today (an embargo that has ended is open), and which
storage location serves the access copies of each level. Open
copies are published at the access target itself; restricted and embargoed ones are kept in the
same bucket under their own prefixes ([access] restricted_prefix, embargo_prefix; never under the
public prefix), or in sibling directories of a filesystem access target; dark AIPs have none.
No side effects: it only derives target descriptions from the settings."""

from __future__ import annotations

import datetime as dt

from pydantic import AnyUrl

from preserve.config import Settings, TargetSettings
from preserve.core.errors import ConfigError
from preserve.core.model import AccessLevel

#: the levels whose copies are stored somewhere, in the order their locations are listed
STORED_LEVELS = (AccessLevel.OPEN, AccessLevel.RESTRICTED, AccessLevel.EMBARGOED)


def access_location(settings: Settings, level: AccessLevel | str) -> TargetSettings | None:
    """Where access copies of this level go: the access target itself for ``open``; the same
    bucket under `access.restricted_prefix` / `access.embargo_prefix` (never under the public
    prefix) for ``restricted`` / ``embargoed``; None for ``dark`` or without an access target.
    A private location is named ``<access target>-<level>`` and uses the access target's own
    credential variables (the same bucket, so the same credentials)."""
    base = settings.access_target
    level = AccessLevel(level)
    if base is None or level is AccessLevel.DARK:
        return None
    if level is AccessLevel.OPEN:
        return base
    key_env, secret_env = base.env_names()
    return base.model_copy(
        update={
            "name": f"{base.name}-{level.value}",
            "access_key_env": key_env,
            "secret_key_env": secret_env,
            **settings.access.private_place(base, level),
        }
    )


def access_locations(settings: Settings) -> list[TargetSettings]:
    """Every location access copies may be stored at (none without an access target)."""
    return [t for t in (access_location(settings, level) for level in STORED_LEVELS) if t is not None]


def target(settings: Settings, name: str) -> TargetSettings:
    """A target by the name the catalog records for a copy: a replica target, the access target,
    or one of the private access locations derived from it."""
    known = settings.targets + access_locations(settings)
    for t in known:
        if t.name == name:
            return t
    raise ConfigError(f"no storage target named {name!r}; known: {[t.name for t in known]}")


def effective_access(level: str, until: dt.date | None, today: dt.date) -> tuple[AccessLevel, dt.date | None, str]:
    """The access level that applies today: an embargo whose date has come is open (pure)."""
    if level == AccessLevel.EMBARGOED and until is not None and until <= today:
        return AccessLevel.OPEN, until, f" (the embargo until {until} has already ended)"
    return AccessLevel(level), until, ""


#: the levels whose access copies get a IIIF manifest and a page (an embargoed film's get theirs
#: when the embargo ends and the copies are published; a dark one has no copies)
PRESENTED_LEVELS = (AccessLevel.OPEN, AccessLevel.RESTRICTED)


def presented(level: AccessLevel | str) -> bool:
    """Whether access copies at this level carry a IIIF manifest and a page."""
    return AccessLevel(level) in PRESENTED_LEVELS


def folder_url(settings: Settings, level: AccessLevel | str, stored_uri: str) -> str:
    """The URL of an AIP's folder at the access location of ``level``, ending with "/", for the
    ids of its IIIF manifest: under `access.public_base_url` (open) or `access.restricted_base_url`
    (restricted) when configured, else the folder of ``stored_uri`` (the storage URI of one of its
    copies there: ``s3://...`` or ``file://...``) until the archive serves the location."""
    level = AccessLevel(level)
    folder, _, _ = stored_uri.rpartition("/")
    aip_id = folder.rsplit("/", 1)[-1]
    configured = {
        AccessLevel.OPEN: settings.access.public_base_url,
        AccessLevel.RESTRICTED: settings.access.restricted_base_url,
    }.get(level, "")
    if configured:
        return f"{configured}{aip_id}/"
    return str(AnyUrl(folder + "/"))  # percent-encoded, lower-case host: as the IIIF model writes ids
