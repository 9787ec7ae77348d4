"""Submit → RUNNING latency on the local runtime, creates per second with concurrent
clients (checking that no job is lost or duplicated), and the server's memory after many
jobs have run.

    .venv/bin/python bench/lifecycle.py latency --jobs 100
    .venv/bin/python bench/lifecycle.py creates --clients 16 --per-client 25
    .venv/bin/python bench/lifecycle.py memory --jobs 10000

latency: one subscription to `jobUpdated` (all jobs) over graphql-transport-ws; each job
(`sleep 0.05`, created one after the other so none waits for a slot) is timed from just
before its createJob request is sent to the arrival of its RUNNING update.
creates: N clients each create jobs over REST as fast as answers come back (each with an
idempotency key), then the list is compared with what was acknowledged.
memory: jobs running `true`, created 16 at a time; RSS of the server once all have ended.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ratios import rss_mib, start_quiet  # noqa: E402
from tests.support.server import Server, server_env  # noqa: E402
from tests.support.subscriptions import gql_session, gql_subscribe  # noqa: E402

POOLS = "pools:\n  - id: local\n    runtime: local\n    maxConcurrentJobs: {slots}\n    queues: [default]\n"
CREATE = """mutation($input: CreateJobInput!) { createJob(input: $input) { job { jobId } userErrors { message } } }"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def latency(server: Server, token: str, jobs: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    running: dict[str, asyncio.Future[float]] = {}
    async with gql_session(server.url, token) as session, httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=60
    ) as http:
        stream = gql_subscribe(session, "subscription { jobUpdated { jobId status } }")
        pending_first = asyncio.ensure_future(anext(stream))
        # The subscription is live once it delivers the first job's PENDING.

        def arrived(item: dict) -> None:
            update = item["jobUpdated"]
            if update["status"] == "RUNNING":
                future = running.setdefault(update["jobId"], asyncio.get_running_loop().create_future())
                if not future.done():
                    future.set_result(time.perf_counter())

        async def listen() -> None:
            async for item in stream:
                arrived(item)

        samples: list[float] = []
        listener: asyncio.Task | None = None
        for i in range(jobs):
            started = time.perf_counter()
            body = (await http.post("/graphql", json={"query": CREATE, "variables": {"input": {
                "name": f"lat-{i}", "image": "python:3.11", "command": ["sleep", "0.05"]}}})).json()
            job_id = body["data"]["createJob"]["job"]["jobId"]
            future = running.setdefault(job_id, asyncio.get_running_loop().create_future())
            if listener is None:
                # Under load the first update may already be a later one (even RUNNING).
                arrived(await pending_first)
                listener = asyncio.create_task(listen())
            samples.append((await asyncio.wait_for(future, 60) - started) * 1000)
        listener.cancel()
    print(f"submit -> RUNNING over {jobs} jobs: p50 {statistics.median(samples):.1f} ms, "
          f"p99 {percentile(samples, 99):.1f} ms, max {max(samples):.1f} ms")


async def creates(server: Server, token: str, clients: int, per_client: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    acknowledged: list[str] = []

    async def client(index: int) -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120) as http:
            for i in range(per_client):
                response = await http.post(
                    "/api/jobs/create",
                    json={"jobName": f"c-{index}-{i}", "image": "python:3.11", "command": ["true"]},
                    headers={"Idempotency-Key": f"bench-{index}-{i}"},
                )
                acknowledged.append(response.json()["data"]["jobId"])

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - began
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120) as http:
        async def count(*statuses: str) -> int:
            body = {"pageSize": 1, "pageNumber": 1, **({"status": list(statuses)} if statuses else {})}
            return (await http.post("/api/jobs", json=body)).json()["data"]["totalCount"]

        total = await count()
        # What the database has not caught up with yet: jobs the runtime has taken (their
        # create was answered) that are still PENDING there, waiting for the sync.
        pending = await count("Pending")
        while await count("Succeeded") < total:
            await asyncio.sleep(0.2)
        ended = time.perf_counter() - began
    print(f"{len(acknowledged)} creates by {clients} clients in {elapsed:.1f} s: "
          f"{len(acknowledged) / elapsed:.0f} creates/s; acknowledged ids unique: "
          f"{len(set(acknowledged)) == len(acknowledged)}; jobs stored: {total} "
          f"(expected {clients * per_client}); still PENDING in the database then: {pending}; "
          f"all SUCCEEDED after {ended:.1f} s")


async def memory(server: Server, token: str, jobs: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    before, _ = rss_mib(server.process.pid)
    created = 0
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120) as http:
        async def one(i: int) -> None:
            for attempt in range(3):  # a keep-alive connection the server closed meanwhile
                try:
                    response = await http.post("/api/jobs/create", json={
                        "jobName": f"m-{i}", "image": "python:3.11", "command": ["true"]},
                        headers={"Idempotency-Key": f"m-{i}"})
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            assert response.status_code == 200, response.text

        while created < jobs:
            batch = min(16, jobs - created)
            await asyncio.gather(*(one(created + i) for i in range(batch)))
            created += batch
            if created % 1000 == 0:
                now, _ = rss_mib(server.process.pid)
                print(f"  {created} created, RSS {now:.0f} MiB, {time.perf_counter() - began:.0f} s")
        while True:
            body = (await http.post("/api/jobs", json={"pageSize": 1, "status": ["Succeeded"]})).json()
            if body["data"]["totalCount"] >= jobs:
                break
            await asyncio.sleep(1)
    after, peak = rss_mib(server.process.pid)
    print(f"{jobs} jobs run in {time.perf_counter() - began:.0f} s; server RSS {before:.0f} MiB "
          f"before, {after:.0f} MiB after (peak {peak:.0f} MiB)")


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="jobgraph-bench-"))
    pools = data_dir / "pools.yaml"
    pools.write_text(POOLS.format(slots=args.slots))
    env = server_env(data_dir, args.database_url, JOBGRAPH_LOG_LEVEL="warning",
                     JOBGRAPH_POOLS_FILE=str(pools))
    if args.code:
        env["PYTHONPATH"] = args.code
    server = Server(data_dir=data_dir, env=env)
    token = server.token("bench", admin=True)
    start_quiet(server)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    try:
        if args.what == "latency":
            await latency(server, token, args.jobs)
        elif args.what == "creates":
            await creates(server, token, args.clients, args.per_client)
        else:
            await memory(server, token, args.jobs)
    finally:
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["latency", "creates", "memory"])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=25)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--database-url", help="PostgreSQL URL of an existing database")
    parser.add_argument("--code", help="run the server from this source tree (PYTHONPATH)")
    asyncio.run(main(parser.parse_args()))
