"""The library never imports Prefect; only flows/ (and the CLI, lazily, for flow commands) do."""

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "preserve"


def test_library_modules_do_not_mention_prefect() -> None:
    offenders = [
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        if not p.relative_to(SRC).as_posix().startswith("cli/")
        and ("import prefect" in p.read_text() or "from prefect" in p.read_text() or "from flows" in p.read_text())
    ]
    assert offenders == []


def test_importing_the_library_and_cli_help_does_not_load_prefect() -> None:
    code = (
        "import sys, importlib, pkgutil, preserve\n"
        "for m in pkgutil.walk_packages(preserve.__path__, 'preserve.'):\n"
        "    importlib.import_module(m.name)\n"
        "from preserve import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert not any(n == 'prefect' or n.startswith('prefect.') for n in sys.modules), 'prefect loaded'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
