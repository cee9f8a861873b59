"""`preserve catalog backup` and the scheduled backup of `preserve serve`: a copy taken while another
process keeps writing is a consistent snapshot (every AIP in it whole, the AIPs a prefix of what
the writer wrote) that preserve opens and `status --json` reads; the DEST forms, private modes and
no overwrite; pruning keeps the newest N of preserve's own backups and touches nothing else; a
PostgreSQL catalog is refused with the pg_dump / pg_restore commands, which are run here against a
real server and give the catalog back; `preserve serve`'s housekeeping backs up on schedule (not
again at a restart), prunes, writes the journal still pending, and goes on when a part fails."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from preserve.catalog import Catalog, schema
from preserve.catalog import backup as catalog_backup
from preserve.config import Settings
from preserve.core.errors import CatalogError, ConfigError
from preserve.core.model import Agent, Event, EventType, Outcome, utcnow
from preserve.pipeline import ingest_submission
from tests.mediafactory import make_clip
from tests.support import isolated_settings, load_merged, write_config

ROOT = Path(__file__).resolve().parents[2]
FILES = 40  # payload files per AIP the writer records

#: a second process that records AIPs (each with FILES files and objects, one transaction) and then
#: an event about each (a second transaction), and says how far it got in a progress file
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from preserve.catalog import Catalog, NewAip, ReplicaRecord, StoredObject
    from preserve.core.model import Agent, Digests, Event, EventType, Outcome, PayloadFile, Role, utcnow

    url, progress, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    start, end, files = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    agent = Agent("preserve", "test")

    def aip(j):
        aid = f"00000000-0000-4000-8000-{j:012d}"
        now = utcnow()
        fs = [PayloadFile(f"data/objects/reel-{k:03d}.mov", Digests(1000 + k, {"sha256": f"{j:032d}{k:032d}",
              "sha512": "b" * 128}), Role.VIDEO) for k in range(files)]
        objs = tuple(StoredObject("local", f"{aid}/data/objects/reel-{k:03d}.mov", 1000 + k, f"{j:032d}{k:032d}", now)
                     for k in range(files))
        return NewAip(id=aid, title=f"Film {j}", submission_name=f"film-{j}", access_level="restricted",
                      payload_oxum=f"{sum(f.size for f in fs)}.{files}", files=fs,
                      replicas=[ReplicaRecord("local", f"file:///r/{aid}/", "verified", now, objs)], access=[],
                      events=[Event(EventType.INGESTION, Outcome.PASS, agent)])

    with Catalog(url) as c:
        j = start
        while not stop.exists() and j < end:
            a = aip(j)
            c.record_aip(a)
            c.add_events(a.id, [Event(EventType.FIXITY_CHECK, Outcome.PASS, agent, detail=f"audit {j}")])
            j += 1
            tmp = progress.with_suffix(".tmp")
            tmp.write_text(str(j))
            os.replace(tmp, progress)
    """
)


def aip_id(j: int) -> str:
    return f"00000000-0000-4000-8000-{j:012d}"


def run_writer(url: str, tmp: Path, start: int, until: int | None = None) -> subprocess.Popen[str]:
    """The writer in its own process, from AIP number ``start`` on: until told to stop, or when
    ``until`` is given, up to that number (and this waits for it)."""
    progress, stop = tmp / f"progress-{start}", tmp / f"stop-{start}"
    end = until if until is not None else start + 1_000_000
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(progress), str(stop), str(start), str(end), str(FILES)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if until is not None:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and written(progress) == until, err[-3000:]
    return proc


def written(progress: Path) -> int:
    try:
        return int(progress.read_text())
    except (FileNotFoundError, ValueError):
        return 0


def stop_writer(proc: subprocess.Popen[str], stop: Path) -> None:
    stop.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]


def status_json(catalog_url: str, tmp: Path) -> dict[str, Any]:
    """`preserve status --json` on a catalog, as an operator would run it (exit 1 = needs attention)."""
    env = {**os.environ, "PRESERVE__ARCHIVE__CATALOG_URL": catalog_url, "PRESERVE__ARCHIVE__VAR_DIR": str(tmp / "v")}
    r = subprocess.run(
        [sys.executable, "-m", "preserve.cli", "status", "--json"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode in (0, 1), r.stderr[-2000:]
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def check_snapshot(path: Path, highest: int) -> int:
    """The backup is intact and a prefix-consistent snapshot of the writer's work: AIPs 0..k-1 and
    no other, each with all its files and objects, and the event written after each AIP present for
    every AIP but possibly the last. Returns k."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    finally:
        con.close()
    with Catalog(f"sqlite:///{path}") as c:  # opens as a catalog at the current schema revision
        ids = sorted(a.id for a in c.list_aips())
        k = len(ids)
        assert ids == [aip_id(j) for j in range(k)] and k <= highest
        for j, a in enumerate(ids):
            view = c.get_aip(a)
            assert view is not None and len(view.files) == FILES and len(c.objects(a)) == FILES, a
            audits = [e for e in view.events if e.type is EventType.FIXITY_CHECK]
            assert len(audits) == 1 or (j == k - 1 and not audits), (a, audits)
    return k


# -- consistency under concurrent writes -----------------------------------------------------------
def test_a_backup_taken_while_another_process_writes_is_a_consistent_snapshot(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'catalog.sqlite'}"
    run_writer(url, tmp_path, 0, until=150)  # a catalog of some size first (a few MB)
    proc = run_writer(url, tmp_path, 150)
    progress = tmp_path / "progress-150"
    taken: list[tuple[catalog_backup.BackupResult, int, int]] = []
    try:
        while written(progress) < 155:  # the writer is under way
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        for n in range(40):
            before = written(progress)
            r = catalog_backup.backup(url, tmp_path / "backups", now=utcnow() + dt.timedelta(seconds=n))
            taken.append((r, before, written(progress)))
            if len(taken) >= 4 and any(after > before for _, before, after in taken):
                break
    finally:
        stop_writer(proc, tmp_path / "stop-150")
    # the writer went on while a copy was being taken (its progress moved during the backup call)
    assert any(after > before for _, before, after in taken), [(b, a) for _, b, a in taken]
    highest = written(progress)
    sizes = []
    for r, before, after in taken:
        assert r.revision == schema.head_revision() and r.current
        assert r.sha256 == hashlib.sha256(r.path.read_bytes()).hexdigest() and r.bytes == r.path.stat().st_size
        k = check_snapshot(r.path, highest)
        # what was committed before the call is in the copy; at most the AIP being written when the
        # call returned is in it beyond what the writer had reported by then
        assert before <= k <= after + 1, (before, k, after)
        sizes.append(k)
    assert sizes == sorted(sizes)  # later backups hold at least as much
    r = taken[-1][0]
    data = status_json(f"sqlite:///{r.path}", tmp_path)
    assert data["aips"] == sizes[-1] and data["files"] == sizes[-1] * FILES
    # nothing half-written was left beside the backups
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == sorted(r.path.name for r, _, _ in taken)


# -- DEST, modes, no overwrite ----------------------------------------------------------------------
def small_catalog(tmp: Path) -> str:
    url = f"sqlite:///{tmp / 'var' / 'catalog.sqlite'}"
    run_writer(url, tmp, 0, until=3)
    return url


def test_dest_directory_or_file_private_and_never_over_a_file(tmp_path: Path) -> None:
    url = small_catalog(tmp_path)
    at = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    # a directory that does not exist yet (no suffix): created 0700, a timestamped name inside
    r = catalog_backup.backup(url, tmp_path / "new" / "backups", now=at)
    assert r.path == tmp_path / "new" / "backups" / "catalog-20260304T050607Z.sqlite"
    assert catalog_backup.made_at(r.path) == at
    for d in (tmp_path / "new", tmp_path / "new" / "backups"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(r.path.stat().st_mode) == 0o600
    # an existing directory
    (tmp_path / "existing").mkdir()
    r2 = catalog_backup.backup(url, tmp_path / "existing", now=at)
    assert r2.path.parent == tmp_path / "existing" and r2.sha256 == r.sha256  # the same catalog, the same bytes
    # a file name: that file, its folder created 0700
    r3 = catalog_backup.backup(url, tmp_path / "named" / "before-upgrade.sqlite")
    assert r3.path == tmp_path / "named" / "before-upgrade.sqlite" and r3.path.is_file()
    assert stat.S_IMODE(r3.path.stat().st_mode) == 0o600 and stat.S_IMODE(r3.path.parent.stat().st_mode) == 0o700
    with Catalog(f"sqlite:///{r3.path}") as c:
        assert len(c.list_aips()) == 3
    # never over an existing file: the same second again, or a file that is there
    original = r3.path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        catalog_backup.backup(url, tmp_path / "existing", now=at)
    with pytest.raises(ConfigError, match="already exists"):
        catalog_backup.backup(url, r3.path)
    assert r3.path.read_bytes() == original
    assert [p.name for p in (tmp_path / "existing").iterdir()] == [r2.path.name]  # no temporary left
    # no catalog there: an error, and no empty catalog created by looking for it
    missing = tmp_path / "nowhere" / "catalog.sqlite"
    with pytest.raises(CatalogError, match="no catalog database"):
        catalog_backup.backup(f"sqlite:///{missing}", tmp_path / "b2")
    assert not missing.exists()
    # a database that is not a preserve catalog is refused, and nothing is kept
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(CatalogError, match="not a preserve catalog"):
        catalog_backup.backup(f"sqlite:///{other}", tmp_path / "b3")
    assert list((tmp_path / "b3").iterdir()) == []


def test_cli_output_and_exit_codes(tmp_path: Path) -> None:
    url = small_catalog(tmp_path)
    env = {**os.environ, "PRESERVE__ARCHIVE__CATALOG_URL": url, "PRESERVE__ARCHIVE__VAR_DIR": str(tmp_path / "v")}

    def cli(*argv: str, **over: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "preserve.cli", *argv],
            env={**env, **over},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )

    r = cli("catalog", "backup", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"catalog backed up to {tmp_path / 'out'}/catalog-") and lines[0].endswith("Z.sqlite")
    path = Path(lines[0].removeprefix("catalog backed up to "))
    assert "integrity ok" in lines[1] and f"schema revision {schema.head_revision()}" in lines[1]
    assert lines[2] == f"  sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}"
    assert status_json(f"sqlite:///{path}", tmp_path)["aips"] == 3
    r = cli("catalog", "backup", str(path))  # exists
    assert r.returncode == 2 and "already exists" in r.stderr and "what to do" in r.stderr
    r = cli(
        "catalog", "backup", str(tmp_path / "x"), PRESERVE__ARCHIVE__CATALOG_URL=f"sqlite:///{tmp_path}/none.sqlite"
    )
    assert r.returncode == 2 and "no catalog database" in r.stderr


# -- pruning and the schedule -----------------------------------------------------------------------
def test_prune_keeps_the_newest_and_touches_nothing_else(tmp_path: Path) -> None:
    url = small_catalog(tmp_path)
    d = tmp_path / "backups"
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    made = [catalog_backup.backup(url, d, now=base + dt.timedelta(hours=h)).path for h in (0, 30, 5, 50, 12)]
    others = {
        "notes.txt": b"mine",
        "catalog-latest.sqlite": b"x",  # not preserve's name
        "catalog-20250101T000000Z.sqlite.bak": b"x",
        "Catalog-20250101T000000Z.sqlite": b"x",
        ".catalog-20250101T000000Z.sqlite.1234abcd.partial": b"x",
    }
    for name, data in others.items():
        (d / name).write_bytes(data)
    (d / "catalog-20240101T000000Z.sqlite").mkdir()  # a folder with the name: not a backup
    removed = catalog_backup.prune(d, 2)
    by_age = sorted(made, key=lambda p: catalog_backup.made_at(p) or base)
    assert removed == list(reversed(by_age[:3]))  # newest of the removed first
    assert sorted(catalog_backup.backups(d)) == sorted(by_age[3:])
    for name, data in others.items():
        assert (d / name).read_bytes() == data
    assert (d / "catalog-20240101T000000Z.sqlite").is_dir()
    assert catalog_backup.prune(d, 2) == []
    assert catalog_backup.last_backup(d) == base + dt.timedelta(hours=50)
    with pytest.raises(ConfigError):
        catalog_backup.prune(d, 0)


def test_scheduled_backup_follows_the_newest_name_so_a_restart_does_not_back_up_again(tmp_path: Path) -> None:
    from flows.serve import scheduled_backup

    url = small_catalog(tmp_path)
    settings = load_merged(
        {"archive": {"var_dir": str(tmp_path / "var"), "catalog_url": url}},
        {"catalog": {"backup_dir": str(tmp_path / "sched"), "backup_every_hours": 6, "backup_keep": 2}},
    )
    assert settings.catalog_backup_dir == tmp_path / "sched"
    t0 = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    first = scheduled_backup(settings, now=t0)
    assert len(first) == 1 and first[0].startswith(f"catalog backed up to {tmp_path / 'sched'}")
    # serve restarted an hour later: the newest backup's name says one was made at 12:00
    assert scheduled_backup(settings, now=t0 + dt.timedelta(hours=1)) == []
    assert scheduled_backup(settings, now=t0 + dt.timedelta(hours=5, minutes=59)) == []
    assert len(scheduled_backup(settings, now=t0 + dt.timedelta(hours=6))) == 1
    lines = scheduled_backup(settings, now=t0 + dt.timedelta(hours=12))
    assert lines[1] == "old catalog backup removed: catalog-20260501T120000Z.sqlite"  # keep 2
    assert [catalog_backup.made_at(p) for p in catalog_backup.backups(tmp_path / "sched")] == [
        t0 + dt.timedelta(hours=12),
        t0 + dt.timedelta(hours=6),
    ]
    # off by default: [catalog] backup_dir = "" in the shipped config
    off = load_merged({"archive": {"var_dir": str(tmp_path / "var"), "catalog_url": url}})
    assert off.catalog.backup_dir is None and off.catalog_backup_dir is None
    assert scheduled_backup(off) == []
    # relative to the config file, like the other paths
    cfg = tmp_path / "conf" / "preserve.toml"
    cfg.parent.mkdir()
    cfg.write_text('[replication]\nmin_verified_replicas = 0\n[catalog]\nbackup_dir = "../bk"\n', encoding="utf-8")
    from preserve import config

    assert config.load(cfg, env={}).catalog_backup_dir == tmp_path / "bk"


# -- PostgreSQL --------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_postgres_is_refused_with_commands_that_work(postgres_server: Any, tmp_path: Path) -> None:
    from sqlalchemy import make_url

    url = make_url(postgres_server.new_database()).set(password="pw-never-shown")
    url_text = url.render_as_string(hide_password=False)
    run_writer(url_text, tmp_path, 0, until=4)
    with pytest.raises(ConfigError) as info:
        catalog_backup.backup(url_text, tmp_path / "pg")
    err = info.value
    assert "pw-never-shown" not in str(err) + err.advice
    assert "pg_dump --format=custom --file=" in err.advice and "pg_restore" in err.advice
    assert f"{tmp_path / 'pg'}/catalog-" in err.advice and "PGPASSWORD" in err.advice
    assert not (tmp_path / "pg").exists()
    # the commands it gives, run for real (binaries of the test server), bring the catalog back
    dump_file = tmp_path / "catalog.dump"
    dump, (createdb, restore) = catalog_backup.postgres_commands(url_text, dump_file)
    assert all("pw-never-shown" not in a for a in [*dump, *createdb, *restore])
    bindir = Path(postgres_server.bindir)
    for argv in (dump, createdb, restore):
        r = subprocess.run([str(bindir / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (argv[0], r.stderr)
    restored = url.set(database=f"{url.database}_restored").render_as_string(hide_password=False)
    with Catalog(restored) as c:
        ids = sorted(a.id for a in c.list_aips())
        assert ids == [aip_id(j) for j in range(len(ids))] and len(ids) >= 4
        assert all(len(c.objects(a)) == FILES for a in ids)
    # and on the command line: exit 2, the advice, no password
    env = {**os.environ, "PRESERVE__ARCHIVE__CATALOG_URL": url_text, "PRESERVE__ARCHIVE__VAR_DIR": str(tmp_path / "v")}
    r = subprocess.run(
        [sys.executable, "-m", "preserve.cli", "catalog", "backup", str(tmp_path / "pg")],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "pg_dump --format=custom" in r.stderr and "pg_restore" in r.stderr
    assert "pw-never-shown" not in r.stdout + r.stderr


# -- `preserve serve` housekeeping --------------------------------------------------------------------
@pytest.fixture(scope="module")
def stored(s3_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    """One film really ingested (its bag and journal on both targets)."""
    tmp = tmp_path_factory.mktemp("served")
    settings = isolated_settings(
        s3_settings,
        tmp,
        proxy={"preset": "ultrafast"},
        access={"contact_sheet_frames": 2, "contact_sheet_tile_width": 64},
    )
    folder = settings.ingest_dir / "a film"
    folder.mkdir(parents=True)
    make_clip(folder / "film.mp4", duration=0.5)
    (folder / "metadata.yaml").write_text("title: Kept safe\ndirector: [Someone Named]\n", encoding="utf-8")
    with Catalog(settings.catalog_url) as catalog:
        outcome = ingest_submission(settings, catalog, folder)
    assert outcome.status == "stored", outcome.detail
    return settings, outcome.aip_id


def add_pending_event(settings: Settings, aip: str, detail: str) -> int:
    """An event recorded behind the journal's back (as when an operation's own flush failed):
    pending on every target. Returns how many event records the local target held before."""
    with Catalog(settings.catalog_url) as c:
        c.add_events(aip, [Event(EventType.FIXITY_CHECK, Outcome.PASS, Agent("preserve", "test"), detail=detail)])
        assert all(c.journal_pending(aip, t.name) for t in settings.targets)
    return len(event_records(settings, aip))


def event_records(settings: Settings, aip: str) -> list[Path]:
    folder = settings.target_path(settings.target("local")) / aip / "events"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def assert_journal_caught_up(settings: Settings, aip: str, records_before: int, detail: str) -> None:
    with Catalog(settings.catalog_url) as c:
        assert all(not c.journal_pending(aip, t.name) for t in settings.targets)
    records = event_records(settings, aip)
    assert len(records) == records_before + 1 and detail.encode() in records[-1].read_bytes()


HOUSEKEEPING = textwrap.dedent(
    """
    import logging, sys, threading, time
    import flows
    from preserve import config
    from flows.serve import housekeeping

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s %(message)s")
    settings = config.load(sys.argv[1])
    rounds = []

    class Rounds(logging.Handler):  # the backup is the last part of a round
        def emit(self, record):
            if "catalog back" in record.getMessage():
                rounds.append(record.getMessage())

    logging.getLogger("preserve.serve").addHandler(Rounds())
    stop = threading.Event()
    keeper = threading.Thread(target=housekeeping, args=(settings, stop, 0.0))
    keeper.start()
    deadline = time.monotonic() + 600
    while len(rounds) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    keeper.join(120)
    print("ROUNDS", len(rounds), "ALIVE", keeper.is_alive())
    """
)


def test_housekeeping_parts_fail_on_their_own(stored: tuple[Settings, str], tmp_path: Path) -> None:
    """The Prefect server does not answer (a closed port: reconciling fails for real) and the backup
    folder cannot be made (its parent is a file): both are logged, redacted, round after round, and
    the journal still catches up."""
    settings, aip = stored
    before = add_pending_event(settings, aip, "caught up while Prefect was down")
    (tmp_path / "a-file").write_text("not a folder")
    config = write_config(
        settings,
        tmp_path / "preserve.toml",
        serve={"housekeeping_minutes": 0.01},
        catalog={"backup_dir": str(tmp_path / "a-file" / "backups")},
    )
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    r = subprocess.run(
        [sys.executable, "-c", HOUSEKEEPING, str(config)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "ROUNDS 2 ALIVE False" in r.stdout, out[-4000:]
    assert out.count("catalog backup failed: CatalogError: cannot create the backup folder") == 2, out[-4000:]
    assert "housekeeping failed: ConnectError" in out
    assert "Someone Named" not in out and "Kept safe" not in out
    assert_journal_caught_up(settings, aip, before, "caught up while Prefect was down")
    assert re.search(r"journal: [1-9][0-9]* event record\(s\)", out), out[-4000:]


@pytest.mark.prefect
@pytest.mark.slow
def test_preserve_serve_backs_up_prunes_and_catches_up_the_journal(
    stored: tuple[Settings, str], tmp_path: Path
) -> None:
    """`preserve serve` for real (as tests/flows/test_serve.py runs it): its first housekeeping round
    writes the pending journal, makes the backup that is due (the newest one is older than
    backup_every_hours), prunes to backup_keep, and SIGINT stops it cleanly."""
    from preserve.dev.services import free_port_base

    settings, aip = stored
    before = add_pending_event(settings, aip, "written by serve's housekeeping")
    backups = tmp_path / "catalog-backups"
    now = utcnow()
    old = [
        catalog_backup.backup(settings.catalog_url, backups, now=now - dt.timedelta(hours=h)).path for h in (3, 30, 40)
    ]
    (backups / "README.txt").write_text("the operator's own file")
    port = free_port_base(1)
    config = write_config(
        settings,
        tmp_path / "preserve.toml",
        serve={"port": port, "watch_interval_seconds": 3600, "housekeeping_minutes": 60},
        catalog={"backup_dir": str(backups), "backup_every_hours": 2, "backup_keep": 2},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "preserve.cli", "--config", str(config), "serve", "--deployments", "embargo-release"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 400
        while len(catalog_backup.backups(backups)) == 3 or old[1].exists():  # a new one made, the oldest pruned
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            assert time.monotonic() < deadline, "no scheduled backup"
            time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    kept = catalog_backup.backups(backups)
    assert len(kept) == 2 and kept[1] == old[0] and not old[2].exists()  # the new one and the 3-hour-old one
    assert (backups / "README.txt").read_text() == "the operator's own file"
    assert f"catalog backed up to {kept[0]}" in text and "old catalog backup removed" in text
    assert_journal_caught_up(settings, aip, before, "written by serve's housekeeping")
    with Catalog(f"sqlite:///{kept[0]}") as c:  # the backup holds the journal's bookkeeping of this round
        assert all(not c.journal_pending(aip, t.name) for t in settings.targets)
    assert "Someone Named" not in text
