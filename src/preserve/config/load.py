"""Loading the settings once, at the entry point (CLI or flow): the TOML file, then
PRESERVE__SECTION__KEY variables of an environment mapping the caller passes, then explicit
overrides (tests), merged key by key by pydantic-settings. Side effects: reads the config file.

An environment value is taken as a string and converted to the field's type (numbers, booleans,
paths); a list or a table is written as JSON, e.g. PRESERVE__SERVICES__BUCKETS='["a", "b"]'."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from preserve.config.schema import DEFAULT_CONFIG, Settings
from preserve.core.errors import ConfigError

ENV_PREFIX = "PRESERVE__"
ENV_DELIMITER = "__"


class _Environment(EnvSettingsSource):
    """PRESERVE__SECTION__KEY variables from the mapping given to `load`, never from os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)  # reads the variables through _load_env_vars

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name if self.case_sensitive else name.lower(): value for name, value in self._environ.items()}

    def _ours(self, name: str) -> bool:
        prefix = self.env_prefix if self.case_sensitive else self.env_prefix.lower()
        return (name if self.case_sensitive else name.lower()).startswith(prefix)

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """JSON for a list or table, as pydantic-settings decodes it; the error names the variable."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:  # still a ValueError: pydantic-settings tolerates some failures
            tail = (ENV_DELIMITER + field_name).lower()
            names = [n for n, v in self._environ.items() if v == value and self._ours(n) and n.lower().endswith(tail)]
            raise ValueError(f"{' or '.join(names) or field_name}={value!r} is not valid JSON ({exc})") from exc

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        # pydantic-settings only looks for the variables of known sections; a mistyped section
        # (PRESERVE__ARCHVE__VAR_DIR) is passed on so that validation names it instead of
        # ignoring it. Mistyped keys of a known section are already passed on.
        known = set(self.settings_cls.model_fields)
        for name, value in self.env_vars.items():
            if self._ours(name):
                section = name[len(self.env_prefix) :].split(ENV_DELIMITER, 1)[0]
                if section and section not in known and section not in data:
                    data[section] = value
        return data


#: the file and the environment of the `load` call in progress (they are its arguments, while
#: pydantic-settings asks the class for its sources)
_LOADING: ContextVar[tuple[Path, Mapping[str, str]]] = ContextVar("preserve_config_loading")


class _Sources(BaseSettings, Settings):
    """Settings gathered from the sources by pydantic-settings, then handed on as a plain
    `Settings` (which never reads anything itself)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first: explicit values, the environment, the file. The stock
        environment source (os.environ), .env files and secret directories are not used."""
        path, environ = _LOADING.get()
        return (
            init_settings,
            _Environment(settings_cls, environ),
            TomlConfigSettingsSource(settings_cls, toml_file=path),
        )


def config_path(explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    # transitional: env=None (os.environ) until the CLI and flows pass their environment (issue 11)
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("PRESERVE_CONFIG"):
        return Path(env["PRESERVE_CONFIG"])
    return DEFAULT_CONFIG


def load(
    explicit: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build Settings from the config file, then PRESERVE__* variables of ``env``, then
    ``overrides`` (used by tests); a [section] is merged key by key, a list replaced whole.
    Raises ConfigError with a readable message naming the offending key."""
    # transitional: env=None (os.environ) until the CLI and flows pass their environment (issue 11)
    env = os.environ if env is None else env
    path = config_path(explicit, env).resolve()
    if not path.is_file():  # the TOML source would silently skip a missing file
        raise ConfigError(f"config file not found: {path}")
    init = {**(overrides or {}), "source": path}
    loading = _LOADING.set((path, env))
    try:
        gathered = _Sources(**init)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except SettingsError as exc:  # an environment value that is not valid JSON for a list or table
        raise ConfigError(f"invalid configuration in the environment: {exc.__cause__ or exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration in {path}: {problems}") from exc
    finally:
        _LOADING.reset(loading)
    return Settings.model_validate(dict(gathered))
