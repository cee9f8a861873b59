"""How the benchmark measures: wall-clock time of a call, medians, and the memory and I/O of a
whole process tree as Linux reports them under /proc. Side effects: reads /proc only."""

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


def _ppid_and_name(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the name is in parentheses and may itself contain spaces or parentheses
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), name


def descendants(root: int) -> dict[int, str]:
    """{pid: name} of root and every process below it, from one scan of /proc."""
    parents: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = _ppid_and_name(int(entry))
        if info is None:
            continue
        parents.setdefault(info[0], []).append(int(entry))
        names[int(entry)] = info[1]
    tree: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in tree or pid not in names:
            continue
        tree[pid] = names[pid]
        todo += parents.get(pid, [])
    return tree


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
            tree = descendants(self.pid)
            if not tree:
                break
            total = 0
            for pid, name in tree.items():
                rss = rss_bytes(pid)
                total += rss
                if pid == self.pid:
                    m.peak_root = max(m.peak_root, rss)
                else:
                    m.by_name[name] = max(m.by_name.get(name, 0), rss)
                    if rss > m.peak_child:
                        m.peak_child, m.peak_child_name = rss, name
            m.peak_tree = max(m.peak_tree, total)
            m.samples += 1
            self._stop.wait(self.interval)
