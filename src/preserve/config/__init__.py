"""Configuration: one typed `Settings` object from `config/*.toml` plus `PRESERVE__SECTION__KEY`
environment overrides; secrets come from the environment only.

    schema   the section models and the `Settings` root (a plain, frozen description)
    load     `load` and `config_path`: the TOML file, the environment, overrides (pydantic-settings)

Policy built on the settings lives with its owner: which location serves each access level in
`preserve.access.policy`, the embedded server's generated keys in `preserve.dev.services`."""

from preserve.config.load import config_path, load
from preserve.config.schema import (
    DEFAULT_CONFIG,
    PROJECT_ROOT,
    AccessSettings,
    AlertSettings,
    ArchiveSettings,
    AuditSettings,
    IngestSettings,
    NormalizationSettings,
    ProxySettings,
    ReplicationSettings,
    ServeSettings,
    ServiceSettings,
    Settings,
    TargetSettings,
    ValidationSettings,
)

__all__ = [
    "DEFAULT_CONFIG",
    "PROJECT_ROOT",
    "AccessSettings",
    "AlertSettings",
    "ArchiveSettings",
    "AuditSettings",
    "IngestSettings",
    "NormalizationSettings",
    "ProxySettings",
    "ReplicationSettings",
    "ServeSettings",
    "ServiceSettings",
    "Settings",
    "TargetSettings",
    "ValidationSettings",
    "config_path",
    "load",
]
