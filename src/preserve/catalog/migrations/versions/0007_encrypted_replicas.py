"""Encrypted replicas (issue 16): an object on an encrypted target is held under an opaque key, as
ciphertext of its own size and SHA-256 (``objects.stored_key``, ``stored_size``,
``stored_sha256``; empty for every object stored so far, all plaintext); a deletion record names
the opaque key it must delete (``deaccession_objects.stored_key``); and the key of each AIP on
each encrypted target (``aip_keys``).

Revision ID: 0007_encrypted_replicas
Revises: 0006_access_tracks
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_encrypted_replicas"
down_revision = "0006_access_tracks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("objects") as batch:
        batch.add_column(sa.Column("stored_key", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("stored_size", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("stored_sha256", sa.String(length=64), nullable=False, server_default=""))
    with op.batch_alter_table("deaccession_objects") as batch:
        batch.add_column(sa.Column("stored_key", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "aip_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("aip_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aip_id", "target", name="uq_aip_keys_aip_target"),
    )
    op.create_index(op.f("ix_aip_keys_aip_id"), "aip_keys", ["aip_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_aip_keys_aip_id"), table_name="aip_keys")
    op.drop_table("aip_keys")
    with op.batch_alter_table("deaccession_objects") as batch:
        batch.drop_column("stored_key")
    with op.batch_alter_table("objects") as batch:
        batch.drop_column("stored_sha256")
        batch.drop_column("stored_size")
        batch.drop_column("stored_key")
