"""snapshots and clones are replicas of another kind; pools record the disk devices they were opened on

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("replicas") as b:
        b.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="replica"))
        # snapshot: the replica it was taken of; clone: the snapshot it was made from
        b.add_column(sa.Column("source_uuid", sa.String(36), nullable=True))
        b.add_column(sa.Column("discarded", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("txn_id", sa.String(255), nullable=True))
        b.create_index("ix_replicas_source_uuid", ["source_uuid"])


def downgrade() -> None:
    with op.batch_alter_table("replicas") as b:
        b.drop_index("ix_replicas_source_uuid")
        b.drop_column("txn_id")
        b.drop_column("discarded")
        b.drop_column("source_uuid")
        b.drop_column("kind")
