"""Overhead of the REST facade over the direct GraphQL call, for get and list.

Starts `jobgraph serve` on loopback with a fresh data dir, creates a few jobs, then
drives each endpoint with a bounded number of requests from a small httpx/asyncio load
generator (fixed concurrency, keep-alive connections). Usage:

    .venv/bin/python bench/facade.py [--requests 2000] [--concurrency 8] [--jobs 25]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import Server, server_env  # noqa: E402  (reuse the test harness)

OPERATIONS = (ROOT / "rest_compat" / "operations.graphql").read_text()


async def drive(client: httpx.AsyncClient, make_request, *, total: int, concurrency: int) -> dict:
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            response = await make_request(client)
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="jobgraph-bench-"))
    server = Server(data_dir=data_dir, env=server_env(data_dir, None))
    token = server.token("bench", admin=True)
    server.start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits, timeout=30) as client:
            job_id = ""
            for i in range(args.jobs):
                body = {"jobName": f"bench-{i}", "image": "img:1", "command": ["true"]}
                job_id = (await client.post("/api/jobs/create", json=body)).json()["data"]["jobId"]

            def graphql(name: str, variables: dict):
                payload = {"query": OPERATIONS, "operationName": name, "variables": variables}
                return lambda c: c.post("/graphql", json=payload)

            cases = {
                "get  REST    GET /api/jobs/{id}": lambda c: c.get(f"/api/jobs/{job_id}"),
                "get  GraphQL RestGetJob": graphql("RestGetJob", {"jobId": job_id}),
                "list REST    POST /api/jobs (10)": lambda c: c.post("/api/jobs", json={}),
                "list GraphQL RestListJobs (10)": graphql("RestListJobs", {"first": 10, "offset": 0}),
            }
            for name, make in cases.items():
                await drive(client, make, total=min(200, args.requests), concurrency=args.concurrency)  # warm-up
                result = await drive(client, make, total=args.requests, concurrency=args.concurrency)
                print(f"{name:36s} {result['rps']:8.0f} req/s   p50 {result['p50']:6.2f} ms   p99 {result['p99']:6.2f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=25)
    asyncio.run(main(parser.parse_args()))
