"""API tokens as the core sees them (the secret itself is never kept)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    user: str
    is_admin: bool
    groups: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    """Broker message: drop whatever was cached about this token."""

    token_id: str
