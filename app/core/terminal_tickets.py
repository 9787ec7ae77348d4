"""Web-terminal credentials: signed, short-lived, single-use, bound to user, job and pod.

The browser cannot add an Authorization header to a WebSocket, so the terminal URL
carries its own credential: `<payload>.<signature>`, both base64url, where the payload
is JSON {u: user, a: admin (only when true), j: job, p: pod, e: expiry (unix s),
n: nonce} and the signature is HMAC-SHA256 over the encoded payload. `verify` checks the
signature and the expiry; single use is kept by the terminal service in the database
(`spent_credentials`), so it holds across restarts and replicas."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.core.jobs import JobService
from app.domain.errors import Conflict, Unauthenticated
from app.domain.jobs import PodPhase
from app.domain.principal import Principal

DEFAULT_TTL_SECONDS = 60.0
SECRET_FILE_NAME = "secret_key"
_SECRET_BYTES = 32


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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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
        expiry = self._clock() + self._ttl
        payload = {"u": user, "j": job_id, "p": pod_name, "e": expiry, "n": secrets.token_urlsafe(12)}
        if is_admin:
            payload["a"] = True
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        credential = f"{body}.{self._sign(body)}"
        return IssuedTicket(credential=credential, expires_at=datetime.fromtimestamp(expiry, UTC))

    def verify(self, credential: str) -> tuple[TerminalBinding, str]:
        """The binding and nonce of a genuine, unexpired credential. Whether it was used
        already is the caller's to check (the database remembers, for every replica)."""
        return self._verify(credential)

    def _verify(self, credential: str) -> tuple[TerminalBinding, str]:
        body, _, signature = credential.partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            raise Unauthenticated("terminal credential is not valid")
        try:
            payload = json.loads(_unb64(body))
            user, job_id, pod_name = str(payload["u"]), str(payload["j"]), str(payload["p"])
            expiry, nonce = float(payload["e"]), str(payload["n"])
            is_admin = payload.get("a") is True
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise Unauthenticated("terminal credential is not valid") from None
        binding = TerminalBinding(
            user=user, job_id=job_id, pod_name=pod_name,
            expires_at=datetime.fromtimestamp(expiry, UTC), is_admin=is_admin,
        )
        if self._clock() >= expiry:
            raise CredentialSpent(
                "terminal credential has expired; ask for a new terminal URL", binding
            )
        return binding, nonce

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
