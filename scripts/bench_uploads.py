"""Upload throughput of preserve's verified put_file next to boto3's plain upload_file, measured in
one run, on the same file, against the same freshly started SeaweedFS on 127.0.0.1.

    .venv/bin/python scripts/bench_uploads.py [--size-mb 1024] [--runs 3] [--six-gb]

Prints MB/s (10^6 bytes per second) as medians of the runs. put_file sends a SHA-256 with every
part, hashes the whole file, completes and verifies with a HEAD (ChecksumMode); "+ read-back"
also streams the object back and re-hashes it. upload_file is boto3's default TransferConfig
(8 MiB parts, 10 threads, CRC32 computed by botocore, nothing verified afterwards).
Side effects: a temporary directory with the server's data and the test file, removed at the end."""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from preserve.dev import services  # noqa: E402
from preserve.storage import open_store  # noqa: E402
from tests.conftest import free_port_base, storage_settings  # noqa: E402
from tests.support import raw_s3  # noqa: E402

MiB = 1 << 20


def make_file(path: Path, size: int, sparse: bool) -> str:
    """Random bytes (or, for the 6 GB case, a sparse file with a random MiB per GiB)."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        if sparse:
            f.truncate(size)
            for offset in range(0, size - MiB, 1 << 30):
                f.seek(offset + 12345)
                f.write(os.urandom(MiB))
        else:
            left = size
            while left:
                chunk = os.urandom(min(left, 8 * MiB))
                f.write(chunk)
                left -= len(chunk)
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--six-gb", action="store_true", help="also one put_file of a sparse 6 GiB file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="preserve-bench-") as tmp:
        work = Path(tmp)
        settings = storage_settings(work / "var", free_port_base())
        services.up(settings)
        try:
            size = args.size_mb * MiB
            src = work / "film.bin"
            sha = make_file(src, size, sparse=False)
            results: dict[str, list[float]] = {
                "put_file (checksums + HEAD verify)": [],
                "put_file + read-back": [],
                "boto3 upload_file": [],
            }
            target = settings.target("seaweed")
            read_back = target.model_copy(update={"read_back": True})
            client, bucket, prefix = raw_s3(settings, "seaweed")
            for run in range(args.runs):
                for label, fn in (
                    ("put_file (checksums + HEAD verify)", lambda k: _put(settings, target, k, src, sha, size)),
                    ("put_file + read-back", lambda k: _put(settings, read_back, k, src, sha, size)),
                    ("boto3 upload_file", lambda k: client.upload_file(str(src), bucket, prefix + k)),
                ):
                    key = f"bench/{run}/{label.split()[0]}-{len(results[label])}"
                    started = time.monotonic()
                    fn(key)
                    results[label].append(size / (time.monotonic() - started) / 1e6)
            client.close()
            print(
                f"{args.size_mb} MiB random file, {args.runs} runs each, SeaweedFS 4.48 on 127.0.0.1, "
                f"{os.cpu_count()} cores; medians (min-max):"
            )
            for label, values in results.items():
                print(f"  {label:38} {statistics.median(values):7.1f} MB/s  ({min(values):.1f}-{max(values):.1f})")
            if args.six_gb:
                big = work / "six.bin"
                big_size = 6 << 30
                big_sha = make_file(big, big_size, sparse=True)
                src.unlink()
                started = time.monotonic()
                _put(settings, target, "bench/six", big, big_sha, big_size)
                seconds = time.monotonic() - started
                print(f"  6 GiB sparse file, put_file: {seconds:.1f} s, {big_size / seconds / 1e6:.1f} MB/s")
        finally:
            services.down(settings)
    return 0


def _put(settings, target, key, src, sha, size) -> None:  # type: ignore[no-untyped-def]
    with open_store(settings, target) as store:
        store.put_file(key, src, sha256=sha, size=size)


if __name__ == "__main__":
    sys.exit(main())
