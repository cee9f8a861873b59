"""Catalog schema migrations with Alembic: bring any catalog database (new, pre-migration, or an
older revision) to the newest revision, safely when several workers start at once. Side effects:
DDL on the database; ``python -m preserve.catalog.schema revision MSG`` writes a draft migration."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"
#: any fixed number; PostgreSQL advisory locks are per database, so this serialises migrations
#: of one catalog between every worker that opens it
_PG_LOCK_ID = 0x70726573  # "pres"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision in migrations/versions (exactly one head is allowed)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"catalog migrations must have one head, found {heads}: merge them")
    return heads[0]


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Upgrade the catalog to head and return the revision. One transaction under a lock
    (advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite, whose DDL is transactional), so two
    workers starting together do not both create tables; the second finds head and does nothing.
    A catalog made before migrations (tables, no alembic_version) is stamped as the baseline."""
    from alembic import command

    head = head_revision()
    with engine.connect().execution_options(preserve_write=True) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
            current = current_revision(conn)
            if current == head:
                return head
            cfg = _config(conn)
            if current is None and inspect(conn).has_table("aips"):
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, "head")
    return head


def drift(engine: Engine) -> list[Any]:
    """Differences between the models and a database at head (empty when every model change has
    its migration); used by the test that keeps them in step."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from preserve.catalog.models import Base

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def draft_revision(message: str) -> Path:
    """Write a draft migration for the difference between the models and head (for developers)."""
    from alembic import command
    from sqlalchemy import create_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/draft.sqlite")
        upgrade(engine)
        with engine.begin() as conn:
            cfg = _config(conn)
            number = len(list((MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))) + 1
            slug = "_".join(message.lower().split())[:40]
            script = command.revision(cfg, message=message, autogenerate=True, rev_id=f"{number:04d}_{slug}")
        engine.dispose()
    if script is None or isinstance(script, list):  # only with branches or a custom revision hook
        raise RuntimeError(f"alembic wrote no single revision for {message!r}: {script}")
    return Path(script.path)


if __name__ == "__main__":  # pragma: no cover - developer tool
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit("usage: python -m preserve.catalog.schema revision MESSAGE")
    print(draft_revision(sys.argv[2]))
