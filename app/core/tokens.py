"""API tokens: created once, stored hashed, checked on every request.

Verified tokens are kept in memory, so a request costs no database read to identify its
caller. A revocation reaches every process at once, without guessing a TTL: the revoking
transaction NOTIFYs on PostgreSQL (each server's broker hears it and drops the token), and
on SQLite, where the only other process is `jobgraph token revoke` itself, the revoker
appends to a stamp file beside the database that the server checks (one stat) on each
lookup. Expiry is checked on every use from the token's own `expires_at`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from app.core import audit
from app.core.broker import TOKENS_TOPIC, Broker
from app.core.pg_broker import CHANNEL, revocation_payload
from app.domain.errors import NotFound, Unauthenticated, ValidationFailed
from app.domain.jobs import utcnow
from app.domain.principal import Principal
from app.domain.tokens import TokenInfo, TokenRevoked
from app.store.db import Database
from app.store.tokens import TokenRepository

TOKEN_PREFIX = "jg_"
# Token ids say what made the token: `t-` the CLI (or first start), `s-` a login
# (POST /api/login/account), which its logout may revoke.
API_TOKEN_ID_PREFIX = "t-"
SESSION_ID_PREFIX = "s-"
# An expired session token stays this long, so a late request still hears "expired"
# rather than "unknown"; then the next login deletes it.
SESSION_KEPT_AFTER_EXPIRY = timedelta(days=1)
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,254}$")
# Verified tokens kept; the least recently used go first past this.
MAX_CACHED_TOKENS = 10_000


def hash_token(secret: str) -> str:
    # Tokens are 256-bit random, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_token(
    id_prefix: str, *, user: str, is_admin: bool, groups: tuple[str, ...],
    expires_at: datetime | None,
) -> tuple[TokenInfo, str]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = TokenInfo(
        id=id_prefix + secrets.token_hex(6),
        user=user,
        is_admin=is_admin,
        groups=tuple(groups),
        created_at=utcnow(),
        expires_at=expires_at,
    )
    return token, secret


def _stamp_state(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


class TokenService:
    def __init__(
        self, db: Database, *, broker: Broker | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        # What "now" is for expiry: injected by tests, so none waits for a token to expire.
        self._clock = clock
        self._server = broker is not None  # the CLI passes none: it verifies nothing
        self._cache: OrderedDict[str, TokenInfo] = OrderedDict()
        # Bumped by every invalidation: a database read that raced one is not cached.
        self._generation = 0
        sqlite_file = db.sqlite_file
        self._stamp = sqlite_file.with_name(sqlite_file.name + ".revocations") if sqlite_file else None
        if self._stamp is not None and self._server:
            # Present from the start: a stat that finds the file is cheaper than one that
            # raises, and it runs on every request.
            self._stamp.touch(exist_ok=True)
        self._stamp_seen = _stamp_state(self._stamp)
        if broker is not None:
            broker.listen(TOKENS_TOPIC, self._on_revoked)
            # Revocations heard of while the broker was cut off may have been missed.
            broker.on_resync(self.forget_all)

    async def create(
        self,
        *,
        user: str,
        is_admin: bool = False,
        groups: tuple[str, ...] = (),
        expires_at: datetime | None = None,
        created_by: str = "cli",
    ) -> tuple[TokenInfo, str]:
        """Returns the token's record and its secret, which is not kept anywhere."""
        if not _USER.match(user):
            raise ValidationFailed(
                "user must be 1-255 letters, digits, '_', '.', '@' or '-'", field="user"
            )
        token, secret = _new_token(
            API_TOKEN_ID_PREFIX, user=user, is_admin=is_admin, groups=groups, expires_at=expires_at
        )
        async with self.db.transaction() as session:
            await TokenRepository(session).add(token, token_hash=hash_token(secret))
            await audit.record(
                session, actor=created_by, action="token.create", detail=f"{token.id} for {user}"
            )
        return token, secret

    async def create_session(
        self, *, principal: Principal, source: str, ttl_seconds: float
    ) -> tuple[TokenInfo, str]:
        """A login's token: the principal's rights, stored hashed like any API token,
        expiring after `ttl_seconds` or with the API token it was made from (`source`),
        whichever comes first. Audited as the login."""
        expires_at = utcnow() + timedelta(seconds=ttl_seconds)
        async with self.db.transaction() as session:
            repository = TokenRepository(session)
            origin = await repository.by_hash(hash_token(source))
            if origin is not None and origin.expires_at is not None:
                expires_at = min(expires_at, origin.expires_at)
            # Each login adds a row: those of sessions long over go, so the table stays the
            # size of the live sessions.
            await repository.delete_expired(
                id_prefix=SESSION_ID_PREFIX, before=utcnow() - SESSION_KEPT_AFTER_EXPIRY
            )
            token, secret = _new_token(
                SESSION_ID_PREFIX, user=principal.user, is_admin=principal.is_admin,
                groups=principal.groups, expires_at=expires_at,
            )
            await repository.add(token, token_hash=hash_token(secret))
            await audit.record(
                session, actor=principal, action="login",
                detail=f"session token {token.id}, expires {expires_at.isoformat()}",
            )
        return token, secret

    async def end_session(self, secret: str, *, actor: Principal) -> TokenInfo | None:
        """Revoke `secret` if it is a login's token of `actor`; any other credential (an
        API token from the CLI, an OIDC token) is left alone. The revoked token, or None."""
        async with self.db.reader() as session:
            token = await TokenRepository(session).by_hash(hash_token(secret))
        if token is None or not token.id.startswith(SESSION_ID_PREFIX) or token.user != actor.user:
            return None
        await self.revoke(token.id, revoked_by=actor, action="logout")
        return token

    async def verify(self, secret: str) -> Principal:
        """The token's principal; `Unauthenticated` saying why when it does not work."""
        token = await self._lookup(hash_token(secret))
        if token is None:
            raise Unauthenticated("unknown API token: check it was copied whole, or create one")
        if token.revoked_at is not None:
            raise Unauthenticated(f"API token {token.id} was revoked")
        if token.expires_at is not None and token.expires_at <= self._clock():
            raise Unauthenticated(f"API token {token.id} expired at {token.expires_at.isoformat()}")
        return Principal(user=token.user, is_admin=token.is_admin, groups=token.groups)

    async def _lookup(self, token_hash: str) -> TokenInfo | None:
        self._check_stamp()
        token = self._cache.get(token_hash)
        if token is not None:
            self._cache.move_to_end(token_hash)
            return token
        generation = self._generation
        async with self.db.reader() as session:
            token = await TokenRepository(session).by_hash(token_hash)
        # Unknown and revoked tokens are not kept: only what a revocation can invalidate.
        if token is not None and token.revoked_at is None and generation == self._generation:
            self._cache[token_hash] = token
            while len(self._cache) > MAX_CACHED_TOKENS:
                self._cache.popitem(last=False)
        return token

    def _check_stamp(self) -> None:
        if self._stamp is None:
            return
        state = _stamp_state(self._stamp)
        if state != self._stamp_seen:
            self._stamp_seen = state
            self.forget_all()

    def _on_revoked(self, message: TokenRevoked) -> None:
        self.forget(message.token_id)

    def forget(self, token_id: str) -> None:
        self._generation += 1
        for key in [k for k, t in self._cache.items() if t.id == token_id]:
            del self._cache[key]

    def forget_all(self) -> None:
        """Drop every cached token (e.g. when revocations may have been missed)."""
        self._generation += 1
        self._cache.clear()

    async def list(self) -> list[TokenInfo]:
        async with self.db.reader() as session:
            return await TokenRepository(session).list()

    async def revoke(
        self, token_id: str, *, revoked_by: Principal | str = "cli", action: str = "token.revoke"
    ) -> None:
        async with self.db.transaction() as session:
            tokens = TokenRepository(session)
            if not await tokens.revoke(token_id, at=utcnow()):
                raise NotFound(f"no token {token_id!r}")
            await audit.record(session, actor=revoked_by, action=action, detail=token_id)
            await tokens.announce(CHANNEL, revocation_payload(token_id))
        if self._stamp is not None:
            await asyncio.to_thread(self._append_stamp, token_id)
        self.forget(token_id)

    def _append_stamp(self, token_id: str) -> None:
        assert self._stamp is not None  # only called when there is a stamp file
        with open(self._stamp, "a", encoding="utf-8") as stamp:
            stamp.write(f"{utcnow().isoformat()} {token_id}\n")

    async def ensure_first_admin(self) -> str | None:
        """On a database with no token at all, create an admin token; return its secret."""
        async with self.db.reader() as session:
            if await TokenRepository(session).count():
                return None
        _, secret = await self.create(user="admin", is_admin=True, created_by="first-start")
        return secret
