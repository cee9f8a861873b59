"""What every command starts from: the exit codes, the Settings named by --config, the catalog
they name, and a flow run's returned data. Side effects: reads the config file; opening the
catalog connects to its database (and migrates it to the current schema).

Exit codes: 0 success; 1 a submission was quarantined / damage found / restore invalid;
2 usage, configuration or operational error (storage unreachable)."""

from __future__ import annotations

import argparse
import getpass
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when called, so `preserve --help` stays fast
    from preserve.catalog import Catalog
    from preserve.config import Settings
    from preserve.core.model import Agent

EXIT_OK, EXIT_FINDING, EXIT_ERROR = 0, 1, 2


def load_settings(args: argparse.Namespace) -> Settings:
    """The Settings of this invocation (``--config``, else $PRESERVE_CONFIG or the default file)."""
    from preserve import config

    return config.load(args.config)


def open_catalog(settings: Settings) -> Catalog:
    """The catalog the settings name; use it as ``with open_catalog(settings) as catalog:`` so it
    is closed however the command ends."""
    from preserve.catalog import Catalog

    return Catalog(settings.catalog_url)


def flow_data(result: object) -> dict[str, Any] | None:
    """The dict a flow run returned (its JSON-like result; values typed by the flow, hence Any),
    or None when the flow itself crashed and ``result`` is the exception or failed state."""
    return result if isinstance(result, dict) else None


def operator(args: argparse.Namespace) -> Agent:
    """The person running this command, recorded as the agent of every decision they make:
    ``--operator NAME``, else $PRESERVE_OPERATOR, else the login name."""
    from preserve.core.model import Agent

    name = getattr(args, "operator", None) or os.environ.get("PRESERVE_OPERATOR") or getpass.getuser()
    return Agent(name=name, kind="person")
