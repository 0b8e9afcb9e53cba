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
    # Manifests stored before this revision counted as done when planned: keep steering to what they
    # added (as applied when their fill was planned) rather than send it all to the origin.
    op.execute(
        "UPDATE cdn_manifests SET applied_at = "
        "(SELECT cdn_fills.created_at FROM cdn_fills WHERE cdn_fills.id = cdn_manifests.fill_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("cdn_manifests") as batch_op:
        batch_op.drop_column("applied_at")
