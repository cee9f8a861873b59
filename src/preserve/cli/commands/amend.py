"""`preserve amend`: a new version of an AIP with corrected descriptive metadata (a new sidecar),
written on every replica without uploading the payload again. Side effects: stdout; the amend
writes to storage and the catalog."""

from __future__ import annotations

import argparse

from preserve.cli.invocation import EXIT_ERROR


def cmd_amend(args: argparse.Namespace) -> int:  # filled in by the amend work (issue 14)
    raise NotImplementedError


__all__ = ["EXIT_ERROR", "cmd_amend"]
