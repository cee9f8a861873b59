"""Access changes (withdrawals and set-access), written as an intent before any copy moves.

Revision ID: 0003_access_changes
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_access_changes"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_id", sa.String(length=64), nullable=False),
        sa.Column("from_level", sa.String(length=32), nullable=False),
        sa.Column("to_level", sa.String(length=32), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("dashboard_cleaned_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_access_changes_aip_id"), "access_changes", ["aip_id"], unique=False)
    op.create_index(op.f("ix_access_changes_state"), "access_changes", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_access_changes_state"), table_name="access_changes")
    op.drop_index(op.f("ix_access_changes_aip_id"), table_name="access_changes")
    op.drop_table("access_changes")
