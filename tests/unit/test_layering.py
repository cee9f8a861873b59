"""The library never imports Prefect or flows/, directly or through another module; only the CLI
starts flows (lazily, inside the commands that do). `lint-imports` checks the full contracts
(pyproject.toml); these tests keep the two rules that matter most visible in the suite."""

import subprocess
import sys

import grimp

LIBRARY = [
    "preserve.core", "preserve.config", "preserve.tools", "preserve.intake", "preserve.characterise",
    "preserve.fixity", "preserve.access", "preserve.packaging", "preserve.storage", "preserve.catalog",
    "preserve.pipeline", "preserve.operations", "preserve.report", "preserve.dev",
]  # fmt: skip


def test_no_library_module_reaches_prefect_flows_or_the_cli() -> None:
    graph = grimp.build_graph("preserve", "flows", include_external_packages=True, cache_dir=None)
    packages = {m.split(".")[1] for m in graph.modules if m.startswith("preserve.")}
    assert set(LIBRARY) | {"preserve.cli"} >= {f"preserve.{p}" for p in packages}, "a new package: list it"
    chains = {
        (lib, target): graph.find_shortest_chains(importer=lib, imported=target)
        for lib in LIBRARY
        for target in ("prefect", "flows", "preserve.cli")
    }
    assert {k: v for k, v in chains.items() if v} == {}


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
