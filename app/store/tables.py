"""SQLModel tables. The schema itself is created by the Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.store.types import UTCDateTime


def _utc(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class JobRow(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
        Index("ix_jobs_status_created", "status", "created_at", "id"),
        Index("ix_jobs_pool_queue_created", "pool_id", "queue", "created_at", "id"),
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
    )

    id: str = Field(sa_type=String(32), primary_key=True)
    name: str = Field(sa_type=String(512))
    owner: str = Field(sa_type=String(255))
    status: str = Field(sa_type=String(16))
    pool_id: str = Field(sa_type=String(128))
    queue: str = Field(sa_type=String(128))
    priority: int = 0
    image: str | None = Field(default=None, sa_type=String(512))
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    reason: str | None = Field(default=None, sa_type=Text)
    exit_code: int | None = None
    idempotency_key: str | None = Field(default=None, sa_type=String(128))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = _utc()
    finished_at: datetime | None = _utc()
    held: bool = False
    rerun_of: str | None = Field(default=None, sa_type=String(32))
    pending_code: str | None = Field(default=None, sa_type=String(32))
    pending_message: str | None = Field(default=None, sa_type=Text)
    pending_since: datetime | None = _utc()


class JobShareRow(SQLModel, table=True):
    """One row per group a job is shared with (read-only): the only record of its groups,
    found by group through the index; `position` keeps the order they were given in."""

    __tablename__ = "job_shares"
    __table_args__ = (Index("ix_job_shares_group", "group_name", "job_id"),)

    job_id: str = Field(
        sa_column=Column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    )
    group_name: str = Field(sa_type=String(255), primary_key=True)
    position: int = 0


class PodRow(SQLModel, table=True):
    __tablename__ = "pods"

    job_id: str = Field(
        sa_column=Column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    )
    name: str = Field(sa_type=String(253), primary_key=True)
    replica_index: int = 0
    phase: str = Field(sa_type=String(16))
    node_name: str | None = Field(default=None, sa_type=String(253))
    exit_code: int | None = None
    restart_count: int = 0
    reason: str | None = Field(default=None, sa_type=Text)
    started_at: datetime | None = _utc()
    finished_at: datetime | None = _utc()


class JobEventRow(SQLModel, table=True):
    __tablename__ = "job_events"
    __table_args__ = (
        UniqueConstraint("job_id", "key", name="uq_job_events_job_key"),
        Index("ix_job_events_job_time", "job_id", "timestamp", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(
        sa_column=Column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    )
    key: str = Field(sa_type=String(255))
    type: str = Field(sa_type=String(16))
    reason: str = Field(sa_type=String(128))
    message: str = Field(sa_type=Text)
    timestamp: datetime = Field(sa_type=UTCDateTime, nullable=False)


class ApiTokenRow(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: str = Field(sa_type=String(32), primary_key=True)
    user: str = Field(sa_type=String(255), index=True)
    is_admin: bool = False
    groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # SHA-256 of the secret; the secret itself is shown once and never stored.
    token_hash: str = Field(sa_type=String(64), unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime | None = _utc()
    revoked_at: datetime | None = _utc()


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at", "id"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_job", "job_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    actor: str = Field(sa_type=String(255))
    action: str = Field(sa_type=String(64))
    # No foreign key: the trail outlives deleted jobs.
    job_id: str | None = Field(default=None, sa_type=String(32))
    outcome: str = Field(sa_type=String(16))
    detail: str | None = Field(default=None, sa_type=Text)
    client_addr: str | None = Field(default=None, sa_type=String(64))


class SpentCredentialRow(SQLModel, table=True):
    """A web-terminal credential that was used (kept until it would have expired)."""

    __tablename__ = "spent_credentials"

    nonce: str = Field(sa_type=String(64), primary_key=True)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
