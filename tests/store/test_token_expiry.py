"""API tokens expire by the service's clock (injected here, so nothing waits for time to
pass), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.tokens import TokenService
from app.domain.errors import Unauthenticated


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_token_works_until_its_expiry_and_not_from_then_on(db):
    clock = Clock()
    tokens = TokenService(db, clock=clock)
    info, secret = await tokens.create(user="tina", expires_at=clock.now + timedelta(seconds=2))
    clock.now += timedelta(seconds=1.999)
    assert (await tokens.verify(secret)).user == "tina"
    clock.now += timedelta(milliseconds=1)
    with pytest.raises(Unauthenticated, match=f"API token {info.id} expired at"):
        await tokens.verify(secret)
    # A token without an expiry does not expire.
    _, lasting = await tokens.create(user="tina")
    clock.now += timedelta(days=3650)
    assert (await tokens.verify(lasting)).user == "tina"
