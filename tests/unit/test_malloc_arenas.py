"""The server limits glibc's malloc arenas (app/web/app.py, limit_malloc_arenas): threads
that allocate share two arenas instead of one each. Counted by glibc itself
(malloc_stats), in a fresh process per case so that no arena exists beforehand."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import ctypes, sys, threading
from app.web.app import limit_malloc_arenas
if sys.argv[1] == "limited":
    limit_malloc_arenas()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
started, release = threading.Barrier(9), threading.Event()

def allocate():
    # Each thread allocates while the others hold theirs: glibc would give each its own.
    pointers = [libc.malloc(4096) for _ in range(64)]
    started.wait()
    release.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
started.wait()
libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
release.set()
for thread in threads:
    thread.join()
"""


def arenas(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return sum(1 for line in result.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_threads_share_two_arenas():
    if arenas("default") <= 2:
        pytest.skip("this machine's glibc gives no thread an arena of its own")
    assert arenas("limited") <= 2
