"""Every package of the library is in pyproject's explicit package list, so a built wheel (not
only the editable install the tests use) contains all of it."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT / "src").parts)
        for init in (ROOT / "src" / "preserve").rglob("__init__.py")
        if "migrations" not in init.parts
    } | {"flows"}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "these are listed but do not exist"


def test_the_public_surface_loads_on_first_use() -> None:
    import subprocess
    import sys

    code = (
        "import sys, preserve\n"
        "assert 'preserve.pipeline' not in sys.modules, 'import preserve loaded the pipeline'\n"
        "from preserve.pipeline import ingest_submission\n"
        "from preserve.core import errors\n"
        "assert preserve.ingest_submission is ingest_submission and preserve.errors is errors\n"
        "assert sorted(preserve.__all__) == sorted(preserve._PUBLIC)\n"
        "try:\n    preserve.nothing_here\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(1)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
