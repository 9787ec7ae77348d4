"""Share groups stored once: the job_shares table (with each group's position), no longer
also a JSON list on the job.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("shared_groups", sa.JSON))
shares = sa.table(
    "job_shares",
    sa.column("job_id", sa.String),
    sa.column("group_name", sa.String),
    sa.column("position", sa.Integer),
)


def upgrade() -> None:
    with op.batch_alter_table("job_shares") as batch:
        batch.add_column(sa.Column("position", sa.Integer, nullable=False, server_default="0"))
    # The JSON list is the one the API answered from: it decides the groups and their
    # order, whatever the table held.
    bind = op.get_bind()
    shared = bind.execute(
        sa.select(jobs.c.id, jobs.c.shared_groups).where(
            sa.cast(jobs.c.shared_groups, sa.Text) != "[]"
        )
    ).all()
    for job_id, groups in shared:
        bind.execute(shares.delete().where(shares.c.job_id == job_id))
        rows = [
            {"job_id": job_id, "group_name": group, "position": position}
            for position, group in enumerate(dict.fromkeys(groups or ()))
        ]
        if rows:
            bind.execute(shares.insert(), rows)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("shared_groups")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("shared_groups", sa.JSON, nullable=False, server_default="[]"))
    bind = op.get_bind()
    by_job: dict[str, list[str]] = {}
    ordered = sa.select(shares.c.job_id, shares.c.group_name).order_by(
        shares.c.job_id, shares.c.position
    )
    for job_id, group in bind.execute(ordered):
        by_job.setdefault(job_id, []).append(group)
    for job_id, groups in by_job.items():
        bind.execute(jobs.update().where(jobs.c.id == job_id).values(shared_groups=groups))
    with op.batch_alter_table("job_shares") as batch:
        batch.drop_column("position")
