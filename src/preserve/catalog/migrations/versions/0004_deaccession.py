"""Deaccessions: requests, their approval by a second person and tombstones; the deletion of each
object of a deaccessioned AIP on each replica.

Revision ID: 0004_deaccession
Revises: 0003_access_changes
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_deaccession"
down_revision = "0003_access_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deaccessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("aip_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.Text(), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.Text(), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_deaccessions_aip_id"), "deaccessions", ["aip_id"], unique=False)
    op.create_index(op.f("ix_deaccessions_state"), "deaccessions", ["state"], unique=False)
    op.create_table(
        "deaccession_objects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deaccession_id", sa.String(length=36), nullable=False),
        sa.Column("aip_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Text(), nullable=False),
        sa.Column("lock_mode", sa.String(length=32), nullable=False),
        sa.Column("lock_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("versions_deleted", sa.Integer(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["deaccession_id"], ["deaccessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deaccession_id", "target", "key"),
    )
    op.create_index(
        op.f("ix_deaccession_objects_deaccession_id"), "deaccession_objects", ["deaccession_id"], unique=False
    )
    op.create_index(op.f("ix_deaccession_objects_aip_id"), "deaccession_objects", ["aip_id"], unique=False)
    op.create_index(op.f("ix_deaccession_objects_state"), "deaccession_objects", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_deaccession_objects_state"), table_name="deaccession_objects")
    op.drop_index(op.f("ix_deaccession_objects_aip_id"), table_name="deaccession_objects")
    op.drop_index(op.f("ix_deaccession_objects_deaccession_id"), table_name="deaccession_objects")
    op.drop_table("deaccession_objects")
    op.drop_index(op.f("ix_deaccessions_state"), table_name="deaccessions")
    op.drop_index(op.f("ix_deaccessions_aip_id"), table_name="deaccessions")
    op.drop_table("deaccessions")
