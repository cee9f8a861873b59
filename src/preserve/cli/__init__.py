"""The `preserve` command line."""

from preserve.cli.main import main

__all__ = ["main"]
