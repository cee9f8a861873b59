"""The order of an AIP's states (``aips.state_seq``); AIP versions (version 1 recorded for every AIP already stored, from its objects), the journal of
what was written beside each AIP on each target (event records, version inventories), and
rebuilds of the catalog from storage.

Revision ID: 0005_versions_journal
Revises: 0004_deaccession
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0005_versions_journal"
down_revision = "0004_deaccession"
branch_labels = None
depends_on = None


def _member(aip_id: str, key: str) -> str:
    """storage.base.member_path, repeated here: a migration must not change when the code does."""
    rel = key.removeprefix(f"{aip_id}/")
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), rel)


def upgrade() -> None:
    with op.batch_alter_table("aips") as batch:
        batch.add_column(sa.Column("state_seq", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "aip_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["aip_id"], ["aips.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aip_id", "number"),
    )
    op.create_index(op.f("ix_aip_versions_aip_id"), "aip_versions", ["aip_id"], unique=False)
    op.create_table(
        "journal_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_journal_records_aip_target", "journal_records", ["aip_id", "target"], unique=False)
    op.create_table(
        "event_exports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["record_id"], ["journal_records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "target"),
    )
    op.create_index("ix_event_exports_target", "event_exports", ["target", "event_id"], unique=False)
    op.create_index(op.f("ix_event_exports_record_id"), "event_exports", ["record_id"], unique=False)
    op.create_table(
        "rebuilds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # version 1 of every AIP already stored: the bag as ingested, under the keys it has
    conn = op.get_bind()
    aips = sa.table("aips", sa.column("id", sa.String), sa.column("created_at", sa.DateTime(timezone=True)))
    objects = sa.table("objects", sa.column("aip_id", sa.String), sa.column("key", sa.Text))
    versions = sa.table(
        "aip_versions",
        sa.column("aip_id", sa.String),
        sa.column("number", sa.Integer),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("reason", sa.Text),
        sa.column("operator", sa.Text),
        sa.column("members", sa.JSON),
    )
    keys: dict[str, set[str]] = {}
    for aip_id, key in conn.execute(sa.select(objects.c.aip_id, objects.c.key)):
        keys.setdefault(aip_id, set()).add(key)
    rows = [
        {
            "aip_id": aip_id,
            "number": 1,
            "created_at": created,
            "reason": "ingest",
            "operator": "",
            "members": {_member(aip_id, k): k for k in sorted(keys.get(aip_id, ()))},
        }
        for aip_id, created in conn.execute(sa.select(aips.c.id, aips.c.created_at))
    ]
    if rows:
        op.bulk_insert(versions, rows)


def downgrade() -> None:
    with op.batch_alter_table("aips") as batch:
        batch.drop_column("state_seq")
    op.drop_table("rebuilds")
    op.drop_index(op.f("ix_event_exports_record_id"), table_name="event_exports")
    op.drop_index("ix_event_exports_target", table_name="event_exports")
    op.drop_table("event_exports")
    op.drop_index("ix_journal_records_aip_target", table_name="journal_records")
    op.drop_table("journal_records")
    op.drop_index(op.f("ix_aip_versions_aip_id"), table_name="aip_versions")
    op.drop_table("aip_versions")
