"""Configuration: one typed `Settings` object from `config/*.toml` plus `PRESERVE__SECTION__KEY`
environment overrides; secrets come from the environment only."""

from preserve.config.settings import (
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
    config_path,
    load,
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
