"""The measurements behind each row of the table (B1-B8 and the peer pipeline). Every comparison
is between two things measured in this run, on the same data, interleaved run by run (A B, B A,
A B) so that load from anything else on the machine falls on both. Side effects: runs ingests in
child processes, uploads to and deletes from the benchmark's own SeaweedFS, runs the peer
script, writes under the work directory."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data import Dataset
from bench.environment import BenchArchive, clean_env, reclaim, write_config
from bench.launch import REPO
from bench.launch import run_child as _run_child
from bench.measure import median, timed
from bench.report import Row, mb_s, mib, seconds
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.operations.audit import AuditScope, run_audit
from preserve.storage import open_store
from preserve.storage.credentials import credentials_for

PEER_SCRIPT = Path(__file__).resolve().parent / "peer_pipeline.sh"
RSS_GOAL = 300 * 1000**2  # "< 300 MB"
FLAT_GOAL = 1.10  # "flat": the big file's peak within 10% of the small one's


@dataclass
class Context:
    archive: BenchArchive
    data: Dataset
    repeat: int
    log: Callable[[str], None]
    rows: list[Row] = field(default_factory=list)

    @property
    def children(self) -> Path:
        return self.archive.work / "children"


def settle() -> None:
    """Flush what earlier measurements left for the disk to write (a 2 GB upload leaves the
    server writing for a while), so no measurement pays for the one before it. Not timed."""
    os.sync()


def run_child(spec: dict[str, Any], work: Path, name: str, **kwargs: Any) -> dict[str, Any]:
    """bench.launch.run_child, making sure every submission it lent goes back to the cache even
    when the child was killed."""
    try:
        return _run_child(spec, work, name, **kwargs)
    finally:
        for r in spec.get("runs", [spec]):
            if "source" in r:
                reclaim(Path(r["source"]), Path(r["overrides"]["archive"]["ingest_dir"]))


# -- references ------------------------------------------------------------------------------------
def cat_once(path: Path) -> float:
    """`cat FILE > /dev/null`: reading the file once, the floor for anything that reads it."""
    t, proc = timed(lambda: subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True))
    return t


def hashlib_one_pass(path: Path) -> float:
    """SHA-256 and SHA-512 with hashlib in one read, one thread: the straightforward Python way."""

    def run() -> None:
        a, b = hashlib.sha256(), hashlib.sha512()
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                a.update(view[:n])
                b.update(view[:n])
        a.hexdigest(), b.hexdigest()

    return timed(run)[0]


def bagit_peer(path: Path, work: Path) -> tuple[float, float]:
    """The peer's bag: copy the file into a fresh folder (bagit.py moves payload in place, so a
    team must copy to keep the source) and run `bagit.py --sha256 --sha512` on it. Returns
    (copy + bagit.py, bagit.py alone) in seconds."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    bagit = Path(sys.executable).parent / "bagit.py"
    t0 = time.monotonic()
    subprocess.run(["cp", str(path), str(work)], check=True)
    t1 = time.monotonic()
    subprocess.run(
        [sys.executable, str(bagit), "--quiet", "--sha256", "--sha512", str(work)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t2 = time.monotonic()
    shutil.rmtree(work, ignore_errors=True)
    return t2 - t0, t2 - t1


def plain_s3(settings: Settings, target: str) -> tuple[Any, str, str]:
    """A boto3 client as a team would use it, minus every checksum: no CRC32, no payload
    signing hash, no response validation. Returns (client, bucket, key prefix)."""
    import boto3
    from botocore.config import Config

    t = settings.target(target)
    config = Config(
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = boto3.client(
        "s3",
        endpoint_url=settings.endpoint_of(t),
        region_name=t.region,
        config=config,
        **credentials_for(settings, t, env={}),
    )
    return client, t.bucket, (t.prefix.strip("/") + "/") if t.prefix else ""


# -- B1-B4, B6 (2 GB with S3), B7 ---------------------------------------------------------------------
def fixity_and_storage(ctx: Context) -> None:
    """Per run: ingest the random file (one S3 replica) in a child process, then the references on
    the same file and the same stored objects: cat, hashlib, the bagit.py peer, the audit against
    boto3 download_fileobj, and boto3 upload_file of the same bytes."""
    src, a = ctx.data.random_file, ctx.archive
    runs: dict[str, list[Any]] = {
        k: []
        for k in (
            "stage_package_s",
            "cat_s",
            "hashlib_s",
            "peer_cp_bagit_s",
            "peer_bagit_s",
            "replicate_s",
            "replicate_bytes",
            "boto3_upload_s",
            "audit_s",
            "audit_bytes",
            "boto3_download_s",
            "download_bytes",
            "peak_tree_bytes",
            "peak_root_bytes",
            "maxrss_self_bytes",
            "maxrss_children_bytes",
            "rchar_per_byte",
            "read_bytes_per_byte",
            "ingest_s",
            "steps",
        )
    }
    for i in range(ctx.repeat):
        run = f"fixity-{i}"
        overrides = a.overrides(run, ("seaweed",))
        ctx.log(f"B1-B4 run {i + 1}/{ctx.repeat}: ingest of {ctx.data.sizes.random_label} with one S3 replica")
        settle()
        res = run_child({"overrides": overrides, "source": str(src)}, ctx.children, run)
        if res["status"] != "stored":
            raise RuntimeError(f"the benchmark ingest was not stored: {res['status']}: {res['detail']}")
        steps = {s["step"]: s for s in res["steps"]}
        runs["steps"].append(res["steps"])
        runs["ingest_s"].append(res["seconds"])
        runs["stage_package_s"].append(steps["stage"]["seconds"] + steps["package"]["seconds"])
        runs["replicate_s"].append(steps["replicate"]["seconds"])
        runs["peak_tree_bytes"].append(res["memory"]["peak_tree_bytes"])
        runs["peak_root_bytes"].append(res["memory"]["peak_root_bytes"])
        runs["maxrss_self_bytes"].append(res["maxrss_self_bytes"])
        runs["maxrss_children_bytes"].append(res["maxrss_children_bytes"])
        runs["rchar_per_byte"].append(res["rchar"] / res["payload_bytes"])
        runs["read_bytes_per_byte"].append(res["read_bytes"] / res["payload_bytes"])
        settings = a.settings(overrides)
        catalog = Catalog(settings.catalog_url)
        try:
            objects = catalog.objects(aip_id=res["aip_id"], target="seaweed")
            nbytes = sum(o.size for o in objects)
            runs["replicate_bytes"].append(nbytes)
            ctx.log(f"B1-B2 run {i + 1}/{ctx.repeat}: cat, hashlib, cp + bagit.py")
            settle()
            runs["cat_s"].append(cat_once(src))
            runs["hashlib_s"].append(hashlib_one_pass(src))
            settle()
            both, alone = bagit_peer(src, a.work / "peer-bag" / "bag")
            runs["peer_cp_bagit_s"].append(both)
            runs["peer_bagit_s"].append(alone)
            ctx.log(f"B4 run {i + 1}/{ctx.repeat}: audit vs boto3 download_fileobj")
            client, bucket, prefix = plain_s3(settings, "seaweed")

            def audit() -> None:
                t, report = timed(
                    lambda: run_audit(settings, catalog, AuditScope(aip_id=res["aip_id"], replica="seaweed", full=True))
                )
                if report.failures or report.errors or report.bag_problems:
                    raise RuntimeError(f"the audit found problems: {report.failures[:3]} {report.errors[:3]}")
                runs["audit_s"].append(t)
                runs["audit_bytes"].append(report.bytes_read)

            def download() -> None:
                t0 = time.monotonic()
                with open(os.devnull, "wb") as null:
                    for o in objects:
                        client.download_fileobj(bucket, prefix + o.key, null)
                runs["boto3_download_s"].append(time.monotonic() - t0)
                runs["download_bytes"].append(nbytes)

            for step in (audit, download) if i % 2 == 0 else (download, audit):
                settle()
                step()
            ctx.log(f"B3 run {i + 1}/{ctx.repeat}: boto3 upload_file of the same {mib(nbytes)}")
            settle()
            runs["boto3_upload_s"].append(
                _plain_upload(client, bucket, prefix, objects, src, a.work / f"small-{i}", f"baseline-{i}/")
            )
            store = open_store(settings, settings.target("seaweed"))
            try:
                for o in objects:
                    store.delete(o.key)
                    store.delete(f"baseline-{i}/{o.key}")
            finally:
                store.close()
            client.close()
        finally:
            catalog.close()
        a.forget_run(run)
    _rows_fixity_storage(ctx, runs)


def _plain_upload(
    client: Any, bucket: str, prefix: str, objects: list[Any], src: Path, scratch: Path, under: str
) -> float:
    """upload_file of every object of the AIP, the same bytes: the payload from the source file,
    the small tag and metadata files fetched back first (not timed)."""
    scratch.mkdir(parents=True, exist_ok=True)
    local: list[tuple[Path, str]] = []
    for n, o in enumerate(objects):
        if o.key.endswith("/data/objects/" + src.name):
            local.append((src, o.key))
        else:
            p = scratch / f"{n}.bin"
            client.download_file(bucket, prefix + o.key, str(p))
            local.append((p, o.key))
    t0 = time.monotonic()
    for path, key in local:
        client.upload_file(str(path), bucket, prefix + under + key)
    elapsed = time.monotonic() - t0
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


def _rows_fixity_storage(ctx: Context, r: dict[str, list[Any]]) -> None:
    label = ctx.data.sizes.random_label
    size = ctx.data.random_file.stat().st_size
    ours, h, c = median(r["stage_package_s"]), median(r["hashlib_s"]), median(r["cat_s"])
    peer, peer_alone = median(r["peer_cp_bagit_s"]), median(r["peer_bagit_s"])
    ctx.rows.append(
        Row(
            "B1",
            f"checksum + bag {label} (stage + package steps)",
            f"{seconds(ours)} ({mb_s(size, ours)})",
            f"hashlib one pass {seconds(h)}; cat {seconds(c)}",
            ours / h,
            "× one-pass hash",
            "≤ 1.15×",
            ours / h <= 1.15,
            runs={k: r[k] for k in ("stage_package_s", "hashlib_s", "cat_s", "steps")},
            notes=[f"{ours / c:.2f}× reading the file once with cat"],
        )
    )
    ctx.rows.append(
        Row(
            "B2",
            "the same, against the peer",
            f"{seconds(ours)}",
            f"cp + bagit.py {seconds(peer)} (bagit.py alone {seconds(peer_alone)})",
            ours / peer,
            "× peer",
            "< 1.00× (faster)",
            ours / peer < 1.0,
            runs={k: r[k] for k in ("stage_package_s", "peer_cp_bagit_s", "peer_bagit_s")},
            notes=[f"{ours / peer_alone:.2f}× bagit.py alone, without its copy"],
        )
    )
    nbytes = median(r["replicate_bytes"])
    rep, up = median(r["replicate_s"]), median(r["boto3_upload_s"])
    ctx.rows.append(
        Row(
            "B3",
            "replicate the bag to S3 (SHA-256 sent, verified)",
            f"{seconds(rep)} ({mb_s(nbytes, rep)})",
            f"boto3 upload_file, no checksums {seconds(up)} ({mb_s(nbytes, up)})",
            up / rep,
            "× boto3 throughput",
            "≥ 0.90×",
            up / rep >= 0.9,
            runs={k: r[k] for k in ("replicate_s", "replicate_bytes", "boto3_upload_s")},
        )
    )
    aud, down = median(r["audit_s"]), median(r["boto3_download_s"])
    abytes = median(r["audit_bytes"])
    ctx.rows.append(
        Row(
            "B4",
            "fixity audit of that AIP (full re-read)",
            f"{seconds(aud)} ({mb_s(abytes, aud)})",
            f"boto3 download_fileobj to /dev/null {seconds(down)} ({mb_s(nbytes, down)})",
            (abytes / aud) / (nbytes / down),
            "× boto3 throughput",
            "≥ 0.90×",
            (abytes / aud) / (nbytes / down) >= 0.9,
            runs={k: r[k] for k in ("audit_s", "audit_bytes", "boto3_download_s", "download_bytes")},
        )
    )
    peak = median(r["peak_tree_bytes"])
    ctx.rows.append(
        Row(
            "B6a",
            f"peak RSS, ingest of {label} (S3 replica), whole process tree",
            mib(peak),
            f"ingest process alone {mib(median(r['peak_root_bytes']))}; largest tool "
            f"{mib(median(r['maxrss_children_bytes']))}",
            None,
            "",
            "< 300 MB",
            peak < RSS_GOAL,
            runs={
                k: r[k] for k in ("peak_tree_bytes", "peak_root_bytes", "maxrss_self_bytes", "maxrss_children_bytes")
            },
        )
    )
    per = median(r["rchar_per_byte"])
    ctx.rows.append(
        Row(
            "B7",
            f"bytes read per byte ingested, {label}, S3 replica, no proxy",
            f"{per:.2f}",
            "read(2) bytes of the whole process tree (/proc rchar) / payload bytes",
            per,
            "",
            "≤ 2.0",
            per <= 2.0,
            runs={k: r[k] for k in ("rchar_per_byte", "read_bytes_per_byte")},
            notes=["by step (median run): " + _steps_per_byte(r["steps"], size)],
        )
    )


def _steps_per_byte(step_runs: list[list[dict[str, Any]]], size: int) -> str:
    mid = step_runs[len(step_runs) // 2]
    return ", ".join(f"{s['step']} {s['rchar'] / size:.2f}" for s in mid if s["rchar"] / size >= 0.01)


# -- B5 and the peer pipeline -----------------------------------------------------------------------
def media(ctx: Context) -> None:
    """Per run: preserve's full ingest of the clip (two replicas, access copies, catalog) in a
    child process, and the peer script on the same clip; their order alternates."""
    a, clip = ctx.archive, ctx.data.clip
    runs: dict[str, list[Any]] = {
        k: []
        for k in (
            "ingest_process_s",
            "ingest_s",
            "make_access_s",
            "peer_s",
            "peer_bagit_s",
            "peer_ffmpeg_s",
            "peer_upload_s",
            "steps",
            "peak_tree_bytes",
            "peak_child_bytes",
        )
    }
    for i in range(ctx.repeat):

        def ours() -> None:
            run = f"clip-{i}"
            ctx.log(f"B5 run {i + 1}/{ctx.repeat}: full ingest of the {ctx.data.sizes.clip_seconds} s clip")
            res = run_child({"overrides": a.overrides(run), "source": str(clip)}, ctx.children, run)
            if res["status"] != "stored":
                raise RuntimeError(f"the benchmark ingest of the clip was not stored: {res['status']}: {res['detail']}")
            runs["ingest_process_s"].append(res["process_seconds"])
            runs["ingest_s"].append(res["seconds"])
            runs["make_access_s"].append(next(s["seconds"] for s in res["steps"] if s["step"] == "make_access"))
            runs["steps"].append(res["steps"])
            runs["peak_tree_bytes"].append(res["memory"]["peak_tree_bytes"])
            runs["peak_child_bytes"].append(res["memory"]["peak_child_bytes"])
            a.forget_run(run)

        def peer() -> None:
            ctx.log(f"peer run {i + 1}/{ctx.repeat}: bagit.py, ffmpeg, boto3 upload")
            phases, total = run_peer(ctx, i)
            runs["peer_s"].append(total)
            for name in ("bagit", "ffmpeg", "upload"):
                runs[f"peer_{name}_s"].append(phases[name])

        for step in (ours, peer) if i % 2 == 0 else (peer, ours):
            settle()
            step()
    e2e, ff, peer_t = median(runs["ingest_process_s"]), median(runs["peer_ffmpeg_s"]), median(runs["peer_s"])
    secs = ctx.data.sizes.clip_seconds
    ctx.rows.append(
        Row(
            "B5",
            f"full ingest of the {secs} s 1080p ProRes clip, end to end",
            seconds(e2e),
            f"bare ffmpeg proxy command {seconds(ff)}",
            e2e / ff,
            "× bare ffmpeg",
            "≤ 1.25×",
            e2e / ff <= 1.25,
            runs={
                k: runs[k]
                for k in (
                    "ingest_process_s",
                    "ingest_s",
                    "make_access_s",
                    "peer_ffmpeg_s",
                    "steps",
                    "peak_tree_bytes",
                    "peak_child_bytes",
                )
            },
            notes=[
                "by step (median run): "
                + ", ".join(
                    f"{s['step']} {s['seconds']:.1f} s"
                    for s in runs["steps"][len(runs["steps"]) // 2]
                    if s["seconds"] >= 0.05
                )
            ],
        )
    )
    ctx.rows.append(
        Row(
            "peer",
            "peer pipeline on the same clip (bagit.py, then ffmpeg, then boto3 upload)",
            seconds(e2e),
            f"peer script {seconds(peer_t)} (bagit {seconds(median(runs['peer_bagit_s']))}, ffmpeg {seconds(ff)}, "
            f"upload {seconds(median(runs['peer_upload_s']))})",
            peer_t / e2e,
            "× speed-up over the peer",
            "> 1.00× (faster)",
            peer_t / e2e > 1.0,
            runs={k: runs[k] for k in ("ingest_process_s", "peer_s", "peer_bagit_s", "peer_ffmpeg_s", "peer_upload_s")},
            notes=["preserve does more: 2 verified replicas, decode check, framemd5, poster, contact sheet, catalog"],
        )
    )


def run_peer(ctx: Context, i: int) -> tuple[dict[str, float], float]:
    settings = ctx.archive.server_settings()
    target = settings.target("seaweed")
    creds = credentials_for(settings, target, env={})
    env = {
        **clean_env(),
        "AWS_ACCESS_KEY_ID": creds["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["aws_secret_access_key"],
        "PYTHON": sys.executable,
        "BAGIT": str(Path(sys.executable).parent / "bagit.py"),
    }
    work = ctx.archive.work / f"peer-{i}"
    argv = [
        "bash",
        str(PEER_SCRIPT),
        str(ctx.data.clip),
        str(work),
        settings.endpoint_of(target),
        target.bucket,
        f"peer-{i}",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    total = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the peer pipeline failed ({proc.returncode}): {proc.stderr[-2000:]}")
    phases = {m.group(1): float(m.group(2)) for m in re.finditer(r"^phase (\w+) ([\d.]+)$", proc.stdout, re.M)}
    shutil.rmtree(work, ignore_errors=True)
    return phases, total


# -- B6 (flat as size grows) -------------------------------------------------------------------------
def memory_flatness(ctx: Context) -> None:
    """The random file and the sparse one, 10x bigger, each ingested once with the filesystem
    replica (an S3 upload of 20 GB would take the whole time budget here): memory and reads
    must not grow with the size. Memory is a count, not a timing, so one run of each."""
    a = ctx.archive
    results: dict[str, dict[str, Any]] = {}
    for name, src in (("small", ctx.data.random_file), ("large", ctx.data.sparse_file)):
        size = src.stat().st_size
        free = shutil.disk_usage(a.work).free
        if free < 2.2 * size:
            raise RuntimeError(
                f"not enough free disk for the {size / 1e9:.0f} GB ingest ({free / 1e9:.0f} GB free; "
                f"staging and the filesystem replica need {2.2 * size / 1e9:.0f} GB)"
            )
        run = f"memory-{name}"
        ctx.log(f"B6 {name}: ingest of {size / 1e9:g} GB with the filesystem replica")
        settle()
        res = run_child({"overrides": a.overrides(run, ("local",)), "source": str(src)}, ctx.children, run)
        if res["status"] != "stored":
            raise RuntimeError(f"the {name} ingest was not stored: {res['status']}: {res['detail']}")
        results[name] = {
            "size": size,
            "seconds": res["seconds"],
            "memory": res["memory"],
            "steps": res["steps"],
            "maxrss_self_bytes": res["maxrss_self_bytes"],
            "maxrss_children_bytes": res["maxrss_children_bytes"],
            "rchar_per_byte": res["rchar"] / res["payload_bytes"],
        }
        a.forget_run(run)
    small, large = results["small"], results["large"]
    ps, pl = small["memory"]["peak_tree_bytes"], large["memory"]["peak_tree_bytes"]
    ctx.rows.append(
        Row(
            "B6b",
            f"peak RSS, {ctx.data.sizes.sparse_label} sparse vs {ctx.data.sizes.random_label} (filesystem replica)",
            f"{mib(pl)} vs {mib(ps)}",
            f"ingest process alone {mib(large['memory']['peak_root_bytes'])} vs "
            f"{mib(small['memory']['peak_root_bytes'])}",
            pl / ps,
            "× (large / small)",
            "< 300 MB and ≤ 1.10×",
            pl < RSS_GOAL and pl / ps <= FLAT_GOAL,
            runs=results,
            notes=[
                f"bytes read per byte ingested with the filesystem replica: {small['rchar_per_byte']:.2f} "
                f"(small), {large['rchar_per_byte']:.2f} (large)",
                f"ingest time {seconds(small['seconds'])} (small), {seconds(large['seconds'])} (large)",
            ],
        )
    )


# -- B8 --------------------------------------------------------------------------------------------
def prefect_overhead(ctx: Context) -> None:
    """In one child process: start Prefect once (timed apart, then excluded), then ingest the
    folder of tiny files alternately through the flow and through the library call."""
    a = ctx.archive
    planned: list[dict[str, Any]] = []
    for i in range(ctx.repeat):
        for mode in ("library", "flow") if i % 2 == 0 else ("flow", "library"):
            run = f"b8-{mode}-{i}"
            overrides = a.overrides(run)
            cfg = write_config(overrides, a.work / f"{run}.toml") if mode == "flow" else None
            planned.append(
                {
                    "mode": mode,
                    "source": str(ctx.data.tiny_folder),
                    "overrides": overrides,
                    "config": str(cfg) if cfg else None,
                }
            )
    env = clean_env()
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_HOME"] = str(a.work / "prefect-home")
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    ctx.log(
        f"B8: Prefect start-up, then {ctx.repeat} x (flow, library) ingests of {ctx.data.sizes.tiny_files} tiny files"
    )
    res = run_child({"mode": "prefect", "runs": planned}, ctx.children, "prefect", env=env)
    bad = [r for r in res["runs"] if r["status"] not in ("stored", "Completed", "COMPLETED")]
    if bad:
        raise RuntimeError(f"B8 ingests did not all store: {bad[:2]}")
    flow = median([r["seconds"] for r in res["runs"] if r["mode"] == "flow"])
    lib = median([r["seconds"] for r in res["runs"] if r["mode"] == "library"])
    n = ctx.data.sizes.tiny_files
    ctx.rows.append(
        Row(
            "B8",
            f"Prefect flow, one submission of {n} tiny files",
            seconds(flow),
            f"library call {seconds(lib)}",
            flow / lib,
            "× library",
            "≤ 1.50×",
            flow / lib <= 1.5,
            runs=res,
            notes=[
                f"Prefect start-up excluded: importing Prefect {seconds(res['import_seconds'])} and starting its "
                f"ephemeral API server (first flow run of the process) {seconds(res['startup_seconds'])}, paid once per "
                "worker process, not per ingest"
            ],
        )
    )
