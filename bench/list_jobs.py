"""Benchmark: listing jobs with 100,000 rows in the table.

    .venv/bin/python bench/list_jobs.py                      # SQLite in a temp dir
    .venv/bin/python bench/list_jobs.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Seeds N jobs (10 owners, all statuses, 3 queues, names with words) into a fresh database
through the real migrations, then times JobService-level reads through the repository:
one page (first 20) and the total count for common filters. Prints p50/p99 per query.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from app.domain.jobs import JobStatus
from app.domain.listing import Audience, JobFilter, PageRequest
from app.store.db import Database
from app.store.jobs import JobRepository
from app.store.migrate import upgrade_async
from app.store.tables import JobRow

WORDS = ["resnet", "bert", "llama", "sweep", "finetune", "eval", "蒸馏", "训练", "vit", "ablation"]


async def seed(db: Database, n: int) -> None:
    rng = random.Random(7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    statuses = list(JobStatus)
    batch = []
    async with db.transaction() as session:
        for i in range(n):
            name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i}"
            queue = rng.choice(["default", "high", "low"])
            batch.append(
                dict(
                    id=f"j-{i:08d}", name=name, owner=f"user{i % 10}",
                    status=rng.choice(statuses).value, pool_id="local", queue=queue, priority=0,
                    image=None, config={"name": name, "command": ["true"], "resourcePoolId": "local", "queue": queue},
                    created_at=t0 + timedelta(seconds=i), updated_at=t0 + timedelta(seconds=i),
                )
            )
            if len(batch) == 5000:
                await session.execute(insert(JobRow), batch)
                batch.clear()
        if batch:
            await session.execute(insert(JobRow), batch)


async def timed(label: str, call, repeat: int) -> None:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"  {label:<44} p50 {statistics.median(samples):7.2f} ms   p99 {p99:7.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    url = args.database_url
    cleanup = None
    if url and url.startswith("postgresql"):
        from tests.support.server import create_database, drop_database

        base, url = url, await create_database(url)
        cleanup = lambda: drop_database(base, url)  # noqa: E731
    elif not url:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    await upgrade_async(url)
    db = Database(url)
    try:
        start = time.perf_counter()
        await seed(db, args.rows)
        if db.engine.dialect.name == "postgresql":
            async with db.engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE jobs")
        print(f"{db.engine.dialect.name}: seeded {args.rows} jobs in {time.perf_counter() - start:.1f} s")
        first_page = PageRequest(first=20)
        cases = {
            "all jobs (admin)": (JobFilter(), None),
            "one owner's jobs": (JobFilter(), Audience("user3")),
            "status=RUNNING": (JobFilter(statuses=(JobStatus.RUNNING,)), None),
            "owner + status=FAILED": (JobFilter(statuses=(JobStatus.FAILED,)), Audience("user3")),
            "pool=local queue=high": (JobFilter(resource_pool_id="local", queue="high"), None),
            "keyword 'llama' (name)": (JobFilter(keyword="llama"), None),
            "keyword '训练' (name)": (JobFilter(keyword="训练"), None),
            "keyword 'j-0009999' (id)": (JobFilter(keyword="j-0009999"), None),
        }
        for label, (job_filter, owner) in cases.items():
            print(label)

            async def page(job_filter=job_filter, owner=owner):
                async with db.reader() as session:
                    await JobRepository(session).list(job_filter=job_filter, page=first_page, visible_to=owner)

            async def count(job_filter=job_filter, owner=owner):
                async with db.reader() as session:
                    await JobRepository(session).count(job_filter=job_filter, visible_to=owner)

            await timed("first page of 20", page, args.repeat)
            await timed("totalCount", count, args.repeat)
    finally:
        await db.dispose()
        if cleanup:
            await cleanup()


if __name__ == "__main__":
    asyncio.run(main())
