"""Alembic environment for the catalog. preserve runs migrations itself (`preserve.catalog.schema`),
handing over an open connection inside a transaction that already holds the migration lock; this
file only connects Alembic to it. Side effects: schema changes on that connection."""

from alembic import context

from preserve.catalog.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the `alembic` CLI by hand
    raise RuntimeError(
        "run catalog migrations through preserve (Catalog(url) upgrades to head), "
        "or pass a connection in config.attributes['connection']"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs need batch mode
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
