"""How fast the sync task applies runtime updates to the database when they queue up
(a burst of creates, a server catching up after an outage): N jobs are stored, then
three updates per job (QUEUED; RUNNING with its pod and an event; SUCCEEDED with its
pod, exit code and an event), the way the local runtime reports them, are put in a
runtime's queue at once, and the sync task applies them; the time until the last one is
in the database is measured. In-process, no HTTP.

    .venv/bin/python bench/sync.py [--jobs 1000]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.broker import Broker  # noqa: E402
from app.core.sync import RuntimeSync  # noqa: E402
from app.domain.jobs import (  # noqa: E402
    EventType,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Pod,
    PodPhase,
)
from app.domain.pools import ResourcePool  # noqa: E402
from app.runtime.base import JobUpdate  # noqa: E402
from app.store.db import Database  # noqa: E402
from app.store.jobs import JobRepository  # noqa: E402
from app.store.migrate import upgrade_async  # noqa: E402
from tests.support.server import create_database, drop_database  # noqa: E402

NOW = datetime.now(UTC)


def updates_of(job_id: str) -> list[JobUpdate]:
    def pod(phase: PodPhase, **times: datetime) -> tuple[Pod, ...]:
        return (Pod(job_id=job_id, name=f"{job_id}-0", replica_index=0, phase=phase,
                    node_name="localhost", **times),)

    def event(reason: str) -> tuple[JobEvent, ...]:
        return (JobEvent(job_id=job_id, key=reason, type=EventType.NORMAL, reason=reason,
                         message=f"{reason} {job_id}", timestamp=NOW),)

    return [
        JobUpdate(job_id=job_id, status=JobStatus.QUEUED, events=event("Queued")),
        JobUpdate(job_id=job_id, status=JobStatus.RUNNING, started_at=NOW,
                  pods=pod(PodPhase.RUNNING, started_at=NOW), events=event("Started")),
        JobUpdate(job_id=job_id, status=JobStatus.SUCCEEDED, exit_code=0, finished_at=NOW,
                  pods=pod(PodPhase.SUCCEEDED, started_at=NOW, finished_at=NOW),
                  events=event("Completed")),
    ]


class QueuedRuntime:
    """What the sync task needs of a runtime: its pool and its stream of updates."""

    def __init__(self) -> None:
        self.pool = ResourcePool(id="local", runtime="local")
        self.updates: asyncio.Queue[JobUpdate] = asyncio.Queue()

    async def watch(self) -> AsyncIterator[JobUpdate]:
        while True:
            yield await self.updates.get()


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="jobgraph-bench-sync-"))
    url = (await create_database(args.database_url) if args.database_url
           else f"sqlite+aiosqlite:///{data_dir / 'jobgraph.db'}")
    await upgrade_async(url)
    db = Database(url)
    try:
        ids = [f"j-s{i:06d}" for i in range(args.jobs)]
        spec = JobSpec(name="sync", command=("true",), resource_pool_id="local", queue="default")
        async with db.transaction() as session:
            for job_id in ids:
                await JobRepository(session).add(Job(job_id=job_id, owner="bench", spec=spec))
        broker = Broker()
        finished = asyncio.Event()
        ended = 0

        def count(_) -> None:
            nonlocal ended
            ended += 1
            if ended == args.jobs:
                finished.set()

        sync = RuntimeSync(db=db, broker=broker, on_finished=count)
        runtime = QueuedRuntime()
        for job_id in ids:
            for update in updates_of(job_id):
                runtime.updates.put_nowait(update)
        began = time.perf_counter()
        sync.start(runtime)  # type: ignore[arg-type]
        await finished.wait()
        took = time.perf_counter() - began
        await sync.close()
        print(f"{'postgresql' if args.database_url else 'sqlite'}: {3 * args.jobs} updates of "
              f"{args.jobs} jobs applied in {took:.2f} s: {3 * args.jobs / took:.0f} updates/s")
    finally:
        await db.dispose()
        if args.database_url:
            await drop_database(args.database_url, url)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--database-url", help="a PostgreSQL URL; a fresh database is made there")
    asyncio.run(main(parser.parse_args()))
