"""nexus raid metadata on the nexus's node: children of exactly the nexus size

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nexuses made before keep their metadata inline on the children
    with op.batch_alter_table("nexuses") as t:
        t.add_column(sa.Column("meta_local", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("nexuses") as t:
        t.drop_column("meta_local")
