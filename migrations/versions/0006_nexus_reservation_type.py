"""nexus NVMe reservation type and preemption policy, kept for fencing

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # io-engine's defaults for a request that names neither: WriteExclusiveAllRegs (5), ArgKey (0)
    with op.batch_alter_table("nexuses") as t:
        t.add_column(sa.Column("resv_type", sa.Integer(), nullable=False, server_default="5"))
        t.add_column(sa.Column("preempt_policy", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("nexuses") as t:
        t.drop_column("preempt_policy")
        t.drop_column("resv_type")
