"""jobgraph against a bare FastAPI endpoint, side by side in one run, with wrk.

Starts bench/bare.py and `jobgraph serve` (a fresh data dir; SQLite, or PostgreSQL with
--database-url), optionally pinned to CPU 0 (--pin, wrk then on CPU 1), creates jobs and waits for them to end (so each
has a pod), then runs wrk against the bare endpoint and each case,
alternating, and prints requests/s, latency and the ratio to the bare endpoint measured
right before it. Optionally records a py-spy profile of the server during one case.

    apt-get install -y wrk; .venv/bin/pip install py-spy   # the tools
    .venv/bin/python bench/ratios.py [--duration 10] [--connections 16] [--rounds 2]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--profile rest_get --profile-out /tmp/rest_get.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import (  # noqa: E402  (reuse the test harness)
    Server,
    create_database,
    drop_database,
    free_port,
    server_env,
)

GRAPHQL_JOB = (
    "query($id: ID!) { job(id: $id) { jobId name status owner createdAt startedAt "
    "finishedAt exitCode pods { name phase nodeName exitCode restartCount } } }"
)
SERVER_CPU, WRK_CPU = 0, 1


PINNING = False


def pin(pid: int, cpu: int) -> None:
    if PINNING and hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(pid, {cpu})


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lua_script(method: str, body: dict | None, token: str | None) -> str:
    lines = [f'wrk.method = "{method}"', 'wrk.headers["Content-Type"] = "application/json"']
    if token:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
    # Count non-200 answers (wrk reports non-2xx/3xx only).
    lines.append('done = function(summary, latency, requests) end')
    return "\n".join(lines) + "\n"


def run_wrk(url: str, script: str, *, duration: int, connections: int, threads: int = 1) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    threads = max(threads, connections // 500)  # wrk: at most ~500 sockets per thread
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
               "--timeout", "10s", "-s", handle.name, url]
    if PINNING and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", str(WRK_CPU), *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    return parse_wrk(output)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict:
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for pct in ("50", "99"):
        result[f"p{pct}"] = _ms(re.search(rf"\s{pct}(?:\.000)?%\s+(\S+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: (.*)", output)
    result["errors"] = int(errors.group(1)) if errors else 0
    result["socket_errors"] = sockets.group(1) if sockets else ""
    result["requests"] = int(re.search(r"(\d+) requests in", output).group(1))
    return result


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_quiet(server: Server) -> None:
    """Start without the access log (log level warning, as the bare server), so neither
    pays for it; uvicorn then prints no start line, hence the polling."""
    server.process = subprocess.Popen(
        [str(Path(sys.executable).with_name("jobgraph")), "serve", "--port", str(server.port)],
        env=server.env, start_new_session=True,
    )
    wait_until_up(server.url + "/healthz")


def start_bare() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/bare")
    pin(process.pid, SERVER_CPU)
    return process, url


async def prepare_jobs(url: str, token: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        ids = []
        for i in range(count):
            response = await client.post(
                "/api/jobs/create", json={"jobName": f"bench-{i}", "image": "python:3.11", "command": ["true"]}
            )
            body = response.json()
            if not body.get("data"):
                raise RuntimeError(f"create refused: {body}")
            ids.append(body["data"]["jobId"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            body = (await client.post("/api/jobs", json={"pageSize": count, "status": ["Succeeded"]})).json()
            if body["data"]["totalCount"] >= count:
                return ids
            await asyncio.sleep(0.5)
    raise RuntimeError("the bench jobs did not finish")


def cases(job_id: str) -> dict[str, tuple[str, str, dict | None]]:
    return {
        "rest_get": ("GET", f"/api/jobs/{job_id}", None),
        "graphql_job": ("POST", "/graphql", {"query": GRAPHQL_JOB, "variables": {"id": job_id}}),
        "rest_list20": ("POST", "/api/jobs", {"pageSize": 20}),
    }


GOALS = {"rest_get": 0.5, "graphql_job": 0.4, "rest_list20": 0.25}


def _frame(frame: str) -> str:
    return re.sub(r" \(.*?/(site-packages|perf|jobgraph[^/]*|python3\.\d+)/", " (", frame)


def profile_summary(raw: Path, top: int = 25) -> str:
    """py-spy's collapsed stacks (recorded with --threads --gil: only the thread holding
    the GIL is sampled, so a share is of the interpreter's busy time): the share per
    thread, then the functions with the most samples, inclusive and self."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            threads[frames[0]] += samples
            frames = frames[1:]
        for frame in {_frame(f) for f in frames}:
            inclusive[frame] += samples
        if frames:
            own[_frame(frames[-1])] += samples
    lines = [f"{total} samples holding the GIL; per thread:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in threads.most_common()]
    lines.append("inclusive:")
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


@asynccontextmanager
async def side_by_side(
    base_database_url: str | None, **env: str
) -> AsyncIterator[tuple[Server, str, subprocess.Popen, str]]:
    """`jobgraph serve` (a fresh data dir; SQLite, or a fresh database beside
    `base_database_url`) with an admin token, and the bare endpoint; both stopped and
    their data removed at the end."""
    data_dir = Path(tempfile.mkdtemp(prefix="jobgraph-bench-"))
    database_url = await create_database(base_database_url) if base_database_url else None
    server = Server(data_dir=data_dir, env=server_env(
        data_dir, database_url, JOBGRAPH_LOG_LEVEL="warning", **env))
    token = server.token("bench", admin=True)
    start_quiet(server)
    bare, bare_url = start_bare()
    try:
        yield server, token, bare, bare_url
    finally:
        bare.terminate()
        bare.wait()
        server.stop()
        if base_database_url and database_url:
            await drop_database(base_database_url, database_url)
        shutil.rmtree(data_dir, ignore_errors=True)


async def main(args: argparse.Namespace) -> None:
    global PINNING
    PINNING = args.pin
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    extra = {}
    if args.code:  # another checkout's code (e.g. the commit before a change), same venv
        extra["PYTHONPATH"] = args.code
    if args.no_answer_cache:  # every read computed: the path of a job that just changed
        extra["JOBGRAPH_ANSWER_CACHE_BYTES"] = "0"
    async with side_by_side(args.database_url, **extra) as (server, token, bare, bare_url):
        pin(server.process.pid, SERVER_CPU)
        ids = await prepare_jobs(server.url, token, args.jobs)
        load = os.getloadavg()
        print(f"database: {'postgresql' if args.database_url else 'sqlite'}; wrk -t1 -c{args.connections} "
              f"-d{args.duration}s; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        # CPU ms per request of each server (from /proc): what a request costs whatever
        # else the shared machine runs; "cpu ratio" = bare's cost / jobgraph's.
        print(f"{'case':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'bare req/s':>12}{'ratio':>7}{'goal':>6}"
              f"{'cpu ms/req':>12}{'bare cpu':>10}{'cpu ratio':>11}{'bare p50/p99 ms':>17}")
        selected = args.cases.split(",") if args.cases else list(cases(ids[0]))
        for _ in range(args.rounds):
            for name in selected:
                method, path, body = cases(ids[len(ids) // 2])[name]
                bare_cpu = cpu_seconds(bare.pid)
                base = run_wrk(bare_url + "/bare", lua_script("GET", None, None),
                               duration=args.duration, connections=args.connections)
                bare_ms = 1000 * (cpu_seconds(bare.pid) - bare_cpu) / max(1, base["requests"])
                server_cpu = cpu_seconds(server.process.pid)
                spy = None
                if args.profile == name and shutil.which(str(Path(sys.executable).with_name("py-spy"))):
                    spy = subprocess.Popen([  # noqa: ASYNC220 - a profiler beside the run, not awaited
                        str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                        str(server.process.pid), "--format", "raw", "--rate", "200",
                        "--duration", str(args.duration), "--output", args.profile_out, "--nonblocking",
                        "--threads", "--gil",
                    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                result = run_wrk(server.url + path, lua_script(method, body, token),
                                 duration=args.duration, connections=args.connections)
                server_ms = 1000 * (cpu_seconds(server.process.pid) - server_cpu) / max(1, result["requests"])
                if spy is not None:
                    spy.wait()
                    print(profile_summary(Path(args.profile_out)))
                ratio = result["rps"] / base["rps"]
                flag = "" if not (result["errors"] or result["socket_errors"]) else \
                    f"  errors: {result['errors']} {result['socket_errors']}"
                print(f"{name:<14}{result['rps']:>9.0f}{result['p50']:>9.1f}{result['p99']:>9.1f}"
                      f"{base['rps']:>12.0f}{ratio:>7.2f}{GOALS[name]:>6.2f}"
                      f"{server_ms:>12.2f}{bare_ms:>10.2f}{bare_ms / server_ms:>11.2f}"
                      f"{base['p50']:>9.1f}/{base['p99']:<7.1f}{flag}")
        now, peak = rss_mib(server.process.pid)
        print(f"jobgraph RSS after: {now:.0f} MiB (peak {peak:.0f} MiB)")
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=25)
    parser.add_argument("--cases", help="comma-separated: rest_get,graphql_job,rest_list20")
    parser.add_argument("--database-url", help="a PostgreSQL URL; a fresh database is made there")
    parser.add_argument("--pin", action="store_true",
                        help="servers on CPU 0, wrk on CPU 1 (default: the scheduler decides)")
    parser.add_argument("--code", help="run the server from this source tree (PYTHONPATH)")
    parser.add_argument("--no-answer-cache", action="store_true",
                        help="JOBGRAPH_ANSWER_CACHE_BYTES=0: every read is computed")
    parser.add_argument("--profile", help="record the server with py-spy during this case")
    parser.add_argument("--profile-out", default="/tmp/jobgraph-profile.txt")
    asyncio.run(main(parser.parse_args()))
