"""Live paths: subscription fan-out and log-follow throughput.

    .venv/bin/python bench/live.py fanout [--subscribers 1000] [--changes 20]
    .venv/bin/python bench/live.py logs [--megabytes 100]

fanout: opens N graphql-transport-ws sockets to one `jobgraph serve`, each subscribed to
`jobUpdated` (all jobs). For each of C changes it starts a job that waits on a gate file,
waits until every subscriber has seen it RUNNING, then opens the gate: the job ends, and
that one change (SUCCEEDED) is published once and fanned out. Measured per subscriber:
from opening the gate to receiving SUCCEEDED (so it includes the process exit, the
database write and the fan-out). Reports p50/p99/max over all subscribers and changes.

logs: runs a job that writes M megabytes of 100-byte lines as fast as it can and follows
its log from the first line with the `podLogs` subscription, counting bytes until the pod
ends; reports MB/s and the server's peak resident memory (VmHWM) over the run.
Load generator and server share the machine's cores (loopback only, bounded counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import GraphQLClient, Server, server_env  # noqa: E402
from tests.support.subscriptions import ws_url  # noqa: E402

PIN = os.cpu_count() and os.cpu_count() >= 2
CREATE = "mutation($n: String!, $c: [String!]!) { createJob(input: {name: $n, command: $c}) { job { jobId } } }"


def start_server() -> tuple[Server, str]:
    data_dir = Path(tempfile.mkdtemp(prefix="jobgraph-bench-"))
    # One user opens every socket: no per-principal rate limit for the benchmark.
    server = Server(data_dir=data_dir, env=server_env(data_dir, None, JOBGRAPH_RATE_LIMIT_PER_MINUTE="0",
                                                       JOBGRAPH_LOG_LEVEL="info"))
    token = server.token("bench", admin=True)
    server.start()
    if PIN:
        # Server on the first core, this load generator on the second: they do not
        # compete for one CPU, so the numbers are the server's.
        os.sched_setaffinity(server.process.pid, {0})
        os.sched_setaffinity(0, {1})
    return server, token


async def subscriber(url: str, token: str, ready: asyncio.Event, counter: list[int], total: int,
                     arrivals: dict[str, list[float]]) -> None:
    ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription { jobUpdated { jobId status } }"}}))
    counter[0] += 1
    if counter[0] == total:
        ready.set()
    seen: set[str] = set()
    try:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") != "next":
                continue
            update = message["payload"]["data"]["jobUpdated"]
            key = (update["jobId"], update["status"])
            if key not in seen:
                seen.add(key)
                arrivals.setdefault(key, []).append(time.perf_counter())
    finally:
        await ws.close()


async def fanout(args: argparse.Namespace) -> None:
    server, token = start_server()
    try:
        url = ws_url(server.url)
        ready, counter, arrivals = asyncio.Event(), [0], {}
        tasks = []
        for _ in range(args.subscribers):  # connect in a bounded trickle, not a storm
            tasks.append(asyncio.create_task(subscriber(url, token, ready, counter, args.subscribers, arrivals)))
            await asyncio.sleep(0.002)
        await asyncio.wait_for(ready.wait(), 120)
        client = GraphQLClient(server.url, token)
        gates = Path(tempfile.mkdtemp(prefix="jobgraph-gates-"))
        latencies = []
        for i in range(args.changes):
            gate = gates / str(i)
            command = [sys.executable, "-c",
                       f"import os,time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.005)"]
            job_id = (await client.execute(CREATE, {"n": f"change-{i}", "c": command}))["createJob"]["job"]["jobId"]
            await _all_arrived(arrivals, (job_id, "RUNNING"), args.subscribers)
            opened = time.perf_counter()
            gate.touch()
            await _all_arrived(arrivals, (job_id, "SUCCEEDED"), args.subscribers)
            latencies += [(t - opened) * 1000 for t in arrivals[(job_id, "SUCCEEDED")]]
        latencies.sort()
        print(f"subscribers={args.subscribers} changes={args.changes} deliveries={len(latencies)}")
        print(f"fan-out latency: p50 {statistics.median(latencies):.1f} ms  "
              f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms  max {latencies[-1]:.1f} ms")
        print(f"server peak RSS: {_peak_rss_mb(server):.0f} MB")
        await client.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.stop()


async def _all_arrived(arrivals: dict, key: tuple[str, str], n: int) -> None:
    async with asyncio.timeout(60):
        while len(arrivals.get(key, ())) < n:
            await asyncio.sleep(0.001)


def _peak_rss_mb(server: Server) -> float:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def logs(args: argparse.Namespace) -> None:
    server, token = start_server()
    try:
        client = GraphQLClient(server.url, token)
        lines = args.megabytes * 1024 * 1024 // 100
        script = (f"import sys\nline = 'x' * 99 + '\\n'\nw = sys.stdout.write\n"
                  f"for _ in range({lines}): w(line)\n")
        create = ('mutation($c: [String!]!) { createJob(input: {name: "log-bench", command: $c}) '
                  '{ job { jobId } } }')
        job_id = (await client.execute(create, {"c": [sys.executable, "-c", script]}))["createJob"]["job"]["jobId"]
        pod = f"{job_id}-0"
        async with asyncio.timeout(60):
            while not (await client.execute('query($id: ID!) { job(id: $id) { pods { name } } }',
                                            {"id": job_id}))["job"]["pods"]:
                await asyncio.sleep(0.01)
        idle_rss = _peak_rss_mb(server)
        received = count = messages = 0
        start = time.perf_counter()
        async with websockets.connect(ws_url(server.url), subprotocols=["graphql-transport-ws"],
                                      max_size=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
            await ws.recv()
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!, $pod: String!) { podLogLines(jobId: $id, podName: $pod) }",
                "variables": {"id": job_id, "pod": pod}}}))
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "complete":
                    break
                if message["type"] == "next":
                    batch = message["payload"]["data"]["podLogLines"]
                    received += sum(len(line) + 1 for line in batch)
                    count += len(batch)
                    messages += 1
        elapsed = time.perf_counter() - start
        print(f"followed {count} lines, {received / 1e6:.1f} MB in {elapsed:.1f} s: "
              f"{received / 1e6 / elapsed:.1f} MB/s ({count / elapsed:,.0f} lines/s, {messages} messages)")
        print(f"server peak RSS: {_peak_rss_mb(server):.0f} MB (before following: {idle_rss:.0f} MB)")
        assert count == lines, (count, lines)
        await client.close()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("fanout")
    f.add_argument("--subscribers", type=int, default=1000)
    f.add_argument("--changes", type=int, default=20)
    lg = sub.add_parser("logs")
    lg.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(fanout(args) if args.what == "fanout" else logs(args))


if __name__ == "__main__":
    main()
