"""pool type (0 = our label + dm-thin pools, 1 = LVM volume groups)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pools") as t:
        t.add_column(sa.Column("pooltype", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("pools") as t:
        t.drop_column("pooltype")
