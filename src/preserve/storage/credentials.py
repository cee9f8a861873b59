"""Credentials for one storage target, never shared between targets: its own access key and
secret from the environment (or an AWS profile), or, for a target on the embedded server, the
keys `preserve services up` generated. Side effects: reads the environment (the one place the
library reads secrets, at the moment of use, so no settings object ever carries them) and the
embedded server's 0600 credentials file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from preserve.config import Settings, TargetSettings
from preserve.core.errors import ConfigError


def embedded_credentials_file(settings: Settings) -> Path:
    """Where `preserve services up` keeps the embedded server's generated keys."""
    return settings.services_dir / "seaweedfs" / "credentials.json"


def embedded_credentials(settings: Settings, *, who: str = "a target") -> dict[str, str]:
    """boto3 session kwargs for a target on the embedded server (``who``, for the error): the
    keys `up` generated. Raises ConfigError when the server has never been set up."""
    try:
        data = json.loads(embedded_credentials_file(settings).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{who} uses the embedded server, but it has no credentials yet",
            advice="Run `preserve services up` first.",
        ) from None
    return {"aws_access_key_id": data["access_key"], "aws_secret_access_key": data["secret_key"]}


def credentials_for(settings: Settings, target: TargetSettings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """boto3 session kwargs for one target: its own credential (``env``, by default the process
    environment), else the embedded server's keys for an embedded target. Raises ConfigError
    naming the variables to set."""
    found = target.credentials(os.environ if env is None else env)
    if found is not None:
        return found
    if target.embedded:
        return embedded_credentials(settings, who=f"target {target.name!r}")
    key_name, secret_name = target.env_names()
    raise ConfigError(f"no credentials for target {target.name!r}: set {key_name} and {secret_name}, or a profile")


def age_identity_file(target: TargetSettings, env: Mapping[str, str] | None = None) -> Path | None:
    """The file holding an encrypted target's age identity, as its variable names it (``env``, by
    default the process environment); None when the variable is not set. The file is read only
    when a key must be opened."""
    value = (os.environ if env is None else env).get(target.identity_env_name(), "")
    return Path(value).expanduser() if value else None
