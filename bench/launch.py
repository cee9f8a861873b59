"""Starting the measured child processes (bench.child, the peer script) from the benchmark and
watching their process tree. The benchmark is a harness, not the library, so it starts its
processes itself rather than through preserve.tools.run. Side effects: runs processes, writes spec
and result files in the work directory."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.environment import clean_env
from bench.measure import DiskSampler, TreeSampler

REPO = Path(__file__).resolve().parents[1]


class ChildFailed(RuntimeError):
    pass


def run_child(
    spec: dict[str, Any],
    work: Path,
    name: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
    disk: DiskSampler | None = None,
) -> dict[str, Any]:
    """Run `python -m bench.child` on ``spec``; return its result with the sampled memory of its
    process tree added under "memory", the wall time seen from outside under "process_seconds"
    and, when ``disk`` is given, the disk space it sampled during the child's life under "disk"."""
    work.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = work / f"{name}.spec.json", work / f"{name}.result.json", work / f"{name}.log"
    spec = {**spec, "result": str(result_path)}
    spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    with open(log_path, "wb") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.child", str(spec_path)],
            cwd=REPO,
            env=env or clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        with TreeSampler(proc.pid) as sampler, disk or contextlib.nullcontext():
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise ChildFailed(f"{name} did not finish within {timeout:.0f} s; see {log_path}") from None
        elapsed = time.monotonic() - t0
    if code != 0 or not result_path.exists():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise ChildFailed(f"{name} failed (exit {code}):\n{tail}")
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    result["memory"] = sampler.memory.as_dict()
    if disk is not None:
        result["disk"] = disk.use.as_dict()
    result["process_seconds"] = elapsed
    return result
