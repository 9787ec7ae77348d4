"""Single use of terminal credentials, kept in the database (so across replicas)."""

from datetime import UTC, datetime, timedelta

from app.store.credentials import SpentCredentialRepository

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def test_a_nonce_is_spent_once_and_forgotten_after_expiry(db):
    later = NOW + timedelta(seconds=60)
    async with db.transaction() as session:
        repo = SpentCredentialRepository(session)
        assert await repo.spend("n1", expires_at=later, now=NOW) is True
        assert await repo.spend("n1", expires_at=later, now=NOW) is False
        assert await repo.is_spent("n1") and not await repo.is_spent("n2")
    async with db.transaction() as session:
        repo = SpentCredentialRepository(session)
        # Past its expiry the record is purged (the credential is refused as expired anyway).
        assert await repo.spend("n2", expires_at=later + timedelta(seconds=60), now=later) is True
        assert not await repo.is_spent("n1")
