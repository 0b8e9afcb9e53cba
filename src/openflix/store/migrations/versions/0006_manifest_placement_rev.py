"""cdn_manifests.placement_rev: the placement counter's value when a manifest was written or applied

Serving processes read the manifests changed since the value they last saw and
reload those appliances only, instead of every appliance's holdings.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cdn_manifests") as batch_op:
        batch_op.add_column(sa.Column("placement_rev", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.create_index("ix_cdn_manifests_placement_rev", ["placement_rev"])


def downgrade() -> None:
    with op.batch_alter_table("cdn_manifests") as batch_op:
        batch_op.drop_index("ix_cdn_manifests_placement_rev")
        batch_op.drop_column("placement_rev")
