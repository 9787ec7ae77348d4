"""Web-terminal sessions: who may open a shell in which pod, and the audit trail of it.

The terminal socket hands its URL's credential to `open` before it accepts the
WebSocket upgrade, so every refusal (used, expired, forged, a job no longer visible, a
pod not running) happens before a byte of shell is exchanged. Each session and each
refused attempt is written to the audit trail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from app.core import audit
from app.core.jobs import JobService
from app.core.ratelimit import RateLimiter
from app.core.runtimes import RuntimeRegistry
from app.core.terminal_tickets import CredentialSpent, TerminalBinding, TerminalTickets
from app.domain.errors import DomainError, PermissionDenied, RateLimited
from app.domain.jobs import utcnow
from app.domain.principal import Principal
from app.runtime.base import Terminal
from app.store.credentials import SpentCredentialRepository
from app.store.db import Database

log = structlog.get_logger(__name__)

ALREADY_USED = "terminal credential was already used; ask for a new terminal URL"
# Who the audit trail names when a credential does not even say whose it is.
UNKNOWN_ACTOR = "anonymous"
# The size until the client's first resize frame (the console sends one on open).
DEFAULT_ROWS, DEFAULT_COLS = 24, 80


@dataclass(slots=True)
class TerminalSession:
    actor: Principal
    job_id: str
    pod_name: str
    terminal: Terminal
    opened_at: float = field(default_factory=time.monotonic)


class IdleLimit:
    """Ends a session `seconds` after its last keystroke (`touch`). Time is read from an
    injected clock and waited for with an injected sleep, so tests drive it."""

    def __init__(
        self, seconds: float, *, clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._sleep = sleep
        self._last = clock()

    def touch(self) -> None:
        self._last = self._clock()

    async def expired(self) -> str:
        """Returns (why the session ends) once `seconds` passed without a keystroke."""
        while (remaining := self._last + self.seconds - self._clock()) > 0:
            await self._sleep(remaining)
        return f"closed after {self.seconds:g} s without input"


class TerminalService:
    def __init__(
        self,
        *,
        db: Database,
        jobs: JobService,
        runtimes: RuntimeRegistry,
        tickets: TerminalTickets,
        idle_seconds: float,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._limiter = limiter
        self._db = db
        self._jobs = jobs
        self._runtimes = runtimes
        self._tickets = tickets
        self.idle_seconds = idle_seconds

    def idle_limit(self) -> IdleLimit:
        """A new session's idle limit, starting now."""
        return IdleLimit(self.idle_seconds, clock=self._clock, sleep=self._sleep)

    async def check(self, credential: str) -> TerminalBinding:
        """Raises `Unauthenticated` for a credential `open` would refuse as such; spends
        nothing (the terminal page is only the way to the socket)."""
        binding, nonce = self._tickets.verify(credential)
        async with self._db.reader() as session:
            if await SpentCredentialRepository(session).is_spent(nonce):
                raise CredentialSpent(ALREADY_USED, binding)
        return binding

    async def _redeem(self, credential: str) -> TerminalBinding:
        """Verify and spend, once across restarts and replicas (the database decides)."""
        binding, nonce = self._tickets.verify(credential)
        async with self._db.transaction() as session:
            spent_now = await SpentCredentialRepository(session).spend(
                nonce, expires_at=binding.expires_at, now=utcnow()
            )
        if not spent_now:
            raise CredentialSpent(ALREADY_USED, binding)
        return binding

    async def open(
        self, credential: str, *, client_addr: str | None,
        rows: int = DEFAULT_ROWS, cols: int = DEFAULT_COLS,
    ) -> TerminalSession:
        """Spend the credential, re-check that its user may still see the job and pod,
        and open a shell there. Raises a `DomainError` (audited) when any of it fails."""
        try:
            binding = await self._redeem(credential)
        except CredentialSpent as exc:  # a replayed or late URL: say whose it was
            spent = exc.binding
            await self._record(Principal(user=spent.user, client_addr=client_addr),
                               "terminal.open", spent.job_id,
                               f"pod {spent.pod_name}: {exc.message}", outcome=audit.REFUSED)
            raise
        except DomainError as exc:
            # Forged credentials cost a write each: past the rate limit for their address,
            # they are refused without one.
            if self._limiter is not None:
                try:
                    self._limiter.check(f"{UNKNOWN_ACTOR}@{client_addr}")
                except RateLimited:
                    raise exc from None
            await self._record(Principal(user=UNKNOWN_ACTOR, client_addr=client_addr),
                               "terminal.open", None, exc.message, outcome=audit.REFUSED)
            raise
        # The credential says who; decide again whether they still may (the job may have
        # been deleted since the URL was handed out). Group rights are not carried over:
        # they only ever let a user read a job, and a shell needs more.
        actor = Principal(user=binding.user, is_admin=binding.is_admin, client_addr=client_addr)
        where = f"pod {binding.pod_name}"
        try:
            if self._limiter is not None:
                self._limiter.check(actor.user)  # the same per-principal limit as requests
            job, _ = await self._jobs.require_pod(
                actor=actor, job_id=binding.job_id, pod_name=binding.pod_name
            )
            if not actor.may_act(owner=job.owner):  # a shell is more than reading
                raise PermissionDenied(f"job {job.job_id!r} is shared with you read-only")
            terminal = await self._runtimes.for_pool(job.resource_pool_id).open_terminal(
                binding.job_id, binding.pod_name, rows=rows, cols=cols
            )
        except DomainError as exc:
            await self._record(actor, "terminal.open", binding.job_id, f"{where}: {exc.message}",
                               outcome=audit.REFUSED)
            raise
        session = TerminalSession(actor, binding.job_id, binding.pod_name, terminal)
        try:
            await self._record(actor, "terminal.open", binding.job_id, where)
        except BaseException:
            await terminal.close()  # no shell without its audit entry
            raise
        return session

    async def close(self, session: TerminalSession, reason: str) -> None:
        """End the shell and record how long the session lasted and why it ended."""
        try:
            await session.terminal.close()
        finally:
            seconds = time.monotonic() - session.opened_at
            await self._record(
                session.actor, "terminal.close", session.job_id,
                f"pod {session.pod_name}; {reason}; open {seconds:.1f} s",
            )

    async def _record(
        self, actor: Principal, action: str, job_id: str | None, detail: str,
        *, outcome: str = audit.ALLOWED,
    ) -> None:
        log.info(action, user=actor.user, job_id=job_id, outcome=outcome, detail=detail)
        async with self._db.transaction() as session:
            await audit.record(
                session, actor=actor, action=action, job_id=job_id, outcome=outcome, detail=detail
            )
