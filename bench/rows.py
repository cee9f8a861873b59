"""The measurements behind each row of the table (B1-B10, the peer pipeline, the disk row). Every
comparison is between two things measured in this run, on the same data, interleaved run by run
(A B, B A, A B) so that load from anything else on the machine falls on both. Side effects: runs
ingests in child processes, uploads to and deletes from the benchmark's own SeaweedFS, runs the
peer script, writes under the work directory."""

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

from bench.data import FILM_SIZE, Dataset, hours
from bench.environment import (
    HAS_STAGING_SETTING,
    BenchArchive,
    clean_env,
    ingest_env,
    reclaim,
    staging_mode,
    write_config,
)
from bench.launch import REPO
from bench.launch import run_child as _run_child
from bench.measure import DiskSampler, inodes_of, median, readers, timed
from bench.report import Row, mb_s, mib, seconds
from preserve.catalog import Catalog
from preserve.config import Settings
from preserve.operations.audit import AuditScope, run_audit
from preserve.storage import open_store
from preserve.storage.credentials import credentials_for

PEER_SCRIPT = Path(__file__).resolve().parent / "peer_pipeline.sh"
RSS_GOAL = 300 * 1000**2  # "< 300 MB"
FLAT_GOAL = 1.10  # "flat": the big file's peak within 10% of the small one's
B10_RUNS = 2  # runs of each long film at most: each costs minutes


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


def hashlib_sha256(path: Path) -> float:
    """SHA-256 with hashlib in one read, one thread: the floor for hashing the bytes at all (B1's
    reference, as issue 13 words it)."""

    def run() -> None:
        a = hashlib.sha256()
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                a.update(view[:n])
        a.hexdigest()

    return timed(run)[0]


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
    client = boto3.client(  # type: ignore[call-overload]  # the credentials are a plain dict of str
        "s3",
        endpoint_url=settings.endpoint_of(t),
        region_name=t.region,
        config=config,
        **credentials_for(settings, t, env={}),
    )
    return client, t.bucket, (t.prefix.strip("/") + "/") if t.prefix else ""


# -- B1-B4, B6a (2 GB with S3), B7b, disk -----------------------------------------------------------
def ingest(
    ctx: Context, run: str, src: Path, overrides: dict[str, Any], *, sample_disk: bool = False
) -> dict[str, Any]:
    """One measured ingest of ``src`` in a child process (see bench.child), which must store it.
    With ``sample_disk``, the space taken under the run's var dir (staging, work dirs, catalog,
    temporary files; not the ingest folder holding the source, nor a filesystem replica) is
    sampled throughout, the source's own inodes left out."""
    var = Path(overrides["archive"]["var_dir"])
    disk = None
    if sample_disk:
        replicas = [Path(t["path"]) for t in overrides["targets"] if t.get("kind") == "filesystem"]
        disk = DiskSampler([var], [Path(overrides["archive"]["ingest_dir"]), *replicas], inodes_of(src))
    res = run_child({"overrides": overrides, "source": str(src)}, ctx.children, run, env=ingest_env(var), disk=disk)
    if res["status"] != "stored":
        raise RuntimeError(f"the benchmark ingest {run} was not stored: {res['status']}: {res['detail']}")
    res["readers"] = readers(res["rchar"], res["tools"], res["steps"], res.get("threads"))
    return res


def step_seconds(res: dict[str, Any], *names: str) -> float:
    """The seconds of the named steps of one measured ingest, together."""
    return float(sum(s["seconds"] for s in res["steps"] if s["step"] in names))


def fixity_and_storage(ctx: Context) -> None:
    """Per run: ingest the random file (one S3 replica) in a child process in place, and again
    copying it into staging (the two in alternating order), then the references on the same file
    and the same stored objects: cat, hashlib, the bagit.py peer, the audit against boto3
    download_fileobj, and boto3 upload_file of the same bytes. The in-place ingests' disk use is
    sampled (row "disk")."""
    src, a = ctx.data.random_file, ctx.archive
    keys = (
        "stage_package_s",
        "copy_stage_package_s",
        "cat_s",
        "hashlib_s",
        "hashlib_both_s",
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
        "copy_steps",
        "readers",
        "staging",
        "disk_extra_bytes",
        "disk",
        "copy_disk_extra_bytes",
    )
    runs: dict[str, list[Any]] = {k: [] for k in keys}
    modes = ("in-place", "copy") if HAS_STAGING_SETTING else ("in-place",)
    for i in range(ctx.repeat):
        run = f"fixity-{i}"
        overrides = a.overrides(run, ("seaweed",))
        res: dict[str, Any] = {}
        for mode in modes if i % 2 == 0 else modes[::-1]:
            label = ctx.data.sizes.random_label
            if mode == "copy":
                ctx.log(f"B1c run {i + 1}/{ctx.repeat}: ingest of {label} copied into staging, one S3 replica")
                settle()
                copy_run = f"fixity-copy-{i}"
                copy_overrides = a.overrides(copy_run, ("seaweed",), staging="copy")
                got = ingest(ctx, copy_run, src, copy_overrides, sample_disk=True)
                runs["copy_stage_package_s"].append(step_seconds(got, "stage", "package"))
                runs["copy_steps"].append(got["steps"])
                runs["copy_disk_extra_bytes"].append(got["disk"]["extra_bytes"])
                _forget_objects(a.settings(copy_overrides), got["aip_id"], "seaweed", ())
                a.forget_run(copy_run)
                continue
            ctx.log(f"B1-B4 run {i + 1}/{ctx.repeat}: ingest of {label} in place, one S3 replica")
            settle()
            res = ingest(ctx, run, src, overrides, sample_disk=True)
        runs["staging"].append(res["staging"])
        runs["steps"].append(res["steps"])
        runs["readers"].append(res["readers"])
        runs["disk"].append(res["disk"])
        runs["disk_extra_bytes"].append(res["disk"]["extra_bytes"])
        runs["ingest_s"].append(res["seconds"])
        runs["stage_package_s"].append(step_seconds(res, "stage", "package"))
        runs["replicate_s"].append(step_seconds(res, "replicate"))
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
            for name, fn in (("hashlib_s", hashlib_sha256), ("hashlib_both_s", hashlib_one_pass)):
                settle()
                runs[name].append(fn(src))
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
            client.close()
        finally:
            catalog.close()
        _forget_objects(settings, res["aip_id"], "seaweed", (f"baseline-{i}/",))
        a.forget_run(run)
    _rows_fixity_storage(ctx, runs)


def _forget_objects(settings: Settings, aip_id: str, target: str, also_under: tuple[str, ...]) -> None:
    """Delete a measured AIP's objects (and their copies under ``also_under``) from the server,
    so that the stored data does not grow with every run."""
    catalog = Catalog(settings.catalog_url)
    store = open_store(settings, settings.target(target))
    try:
        for o in catalog.objects(aip_id=aip_id, target=target):
            store.delete(o.key)
            for under in also_under:
                store.delete(f"{under}{o.key}")
    finally:
        store.close()
        catalog.close()


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
    both = median(r["hashlib_both_s"])
    peer, peer_alone = median(r["peer_cp_bagit_s"]), median(r["peer_bagit_s"])
    mode = r["staging"][0] if r["staging"] else staging_mode("in-place")
    mode_note = (
        f"staging mode {mode}"
        if HAS_STAGING_SETTING
        else "this tree has no [ingest] staging setting yet: its only mode, copying into staging, was measured"
    )
    ctx.rows.append(
        Row(
            "B1",
            f"hash + bag {label}, {mode} (stage + package steps)",
            f"{seconds(ours)} ({mb_s(size, ours)})",
            f"hashlib SHA-256 one pass {seconds(h)}; cat {seconds(c)}",
            ours / h,
            "× one-pass SHA-256",
            "≤ 1.15×",
            ours / h <= 1.15,
            runs={k: r[k] for k in ("stage_package_s", "hashlib_s", "hashlib_both_s", "cat_s", "staging", "steps")},
            notes=[
                mode_note,
                f"{ours / both:.2f}× SHA-256 + SHA-512 in one pass on one thread ({seconds(both)}, the digests "
                f"preserve takes); {ours / c:.2f}× reading the file once with cat",
                "by step (median run): " + _steps_seconds(r["steps"], ("stage", "package")),
            ],
        )
    )
    if r["copy_stage_package_s"]:
        cp = median(r["copy_stage_package_s"])
        ctx.rows.append(
            Row(
                "B1c",
                "the same, copy mode (extra line: each original copied into staging)",
                f"{seconds(cp)} ({mb_s(size, cp)})",
                f"hashlib SHA-256 one pass {seconds(h)}",
                cp / h,
                "× one-pass SHA-256",
                "– (for comparison)",
                None,
                runs={k: r[k] for k in ("copy_stage_package_s", "copy_steps", "copy_disk_extra_bytes")},
                notes=[
                    f"{cp / ours:.2f}× in place; extra local disk "
                    f"{100 * median(r['copy_disk_extra_bytes']) / size:.0f} % of the payload"
                ],
            )
        )
    ctx.rows.append(
        Row(
            "B2",
            "the same, against the peer",
            f"{seconds(ours)}",
            f"cp + bagit.py {seconds(peer)} (bagit.py alone {seconds(peer_alone)})",
            peer / ours,
            "× faster than the peer",
            "≥ 1.50× faster",
            peer / ours >= 1.5,
            runs={k: r[k] for k in ("stage_package_s", "peer_cp_bagit_s", "peer_bagit_s")},
            notes=[f"{peer_alone / ours:.2f}× faster than bagit.py alone, without its copy"],
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
            notes=["the replicate step's own time: uploads begun in earlier steps (in place) are not in it"],
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
    mid = _median_run(r["rchar_per_byte"])
    ctx.rows.append(
        Row(
            "B7b",
            f"bytes read per payload byte, {label} file (not media: nothing to decode), S3 replica, {mode}",
            f"{per:.2f}",
            "read(2) bytes of the whole process tree (/proc rchar) / payload bytes",
            per,
            "",
            "≤ 2.5",
            per <= 2.5,
            runs={k: r[k] for k in ("rchar_per_byte", "read_bytes_per_byte", "readers")},
            notes=["readers (median run): " + describe_readers(r["readers"][mid], size)],
        )
    )
    extra = median(r["disk_extra_bytes"])
    copy_note = (
        [f"copy mode (B1c): {100 * median(r['copy_disk_extra_bytes']) / size:.1f} % of the payload"]
        if r["copy_disk_extra_bytes"]
        else []
    )
    ctx.rows.append(
        Row(
            "disk",
            f"extra local disk during an ingest of {label}, {mode}",
            f"{mib(extra)} at most",
            f"payload {mib(size)}",
            extra / size,
            " of the payload",
            "≤ 5 %",
            extra / size <= 0.05,
            runs={k: r[k] for k in ("disk_extra_bytes", "disk", "copy_disk_extra_bytes")},
            notes=[
                "peak of the space allocated under the run's var dir (staging and work dirs, catalog, TMPDIR), "
                "the ingest folder and the source's own inodes left out, sampled every 0.1 s; the S3 server's "
                "storage is the replica, not counted",
                *copy_note,
            ],
            ratio_format="{:.2%}",
        )
    )


def _median_run(values: list[float]) -> int:
    """The index of the run whose value is the median (the lower middle one for an even count)."""
    order = sorted(range(len(values)), key=lambda k: values[k])
    return order[(len(order) - 1) // 2]


def _steps_seconds(step_runs: list[list[dict[str, Any]]], names: tuple[str, ...] = ()) -> str:
    mid = step_runs[len(step_runs) // 2]
    return ", ".join(
        f"{s['step']} {seconds(s['seconds'])}" for s in mid if (s["step"] in names if names else s["seconds"] >= 0.05)
    )


#: what the ingest process's main thread reads in each step
PHASES = {
    "stage": "hashing",
    "characterise": "MediaInfo, fido",
    "validate": "in-process checks",
    "package": "bag",
    "replicate": "uploads",
    "publish": "access uploads",
}
#: what a kind of thread of the ingest process does (bench.child.thread_group)
THREAD_KINDS = {"upload": "uploads", "digest": "digest workers", "ThreadPoolExecutor": "transfer workers"}


def describe_readers(readers: dict[str, Any], size: int) -> str:
    """ "python 2.01: main thread 1.00 (stage/hashing 1.00), upload threads (uploads) 1.00; ffmpeg
    (1 process) 1.00": bytes read per payload byte by the ingest process (its main thread by step,
    its other threads by kind) and by each tool it ran (shares under 0.01 left out)."""

    def share(n: int) -> str:
        return f"{n / size:.2f}"

    main = readers.get("main_by_step") or {}
    if readers.get("unattributed") is None:  # no thread figures: the process's reads by step
        main = readers["python_by_step"]
    steps = [
        f"{step}/{PHASES[step]} {share(n)}" if step in PHASES else f"{step} {share(n)}"
        for step, n in main.items()
        if n / size >= 0.01
    ]
    python = f"python (the ingest process) {share(readers['python'])}: main thread {share(sum(main.values()))}"
    python += f" ({', '.join(steps)})" if steps else ""
    for kind, n in (readers.get("threads") or {}).items():
        if n / size >= 0.01:
            python += (
                f", {kind} threads" + (f" ({THREAD_KINDS[kind]})" if kind in THREAD_KINDS else "") + f" {share(n)}"
            )
    if (readers.get("unattributed") or 0) / size >= 0.01:
        python += f", threads that ended between samples {share(readers['unattributed'])}"
    parts = [python]
    for name, n in readers["by_process"].items():
        count = readers["processes"][name]
        parts.append(f"{name} ({count} process{'es' if count > 1 else ''}) {share(n)}")
    return "; ".join(parts)


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
            "staging",
        )
    }
    for i in range(ctx.repeat):

        def ours() -> None:
            run = f"clip-{i}"
            ctx.log(f"B5 run {i + 1}/{ctx.repeat}: full ingest of the {ctx.data.sizes.clip_seconds} s clip")
            res = ingest(ctx, run, clip, a.overrides(run))
            runs["staging"].append(res["staging"])
            runs["ingest_process_s"].append(res["process_seconds"])
            runs["ingest_s"].append(res["seconds"])
            runs["make_access_s"].append(step_seconds(res, "make_access"))
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
            f"full ingest of the {secs} s 1080p ProRes clip, end to end, {runs['staging'][0]}",
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
            notes=["by step (median run): " + _steps_seconds([runs["steps"][_median_run(runs["ingest_process_s"])]])],
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
            "× faster than the peer",
            "≥ 1.00× (faster)",
            peer_t / e2e >= 1.0,
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


# -- B7 (who reads a film's bytes) -----------------------------------------------------------------
def film_reads(ctx: Context) -> None:
    """One ingest of the clip with the decode check on and no access copies (the film's access
    level dark: no proxy, poster or contact sheet), one S3 replica: how many times its bytes are
    read, and by whom. A count, not a timing, so one run."""
    a, clip = ctx.archive, ctx.data.clip
    run = "reads"
    overrides = a.overrides(
        run, ("seaweed",), access=False, extra={"ingest": {"decode_check": True}, "access": {"default_level": "dark"}}
    )
    ctx.log(f"B7: ingest of the {ctx.data.sizes.clip_seconds} s clip, decode check on, no access copies")
    settle()
    res = ingest(ctx, run, clip, overrides)
    a.forget_run(run)
    size = res["payload_bytes"]
    per = res["rchar"] / size
    decoded = [s for s in res["steps"] if s["step"] == "validate"]
    ctx.rows.append(
        Row(
            "B7",
            f"bytes read per payload byte, {ctx.data.sizes.clip_seconds} s ProRes clip, decode check on, proxy off, "
            f"S3 replica, {res['staging']}",
            f"{per:.2f}",
            "read(2) bytes of the whole process tree (/proc rchar) / payload bytes",
            per,
            "",
            "≤ 2.5",
            per <= 2.5,
            runs={
                "rchar_per_byte": [per],
                "read_bytes_per_byte": [res["read_bytes"] / size],
                "readers": res["readers"],
                "tools": res["tools"],
                "steps": res["steps"],
                "payload_bytes": size,
                "staging": res["staging"],
            },
            notes=[
                "readers: " + describe_readers(res["readers"], size),
                f"one run (a count, not a timing); validate took {seconds(decoded[0]['seconds'])}"
                if decoded
                else "one run (a count, not a timing)",
                "each tool's /proc/<pid>/io read as it exits, before it is reaped; python: the rest of the ingest "
                "process's own counters (its threads, hashing, MediaInfo, uploads)",
            ],
        )
    )


# -- B10 (cost and memory per content-hour) --------------------------------------------------------
def long_films(ctx: Context) -> None:
    """Full ingests (both replicas, decode check, framemd5, proxy, poster, contact sheet, catalog)
    of the two synthetic films, the long one three times the short one, interleaved: the seconds
    per content-hour and the peak RSS of the whole process tree must not grow with the length.
    Two runs of each at most (each costs minutes); the proxy's audio bitrate is lowered to 16k
    for them, since AAC at 128k on their 8 kHz sound would cost more than everything else."""
    a = ctx.archive
    (short, long), (s_len, l_len) = ctx.data.films, ctx.data.sizes.film_seconds
    n = min(ctx.repeat, B10_RUNS)
    runs: dict[str, list[Any]] = {
        k: [] for k in ("short_s", "long_s", "short_rss", "long_rss", "short_steps", "long_steps", "staging")
    }
    for i in range(n):
        for which in ("short", "long") if i % 2 == 0 else ("long", "short"):
            src, length = (short, s_len) if which == "short" else (long, l_len)
            run = f"film-{which}-{i}"
            ctx.log(f"B10 run {i + 1}/{n}: full ingest of the {hours(length)} synthetic film")
            settle()
            res = ingest(ctx, run, src, a.overrides(run, extra={"proxy": {"audio_bitrate": "16k"}}))
            runs[f"{which}_s"].append(res["seconds"])
            runs[f"{which}_rss"].append(res["memory"]["peak_tree_bytes"])
            runs[f"{which}_steps"].append(res["steps"])
            runs["staging"].append(res["staging"])
            a.forget_run(run)
    per_short = median(runs["short_s"]) / (s_len / 3600)
    per_long = median(runs["long_s"]) / (l_len / 3600)
    rss_s, rss_l = median(runs["short_rss"]), median(runs["long_rss"])
    cost, rss = per_long / per_short, rss_l / rss_s
    of = f"median of {n}" if n > 1 else "one run"
    ctx.rows.append(
        Row(
            "B10",
            f"cost per content-hour, synthetic {hours(l_len)} vs {hours(s_len)} film ({FILM_SIZE}, full ingest)",
            f"{per_long:.1f} s per content-hour ({hours(l_len)}: {seconds(median(runs['long_s']))}; {of}); "
            f"peak RSS {mib(rss_l)}",
            f"{per_short:.1f} s per content-hour ({hours(s_len)}: {seconds(median(runs['short_s']))}); "
            f"peak RSS {mib(rss_s)}",
            cost,
            f"× per content-hour; peak RSS {rss:.2f}×",
            "≤ 1.10×; peak RSS ≤ 1.10×",
            cost <= FLAT_GOAL and rss <= FLAT_GOAL,
            runs=runs,
            notes=[
                f"{hours(l_len)} film by step: " + _steps_seconds([runs["long_steps"][_median_run(runs["long_s"])]]),
                f"{hours(s_len)} film by step: " + _steps_seconds([runs["short_steps"][_median_run(runs["short_s"])]]),
                f"{of} of each (ingests of hours of film cost minutes each); MPEG-4 video at {FILM_SIZE}, "
                "8 kHz mono PCM, proxy audio at 16k instead of 128k",
            ],
        )
    )


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
        need = (1.2 if staging_mode("in-place") == "in-place" else 2.2) * size  # the replica (and a staging copy)
        if free < need:
            raise RuntimeError(
                f"not enough free disk for the {size / 1e9:.0f} GB ingest ({free / 1e9:.0f} GB free; "
                f"the filesystem replica (and any staging copy) need {need / 1e9:.0f} GB)"
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
    # its default of 20 s is not enough on a loaded machine (seen: "Timed out while attempting to
    # connect to ephemeral Prefect API server"); the start-up is timed apart anyway
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
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
