"""Spent web-terminal credentials, so single use holds across restarts and replicas.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spent_credentials",
        sa.Column("nonce", sa.String(64), primary_key=True),
        # Kept until the credential would have expired anyway, then purged.
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_spent_credentials_expires_at", "spent_credentials", ["expires_at"])


def downgrade() -> None:
    op.drop_table("spent_credentials")
