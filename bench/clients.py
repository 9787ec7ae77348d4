"""Many keep-alive clients on REST `GET /api/jobs/{id}`, beside the bare endpoint, with
h2load (HTTP/1.1).

wrk is the tool of `bench/ratios.py`, but at 1,000 connections its own latencies are not
the servers': against the bare endpoint alone wrk reports a p90 of seconds while h2load,
in the same minute, sees every request of every client answered within ~0.3 s and every
client served at the same rate. h2load logs every request (`--log-file`: start, status,
duration), so the percentiles here are exact, and it reports each client's requests/s,
which shows whether some connections starve.

    apt-get install -y nghttp2-client    # h2load
    .venv/bin/python bench/clients.py [--clients 1000] [--duration 20] [--rounds 2]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratios import prepare_jobs, rss_mib, side_by_side  # noqa: E402  (the same servers as the ratios bench)


def run_h2load(url: str, *, clients: int, duration: int, warm_up: int, token: str | None) -> dict:
    """One h2load run; p50/p99/max from its per-request log, errors from its summary."""
    with tempfile.NamedTemporaryFile(suffix=".tsv", delete=False) as handle:
        log = Path(handle.name)
    threads = max(1, min(os.cpu_count() or 1, 2))
    command = ["h2load", "--h1", f"-t{threads}", f"-c{clients}", "-D", str(duration),
               f"--warm-up-time={warm_up}", f"--log-file={log}", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    # Columns: start (µs since the epoch), status, µs until the end of the answer.
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    log.unlink()
    first = min(int(row[0]) for row in rows)
    # The measured window: requests started after the warm-up, when every client has its
    # connection (the warm-up is 1,000 connects at once; what it costs is counted apart).
    cutoff = first + warm_up * 1_000_000
    measured = [row for row in rows if int(row[0]) >= cutoff]
    warming = [int(row[2]) / 1000 for row in rows if int(row[0]) < cutoff]
    durations = sorted(int(row[2]) / 1000 for row in measured)
    statuses = [row[1] for row in rows]
    summary = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                        r"(\d+) failed, (\d+) errored, (\d+) timeout", output)
    per_client = re.search(r"req/s\s*:\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)", output)
    rps = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", output)
    if not durations or summary is None or per_client is None or rps is None:
        raise RuntimeError(f"h2load gave no figures:\n{output}")

    def pct(q: float) -> float:
        return durations[min(len(durations) - 1, int(q * len(durations)))]

    return {
        # h2load's own figure covers the warm-up too; the log covers the measured window.
        "rps": len(durations) / duration,
        "p50": pct(0.50), "p99": pct(0.99), "max": durations[-1],
        "non_200": sum(1 for status in statuses if status != "200"),
        "warm_up_max": max(warming, default=0.0),
        "failed": int(summary.group(4)) + int(summary.group(5)) + int(summary.group(6)),
        "client_min": float(per_client.group(1)), "client_max": float(per_client.group(2)),
    }


def line(name: str, result: dict) -> str:
    return (f"{name:<10}{result['rps']:>9.0f}{result['p50']:>9.1f}{result['p99']:>9.1f}"
            f"{result['max']:>9.1f}{result['client_min']:>11.2f}{result['client_max']:>10.2f}"
            f"{result['non_200']:>8}{result['failed']:>8}{result['warm_up_max']:>14.1f}")


async def main(args: argparse.Namespace) -> None:
    if not shutil.which("h2load"):
        sys.exit("h2load is needed: apt-get install -y nghttp2-client")
    async with side_by_side(args.database_url) as (server, token, bare, bare_url):
        ids = await prepare_jobs(server.url, token, 25)
        path = f"/api/jobs/{ids[len(ids) // 2]}"
        load = os.getloadavg()
        print(f"database: {'postgresql' if args.database_url else 'sqlite'}; h2load --h1 -c{args.clients} "
              f"-D {args.duration} (warm-up {args.warm_up} s); load average {load[0]:.2f}")
        print(f"{'server':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
              f"{'client min':>11}{'max req/s':>10}{'non-200':>8}{'failed':>8}{'warm-up max':>14}")
        for _ in range(args.rounds):
            options = {"clients": args.clients, "duration": args.duration, "warm_up": args.warm_up}
            print(line("bare", run_h2load(bare_url + "/bare", token=None, **options)), flush=True)
            print(line("jobgraph", run_h2load(server.url + path, token=token, **options)), flush=True)
            now, peak = rss_mib(server.process.pid)
            print(f"jobgraph RSS with {args.clients} sockets open: {now:.0f} MiB (peak {peak:.0f} MiB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warm-up", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database-url", help="a PostgreSQL URL; a fresh database is made there")
    asyncio.run(main(parser.parse_args()))
