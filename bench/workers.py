"""`jobgraph serve --workers N` on PostgreSQL with a kubernetes pool: REST GET of one job
with N = 1 and N = 2, beside the bare endpoint, with wrk.

The pool points at the fake Kubernetes API server of the tests (tests/k8sfake, a test
double, on 127.0.0.1) only so that the server starts: GET reads the database, never the
cluster.

    .venv/bin/python bench/workers.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
        [--duration 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ratios import lua_script, parse_wrk, rss_mib, start_bare  # noqa: E402
from tests.k8sfake import Delays, FakeKubernetes  # noqa: E402
from tests.support.server import (  # noqa: E402
    JOBGRAPH,
    Server,
    create_database,
    drop_database,
    server_env,
)

POOLS = """pools:
  - id: k8s
    runtime: kubernetes
    kubeconfig: {kubeconfig}
    queueing: none
    queues: [default]
    defaultImage: registry.example/train:1
"""


def tree_rss_mib(pid: int) -> float:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(rss_mib(int(child))[0] for child in [pid, *children])


async def wrk(url: str, script: str, duration: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    # Not subprocess.run: the fake cluster answers in this event loop meanwhile.
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", handle.name, url,
        stdout=subprocess.PIPE,
    )
    output, _ = await process.communicate()
    os.unlink(handle.name)
    return parse_wrk(output.decode())


async def main(args: argparse.Namespace) -> None:
    url = await create_database(args.database_url)
    root = Path(tempfile.mkdtemp(prefix="jobgraph-workers-"))
    bare, bare_url = await asyncio.to_thread(start_bare)
    try:
        async with FakeKubernetes.running(token="bench", delays=Delays()) as fake:
            pools = root / "pools.yaml"
            pools.write_text(POOLS.format(kubeconfig=fake.write_kubeconfig(root / "kubeconfig")))
            server = Server(data_dir=root / "data", env=server_env(
                root / "data", url, JOBGRAPH_POOLS_FILE=str(pools), JOBGRAPH_LOG_LEVEL="warning"))
            token = await asyncio.to_thread(server.token, "bench", admin=True)
            headers = {"Authorization": f"Bearer {token}"}
            load = os.getloadavg()
            print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
                  f"wrk -t2 -c{args.connections} -d{args.duration}s")
            job_id = None
            for workers in (1, 2):
                process = subprocess.Popen(  # noqa: ASYNC220 - returns once started
                    [JOBGRAPH, "serve", "--workers", str(workers), "--port", str(server.port)],
                    env=server.env, start_new_session=True,
                )
                try:
                    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
                        for _ in range(300):
                            try:
                                if (await http.get("/healthz")).status_code == 200:
                                    break
                            except httpx.TransportError:
                                pass
                            await asyncio.sleep(0.2)
                        await asyncio.sleep(3)  # the second worker's start-up
                        if job_id is None:
                            body = (await http.post("/api/jobs/create", json={
                                "jobName": "bench", "image": "registry.example/train:1", "command": ["true"], "resourcePoolId": "k8s"})).json()
                            if not body.get("data"):
                                raise RuntimeError(f"create refused: {body}")
                            job_id = body["data"]["jobId"]
                    base = await wrk(bare_url + "/bare", lua_script("GET", None, None),
                                     args.duration, args.connections)
                    result = await wrk(f"{server.url}/api/jobs/{job_id}", lua_script("GET", None, token),
                                       args.duration, args.connections)
                    rss = tree_rss_mib(process.pid)
                    print(f"workers={workers}: {result['rps']:.0f} req/s, p50 {result['p50']:.1f} ms, "
                          f"p99 {result['p99']:.1f} ms, errors {result['errors']} "
                          f"{result['socket_errors']}; bare {base['rps']:.0f} req/s; ratio "
                          f"{result['rps'] / base['rps']:.2f}; RSS of all processes {rss:.0f} MiB")
                finally:
                    process.terminate()
                    await asyncio.to_thread(process.wait, 60)
    finally:
        bare.terminate()
        bare.wait()
        await drop_database(args.database_url, url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
