"""Start `jobgraph serve` as a real process and talk to it."""

from __future__ import annotations

import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import asyncpg
import httpx

JOBGRAPH = str(Path(sys.executable).with_name("jobgraph"))
STARTUP_TIMEOUT = 30.0
# What asyncio's debug mode logs for a callback that held the event loop too long.
SLOW_CALLBACK = "Executing "
SLOW_CALLBACK_TOOK = " seconds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def create_database(base_url: str) -> str:
    """A fresh PostgreSQL database for one server, so tests do not see each other."""
    name = "jg_" + secrets.token_hex(6)
    conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base_url.rsplit("/", 1)[0] + "/" + name


async def drop_database(base_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Server:
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    # The `jobgraph` console script; another venv's for the install test.
    executable: str = JOBGRAPH
    process: subprocess.Popen | None = None
    output: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    # Every server made by the tests, for the slow-callback check after each test.
    made: ClassVar[weakref.WeakSet[Server]] = weakref.WeakSet()

    def __post_init__(self) -> None:
        Server.made.add(self)

    def __hash__(self) -> int:
        return id(self)

    def slow_callbacks(self, since: int = 0) -> list[str]:
        """Lines (from output line `since` on) where asyncio reported a callback that
        blocked the event loop."""
        return [
            line for line in self.output[since:]
            if SLOW_CALLBACK in line and " took " in line and SLOW_CALLBACK_TOOK in line
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [self.executable, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(f"jobgraph {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def token(self, user: str, *, admin: bool = False) -> str:
        return self.cli("token", "create", "--user", user, *(["--admin"] if admin else []))

    def start(self) -> None:
        self.output = []
        self._lines = queue.Queue()
        self.process = subprocess.Popen(
            [self.executable, "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(
            target=self._pump, args=(self.process, self.output, self._lines), daemon=True
        ).start()
        self.wait_for_output("Uvicorn running on", timeout=STARTUP_TIMEOUT)

    @staticmethod
    def _pump(process: subprocess.Popen, output: list[str], lines: queue.Queue) -> None:
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    def wait_for_output(self, text: str, *, timeout: float) -> str:
        """Block until the server prints a line containing `text` (an event, not a sleep)."""
        deadline = time.monotonic() + timeout
        for line in self.output:
            if text in line:
                return line
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"server did not print {text!r}:\n{''.join(self.output)}") from None
            if line is None:
                raise RuntimeError(f"server exited before printing {text!r}:\n{''.join(self.output)}")
            if text in line:
                return line

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code


@asynccontextmanager
async def servers_on_one_database(base_url: str, root: Path, *names: str) -> AsyncIterator[list[Server]]:
    """Servers (not started yet), each with its own data dir under `root`, on one fresh
    PostgreSQL database: the replicas of one deployment. Stopped and dropped after."""
    url = await create_database(base_url)
    servers = [Server(data_dir=root / name, env=server_env(root / name, url)) for name in names]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()
        await drop_database(base_url, url)


def server_env(data_dir: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBGRAPH_")}
    env.update(
        JOBGRAPH_DATA_DIR=str(data_dir),
        JOBGRAPH_STOP_GRACE_SECONDS="2",
        JOBGRAPH_LOG_LEVEL="info",
        NO_PROXY="127.0.0.1,localhost",
        # Tests poll hard; the rate limit has its own tests (tests/security).
        JOBGRAPH_RATE_LIMIT_PER_MINUTE="0",
    )
    env.update(extra)
    if database_url:
        env["JOBGRAPH_DATABASE_URL"] = database_url
    return env


class GraphQLClient:
    """A tiny GraphQL-over-HTTP client on httpx."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=url, headers=headers, timeout=30)

    async def raw(self, query: str, variables: dict | None = None) -> httpx.Response:
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}})

    async def execute(self, query: str, variables: dict | None = None) -> dict:
        response = await self.raw(query, variables)
        body = response.json()
        if body.get("errors"):
            raise GraphQLErrors(body["errors"])
        return body["data"]

    async def close(self) -> None:
        await self.http.aclose()


class GraphQLErrors(Exception):
    def __init__(self, errors: list[dict]) -> None:
        super().__init__(errors[0]["message"])
        self.errors = errors

    @property
    def code(self) -> str | None:
        return (self.errors[0].get("extensions") or {}).get("code")
