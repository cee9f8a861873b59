"""An AIP may have several access copies of one kind (its text tracks, issue 15): access copies
are unique by key within an AIP, no longer by kind. The table is rebuilt the same way on SQLite
and PostgreSQL (a new table, the rows copied in their order, the old one dropped), because the
old constraint was created without a name.

Revision ID: 0006_access_tracks
Revises: 0005_versions_journal
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_access_tracks"
down_revision = "0005_versions_journal"
branch_labels = None
depends_on = None

#: "key" quoted: a reserved word in some SQL dialects
COLUMNS = 'aip_id, kind, target, "key", uri, size, sha256'


def _table(name: str, unique: tuple[str, str], constraint: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["aip_id"], ["aips.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(*unique, name=constraint),
    )


def _rebuild(unique: tuple[str, str], constraint: str) -> None:
    _table("access_copies_new", unique, constraint)
    op.execute(f"INSERT INTO access_copies_new ({COLUMNS}) SELECT {COLUMNS} FROM access_copies ORDER BY id")
    op.drop_index(op.f("ix_access_copies_aip_id"), table_name="access_copies")
    op.drop_table("access_copies")
    op.rename_table("access_copies_new", "access_copies")
    if op.get_bind().dialect.name == "postgresql":  # the names PostgreSQL gave the new table's parts
        op.execute("ALTER SEQUENCE access_copies_new_id_seq RENAME TO access_copies_id_seq")
        op.execute("ALTER INDEX access_copies_new_pkey RENAME TO access_copies_pkey")
        op.execute(
            "ALTER TABLE access_copies RENAME CONSTRAINT access_copies_new_aip_id_fkey TO access_copies_aip_id_fkey"
        )
    op.create_index(op.f("ix_access_copies_aip_id"), "access_copies", ["aip_id"], unique=False)


def upgrade() -> None:
    _rebuild(("aip_id", "key"), "uq_access_copies_aip_key")


def downgrade() -> None:
    op.execute("DELETE FROM access_copies WHERE kind IN ('subtitles', 'manifest', 'page')")
    _rebuild(("aip_id", "kind"), "uq_access_copies_aip_kind")
