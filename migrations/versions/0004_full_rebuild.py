"""full rebuild by the copier: per-nexus rate limit, raid metadata epochs, job phase and era

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nexuses") as t:
        t.add_column(sa.Column("rebuild_rate", sa.BigInteger(), nullable=False, server_default="0"))
        t.add_column(sa.Column("metadata_epoch", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("nexus_children") as t:
        t.add_column(sa.Column("metadata_epoch", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("rebuild_jobs") as t:
        t.add_column(sa.Column("phase", sa.String(16), nullable=False, server_default=""))
        t.add_column(sa.Column("era", sa.Integer(), nullable=True))
        t.add_column(sa.Column("bytes_read", sa.BigInteger(), nullable=False, server_default="0"))
        t.add_column(sa.Column("bytes_written", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("rebuild_jobs") as t:
        for c in ("bytes_written", "bytes_read", "era", "phase"):
            t.drop_column(c)
    with op.batch_alter_table("nexus_children") as t:
        t.drop_column("metadata_epoch")
    with op.batch_alter_table("nexuses") as t:
        t.drop_column("metadata_epoch")
        t.drop_column("rebuild_rate")
