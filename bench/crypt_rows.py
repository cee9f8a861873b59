"""The benchmark rows of issue 16 (age-encrypted replicas): B16, `put_file` of the film-sized random
file through `open_store` to the benchmark's SeaweedFS as a plaintext target and as the same target
with ``encryption = "age"``, in alternating order; B17, the keyless audit of that ciphertext (its
raw object, by its opaque key, streamed and SHA-256'd as `preserve.storage.base.sha256_of` does)
against downloading and hashing the plaintext object from the plaintext target, with the
decrypting read (the target's identity set) beside them; and B18, the peak RSS of a process that
uploads a sparse file ten times bigger than another to the encrypted target (flat, as B6b).

Every AIP id is a fresh UUID (an encrypted target keeps objects only under "<aip>/", and makes a
new key for a new AIP); each run's objects, key object and name index are deleted afterwards.

Side effects: writes an age identity file (0600) and the SHA-256 of each sparse input (beside it
in the cache, so a 20 GB file is hashed once) and B18's smaller sparse input (2 GB, quick 200 MB);
uploads to and deletes from the benchmark's own SeaweedFS; runs one Python child per B18 upload."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.data import GB, MB, make_sparse_file
from bench.environment import clean_env
from bench.launch import REPO
from bench.measure import TreeSampler, median, timed
from bench.report import Row, mb_s, mib, seconds
from bench.rows import FLAT_GOAL, RSS_GOAL, Context, settle
from preserve.config import Settings, TargetSettings
from preserve.storage import ObjectStore, open_store
from preserve.storage.base import object_key, sha256_of
from preserve.storage.crypt import EncryptedStore, as_stored, remembering_keys

#: the encrypted target's name in the benchmark's settings (its identity variable is named after it)
CRYPT_TARGET = "bench-age"
PLAIN_TARGET = "seaweed"
#: B16-B17's goal: encryption, and the keyless audit of ciphertext, at 0.9x plaintext throughput at least
THROUGHPUT_GOAL = 0.90
#: B18's two uploads: (small, large) sparse files, the large one the cached sparse input
B18_BYTES = {"full": (2 * GB, 20 * GB), "quick": (200 * MB, 1 * GB)}
#: free disk B18 leaves untouched besides the ciphertext (the server's volumes, its index, the rest)
DISK_MARGIN = 2 * GB
MEMBER = "data/objects/film.bin"


def _mode(ctx: Context) -> str:
    return "quick" if ctx.data.sizes.name == "quick" else "full"


# -- setup -----------------------------------------------------------------------------------------
def make_identity(folder: Path) -> tuple[str, Path]:
    """A fresh age X25519 identity (pyrage), written to ``folder``/identity.txt (0600) as
    age-keygen writes one; returns (its recipient, the file)."""
    from pyrage import x25519

    identity = x25519.Identity.generate()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "identity.txt"
    path.unlink(missing_ok=True)
    recipient = str(identity.to_public())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="ascii") as f:
        f.write(f"# public key: {recipient}\n{identity}\n")
    return recipient, path


def crypt_overrides(ctx: Context, run: str, recipient: str) -> dict[str, Any]:
    """The run's settings overrides with two targets on the same bucket of the benchmark's
    SeaweedFS, under their own prefixes: "seaweed" (plaintext) and the same with
    ``encryption = "age"`` to ``recipient``."""
    o = ctx.archive.overrides(run, (PLAIN_TARGET,), access=False)
    plain = o["targets"][0]
    encrypted = {
        **plain,
        "name": CRYPT_TARGET,
        "prefix": f"{plain['prefix']}-age",
        "encryption": "age",
        "age_recipients": [recipient],
    }
    o["targets"] = [plain, encrypted]
    o["replication"] = {"min_verified_replicas": 2}
    return o


def file_sha256(path: Path) -> str:
    """SHA-256 of a file in one pass (the digest put_file must be given; not timed)."""
    h = hashlib.sha256()
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


def cached_sha256(path: Path) -> str:
    """`file_sha256`, remembered beside the file (``.<name>.sha256.json``, with its size and
    mtime) so that a 20 GB input is hashed once, not on every benchmark run."""
    st = path.stat()
    memo = path.with_name(f".{path.name}.sha256.json")
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if {k: saved.get(k) for k in stamp} == stamp:
            return str(saved["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = file_sha256(path)
    memo.write_text(json.dumps({**stamp, "sha256": digest}) + "\n", encoding="utf-8")
    return digest


def keyless(settings: Settings, target: TargetSettings) -> ObjectStore:
    """The encrypted target opened as the audit opens it without a key: `open_store` with no
    identity configured (checked), its stored form (`as_stored`: opaque names, ciphertext)."""
    store = open_store(settings, target)
    if not isinstance(store, EncryptedStore):
        raise RuntimeError(f"open_store did not return an EncryptedStore for the encrypted target {target.name!r}")
    if store.has_identity:
        store.close()
        raise RuntimeError(
            f"{target.identity_env_name()} is set in the benchmark's environment: the keyless audit would have a key"
        )
    return as_stored(store)


def drop_aip(store: ObjectStore, aip_id: str) -> None:
    """Delete everything of one AIP from a store as it holds it (objects, key object, name index)."""
    raw = as_stored(store)
    for info in list(raw.list(f"{aip_id}/")):
        raw.delete(info.key)
    if isinstance(store, EncryptedStore):
        store.forget(aip_id)


def _rotated(steps: list[Any], i: int) -> list[Any]:
    """``steps`` started at a different one on each run, so that none is always first."""
    k = i % len(steps)
    return steps[k:] + steps[:k]


# -- B16, B17 ----------------------------------------------------------------------------------------
def encrypted_replicas(ctx: Context) -> None:
    """Per run, with fresh AIP ids: `put_file` of the random file to the plaintext target and to
    the encrypted one (alternating which goes first); then, in rotating order, the keyless audit
    of the ciphertext (raw object by its opaque key, SHA-256 compared with the one put_file
    returned for it), the plain download + SHA-256 of the plaintext object, and the decrypting
    read (EncryptedStore with the identity file, plaintext SHA-256 compared); then both AIPs are
    deleted."""
    a, src = ctx.archive, ctx.data.random_file
    ctx.log(f"B16-B17: hashing the {ctx.data.sizes.random_label} file once (not timed)")
    sha = file_sha256(src)
    recipient, identity_file = make_identity(a.work / "b16-identity")
    keys = (
        "plain_put_s",
        "age_put_s",
        "plain_parts",
        "age_parts",
        "age_stored_bytes",
        "audit_raw_s",
        "audit_raw_bytes",
        "download_plain_s",
        "decrypt_s",
        "order",
    )
    runs: dict[str, list[Any]] = {k: [] for k in keys}
    try:
        for i in range(ctx.repeat):
            run = f"crypt-{i}"
            settings = a.settings(crypt_overrides(ctx, run, recipient))
            _crypt_run(ctx, i, settings, sha, identity_file, runs)
            a.forget_run(run)
    finally:
        shutil.rmtree(identity_file.parent, ignore_errors=True)
    ctx.rows += _crypt_rows(ctx, runs, src.stat().st_size)


def _crypt_run(
    ctx: Context, i: int, settings: Settings, sha: str, identity_file: Path, runs: dict[str, list[Any]]
) -> None:
    """One run of B16-B17 (see `encrypted_replicas`), its figures appended to ``runs``."""
    src = ctx.data.random_file
    size = src.stat().st_size
    plain_t, crypt_t = settings.target(PLAIN_TARGET), settings.target(CRYPT_TARGET)
    plain_key = object_key(str(uuid.uuid4()), MEMBER)
    crypt_aip = str(uuid.uuid4())
    crypt_key = object_key(crypt_aip, MEMBER)
    stored: dict[str, Any] = {}
    # as an ingest (or a back-fill) writes a new AIP: it makes the AIP's key and keeps it meanwhile
    with remembering_keys(), open_store(settings, plain_t) as plain, open_store(settings, crypt_t) as crypt:
        if not isinstance(crypt, EncryptedStore):
            raise RuntimeError("open_store did not return an EncryptedStore for the encrypted target")

        def put_plain() -> None:
            t, info = timed(lambda: plain.put_file(plain_key, src, sha256=sha, size=size))
            if info.sha256 != sha or info.size != size:
                raise RuntimeError(f"B16: the plaintext put returned {info.sha256} / {info.size} bytes")
            runs["plain_put_s"].append(t)
            runs["plain_parts"].append(info.upload.parts if info.upload else None)

        def put_age() -> None:
            t, info = timed(lambda: crypt.put_file(crypt_key, src, sha256=sha, size=size))
            if info.sha256 != sha or info.size != size or info.stored is None:
                raise RuntimeError(f"B16: the encrypted put returned {info.sha256} / {info.size} bytes")
            if info.stored.key == crypt_key or MEMBER in info.stored.key:
                raise RuntimeError(f"B16: the encrypted target stored the object as {info.stored.key!r}")
            stored.update(key=info.stored.key, size=info.stored.size, sha256=info.stored.sha256)
            runs["age_put_s"].append(t)
            runs["age_parts"].append(info.upload.parts if info.upload else None)
            runs["age_stored_bytes"].append(info.stored.size)

        def audit_raw() -> None:
            with keyless(settings, crypt_t) as raw:
                t, digest = timed(lambda: sha256_of(raw, stored["key"]))
            if digest != stored["sha256"]:
                raise RuntimeError("B17: the keyless audit's SHA-256 is not the ciphertext's stored one")
            runs["audit_raw_s"].append(t)
            runs["audit_raw_bytes"].append(stored["size"])

        def download_plain() -> None:
            with open_store(settings, plain_t) as fresh:  # a new client, as the keyless audit's
                t, digest = timed(lambda: sha256_of(fresh, plain_key))
            if digest != sha:
                raise RuntimeError("B17: the plaintext download's SHA-256 is not the file's")
            runs["download_plain_s"].append(t)

        def decrypt() -> None:
            with EncryptedStore(as_stored(open_store(settings, crypt_t)), crypt_t, identity_file) as dec:
                t, digest = timed(lambda: sha256_of(dec, crypt_key))
            if digest != sha:
                raise RuntimeError("B17: the decrypted plaintext's SHA-256 is not the file's")
            runs["decrypt_s"].append(t)

        try:
            puts = (put_plain, put_age) if i % 2 == 0 else (put_age, put_plain)
            ctx.log(
                f"B16 run {i + 1}/{ctx.repeat}: put_file of {ctx.data.sizes.random_label}, "
                + " then ".join("plaintext" if s is put_plain else "age" for s in puts)
            )
            for step in puts:
                settle()
                step()
            reads = _rotated([audit_raw, download_plain, decrypt], i)
            runs["order"].append([s.__name__ for s in reads])
            ctx.log(f"B17 run {i + 1}/{ctx.repeat}: " + ", ".join(s.__name__ for s in reads))
            for read in reads:
                settle()
                read()
        finally:
            plain.delete(plain_key)
            drop_aip(crypt, crypt_aip)


def _crypt_rows(ctx: Context, r: dict[str, list[Any]], size: int) -> list[Row]:
    label = ctx.data.sizes.random_label
    plain_put, age_put = median(r["plain_put_s"]), median(r["age_put_s"])
    cipher = median(r["age_stored_bytes"])
    put_ratio = plain_put / age_put  # plaintext bytes per second, encrypted / plain
    audit, down, dec = median(r["audit_raw_s"]), median(r["download_plain_s"]), median(r["decrypt_s"])
    audit_ratio = (cipher / audit) / (size / down)
    dec_ratio = down / dec
    b16 = Row(
        "B16",
        f'replicate a {label} file to S3 through open_store, target encryption = "age" (put_file, verified)',
        f"{seconds(age_put)} ({mb_s(size, age_put)})",
        f"the same target in plaintext {seconds(plain_put)} ({mb_s(size, plain_put)})",
        put_ratio,
        "× plaintext throughput",
        f"≥ {THROUGHPUT_GOAL:.2f}×",
        put_ratio >= THROUGHPUT_GOAL,
        runs={k: r[k] for k in ("plain_put_s", "age_put_s", "plain_parts", "age_parts", "age_stored_bytes")},
        notes=[
            f"the ciphertext is {cipher - size:,.0f} bytes longer than the plaintext ({(cipher / size - 1):.4%}: "
            "the header and a 16-byte tag per 64 KiB chunk); MB/s of plaintext on both sides",
            "the encrypted put also writes the AIP's key object and name index (a new AIP every run); "
            "the two puts alternate which goes first",
        ],
    )
    b17 = Row(
        "B17",
        f"keyless audit of that {label} ciphertext (raw object by its opaque key, streamed SHA-256)",
        f"{seconds(audit)} ({mb_s(cipher, audit)})",
        f"download + SHA-256 of the plaintext object {seconds(down)} ({mb_s(size, down)}); decrypting read "
        f"(identity set) {seconds(dec)} ({mb_s(size, dec)})",
        audit_ratio,
        f"× plaintext audit throughput; decrypting read {dec_ratio:.2f}× (no goal)",
        f"≥ {THROUGHPUT_GOAL:.2f}×",
        audit_ratio >= THROUGHPUT_GOAL,
        runs={k: r[k] for k in ("audit_raw_s", "audit_raw_bytes", "download_plain_s", "decrypt_s", "order")},
        notes=[
            "all three read through preserve.storage.base.sha256_of (ObjectStore.read_chunks, 8 MiB chunks): the "
            "keyless one on the encrypted target's stored form, opened with no identity; the decrypting one "
            "through EncryptedStore with the identity file, checked against the plaintext's SHA-256",
            "the three reads rotate which goes first",
        ],
    )
    return [b16, b17]


# -- B18 -----------------------------------------------------------------------------------------------
#: run in a Python of its own, importing only the configuration and the stores: one encrypted
#: put_file, and the peak RSS (VmHWM, exact) before and after it
_UPLOAD_CHILD = """
import json, sys, time
from pathlib import Path

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

from preserve import config as settings_mod
from preserve.storage import open_store
from preserve.storage.crypt import remembering_keys

spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
settings = settings_mod.load(settings_mod.DEFAULT_CONFIG, env={}, overrides=spec["overrides"])
before = hwm()
with remembering_keys(), open_store(settings, settings.target(spec["target"])) as store:
    t0 = time.monotonic()
    info = store.put_file(spec["key"], Path(spec["source"]), sha256=spec["sha256"], size=spec["size"])
    seconds = time.monotonic() - t0
print(json.dumps({
    "before_bytes": before,
    "peak_bytes": hwm(),
    "seconds": seconds,
    "stored_key": info.stored.key if info.stored else None,
    "stored_bytes": info.stored.size if info.stored else None,
    "plain_sha256": info.sha256,
    "parts": info.upload.parts if info.upload else None,
}))
"""


def upload_child(ctx: Context, spec: dict[str, Any], name: str) -> dict[str, Any]:
    """One encrypted put_file in a child process (`_UPLOAD_CHILD`), its process tree sampled from
    outside: its result with "memory" (TreeSampler) and "process_seconds" added."""
    work = ctx.children
    work.mkdir(parents=True, exist_ok=True)
    spec_path, log_path = work / f"{name}.spec.json", work / f"{name}.log"
    spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    with open(log_path, "wb") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", _UPLOAD_CHILD, str(spec_path)],
            cwd=REPO,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        with TreeSampler(proc.pid) as sampler:
            out, _ = proc.communicate(timeout=3600)
        elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"B18: the upload child {name} failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["memory"] = sampler.memory.as_dict()
    result["process_seconds"] = elapsed
    return result


def encrypted_memory(ctx: Context) -> None:
    """B18: a sparse file and one ten times bigger (the cached sparse input), each uploaded once
    to the encrypted target in a child process (a count, not a timing, so one run each; the small
    one first). Skipped, not failed, when the disk cannot hold the bigger one's ciphertext (the
    server stores it on this machine)."""
    a = ctx.archive
    small_bytes, large_bytes = B18_BYTES[_mode(ctx)]
    large = ctx.data.sparse_file
    if large.stat().st_size != large_bytes:
        large = make_sparse_file(large.parent / f"sparse-{large_bytes}.bin", large_bytes)
    small = make_sparse_file(large.parent / f"sparse-{small_bytes}.bin", small_bytes)
    what = f"peak RSS, encrypted upload (S3, age) of a {large_bytes / GB:g} GB vs a {small_bytes / GB:g} GB sparse file"
    goal = "< 300 MB and ≤ 1.10×"
    free = shutil.disk_usage(a.work).free
    need = int(1.1 * large_bytes) + DISK_MARGIN
    if free < need:
        ctx.log(
            f"B18 skipped: {free / GB:.1f} GB free, the ciphertext of {large_bytes / GB:g} GB needs {need / GB:.1f}"
        )
        ctx.rows.append(
            Row(
                "B18",
                what,
                "skipped",
                "-",
                None,
                "",
                goal,
                None,
                notes=[
                    f"skipped: {free / GB:.1f} GB free where the server keeps its data, the ciphertext of the "
                    f"{large_bytes / GB:g} GB file needs {need / GB:.1f} GB (with a {DISK_MARGIN / GB:g} GB margin)"
                ],
            )
        )
        return
    recipient, _identity = make_identity(a.work / "b18-identity")  # writing needs only the recipient
    results: dict[str, dict[str, Any]] = {}
    for name, src in (("small", small), ("large", large)):
        size = src.stat().st_size
        ctx.log(f"B18 {name}: SHA-256 of the {size / GB:g} GB sparse file (cached after the first run)")
        sha = cached_sha256(src)
        run = f"crypt-memory-{name}"
        overrides = crypt_overrides(ctx, run, recipient)
        settings = a.settings(overrides)
        aip = str(uuid.uuid4())
        spec = {
            "overrides": overrides,
            "target": CRYPT_TARGET,
            "key": object_key(aip, MEMBER),
            "source": str(src),
            "sha256": sha,
            "size": size,
        }
        ctx.log(f"B18 {name}: encrypted upload of {size / GB:g} GB in a child process")
        settle()
        try:
            res = upload_child(ctx, spec, run)
        finally:
            with open_store(settings, settings.target(CRYPT_TARGET)) as store:
                drop_aip(store, aip)
            a.forget_run(run)
        if res["plain_sha256"] != sha or not res["stored_key"] or res["stored_bytes"] <= size:
            raise RuntimeError(f"B18: the {name} upload did not store ciphertext as it should: {res}")
        results[name] = {"size": size, **res}
    s, lg = results["small"], results["large"]
    ps, pl = s["memory"]["peak_tree_bytes"], lg["memory"]["peak_tree_bytes"]
    ratio = pl / ps
    ctx.rows.append(
        Row(
            "B18",
            what,
            f"{mib(pl)} vs {mib(ps)}",
            f"VmHWM of the uploading process {mib(lg['peak_bytes'])} vs {mib(s['peak_bytes'])} "
            f"({mib(lg['before_bytes'])} before the upload)",
            ratio,
            "× (large / small)",
            goal,
            pl < RSS_GOAL and ratio <= FLAT_GOAL,
            runs=results,
            notes=[
                f"upload time {seconds(s['seconds'])} ({mb_s(s['size'], s['seconds'])}, small), "
                f"{seconds(lg['seconds'])} ({mb_s(lg['size'], lg['seconds'])}, large); {s['parts']} and "
                f"{lg['parts']} parts",
                "one run each (a count, not a timing); peak of the whole process tree sampled every 0.05 s, and the "
                "kernel's exact high-water mark of the one process",
            ],
        )
    )
