"""Waiting jobs: a hold flag, why a job waits (code, message, since), and the job a rerun
was made from.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("rerun_of", sa.String(32), nullable=True))
        batch.add_column(sa.Column("pending_code", sa.String(32), nullable=True))
        batch.add_column(sa.Column("pending_message", sa.Text, nullable=True))
        batch.add_column(sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in ("pending_since", "pending_message", "pending_code", "rerun_of", "held"):
            batch.drop_column(column)
