"""The slow-callback guard (tests/conftest.py) recognises what asyncio's debug mode
really prints for a callback that blocks the loop, on the loop the server runs (uvloop)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.server import Server

BLOCKS = """
import time, uvloop, asyncio
async def main():
    await asyncio.sleep(0)
    time.sleep(0.3)  # blocking I/O stands for this
    await asyncio.sleep(0)
uvloop.run(main())
"""


def test_a_blocked_event_loop_is_recognised(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", BLOCKS], env={"PYTHONASYNCIODEBUG": "1"},
        capture_output=True, text=True, timeout=60,
    )
    server = Server(data_dir=tmp_path, env={})
    server.output = result.stderr.splitlines(keepends=True)
    assert len(server.slow_callbacks()) == 1, result.stderr
    server.output = ["Executing nothing slow\n", "2026 [info] job took 3 seconds\n"]
    assert server.slow_callbacks() == []
