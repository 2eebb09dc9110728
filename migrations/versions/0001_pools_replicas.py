"""pools and replicas

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("disks", sa.JSON(), nullable=False),
        sa.Column("cluster_size", sa.BigInteger(), nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "replicas",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("pool_uuid", sa.String(36), sa.ForeignKey("pools.uuid"), nullable=False),
        sa.Column("thin_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("thin", sa.Boolean(), nullable=False),
        sa.Column("entity_id", sa.String(255), nullable=True),
        sa.Column("share", sa.Integer(), nullable=False),
        sa.Column("allowed_hosts", sa.JSON(), nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("pool_uuid", "thin_id"),
    )


def downgrade() -> None:
    op.drop_table("replicas")
    op.drop_table("pools")
