"""Building and tearing down the services for one server process."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import structlog

from app.core.answers import AnswerCache
from app.core.audit import AuditService
from app.core.broker import Broker
from app.core.identity import IdentityService
from app.core.jobs import JobService
from app.core.live import LiveService
from app.core.oidc import OidcConfig
from app.core.pg_broker import PostgresBroker
from app.core.pools import PoolCatalog, PoolsFileError
from app.core.ratelimit import RateLimiter
from app.core.runtimes import RuntimeRegistry
from app.core.sessions import SessionService
from app.core.sync import RuntimeSync
from app.core.terminal_tickets import TerminalTickets, load_secret
from app.core.terminals import TerminalService
from app.core.tokens import TokenService
from app.core.usage import UsageService
from app.domain.pools import ResourcePool
from app.runtime.base import Runtime
from app.services import Services
from app.settings import Settings
from app.store.db import Database
from app.store.jobs import JobRepository
from app.store.migrate import upgrade_if_behind
from app.web.metrics import count_finished

if TYPE_CHECKING:
    from app.core.oidc import OidcVerifier

log = structlog.get_logger(__name__)


class ConfigurationError(RuntimeError):
    pass


def build_runtime(pool: ResourcePool, settings: Settings) -> Runtime:
    if pool.runtime == "local":
        from app.runtime.local import LocalRuntime

        return LocalRuntime(
            pool,
            root=settings.data_dir / "local" / pool.id,
            stop_grace_seconds=settings.stop_grace_seconds,
            max_log_bytes=settings.max_log_bytes_on_disk,
        )
    if pool.runtime == "kubernetes":
        from app.runtime.kubernetes import KubernetesRuntime
        from app.runtime.kubernetes.options import PoolOptionsError

        try:
            archive = settings.log_archive_dir or settings.data_dir / "kubernetes"
            return KubernetesRuntime(pool, archive_dir=archive / pool.id)
        except PoolOptionsError as error:
            raise ConfigurationError(str(error)) from error
    raise ConfigurationError(f"pool {pool.id!r}: unknown runtime {pool.runtime!r}")


def oidc_config(settings: Settings) -> OidcConfig | None:
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_audience:
        raise ConfigurationError("JOBGRAPH_OIDC_AUDIENCE is required with JOBGRAPH_OIDC_ISSUER")
    try:
        config = OidcConfig(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            user_claim=settings.oidc_user_claim,
            groups_claim=settings.oidc_groups_claim,
            admin_group=settings.oidc_admin_group,
            algorithms=tuple(a.strip() for a in settings.oidc_algorithms.split(",") if a.strip()),
            clock_skew_seconds=settings.oidc_clock_skew_seconds,
            jwks_min_refresh_seconds=settings.oidc_jwks_min_refresh_seconds,
        )
    except ValueError as error:
        raise ConfigurationError(f"OIDC settings: {error}") from error
    return config


def oidc_verifier(settings: Settings) -> OidcVerifier | None:
    config = oidc_config(settings)
    if config is None:
        return None
    from app.core.oidc.verifier import OidcVerifier  # joserfc only where OIDC is on

    return OidcVerifier(config)


def check_configuration(settings: Settings) -> None:
    """Refuse a bad pools file or OIDC setting before serving, saying what to fix."""
    try:
        pools = PoolCatalog.load(settings.pools_file)
    except PoolsFileError as error:
        raise ConfigurationError(str(error)) from error
    for pool in pools:
        build_runtime(pool, settings)  # constructing one checks its pool's options
    oidc_config(settings)


async def start_services(settings: Settings) -> Services:
    """The services, started. Each resource is registered for release as soon as it
    exists, so a failure half-way releases what was started (and `stop_services` the
    rest, in reverse order, even when one of them fails to close)."""
    async with AsyncExitStack() as stack:
        services = await _start(settings, stack)
        services.resources = stack.pop_all()
    return services


async def _start(settings: Settings, stack: AsyncExitStack) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pools = PoolCatalog.load(settings.pools_file)
    db = Database(settings.database_url_resolved)
    stack.push_async_callback(db.dispose)
    if settings.auto_migrate:
        await upgrade_if_behind(db)
    # With PostgreSQL, changes reach the subscribers of every replica (LISTEN/NOTIFY).
    broker = PostgresBroker(db) if db.engine.dialect.name == "postgresql" else Broker()
    stack.push_async_callback(broker.close)
    await broker.start()
    runtimes = RuntimeRegistry({pool.id: build_runtime(pool, settings) for pool in pools})
    sync = RuntimeSync(db=db, broker=broker, on_finished=count_finished)
    stack.push_async_callback(sync.close)
    usage = UsageService(db=db, broker=broker, pools=pools)
    stack.push_async_callback(usage.close)
    jobs = JobService(
        db=db, pools=pools, runtimes=runtimes, broker=broker, limits=settings.size_limits
    )
    tickets = TerminalTickets(
        secret=load_secret(data_dir=settings.data_dir, configured=settings.secret_key),
        jobs=jobs,
        ttl_seconds=settings.terminal_ticket_ttl_seconds,
    )
    tokens = TokenService(db, broker=broker)
    limiter = RateLimiter(per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst)
    identity = IdentityService(tokens=tokens, limiter=limiter, oidc=oidc_verifier(settings))
    services = Services(
        settings=settings,
        db=db,
        pools=pools,
        runtimes=runtimes,
        broker=broker,
        live=LiveService(jobs=jobs, broker=broker),
        jobs=jobs,
        tokens=tokens,
        audit=AuditService(db),
        identity=identity,
        sessions=SessionService(
            db=db, identity=identity, tokens=tokens, limiter=limiter,
            ttl_seconds=settings.session_ttl_seconds,
        ),
        sync=sync,
        usage=usage,
        terminal_tickets=tickets,
        terminals=TerminalService(
            db=db, jobs=jobs, runtimes=runtimes, tickets=tickets,
            idle_seconds=settings.terminal_idle_seconds, limiter=limiter,
        ),
        answers=AnswerCache(broker, max_bytes=settings.answer_cache_bytes),
    )
    for runtime in runtimes:
        # Registered before it starts: a start that fails half-way is closed too.
        stack.push_async_callback(runtime.close)
        sync.start(runtime)
        async with db.reader() as session:
            active = await JobRepository(session).list_active(pool_id=runtime.pool.id)
        await runtime.start(active)
        log.info("runtime.started", pool=runtime.pool.id, runtime=runtime.pool.runtime, adopted=len(active))
    return services


async def stop_services(services: Services) -> None:
    """Close the runtimes, the sync tasks, the broker and the engine (in that order)."""
    await services.resources.aclose()
