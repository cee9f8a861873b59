"""Private by default: a sidecar (or its absence) that makes no access decision gives the archive's
default level, `restricted` unless [access] default_level says otherwise (an embargo, which needs
a date, can never be the default); and `preserve status` shows withdrawals in progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from preserve.catalog import Catalog, NewAip
from preserve.config import DEFAULT_CONFIG, load
from preserve.core.errors import ConfigError
from preserve.core.model import AccessLevel, Agent
from preserve.intake import sidecar


def test_no_access_decision_means_restricted_unless_the_archive_says_otherwise(tmp_path: Path) -> None:
    assert sidecar.parse("") == sidecar.Sidecar(access=sidecar.Access("restricted", decided=False))
    assert sidecar.parse("title: x\n").access == sidecar.Access("restricted", decided=False)
    assert sidecar.load(None).access.level == "restricted"
    assert sidecar.parse("access: open\n").access == sidecar.Access("open", decided=True)
    assert sidecar.parse("access: restricted\n").access.decided
    assert sidecar.parse("title: x\n", default_level="open").access == sidecar.Access("open", decided=False)
    assert sidecar.load(None, default_level="dark").access.level == "dark"
    f = tmp_path / "metadata.yaml"
    f.write_text("title: x\n", encoding="utf-8")
    assert sidecar.load(f, default_level="open").access == sidecar.Access("open", decided=False)
    settings = load(DEFAULT_CONFIG, env={})
    assert settings.access.default_level == "restricted"
    assert load(DEFAULT_CONFIG, env={"PRESERVE__ACCESS__DEFAULT_LEVEL": "open"}).access.default_level == "open"
    with pytest.raises(ConfigError):
        load(DEFAULT_CONFIG, env={}, overrides={"access": {"default_level": "embargoed"}})


def test_status_shows_a_withdrawal_in_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from preserve.cli.output import print_status

    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        catalog.record_aip(
            NewAip("aip-9", "Film", "f.mov", AccessLevel.OPEN, "0.0", files=[], replicas=[], access=[], events=[])
        )
        catalog.begin_access_change(
            "aip-9",
            from_level=AccessLevel.OPEN,
            to_level=AccessLevel.DARK,
            until=None,
            reason="asked",
            operator=Agent("archivist-a", kind="person"),
        )
        status = catalog.status(min_verified_replicas=0)
    assert status.needs_attention
    print_status(status, alerts_off=True)
    out = capsys.readouterr().out
    assert "withdrawals in progress" in out and "aip-9" in out and "archivist-a" in out and "withdrawal" in out
