"""`preserve catalog rebuild`: a catalog built from one replica alone. Side effects: stdout,
progress on stderr; reads storage, writes the (empty) catalog."""

from __future__ import annotations

import argparse


def cmd_rebuild(args: argparse.Namespace) -> int:  # filled in by the rebuild work (issue 14)
    raise NotImplementedError
