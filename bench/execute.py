"""In-process cost of one facade execution, with and without the trusted-documents
shortcut (documents parsed and validated at start-up). No server: the schema is
executed directly with a stub context whose job read is in memory.

    .venv/bin/python bench/execute.py [--iterations 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphql import parse, specified_rules, validate  # noqa: E402

from app.domain.jobs import Job, JobSpec  # noqa: E402
from app.domain.principal import Principal  # noqa: E402
from app.graphql import documents  # noqa: E402
from app.graphql.context import GraphQLContext  # noqa: E402
from app.graphql.schema import GUARD_RULES, schema  # noqa: E402
from rest_compat.executor import Operations  # noqa: E402
from rest_compat.router import ROUTE_OPERATIONS  # noqa: E402

JOB = Job(job_id="j-bench001", owner="bench", spec=JobSpec(
    name="bench", command=("true",), resource_pool_id="local", queue="default"))


class StubJobs:
    async def get(self, *, actor, job_id):
        return JOB

    async def get_with_pods(self, *, actor, job_id):
        return JOB, []

    async def pods_of(self, *, actor, job_ids):
        return {j: [] for j in job_ids}


class StubServices:
    jobs = StubJobs()


def context() -> GraphQLContext:
    return GraphQLContext(services=StubServices(), principal=Principal(user="bench", is_admin=True))  # type: ignore[arg-type]


async def per_call(operations: Operations, iterations: int) -> float:
    for _ in range(200):
        await operations.execute("RestGetJob", variables={"jobId": "j-bench001"}, context=context())
    start = time.perf_counter()
    for _ in range(iterations):
        result = await operations.execute("RestGetJob", variables={"jobId": "j-bench001"}, context=context())
        assert not result.errors, result.errors
    return (time.perf_counter() - start) / iterations * 1e6


async def main(iterations: int) -> None:
    operations = Operations.load_file(required=ROUTE_OPERATIONS)
    trusted = await per_call(operations, iterations)
    documents.forget_all()  # now: cached by text after the first call
    cached = await per_call(operations, iterations)
    text = operations["RestGetJob"].text
    start = time.perf_counter()
    for _ in range(iterations // 10 or 1):
        validate(schema._schema, parse(text), [*specified_rules, *GUARD_RULES])
    miss = (time.perf_counter() - start) / (iterations // 10 or 1) * 1e6
    print(f"RestGetJob via schema.execute, trusted document : {trusted:7.0f} µs/call")
    print(f"RestGetJob via schema.execute, text cache only  : {cached:7.0f} µs/call")
    print(f"parse + validate of RestGetJob (a cache miss)   : {miss:7.0f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=3000)
    asyncio.run(main(parser.parse_args().iterations))
