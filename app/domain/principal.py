"""Who is asking."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    is_admin: bool = False
    groups: tuple[str, ...] = ()
    # Where the request came from, for the audit trail.
    client_addr: str | None = None
