"""Web-terminal credentials: signed, short-lived, single-use, bound to user, job and pod.

The browser cannot add an Authorization header to a WebSocket, so the terminal URL
carries its own credential: a JWT (RFC 7519) signed with HS256 by joserfc, with the
claims aud (`jobgraph-terminal`, so no other token of this key passes), sub (the user),
job, pod, adm (only when the user is an admin), iat, exp and jti (a nonce). `verify`
checks the signature, the audience and the expiry; single use is kept by the terminal
service in the database (`spent_credentials`, by jti), so it holds across restarts and
replicas."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.jobs import JobService
from app.domain.errors import Conflict, Unauthenticated
from app.domain.jobs import PodPhase
from app.domain.principal import Principal

if TYPE_CHECKING:
    from joserfc.jwk import OctKey

# joserfc (with cryptography, ~9 MiB of a server's memory) is imported where a credential
# is made or checked, not at start-up: most servers never open a terminal.

DEFAULT_TTL_SECONDS = 60.0
SECRET_FILE_NAME = "secret_key"
_SECRET_BYTES = 32
AUDIENCE = "jobgraph-terminal"
ALGORITHM = "HS256"
INVALID = "terminal credential is not valid"


@dataclass(frozen=True, slots=True)
class TerminalBinding:
    """Whom a credential lets into which pod."""

    user: str
    job_id: str
    pod_name: str
    expires_at: datetime
    # The user's admin right when the credential was issued: an admin may open a shell
    # in anyone's job, and the socket re-checks access as the same principal.
    is_admin: bool = False


class CredentialSpent(Unauthenticated):
    """Genuine, but expired or used already; says whose it was (for the audit trail)."""

    def __init__(self, message: str, binding: TerminalBinding) -> None:
        super().__init__(message)
        self.binding = binding


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    credential: str
    expires_at: datetime


def load_secret(*, data_dir: Path, configured: str | None) -> bytes:
    """`JOBGRAPH_SECRET_KEY` if set; otherwise a key generated once into the data dir
    (mode 0600), so credentials stay valid across restarts of this server."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < _SECRET_BYTES:
            raise RuntimeError(f"{path} is too short to be a secret key; delete it to regenerate") from None
        return secret
    secret = secrets.token_hex(_SECRET_BYTES).encode()
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
    return secret


def signing_key(secret: bytes) -> OctKey:
    """A key of its own for these credentials (HMAC-SHA256 as a KDF), whatever the length
    and other uses of the configured secret."""
    from joserfc.jwk import OctKey

    return OctKey.import_key(
        hmac.new(secret, b"jobgraph terminal credentials", hashlib.sha256).digest()
    )


class TerminalTickets:
    def __init__(
        self,
        *,
        secret: bytes,
        jobs: JobService | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._jobs = jobs
        self._ttl = ttl_seconds
        self._clock = clock

    @cached_property
    def _key(self) -> OctKey:
        return signing_key(self._secret)

    async def open(self, *, actor: Principal, job_id: str, pod_name: str) -> IssuedTicket:
        """A credential for a pod of a job the actor may act on: NotFound otherwise, and
        PermissionDenied for a job shared with them read-only (a shell is not reading)."""
        assert self._jobs is not None, "TerminalTickets needs the JobService to issue"
        _, pod = await self._jobs.require_pod(
            actor=actor, job_id=job_id, pod_name=pod_name, action="terminal.open"
        )
        if pod.phase is not PodPhase.RUNNING:
            raise Conflict(
                f"pod {pod_name!r} is {pod.phase.value.lower()}, not running: a terminal needs "
                "a running pod", field="podName",
            )
        return self.issue(
            user=actor.user, job_id=job_id, pod_name=pod_name, is_admin=actor.is_admin
        )

    def issue(
        self, *, user: str, job_id: str, pod_name: str, is_admin: bool = False
    ) -> IssuedTicket:
        now = int(self._clock())
        expiry = now + int(self._ttl)
        claims: dict[str, object] = {
            "aud": AUDIENCE, "sub": user, "job": job_id, "pod": pod_name,
            "iat": now, "exp": expiry, "jti": secrets.token_urlsafe(12),
        }
        if is_admin:
            claims["adm"] = True
        from joserfc import jwt

        credential = jwt.encode({"alg": ALGORITHM}, claims, self._key, algorithms=[ALGORITHM])
        return IssuedTicket(credential=credential, expires_at=datetime.fromtimestamp(expiry, UTC))

    def verify(self, credential: str) -> tuple[TerminalBinding, str]:
        """The binding and nonce (jti) of a genuine, unexpired credential. Whether it was
        used already is the caller's to check (the database remembers, for every replica)."""
        from joserfc import jwt
        from joserfc.errors import ExpiredTokenError, JoseError

        try:
            claims = jwt.decode(credential, self._key, algorithms=[ALGORITHM]).claims
        except (JoseError, ValueError):
            raise Unauthenticated(INVALID) from None
        user, job_id, pod_name = claims.get("sub"), claims.get("job"), claims.get("pod")
        expiry, nonce = claims.get("exp"), claims.get("jti")
        if not (
            isinstance(user, str) and isinstance(job_id, str) and isinstance(pod_name, str)
            and isinstance(nonce, str) and isinstance(expiry, int) and claims.get("aud") == AUDIENCE
        ):
            raise Unauthenticated(INVALID)
        binding = TerminalBinding(
            user=user, job_id=job_id, pod_name=pod_name,
            expires_at=datetime.fromtimestamp(expiry, UTC), is_admin=claims.get("adm") is True,
        )
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise CredentialSpent(
                "terminal credential has expired; ask for a new terminal URL", binding
            ) from None
        except JoseError:
            raise Unauthenticated(INVALID) from None
        return binding, nonce
