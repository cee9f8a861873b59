"""The catalog's database connection: the engine, read sessions and write transactions, SQLite's WAL
and lock handling, schema migrations on open, and closing (a context manager). The per-aggregate
repositories build on it. Side effects: opens (and on first use creates and migrates) the database;
a SQLite catalog is created 0600 (with its -wal/-shm) in a 0700 folder."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.dml import Insert

from preserve.catalog import schema
from preserve.catalog.models import Base
from preserve.core.errors import CatalogError
from preserve.core.fs import PRIVATE_FILE, private_dir


class CatalogEngine:
    """One catalog database (SQLite by default, PostgreSQL at scale), open until `close()` or the
    end of a ``with`` block."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
            sqlite = parsed.get_backend_name() == "sqlite"
            if sqlite and parsed.database not in (None, "", ":memory:"):
                _private_sqlite_file(Path(str(parsed.database)))
            self.engine: Engine = create_engine(
                url,
                future=True,
                pool_pre_ping=True,
                # an error never quotes the values of a statement (titles, names, reasons)
                hide_parameters=True,
                connect_args={"timeout": 30} if sqlite else {},
            )
            if url.startswith("sqlite"):
                event.listen(self.engine, "connect", _sqlite_pragmas)
                event.listen(self.engine, "begin", _sqlite_begin)
            schema.upgrade(self.engine)  # Alembic migrations to head (never create_all)
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot open catalog {_shown(url)}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: write transactions: BEGIN IMMEDIATE on SQLite, so two processes never both read and
        #: then fail to upgrade to a write lock; PostgreSQL uses row locks (FOR UPDATE) instead
        self._write_sessions = sessionmaker(self.engine.execution_options(preserve_write=True), expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self) -> Session:
        """A read session (use it in a ``with`` block)."""
        return self._sessions()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """A write session that commits on success and rolls back (and raises CatalogError) on failure."""
        s = self._write_sessions()
        try:
            s.begin()
            try:
                yield s
            except SQLAlchemyError as exc:
                s.rollback()
                raise CatalogError(f"catalog operation failed: {exc}") from exc
            except BaseException:
                s.rollback()
                raise
            try:
                s.commit()
            except SQLAlchemyError as err:
                s.rollback()
                raise CatalogError(f"catalog write failed: {err}") from err
        finally:
            s.close()


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite drops tzinfo; everything in preserve is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def insert_ignore(s: Session, table: type[Base]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING in the session's dialect (SQLite or PostgreSQL)."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite catalog 0600 in a 0700 folder before SQLite opens it: SQLite gives its
    -wal, -shm and -journal files the mode of the database file, so they are private too. A
    catalog made before this rule is tightened the same way (when it is ours)."""
    try:
        private_dir(path.parent)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
        for f in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(f, stat.S_IMODE(st.st_mode) & 0o700)
    except OSError as exc:
        raise CatalogError(f"cannot create the catalog database {path}: {exc}") from exc


def _shown(url: str) -> str:
    """The catalog URL as it may be printed: without its password (a PostgreSQL URL may carry one)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(an unreadable catalog URL)"


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    dbapi_conn.isolation_level = None  # pysqlite's own BEGIN handling off: _sqlite_begin emits it
    cur = dbapi_conn.cursor()
    # the wait first: switching a fresh file to WAL takes a lock, and a second process opening the
    # catalog at the same moment must wait for it rather than fail with "database is locked"
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    """SQLAlchemy's recipe for real SQLite transactions: writers take the write lock up front
    (waiting up to busy_timeout) instead of failing when a reader's snapshot went stale."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("preserve_write") else "BEGIN")
