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

    def may_read(self, *, owner: str, shared_with: tuple[str, ...] = ()) -> bool:
        """Admins read everything; users their own jobs and those shared with a group of theirs."""
        return self.is_admin or owner == self.user or bool(set(shared_with) & set(self.groups))

    def may_act(self, *, owner: str) -> bool:
        return self.is_admin or owner == self.user
