"""The benchmark's own little archive: a work directory under bench/data/, the embedded SeaweedFS
started on free loopback ports (through `preserve.dev.services.up`, as `preserve services up` does)
and stopped at the end, and Settings for each measured run (own var dir, catalog, ingest folder
and S3 prefix, like tests/support.isolated_settings). Side effects: starts and stops the server,
creates and removes the work directory, moves submissions in and out of ingest folders."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preserve import config as settings_mod
from preserve.config import Settings
from preserve.config.schema import IngestSettings
from preserve.core.errors import StorageUnavailable
from preserve.dev import services
from preserve.dev.services import free_port_base

BUCKETS = ["preserve-aips", "preserve-access"]
#: whether this tree has `[ingest] staging = "in-place" | "copy"` (issue 13); without it every
#: ingest copies its originals into staging, and the benchmark says so instead of failing
HAS_STAGING_SETTING = "staging" in IngestSettings.model_fields


def staging_mode(wanted: str) -> str:
    """The staging mode an ingest asked for ``wanted`` really runs in here."""
    return wanted if HAS_STAGING_SETTING else "copy"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the sections of ``extra`` merged in key by key (a new copy)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass
class BenchArchive:
    """Where everything of one benchmark run lives, and the server it talks to."""

    work: Path
    port_base: int = 0

    @property
    def services_dir(self) -> Path:
        return self.work / "services"

    def _services(self) -> dict[str, Any]:
        return {"port_base": self.port_base, "data_dir": str(self.services_dir), "buckets": BUCKETS}

    def overrides(
        self,
        run: str,
        targets: Sequence[str] = ("seaweed", "local"),
        *,
        access: bool = True,
        staging: str = "in-place",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Settings overrides for one run: its own var dir (catalog, staging, ingest folder,
        local replica) and S3 prefix. ``targets`` picks the replicas: "seaweed" (S3), "local".
        ``staging`` is set explicitly where the setting exists (see `HAS_STAGING_SETTING`);
        ``extra`` is merged in last, section by section."""
        var = self.work / "runs" / run
        known = {
            "seaweed": {
                "name": "seaweed",
                "kind": "s3",
                "embedded": True,
                "bucket": "preserve-aips",
                "prefix": f"bench/{run}",
            },
            "local": {"name": "local", "kind": "filesystem", "path": str(var / "replica-local")},
        }
        o: dict[str, Any] = {
            "archive": {"var_dir": str(var), "ingest_dir": str(var / "ingest")},
            "ingest": {"stable_seconds": 0.0, "poll_seconds": 0.2}
            | ({"staging": staging} if HAS_STAGING_SETTING else {}),
            "services": self._services(),
            "replication": {"min_verified_replicas": len(targets)},
            "targets": [known[t] for t in targets],
        }
        if access:
            o["access_target"] = {
                "name": "access",
                "kind": "s3",
                "embedded": True,
                "bucket": "preserve-access",
                "prefix": f"open-{run}",
            }
        return merge(o, extra or {})

    def settings(self, overrides: dict[str, Any]) -> Settings:
        s = settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides=overrides)
        s.ingest_dir.mkdir(parents=True, exist_ok=True)
        return s

    def run_dir(self, run: str) -> Path:
        return self.work / "runs" / run

    def forget_run(self, run: str) -> None:
        """Remove a run's var dir (catalog, local replica, done/) once it has been measured."""
        shutil.rmtree(self.run_dir(run), ignore_errors=True)

    # -- the server ------------------------------------------------------------------------------
    def server_settings(self) -> Settings:
        return self.settings(self.overrides("server", ("seaweed",)))

    @contextlib.contextmanager
    def running(self) -> Iterator[BenchArchive]:
        """The work directory, fresh, with SeaweedFS up; both gone afterwards. A server left
        running by an interrupted earlier run in the same directory is stopped first."""
        if (self.services_dir / "seaweedfs").is_dir():
            services.down(self.server_settings())
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        started = None
        for attempt in range(3):
            self.port_base = free_port_base()
            try:
                started = self.server_settings()
                services.up(started)
                break
            except StorageUnavailable:  # another engineer's server took one of the ports meanwhile
                started = None
                if attempt == 2:
                    raise
        try:
            yield self
        finally:
            if started is not None:
                services.down(started)
            shutil.rmtree(self.work, ignore_errors=True)


def write_config(overrides: dict[str, Any], path: Path) -> Path:
    """A TOML config file holding ``overrides`` on top of the default config, for code that loads
    its Settings from a file (the Prefect flow). Only the shapes used here: tables of scalars and
    lists of scalars, and arrays of such tables."""
    base = settings_mod.DEFAULT_CONFIG.read_text(encoding="utf-8")
    import tomllib

    data = merge(tomllib.loads(base), overrides)
    lines: list[str] = []

    def value(v: Any) -> str:
        return json.dumps(str(v) if isinstance(v, Path) else v, ensure_ascii=False)

    for name, section in data.items():
        if isinstance(section, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {value(v)}" for k, v in section.items()]
        elif isinstance(section, list):
            for item in section:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {value(v)}" for k, v in item.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _candidates(ingest_dir: Path, name: str) -> list[Path]:
    found = [ingest_dir / name, ingest_dir / "done" / name]
    failed = ingest_dir / "failed"
    if failed.is_dir():
        found += sorted(failed.rglob(name))
    return found


@contextlib.contextmanager
def lent(cached: Path, ingest_dir: Path) -> Iterator[Path]:
    """Move a cached submission into an ingest folder for one ingest (a rename: no copy, so a
    2 GB source costs nothing to put in place) and move it back from wherever the ingest left it
    (the folder, done/ or failed/). The ingest never writes to its source, so it comes back
    unchanged; its size and mtime are checked."""
    ingest_dir.mkdir(parents=True, exist_ok=True)
    before = cached.stat()
    placed = ingest_dir / cached.name
    os.rename(cached, placed)
    try:
        yield placed
    finally:
        back = next((p for p in _candidates(ingest_dir, cached.name) if os.path.lexists(p)), None)
        if back is None:
            raise RuntimeError(f"the benchmark lost track of its submission {cached.name} in {ingest_dir}")
        os.rename(back, cached)
        after = cached.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise RuntimeError(f"{cached} changed during the ingest (size or mtime)")


def reclaim(cached: Path, ingest_dir: Path) -> None:
    """Put a lent submission back in the cache if a killed child could not (lent's own cleanup
    did not run); the work directory is deleted later and must not take the cached input along."""
    if os.path.lexists(cached):
        return
    back = next((p for p in _candidates(ingest_dir, cached.name) if os.path.lexists(p)), None)
    if back is not None:
        os.rename(back, cached)


def ingest_env(var_dir: Path) -> dict[str, str]:
    """`clean_env` with TMPDIR inside the run's var dir, so that anything an ingest writes to a
    temporary file is counted by the disk row, and removed with the run."""
    tmp = var_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {**clean_env(), "TMPDIR": str(tmp)}


def clean_env() -> dict[str, str]:
    """The environment for child processes: no PRESERVE settings from the caller's shell, Prefect
    kept quiet and offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVE")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
