"""The composition root's bundle of long-lived services, shared by every entry point."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from app.core.answers import AnswerCache
from app.core.audit import AuditService
from app.core.broker import Broker
from app.core.identity import IdentityService
from app.core.jobs import JobService
from app.core.live import LiveService
from app.core.pools import PoolCatalog
from app.core.runtimes import RuntimeRegistry
from app.core.sessions import SessionService
from app.core.sync import RuntimeSync
from app.core.terminal_tickets import TerminalTickets
from app.core.terminals import TerminalService
from app.core.tokens import TokenService
from app.core.usage import UsageService
from app.settings import Settings
from app.store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    pools: PoolCatalog
    runtimes: RuntimeRegistry
    broker: Broker
    jobs: JobService
    live: LiveService
    tokens: TokenService
    audit: AuditService
    identity: IdentityService
    sessions: SessionService
    sync: RuntimeSync
    usage: UsageService
    terminal_tickets: TerminalTickets
    terminals: TerminalService
    # Encoded answers of job reads, dropped by the broker's job changes.
    answers: AnswerCache
    # What `stop_services` releases, in reverse order of start-up.
    resources: AsyncExitStack = field(default_factory=AsyncExitStack)
