"""Audit trail entries: who did what to which job, when, from where, and the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    outcome: str  # "allowed" | "refused"
    job_id: str | None = None
    detail: str | None = None
    client_addr: str | None = None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    job_id: str | None = None
    outcome: str | None = None
