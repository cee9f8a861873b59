"""Speed of the privacy byte scan (`preserve.access.scrub.scan_bytes`): one Aho-Corasick pass over a
file of random bytes with N forbidden values (each in UTF-8, UTF-16-LE and UTF-16-BE, plus the
markers), against the scan it replaced (one `bytes.find` per pattern per chunk), measured on a
smaller piece of the same file because it is so much slower. Writes its file under a temporary
directory and removes it; prints one line per measurement. Not a test: run it by hand.

    .venv/bin/python scripts/bench_byte_scan.py [--mb 500] [--values 10000] [--old-mb 20]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from pathlib import Path

from preserve.access import scrub


def _values(n: int) -> list[str]:
    rng = random.Random(18)
    letters = "abcdefghijklmnopqrstuvwxyz "
    return [f"{''.join(rng.choice(letters) for _ in range(rng.randint(6, 30)))} {i}" for i in range(n)]


def _old_scan(path: Path, patterns: dict[bytes, str], limit: int) -> int:
    """The scan before issue 18: every pattern searched for on its own in every chunk."""
    found: set[bytes] = set()
    overlap = max(len(p) for p in patterns) - 1
    with open(path, "rb") as fh:
        tail, read = b"", 0
        while read < limit:
            chunk = fh.read(min(scrub.CHUNK, limit - read))
            if not chunk:
                break
            read += len(chunk)
            buf = tail + chunk
            for pat in patterns:
                if pat not in found and buf.find(pat) != -1:
                    found.add(pat)
            tail = buf[-overlap:]
    return len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--old-mb", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.bin"
        with open(path, "wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1024 * 1024))
        values = _values(args.values)
        patterns = scrub._patterns(values)
        size = path.stat().st_size

        started = time.perf_counter()
        findings = scrub.scan_bytes(path, patterns)
        seconds = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"automaton: {size / 1e6:.0f} MB, {args.values} values = {len(patterns)} patterns: "
            f"{seconds:.2f} s ({size / 1e6 / seconds:.1f} MB/s), {len(findings)} finding(s), peak RSS {rss:.0f} MiB"
        )

        limit = args.old_mb * 1024 * 1024
        started = time.perf_counter()
        _old_scan(path, patterns, limit)
        old = time.perf_counter() - started
        print(
            f"per-pattern find (before): {limit / 1e6:.0f} MB in {old:.2f} s ({limit / 1e6 / old:.2f} MB/s); "
            f"{size / 1e6:.0f} MB would take about {old * size / limit:.0f} s"
        )


if __name__ == "__main__":
    main()
