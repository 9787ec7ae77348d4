"""Read-only sharing of jobs with groups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The groups as a list on the job (for reading it) and one row per group (for
    # finding the jobs shared with a caller's groups through an index).
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("shared_groups", sa.JSON, nullable=False, server_default="[]"))
    op.create_table(
        "job_shares",
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("group_name", sa.String(255), primary_key=True),
    )
    op.create_index("ix_job_shares_group", "job_shares", ["group_name", "job_id"])


def downgrade() -> None:
    op.drop_table("job_shares")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("shared_groups")
