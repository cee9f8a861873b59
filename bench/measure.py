"""How the benchmark measures: wall-clock time of a call, medians, the memory and I/O of a whole
process tree and of each process in it as Linux reports them under /proc, and the disk space a
directory tree takes. Side effects: reads /proc and walks the directories it is given; writes
nothing."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
PAGE = os.sysconf("SC_PAGE_SIZE")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(seconds, result) of one call, by the monotonic clock."""
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def proc_io(pid: int | str = "self") -> dict[str, int]:
    """/proc/<pid>/io. For a process it covers all its threads and every child it has reaped
    (the kernel adds a child's counters to its parent when the parent waits for it), so read in
    the ingest process after its tools exited it covers the whole process tree."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = int(value)
    return out


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, command name, start time in clock ticks) from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the name is in parentheses and may itself contain spaces or parentheses
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), name, int(fields[19])


def _tree(root: int) -> dict[int, tuple[str, int]]:
    """{pid: (name, start time)} of root and every process below it, from one scan of /proc."""
    parents: dict[int, list[int]] = {}
    info: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is None:
            continue
        parents.setdefault(st[0], []).append(int(entry))
        info[int(entry)] = (st[1], st[2])
    tree: dict[int, tuple[str, int]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in tree or pid not in info:
            continue
        tree[pid] = info[pid]
        todo += parents.get(pid, [])
    return tree


def descendants(root: int) -> dict[int, str]:
    """{pid: name} of root and every process below it, from one scan of /proc."""
    return {pid: name for pid, (name, _) in _tree(root).items()}


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class TreeMemory:
    """Peaks seen while sampling: the whole tree at one instant, the root process alone, and the
    largest single child process (with its name)."""

    peak_tree: int = 0
    peak_root: int = 0
    peak_child: int = 0
    peak_child_name: str = ""
    samples: int = 0
    by_name: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_tree_bytes": self.peak_tree,
            "peak_root_bytes": self.peak_root,
            "peak_child_bytes": self.peak_child,
            "peak_child_name": self.peak_child_name,
            "samples": self.samples,
            "peak_by_name_bytes": dict(sorted(self.by_name.items())),
        }


class TreeSampler:
    """Samples the resident memory of a process and all its descendants every ``interval``
    seconds on a background thread (use as a context manager around the child's lifetime)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.memory = TreeMemory()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sample-{pid}", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        m = self.memory
        while not self._stop.is_set():
            tree = _tree(self.pid)
            if not tree:
                break
            total = 0
            for pid, (name, _) in tree.items():
                rss = rss_bytes(pid)
                total += rss
                if pid == self.pid:
                    m.peak_root = max(m.peak_root, rss)
                    continue
                m.by_name[name] = max(m.by_name.get(name, 0), rss)
                if rss > m.peak_child:
                    m.peak_child, m.peak_child_name = rss, name
            m.peak_tree = max(m.peak_tree, total)
            m.samples += 1
            self._stop.wait(self.interval)


def readers(
    total_rchar: int, tools: list[dict[str, Any]], steps: list[dict[str, Any]], threads: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Who read what, from one measured ingest: ``total_rchar`` is the ingest process's own
    /proc/self/io delta over the ingest (its threads and every tool it reaped), ``tools`` what
    each tool had read when it was reaped (bench.child's `ToolReads`), ``steps`` the child's
    per-step deltas with their start and end times; a tool belongs to the step it was reaped in.
    ``threads`` is bench.child's `ThreadReads.as_dict()`: the ingest process's reads by thread
    kind and step. Returns {"by_process": {name: rchar}, "processes": {name: count}, "python":
    rchar, "python_by_step": {step: rchar}, "main_by_step": {step: rchar}, "threads": {kind:
    rchar}, "unattributed": rchar}: "python" is the ingest process itself; of it, "main_by_step"
    is what its main thread read in each step, "threads" what its other threads read, by kind
    (uploads, digests, ...), and "unattributed" the rest (threads that ended between samples)."""
    by_name: dict[str, int] = {}
    count: dict[str, int] = {}
    tool_in_step: dict[str, int] = {}
    for p in tools:
        by_name[p["name"]] = by_name.get(p["name"], 0) + p["rchar"]
        count[p["name"]] = count.get(p["name"], 0) + 1
        step = next((s for s in steps if s["started"] <= p["reaped_at"] <= s["ended"]), None)
        if step is not None:
            tool_in_step[step["step"]] = tool_in_step.get(step["step"], 0) + p["rchar"]
    python_by_step = {s["step"]: max(0, s["rchar"] - tool_in_step.get(s["step"], 0)) for s in steps}
    python = max(0, total_rchar - sum(by_name.values()))
    by_kind: dict[str, dict[str, int]] = (threads or {}).get("by_kind", {})
    others = {kind: sum(v.values()) for kind, v in by_kind.items() if kind != "main"}
    attributed = sum(sum(v.values()) for v in by_kind.values()) + (threads or {}).get("sampler", 0)
    return {
        "by_process": dict(sorted(by_name.items(), key=lambda kv: -kv[1])),
        "processes": count,
        "python": python,
        "python_by_step": python_by_step,
        "main_by_step": by_kind.get("main", {}),
        "threads": dict(sorted(others.items(), key=lambda kv: -kv[1])),
        "unattributed": max(0, python - attributed) if threads else None,
    }


@dataclass
class DiskUse:
    """Peaks of the space a directory tree took while sampled, above what it took at the first
    sample (``baseline``)."""

    baseline: int = -1
    peak: int = 0
    samples: int = 0
    peak_at: float = 0.0  # time.monotonic() of the peak

    @property
    def extra(self) -> int:
        return max(0, self.peak - max(self.baseline, 0))

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline_bytes": max(self.baseline, 0),
            "peak_bytes": self.peak,
            "extra_bytes": self.extra,
            "samples": self.samples,
            "peak_at": self.peak_at,
        }


def allocated_bytes(roots: list[Path], exclude: list[Path], skip_inodes: frozenset[tuple[int, int]]) -> int:
    """Disk blocks allocated (st_blocks, as du counts, delayed allocation included on ext4) to the
    regular files under ``roots``, leaving out the trees in ``exclude`` and the files whose
    (device, inode) is in ``skip_inodes`` (a hard link to a source is not more disk), each inode
    counted once."""
    skip = {str(p) for p in exclude}
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for top, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
            for name in files:
                try:
                    st = os.lstat(os.path.join(top, name))
                except OSError:  # removed while we walked
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen or key in skip_inodes:
                    continue
                seen.add(key)
                total += st.st_blocks * 512
    return total


class DiskSampler:
    """Samples `allocated_bytes` of some directory trees every ``interval`` seconds on a background
    thread (use as a context manager around what is measured)."""

    def __init__(
        self,
        roots: list[Path],
        exclude: list[Path] = [],  # noqa: B006 - never mutated
        skip_inodes: frozenset[tuple[int, int]] = frozenset(),
        interval: float = 0.1,
    ) -> None:
        self.roots, self.exclude, self.skip_inodes, self.interval = roots, exclude, skip_inodes, interval
        self.use = DiskUse()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sample-disk", daemon=True)

    def __enter__(self) -> DiskSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        u = self.use
        while True:
            used = allocated_bytes(self.roots, self.exclude, self.skip_inodes)
            if u.baseline < 0:
                u.baseline = used
            if used > u.peak:
                u.peak, u.peak_at = used, time.monotonic()
            u.samples += 1
            if self._stop.wait(self.interval):
                break


def inodes_of(path: Path) -> frozenset[tuple[int, int]]:
    """(device, inode) of a file, or of every file under a folder."""
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    out = set()
    for p in paths:
        st = p.lstat()
        out.add((st.st_dev, st.st_ino))
    return frozenset(out)
