"""nexuses, their children, rebuild jobs (finished jobs are the history)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nexuses",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("min_cntl_id", sa.Integer(), nullable=False),
        sa.Column("max_cntl_id", sa.Integer(), nullable=False),
        sa.Column("resv_key", sa.BigInteger(), nullable=False),
        sa.Column("preempt_key", sa.BigInteger(), nullable=False),
        sa.Column("share", sa.Integer(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("allowed_hosts", sa.JSON(), nullable=False),
        sa.Column("ana_state", sa.Integer(), nullable=False),
        sa.Column("ana_grpid", sa.Integer(), nullable=False),
        sa.Column("region_sectors", sa.Integer(), nullable=False),
        sa.Column("clean_shutdown", sa.Boolean(), nullable=False),
        sa.Column("nexus_info_key", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "nexus_children",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("nexus_uuid", sa.String(36), sa.ForeignKey("nexuses.uuid", ondelete="CASCADE"), nullable=False),
        sa.Column("uri", sa.String(1024), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Integer(), nullable=False),
        sa.Column("device_uuid", sa.String(36), nullable=True),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("fault_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("nexus_uuid", "uri"),
    )
    op.create_table(
        "rebuild_jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("nexus_uuid", sa.String(36), nullable=False),
        sa.Column("src_uri", sa.String(1024), nullable=False),
        sa.Column("dst_uri", sa.String(1024), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("blocks_total", sa.BigInteger(), nullable=False),
        sa.Column("blocks_recovered", sa.BigInteger(), nullable=False),
        sa.Column("blocks_transferred", sa.BigInteger(), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.String(1024), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_rebuild_jobs_nexus_uuid", "rebuild_jobs", ["nexus_uuid"])


def downgrade() -> None:
    op.drop_index("ix_rebuild_jobs_nexus_uuid", "rebuild_jobs")
    op.drop_table("rebuild_jobs")
    op.drop_table("nexus_children")
    op.drop_table("nexuses")
