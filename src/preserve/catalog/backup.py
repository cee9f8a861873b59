"""Backups of the catalog: a consistent online copy of a SQLite catalog (SQLite's backup API, taken
while ingests, audits and the dashboard keep writing), the scheduled backups of `preserve serve`
and their pruning, and for a PostgreSQL catalog the exact pg_dump / pg_restore commands. Side
effects: reads the catalog database; writes the backup file (0600) and creates its folder (0700);
`prune` removes old backups made by preserve, and nothing else.

How the copy is made (SQLite): the catalog is opened read-write but only read (never created: a
missing catalog is an error), one read transaction is held on it, and `sqlite3.Connection.backup`
copies its pages in steps of `STEP_PAGES` into a hidden temporary file in the destination folder.
A catalog is in WAL mode (catalog.engine), where a reader never blocks a writer: the copy is the
database as it was when the read transaction began (every AIP whole, with its files, objects and
events, or not at all), and writers go on meanwhile. (A catalog in rollback-journal mode is copied
without holding the snapshot, so that writers get in between the steps; SQLite restarts the copy
when one did.) The copy is switched to a single self-contained file (journal_mode DELETE), checked
(``PRAGMA integrity_check`` says ``ok``; its schema revision is one this preserve knows, the
current one for a catalog preserve has opened), fsynced and renamed into place, never over an
existing file; then its folder is fsynced. A backup restores by copying it back as the catalog
(with preserve stopped), or by pointing [archive] catalog_url at it.

PostgreSQL: `backup` raises ConfigError whose advice is the command to run, e.g.::

    pg_dump --format=custom --file=/backups/catalog-20261202T031500Z.dump 'postgresql://preserve@db:5432/preserve'

(the password from PGPASSWORD or ~/.pgpass, never on the command line; pg_dump's snapshot is
consistent and does not block writers), and to get it back, into a new, empty database::

    createdb --host=db --port=5432 --username=preserve preserve_restored
    pg_restore --no-owner --exit-on-error --dbname='postgresql://preserve@db:5432/preserve_restored' FILE

then [archive] catalog_url names that database. Passwords never appear in the advice."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import secrets
import shlex
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from preserve.catalog import schema
from preserve.core.errors import CatalogError, ConfigError
from preserve.core.fs import PRIVATE_FILE, fsync_dir, private_dir
from preserve.core.model import utcnow

#: pages copied per step of the backup (4 KiB pages: 4 MiB a step)
STEP_PAGES = 1024
#: a rollback-journal catalog: the pause between steps, in which writers get the lock
_STEP_SLEEP = 0.01
#: the name of a backup made by preserve (a directory DEST, and `preserve serve`); `prune` and the
#: schedule look only at files named so
NAME_RE = re.compile(r"^catalog-(\d{8}T\d{6}Z)\.sqlite$")
_NAME_TIME = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class BackupResult:
    """A backup that was written, checked and renamed into place."""

    path: Path
    bytes: int
    pages: int
    seconds: float
    sha256: str
    revision: str  # the copy's schema revision (alembic)
    current: bool  # the revision is this preserve's newest (else preserve upgrades it on opening)


def backup_name(at: dt.datetime) -> str:
    """The file name of a backup made at ``at``: ``catalog-YYYYMMDDTHHMMSSZ.sqlite`` (UTC)."""
    return f"catalog-{at.astimezone(dt.UTC).strftime(_NAME_TIME)}.sqlite"


def made_at(path: Path) -> dt.datetime | None:
    """When a backup named by preserve was made (from its name); None for any other file."""
    m = NAME_RE.match(Path(path).name)
    if m is None:
        return None
    try:
        return dt.datetime.strptime(m.group(1), _NAME_TIME).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def backups(directory: Path) -> list[Path]:
    """The backups made by preserve in ``directory`` (regular files named `NAME_RE`), newest first."""
    try:
        entries = list(Path(directory).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(at, p) for p in entries if (at := made_at(p)) is not None and p.is_file() and not p.is_symlink()]
    return [p for _, p in sorted(found, reverse=True)]


def last_backup(directory: Path) -> dt.datetime | None:
    """When the newest backup in ``directory`` was made (from its name), None when there is none."""
    newest = backups(directory)
    return made_at(newest[0]) if newest else None


def prune(directory: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` backups made by preserve in ``directory``; any other file
    (another name, a backup given its own name, a temporary file) is never touched. Returns the
    removed paths, oldest last."""
    if keep < 1:
        raise ConfigError(f"keep must be at least 1, got {keep}")
    removed = []
    for p in backups(directory)[keep:]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    if removed:
        fsync_dir(Path(directory))
    return removed


def due(directory: Path, every_hours: float, now: dt.datetime | None = None) -> bool:
    """Whether a scheduled backup is due: none yet, or the newest is ``every_hours`` old (its name
    says when it was made, so a restart of `preserve serve` does not back up again at once)."""
    last = last_backup(directory)
    return last is None or (now or utcnow()) - last >= dt.timedelta(hours=every_hours)


def scheduled(
    catalog_url: str, directory: Path, *, every_hours: float, keep: int, now: dt.datetime | None = None
) -> tuple[BackupResult | None, list[Path]]:
    """The scheduled backup of `preserve serve`: a backup into ``directory`` when one is `due`,
    then `prune` to ``keep``. Returns (the backup or None when none was due, the removed backups)."""
    now = now or utcnow()
    result = backup(catalog_url, Path(directory), now=now) if due(directory, every_hours, now) else None
    return result, prune(directory, keep) if result is not None else []


def backup(catalog_url: str, dest: Path, *, now: dt.datetime | None = None) -> BackupResult:
    """A consistent online copy of the SQLite catalog at ``catalog_url`` (see the module's text).

    ``dest``: an existing directory, or a name without a suffix (a directory to create) gets
    ``catalog-YYYYMMDDTHHMMSSZ.sqlite`` inside; any other name is the backup file itself. An
    existing file is never overwritten (ConfigError). A PostgreSQL catalog: ConfigError whose
    advice is the pg_dump command (and pg_restore to get it back). CatalogError when the catalog
    is missing or the copy fails or does not check."""
    now = now or utcnow()
    url = _parse(catalog_url)
    dest = Path(dest)
    into_dir = dest.is_dir() or (not dest.exists() and not dest.suffix)
    if url.get_backend_name() == "postgresql":
        target = dest / f"catalog-{now.astimezone(dt.UTC).strftime(_NAME_TIME)}.dump" if into_dir else dest
        raise ConfigError(
            "`preserve catalog backup` copies a SQLite catalog; this catalog is a PostgreSQL database",
            advice=postgres_advice(catalog_url, target),
        )
    if url.get_backend_name() != "sqlite":
        raise ConfigError(f"cannot back up a {url.get_backend_name()} catalog (SQLite or PostgreSQL only)")
    if url.database in (None, "", ":memory:"):
        raise ConfigError("the catalog is an in-memory SQLite database: there is nothing on disk to back up")
    source = Path(str(url.database))
    if not source.is_file():
        raise CatalogError(f"no catalog database at {source}", advice="Check [archive] catalog_url (or var_dir).")
    final = dest / backup_name(now) if into_dir else dest
    if final.exists() or final.is_symlink():
        raise ConfigError(f"{final} already exists; a backup never overwrites a file (give another name)")
    try:
        private_dir(final.parent)
    except OSError as exc:
        raise CatalogError(f"cannot create the backup folder {final.parent}: {exc}") from exc
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")
    started = time.monotonic()
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        pages = _copy(source, tmp)
        revision = _check(tmp)
        digest, size = _fsync_and_hash(tmp)
        _place(tmp, final)
        fsync_dir(final.parent)
    except sqlite3.Error as exc:
        raise CatalogError(f"the backup of the catalog {source} failed: {exc}") from exc
    except OSError as exc:
        raise CatalogError(
            f"the backup of the catalog into {final} failed: [Errno {exc.errno}] {exc.strerror}"
        ) from exc
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    return BackupResult(
        path=final,
        bytes=size,
        pages=pages,
        seconds=time.monotonic() - started,
        sha256=digest,
        revision=revision,
        current=revision == schema.head_revision(),
    )


def postgres_advice(catalog_url: str, dump_file: Path) -> str:
    """What to run to back up (and restore) a PostgreSQL catalog: pg_dump's custom format, which
    pg_restore reads. The URL is given without its password."""
    dump, restore = postgres_commands(catalog_url, dump_file)
    return (
        f"Back it up with pg_dump (a consistent snapshot that does not block writers): {shlex.join(dump)}  "
        "(the password from PGPASSWORD or ~/.pgpass, not on the command line). To get it back, into a new, "
        f"empty database: {shlex.join(restore[0])} && {shlex.join(restore[1])}  and set [archive] catalog_url "
        "to that database."
    )


def postgres_commands(
    catalog_url: str, dump_file: Path, restore_database: str = ""
) -> tuple[list[str], tuple[list[str], list[str]]]:
    """(the pg_dump argv, (the createdb argv, the pg_restore argv)) for a PostgreSQL catalog; the
    restore goes into ``restore_database`` (default: the catalog's name + ``_restored``)."""
    url = _parse(catalog_url)
    # URL.set(password=None) would keep the password: a new URL without one
    libpq = URL.create("postgresql", url.username, None, url.host, url.port, url.database, url.query)
    name = restore_database or f"{url.database or 'preserve'}_restored"
    dump = ["pg_dump", "--format=custom", f"--file={dump_file}", _render(libpq)]
    created = ["createdb"]
    if url.host:
        created.append(f"--host={url.host}")
    if url.port:
        created.append(f"--port={url.port}")
    if url.username:
        created.append(f"--username={url.username}")
    created.append(name)
    restore = ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_render(libpq.set(database=name))}"]
    return dump, (created, [*restore, str(dump_file)])


# -- the copy --------------------------------------------------------------------------------------
def _copy(source: Path, tmp: Path) -> int:
    """Copy ``source`` into ``tmp`` with the backup API; returns the number of pages copied."""
    src = sqlite3.connect(f"file:{quote(str(source))}?mode=rw", uri=True, isolation_level=None, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        wal = str(src.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        if wal:  # one snapshot for the whole copy; in WAL mode it does not hold writers up
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            src.backup(dst, pages=STEP_PAGES, sleep=0 if wal else _STEP_SLEEP)
            if wal:
                src.execute("COMMIT")
            dst.execute("PRAGMA journal_mode=DELETE").fetchone()  # one self-contained file
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
    finally:
        src.close()
    return pages


def _check(path: Path) -> str:
    """The copy's schema revision, after checking that it is intact and a preserve catalog."""
    con = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)
    try:
        problems = [str(r[0]) for r in con.execute("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            raise CatalogError(f"the backup copy failed its integrity check: {'; '.join(problems[:5])}")
        try:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            con.execute("SELECT count(*) FROM aips").fetchone()
        except sqlite3.OperationalError as exc:
            raise CatalogError(f"the database is not a preserve catalog ({exc})") from exc
    finally:
        con.close()
    if row is None or not _known_revision(str(row[0])):
        raise CatalogError(
            f"the catalog's schema revision {row[0] if row else None!r} is not one this preserve knows",
            advice="Back it up with the preserve that made it (or a newer one).",
        )
    return str(row[0])


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory(str(schema.MIGRATIONS_DIR)).get_revision(revision) is not None
    except CommandError:
        return False


def _fsync_and_hash(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    os.chmod(path, PRIVATE_FILE)
    return h.hexdigest(), size


def _place(tmp: Path, final: Path) -> None:
    """Give the checked copy its name, never over an existing file (a hard link fails if the name
    is taken; where the file system has none, a check and a rename)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise ConfigError(f"{final} already exists; a backup never overwrites a file (give another name)") from None
    except OSError:
        if final.exists():
            raise ConfigError(f"{final} already exists; a backup never overwrites a file") from None
        os.replace(tmp, final)


def _parse(catalog_url: str) -> URL:
    try:
        return make_url(catalog_url)
    except ArgumentError:
        # not chained: the parser's message quotes the URL, password and all
        raise ConfigError("the catalog URL cannot be read ([archive] catalog_url)") from None


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)  # the password was removed before
