"""How long a revoked API token keeps working on two servers sharing one PostgreSQL
database: both have the token cached; `jobgraph token revoke` runs (a third process);
then each server is asked until it refuses. Printed: the time from the revoke command's
exit to the first refusal on each server (the command's own start-up is not counted).

    .venv/bin/python bench/revocation.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres [--rounds 5]
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

from bench.ratios import start_quiet  # noqa: E402
from tests.support.server import Server, create_database, drop_database, server_env  # noqa: E402

VIEWER = {"query": "{ viewer { user } }"}


async def refused_after(
    http: httpx.AsyncClient, server: Server, token: str, since: float
) -> tuple[float, int, float]:
    """Milliseconds from `since` to the refusal, the requests it took, and how long the
    refusing request itself took."""
    headers = {"Authorization": f"Bearer {token}"}
    polls = 0
    while True:
        polls += 1
        sent = time.perf_counter()
        response = await http.post(server.url + "/graphql", json=VIEWER, headers=headers)
        if response.status_code == 401:
            done = time.perf_counter()
            return (done - since) * 1000, polls, (done - sent) * 1000


async def main(args: argparse.Namespace) -> None:
    url = await create_database(args.database_url)
    root = Path(tempfile.mkdtemp(prefix="jobgraph-revoke-"))
    servers = [Server(data_dir=root / n, env=server_env(root / n, url, JOBGRAPH_LOG_LEVEL="warning"))
               for n in ("one", "two")]
    try:
        servers[0].token("bench", admin=True)
        for server in servers:
            start_quiet(server)
        delays: list[float] = []
        polls: list[int] = []
        last: list[float] = []
        for round_ in range(args.rounds):
            token = await asyncio.to_thread(servers[0].token, f"user{round_}")
            async with httpx.AsyncClient(timeout=30) as http:
                for server in servers:
                    response = await http.post(server.url + "/graphql", json=VIEWER,
                                               headers={"Authorization": f"Bearer {token}"})
                    assert response.status_code == 200
            listing = await asyncio.to_thread(servers[0].cli, "token", "list")
            ident = next(line.split("\t")[0] for line in listing.splitlines() if f"\tuser{round_}\t" in line)
            async with httpx.AsyncClient(timeout=30) as http:
                await asyncio.to_thread(servers[1].cli, "token", "revoke", ident)
                revoked = time.perf_counter()
                for delay, count, request in await asyncio.gather(
                    *(refused_after(http, s, token, revoked) for s in servers)
                ):
                    delays.append(delay)
                    polls.append(count)
                    last.append(request)
        print(f"revocation seen by both servers after the revoke command exited: "
              f"median {statistics.median(delays):.1f} ms, max {max(delays):.1f} ms "
              f"({len(delays)} observations); requests until refused: {polls}; "
              f"the refused request itself took median {statistics.median(last):.1f} ms")
    finally:
        for server in servers:
            server.stop()
        await drop_database(args.database_url, url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
