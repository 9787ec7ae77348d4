"""Building and tearing down the services for one server process."""

from __future__ import annotations

import structlog

from app.core.broker import Broker
from app.core.live import LiveService
from app.core.pg_broker import PostgresBroker
from app.core.jobs import JobService
from app.core.pools import PoolCatalog
from app.core.runtimes import RuntimeRegistry
from app.core.sync import RuntimeSync
from app.core.terminal_tickets import TerminalTickets, load_secret
from app.core.tokens import TokenService
from app.domain.pools import ResourcePool
from app.runtime.base import Runtime
from app.services import Services
from app.settings import Settings
from app.store.db import Database
from app.store.jobs import JobRepository
from app.store.migrate import upgrade_async

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
        )
    if pool.runtime == "kubernetes":
        from app.runtime.kubernetes import KubernetesRuntime
        from app.runtime.kubernetes.options import PoolOptionsError

        try:
            return KubernetesRuntime(pool, archive_dir=settings.data_dir / "kubernetes" / pool.id)
        except PoolOptionsError as error:
            raise ConfigurationError(str(error)) from error
    raise ConfigurationError(f"pool {pool.id!r}: unknown runtime {pool.runtime!r}")


async def start_services(settings: Settings) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url_resolved
    if settings.auto_migrate:
        await upgrade_async(url)
    pools = PoolCatalog.load(settings.pools_file)
    db = Database(url)
    # With PostgreSQL, changes reach the subscribers of every replica (LISTEN/NOTIFY).
    broker = PostgresBroker(db) if db.engine.dialect.name == "postgresql" else Broker()
    await broker.start()
    runtimes = RuntimeRegistry({pool.id: build_runtime(pool, settings) for pool in pools})
    sync = RuntimeSync(db=db, broker=broker)
    jobs = JobService(db=db, pools=pools, runtimes=runtimes, broker=broker)
    services = Services(
        settings=settings,
        db=db,
        pools=pools,
        runtimes=runtimes,
        broker=broker,
        live=LiveService(jobs=jobs, broker=broker),
        jobs=jobs,
        tokens=TokenService(db),
        sync=sync,
        terminal_tickets=TerminalTickets(
            secret=load_secret(data_dir=settings.data_dir, configured=settings.secret_key),
            jobs=jobs,
            ttl_seconds=settings.terminal_ticket_ttl_seconds,
        ),
    )
    for runtime in runtimes:
        sync.start(runtime)
        async with db.reader() as session:
            active = await JobRepository(session).list_active(pool_id=runtime.pool.id)
        await runtime.start(active)
        log.info("runtime.started", pool=runtime.pool.id, runtime=runtime.pool.runtime, adopted=len(active))
    return services


async def stop_services(services: Services) -> None:
    for runtime in services.runtimes:
        await runtime.close()
    await services.sync.close()
    await services.broker.close()
    await services.db.dispose()
