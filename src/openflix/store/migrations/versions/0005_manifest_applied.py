"""cdn_manifests.applied_at: when the appliance said it applied the manifest (steering waits for it)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cdn_manifests") as batch_op:
        batch_op.add_column(sa.Column("applied_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cdn_manifests") as batch_op:
        batch_op.drop_column("applied_at")
