"""The benchmark rows of issue 14 (the replicas as the record of truth): B11 and B12, rebuilding the
catalog from one filesystem replica alone (1,000 small AIPs; one AIP of 10,000 files), each against
listing that replica and reading every journal object on it without parsing, in the same run; and
B13, the bytes an amend of an AIP holding a 2 GB film uploads (goal: < 1 MB) and its time against
one upload of the new sidecar to each replica. Side effects: ingests a few submissions in this
process, writes bags, objects and catalogs under the work directory, uploads to and deletes from
the benchmark's own SeaweedFS, runs ffmpeg once to make the film (cached).

How the archive B11 and B12 rebuild is made: a thousand real ingests would take hours, so a few
real ingests through the pipeline (`ingest_submission`) are the templates, and every other AIP is
made from one of them with preserve's own writers: its payload (the template's files, or for B12
10,000 generated originals, each with the three technical metadata files an ingest writes for such
a file, the template's) copied into a new bag under a new AIP id (`packaging.bag`: manifests,
bag-info.txt with the new External-Identifier, tag manifests; `packaging.premis` for premis.xml
with the template's events), uploaded with `ObjectStore.put_file` (verified), recorded with
`Catalog.record_aip`, and its journal (version inventory, event record) written by
`operations.journal.flush`. Characterisation and validation are not run again for the copies (the
formats are the template's): they are not what a rebuild reads."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bench.data import GB, MB, make_long_film, make_tiny_folder
from bench.environment import lent
from bench.measure import median, timed
from bench.report import Row, seconds
from bench.rows import Context, settle
from preserve.catalog import AipView, Catalog, NewAip, ReplicaRecord, StoredObject
from preserve.config import Settings
from preserve.core.model import Agent, PayloadFile, ReplicaStatus, Role, utcnow
from preserve.operations import journal
from preserve.packaging import bag, premis
from preserve.pipeline import ingest_submission
from preserve.storage import ObjectStore, layout, open_store
from preserve.storage.base import object_key
from preserve.storage.replication import replica_uri

#: B11 / B12 at full size, and --quick (the benchmark still works; the figures mean little)
SMALL_AIPS = {"full": 1000, "quick": 20}
LARGE_FILES = {"full": 10_000, "quick": 500}
#: B13's film: 2 GB at full size, the size of the quick random file otherwise
FILM_BYTES = {"full": 2 * GB, "quick": 100 * MB}
AMEND_GOAL = 1_000_000  # "< 1 MB"
_FRAME = (1920, 1080)
_TECHNICAL = PurePosixPath("data/metadata/technical")


def _mode(ctx: Context) -> str:
    return "quick" if ctx.data.sizes.name == "quick" else "full"


# -- making the archive ----------------------------------------------------------------------------
def real_ingest(settings: Settings, catalog: Catalog, source: Path, name: str) -> str:
    """One real ingest (the pipeline, in this process) of a copy of ``source``; returns the AIP id."""
    dest = settings.ingest_dir / name
    if source.is_dir():
        shutil.copytree(source, dest)
    else:
        dest.mkdir(parents=True)
        shutil.copy2(source, dest / source.name)
    if not (dest / "metadata.yaml").exists():
        (dest / "metadata.yaml").write_text(f"title: Benchmark {name}\nyear: 2009\naccess: dark\n", encoding="utf-8")
    outcome = ingest_submission(settings, catalog, dest)
    if outcome.status != "stored":
        raise RuntimeError(f"the benchmark's template ingest {name} was not stored: {outcome.detail}")
    return outcome.aip_id


def _payload_source(settings: Settings, t: AipView, member: str) -> Path:
    """Where a template's bag member lies on its filesystem replica."""
    target = settings.target(t.replicas[0].target)
    return settings.target_path(target) / object_key(t.id, member)


def copy_aip(
    settings: Settings,
    catalog: Catalog,
    store: ObjectStore,
    t: AipView,
    work: Path,
    *,
    originals: dict[str, Path] | None = None,
) -> str:
    """A new AIP made from template ``t`` with preserve's writers (see the module's text): the
    template's payload, or ``originals`` (payload path -> file) each with the technical metadata of
    one of the template's originals, in a new bag under a new id, uploaded, recorded. Returns the id."""
    new_id = str(uuid.uuid4())
    bag_dir = work / new_id
    files: list[PayloadFile] = []
    formats: dict[str, tuple[str, str]] = {}
    by_path = {f.path: f for f in t.files}

    def add(path: str, source: Path, like: str) -> None:
        f = by_path[like]
        # every file here is small: read whole and hashed in memory (bag.add_payload_file streams a
        # copy, with a fixed cost per file that would dominate 40,000 files of a few kB)
        files.append(bag.add_payload_bytes(bag_dir, path, source.read_bytes(), Role(f.role)))
        if f.format_name or f.format_registry_key:
            formats[path] = (f.format_name, f.format_registry_key)

    if originals is None:
        for f in t.files:
            if f.path != "data/metadata/premis.xml":
                add(f.path, _payload_source(settings, t, f.path), f.path)
    else:
        kinds = [f.path for f in t.files if f.path.startswith("data/objects/") and f.role != Role.SIDECAR.value]
        for n, (path, source) in enumerate(sorted(originals.items())):
            like = kinds[n % len(kinds)]
            add(path, source, like)
            old, new = PurePosixPath(like).name, PurePosixPath(path).name
            for m in (f.path for f in t.files if f.path.startswith(f"{_TECHNICAL}/{old}.")):
                add(f"{_TECHNICAL}/{new}{m.removeprefix(f'{_TECHNICAL}/{old}')}", _payload_source(settings, t, m), m)
        for f in t.files:  # the sidecar (metadata.yaml) and any other file of the submission itself
            if f.path.startswith("data/objects/") and f.role == Role.SIDECAR.value:
                add(f.path, _payload_source(settings, t, f.path), f.path)
    events = list(t.events)
    originals_premis = [
        premis.PremisFile(f.path, f.size, f.digests.sha256, f.digests.sha512, *formats.get(f.path, ("", "")), "")
        for f in files
        if f.path.startswith("data/objects/")
    ]
    files.append(
        bag.add_payload_bytes(bag_dir, "data/metadata/premis.xml", premis.document(new_id, originals_premis, events))
    )
    info = bag.parse_bag_info(_payload_source(settings, t, "bag-info.txt").read_text(encoding="utf-8"))
    info.pop("Payload-Oxum", None)  # finalize writes the copy's own
    info["External-Identifier"] = new_id
    oxum = bag.finalize(bag_dir, files, info)
    now = utcnow()
    objects = []
    digests = {f.path: f.digests.sha256 for f in files}
    for member in sorted(p for p in bag_dir.rglob("*") if p.is_file()):
        rel = member.relative_to(bag_dir).as_posix()
        sha = digests.get(rel) or hashlib.sha256(member.read_bytes()).hexdigest()  # a tag file
        size = member.stat().st_size
        key = object_key(new_id, rel)
        store.put_file(key, member, sha256=sha, size=size)
        objects.append(StoredObject(store.name, key, size, sha, now))
    shutil.rmtree(bag_dir)
    catalog.record_aip(
        NewAip(
            id=new_id,
            title=t.title,
            submission_name=f"{t.submission_name} (copy {new_id[:8]})",
            access_level=t.access_level,
            payload_oxum=oxum,
            files=files,
            replicas=[
                ReplicaRecord(store.name, replica_uri(store, new_id), ReplicaStatus.VERIFIED, now, tuple(objects))
            ],
            access=[],
            events=events,
            formats=formats,
        )
    )
    return new_id


# -- measuring a rebuild -----------------------------------------------------------------------------
@dataclass
class Archive:
    """One filesystem replica holding ``aips`` AIPs, its catalog, and what it holds (the keys)."""

    settings: Settings
    overrides: dict[str, Any]
    aips: int
    objects: int
    journal_objects: int
    keys: frozenset[str]
    made_seconds: float
    files: int = 0  # B12: the large AIP's payload files (originals and metadata)


def _keys(store: ObjectStore) -> set[str]:
    return {i.key for i in store.list("")}


def read_journal(settings: Settings) -> tuple[int, int]:
    """The baseline: list the replica, read every journal object (event records, version
    inventories) through the same store, without parsing. Returns (objects read, bytes)."""
    n = total = 0
    with open_store(settings, settings.targets[0]) as store:
        for info in store.list(""):
            aip = info.key.split("/", 1)[0]
            if layout.is_journal_key(aip, info.key):
                total += sum(len(c) for c in store.read_chunks(info.key))
                n += 1
    return n, total


def rebuild_once(ctx: Context, a: Archive, run: int) -> tuple[float, Any]:
    """`operations.rebuild.rebuild` from the replica into a new, empty SQLite catalog; then the
    records the rebuild's own journal flush wrote are removed again (not timed), so every run reads
    the same replica."""
    from preserve.operations.rebuild import rebuild

    db = a.settings.var_dir / f"rebuilt-{run}.sqlite"
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    over = {**a.overrides, "archive": {**a.overrides["archive"], "catalog_url": f"sqlite:///{db}"}}
    settings = ctx.archive.settings(over)
    with Catalog(settings.catalog_url) as catalog:
        t, report = timed(lambda: rebuild(settings, catalog, settings.targets[0].name))
    with open_store(settings, settings.targets[0]) as store:
        for key in _keys(store) - a.keys:
            store.delete(key)
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    if len(report.imported) != a.aips or report.damage or report.errors:
        raise RuntimeError(
            f"the rebuild imported {len(report.imported)} of {a.aips} AIPs; damage {report.damage[:3]}, "
            f"errors {report.errors[:3]}"
        )
    return t, report


def small_archive(ctx: Context) -> Archive:
    """B11's replica: two real ingests (a 2 s film with its sidecar, and three notes), the rest
    copies of them, alternately."""
    started = time.monotonic()
    n = SMALL_AIPS[_mode(ctx)]
    run = "rebuild-small"
    overrides = ctx.archive.overrides(
        run,
        ("local",),
        access=False,
        extra={"access": {"default_level": "dark"}, "validation": {"virus_check": False}},
    )
    settings = ctx.archive.settings(overrides)
    cache = ctx.data.random_file.parent
    film = make_long_film(cache / "film-64x36-2s.mov", 2)
    notes = make_tiny_folder(cache / "tiny-3-rebuild", 3, 1024)
    work = settings.var_dir / "bags"
    with Catalog(settings.catalog_url) as catalog:
        templates = [real_ingest(settings, catalog, film, "a film"), real_ingest(settings, catalog, notes, "notes")]
        views = [catalog.get_aip(t) for t in templates]
        with open_store(settings, settings.targets[0]) as store:
            for i in range(n - len(templates)):
                view = views[i % len(views)]
                assert view is not None
                copy_aip(settings, catalog, store, view, work)
                if (i + 1) % 100 == 0:
                    ctx.log(f"B11: {i + 1 + len(templates)} of {n} AIPs on the replica")
            flushed = journal.flush(settings, catalog)
            if not flushed.ok:
                raise RuntimeError(f"the journal of the copies was not written: {flushed.lines()[:3]}")
            keys = frozenset(_keys(store))
    journal_objects = sum(1 for k in keys if layout.is_journal_key(k.split("/", 1)[0], k))
    return Archive(settings, overrides, n, len(keys), journal_objects, keys, time.monotonic() - started)


def large_archive(ctx: Context) -> Archive:
    """B12's replica: one real ingest of the folder of tiny files (the template), then one AIP of
    10,000 generated originals made from it."""
    started = time.monotonic()
    n = LARGE_FILES[_mode(ctx)]
    run = "rebuild-large"
    overrides = ctx.archive.overrides(
        run,
        ("local",),
        access=False,
        extra={"access": {"default_level": "dark"}, "validation": {"virus_check": False}},
    )
    settings = ctx.archive.settings(overrides)
    originals = make_tiny_folder(ctx.data.random_file.parent / f"tiny-{n}-rebuild", n, ctx.data.sizes.tiny_file_bytes)
    with Catalog(settings.catalog_url) as catalog:
        template = real_ingest(settings, catalog, ctx.data.tiny_folder, "tiny files")
        view = catalog.get_aip(template)
        assert view is not None
        with open_store(settings, settings.targets[0]) as store:
            ctx.log(f"B12: bagging and storing one AIP of {n} originals")
            big = copy_aip(
                settings,
                catalog,
                store,
                view,
                settings.var_dir / "bags",
                originals={bag.payload_path("objects", p.name): p for p in sorted(originals.iterdir())},
            )
            # the template is not part of what is measured: only the large AIP stays on the replica
            for key in [k for k in _keys(store) if k.startswith(f"{template}/")]:
                store.delete(key)
            flushed = journal.flush(settings, catalog, [big])
            if not flushed.ok:
                raise RuntimeError(f"the journal of the large AIP was not written: {flushed.lines()[:3]}")
            keys = frozenset(_keys(store))
        files = len(catalog.get_aip(big).files)  # type: ignore[union-attr]
    journal_objects = sum(1 for k in keys if layout.is_journal_key(k.split("/", 1)[0], k))
    return Archive(settings, overrides, 1, len(keys), journal_objects, keys, time.monotonic() - started, files)


def _measure_rebuilds(ctx: Context, rid: str, a: Archive) -> dict[str, list[Any]]:
    runs: dict[str, list[Any]] = {k: [] for k in ("rebuild_s", "baseline_s", "journal_bytes", "targets", "findings")}
    for i in range(ctx.repeat):

        def ours(i: int = i) -> None:
            ctx.log(f"{rid} run {i + 1}/{ctx.repeat}: catalog rebuild from the filesystem replica")
            t, report = rebuild_once(ctx, a, i)
            runs["rebuild_s"].append(t)
            runs["targets"].append([vars(c) for c in report.targets])
            runs["findings"].append(
                {
                    k: len(getattr(report, k))
                    for k in ("fallbacks", "not_preserve", "damaged_records", "disagreements", "unexpected")
                }
            )

        def baseline(i: int = i) -> None:
            ctx.log(f"{rid} run {i + 1}/{ctx.repeat}: list the replica and read its journal")
            t, (_n, nbytes) = timed(lambda: read_journal(a.settings))
            runs["baseline_s"].append(t)
            runs["journal_bytes"].append(nbytes)

        for step in (ours, baseline) if i % 2 == 0 else (baseline, ours):
            settle()
            step()
    return runs


def rebuilds(ctx: Context) -> None:
    """B11 and B12: per run, the rebuild and the baseline on the same replica, in alternating order."""
    for rid, make in (("B11", small_archive), ("B12", large_archive)):
        ctx.log(f"{rid}: making the replica")
        a = make(ctx)
        ctx.log(
            f"{rid}: {a.aips} AIP(s), {a.objects} objects ({a.journal_objects} journal objects) "
            f"made in {a.made_seconds:.0f} s"
        )
        runs = _measure_rebuilds(ctx, rid, a)
        ctx.archive.forget_run(a.settings.var_dir.name)
        r, b = median(runs["rebuild_s"]), median(runs["baseline_s"])
        what = (
            f"catalog rebuild, {a.aips:,} small AIPs (filesystem replica)"
            if rid == "B11"
            else f"catalog rebuild, one AIP with {LARGE_FILES[_mode(ctx)]:,} files (filesystem replica)"
        )
        held = f"{a.objects:,} objects, {a.journal_objects:,} of them journal objects"
        made = (
            "2 real ingests (a 2 s film with its sidecar; 3 notes), the others copies of them"
            if rid == "B11"
            else f"1 real ingest of {ctx.data.sizes.tiny_files} tiny files as the template, then one AIP of "
            f"{LARGE_FILES[_mode(ctx)]:,} generated originals ({a.files:,} payload files with the technical "
            "metadata an ingest writes for each)"
        )
        ctx.rows.append(
            Row(
                rid,
                what,
                f"{seconds(r)} ({seconds(r / a.aips)} per AIP)" if a.aips > 1 else seconds(r),
                f"list + read every journal object, unparsed {seconds(b)} ({runs['journal_bytes'][0] / 1e6:.1f} MB)",
                r / b,
                "× listing + reading the journal",
                "– (time reported: issue 14 sets no goal)",
                None,
                runs=runs,
                notes=[
                    f"the replica held {held}; {made}, each made with preserve's own bag, PREMIS, store, "
                    "catalog and journal writers (see bench/catalog_rows.py); made in "
                    f"{a.made_seconds:.0f} s, not timed",
                    "the rebuild: read every inventory and event record, import every AIP (one transaction each), "
                    "the inventory pass (a stat of every object), and the journal flush of its own events (removed "
                    "again after each run, not timed, so every run reads the same replica)",
                ],
            )
        )


# -- B13: amend of an AIP holding a 2 GB film -------------------------------------------------------
def make_raw_film(path: Path, size: int) -> Path:
    """A MOV of black 1920x1080 RGB frames, uncompressed (rawvideo), of at least ``size`` bytes:
    fast to make and to read, every frame there for ffmpeg; made sparse where it is all zeros
    (``fallocate --dig-holes``), so it costs little disk."""
    if path.is_file() and path.stat().st_size >= size:
        return path
    frames = -(-size // (_FRAME[0] * _FRAME[1] * 3))
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    argv = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"color=c=black:s={_FRAME[0]}x{_FRAME[1]}:r=24",
        "-frames:v",
        str(frames),
        "-c:v",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-f",
        "mov",
        f"file:{tmp}",
    ]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not make the benchmark's raw film: {proc.stderr[-2000:]}")
    if shutil.which("fallocate"):
        subprocess.run(["fallocate", "--dig-holes", str(tmp)], capture_output=True)
    os.replace(tmp, path)
    return path


def _sizes(store: ObjectStore) -> dict[str, int]:
    return {i.key: i.size for i in store.list("")}


@contextlib.contextmanager
def _stores(settings: Settings) -> Iterator[list[ObjectStore]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(open_store(settings, t)) for t in settings.targets]


def amends(ctx: Context) -> None:
    """B13: ingest the film once (both replicas: S3 and filesystem; dark, no master), then per run
    an amend with a corrected sidecar (bytes counted on the replicas themselves: every object that
    was not there before, the journal's included) and, in alternating order, the baseline: one
    upload of that sidecar to each replica."""
    from preserve.operations.amend import amend

    size = FILM_BYTES[_mode(ctx)]
    submission = ctx.data.random_file.parent / f"raw-film-{size}"
    submission.mkdir(exist_ok=True)
    film = make_raw_film(submission / "film.mov", size)
    sidecar0 = submission / "metadata.yaml"
    if not sidecar0.is_file():
        sidecar0.write_text("title: A long flim\nyear: 2011\naccess: dark\n", encoding="utf-8")
    run = "amend"
    overrides = ctx.archive.overrides(
        run,
        ("seaweed", "local"),
        access=False,
        extra={
            "access": {"default_level": "dark"},
            "normalization": {"policy": "never"},
            "validation": {"virus_check": False},
        },
    )
    settings = ctx.archive.settings(overrides)
    ctx.log(f"B13: ingest of a {film.stat().st_size / 1e9:.1f} GB raw film, two replicas")
    runs: dict[str, list[Any]] = {"amend_s": [], "uploaded_bytes": [], "reported_bytes": [], "sidecar_upload_s": []}
    operator = Agent("benchmark", kind="person")
    with Catalog(settings.catalog_url) as catalog:
        with lent(submission, settings.ingest_dir) as placed:  # the cached folder itself (in place: only read)
            outcome = ingest_submission(settings, catalog, placed)
        if outcome.status != "stored":
            raise RuntimeError(f"the benchmark's film ingest was not stored: {outcome.detail}")
        aip = outcome.aip_id
        view = catalog.get_aip(aip)
        assert view is not None
        payload = sum(f.size for f in view.files)
        with _stores(settings) as stores:
            for i in range(ctx.repeat):
                sidecar = settings.var_dir / f"metadata-{i}.yaml"
                sidecar.write_text(
                    f"title: A long film (corrected {i + 1})\nyear: 2011\naccess: dark\n", encoding="utf-8"
                )

                def ours(i: int = i, sidecar: Path = sidecar) -> None:
                    ctx.log(f"B13 run {i + 1}/{ctx.repeat}: amend with a corrected sidecar")
                    before = [_sizes(s) for s in stores]
                    t, result = timed(
                        lambda: amend(
                            settings, catalog, aip, sidecar, reason=f"title corrected ({i})", operator=operator
                        )
                    )
                    after = [_sizes(s) for s in stores]
                    runs["amend_s"].append(t)
                    runs["uploaded_bytes"].append(
                        sum(n for b, a in zip(before, after, strict=True) for k, n in a.items() if k not in b)
                    )
                    runs["reported_bytes"].append(sum(result.uploaded.values()))

                def baseline(i: int = i, sidecar: Path = sidecar) -> None:
                    data = sidecar.read_bytes()
                    sha, key = hashlib.sha256(data).hexdigest(), f"bench-baseline/{i}/metadata.yaml"

                    def upload() -> None:
                        for s in stores:
                            s.put_file(key, sidecar, sha256=sha, size=len(data))

                    runs["sidecar_upload_s"].append(timed(upload)[0])
                    for s in stores:
                        s.delete(key)

                for step in (ours, baseline) if i % 2 == 0 else (baseline, ours):
                    settle()
                    step()
            for s in stores:  # the film off the server: the stored data must not grow run by run
                for key in _sizes(s):
                    if key.startswith(f"{aip}/"):
                        s.delete(key)
    ctx.archive.forget_run(run)
    t, base = median(runs["amend_s"]), median(runs["sidecar_upload_s"])
    up = max(runs["uploaded_bytes"])
    ctx.rows.append(
        Row(
            "B13",
            f"amend of an AIP holding a {payload / 1e9:.1f} GB film (2 replicas: S3 and filesystem)",
            f"{up / 1000:.1f} kB uploaded at most, {seconds(t)}",
            f"one upload of the sidecar to each replica {seconds(base)}",
            t / base,
            "× one sidecar upload",
            "< 1 MB uploaded",
            up < AMEND_GOAL,
            runs=runs,
            notes=[
                "bytes counted on the replicas: every object that was not there before the amend (the new "
                "version's members and the journal's inventory and event record), summed over both replicas; "
                f"amend's own count {max(runs['reported_bytes']) / 1000:.1f} kB (the members, without the journal)",
                f"the AIP: {payload / 1e9:.2f} GB of payload, the film uncompressed 1920x1080 black RGB frames "
                "(rawvideo MOV), ingested once (access dark, no master); the sidecar's misspelt title corrected "
                f"{ctx.repeat} time(s): versions 2 to {ctx.repeat + 1}",
            ],
        )
    )
