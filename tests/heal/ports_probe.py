"""Run by test_races.py inside a network namespace of its own whose ephemeral port range
is one port wide (so a port found by binding to 0 is always the same one): starts two
jobs that run at the same time and prints the MASTER_PORT each one got."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from app.domain.jobs import JobStatus
from app.domain.pools import ResourcePool
from app.runtime.local import LocalRuntime
from tests.runtime.conftest import Watcher, sh


async def main(root: Path) -> None:
    runtime = LocalRuntime(ResourcePool(id="local", runtime="local", max_concurrent_jobs=2), root=root / "rt")
    await runtime.start([])
    watcher = Watcher(runtime)
    gate = root / "gate"
    jobs = [
        sh(f"echo $MASTER_PORT > {root}/port-{i}; while [ ! -e {gate} ]; do sleep 0.05; done")
        for i in range(2)
    ]
    try:
        for job in jobs:
            await runtime.submit(job)
        for job in jobs:
            await watcher.status(job.job_id, JobStatus.RUNNING)
        async with asyncio.timeout(30):
            while not all((root / f"port-{i}").exists() for i in range(2)):
                await asyncio.sleep(0.05)
        ports = [int((root / f"port-{i}").read_text()) for i in range(2)]
        gate.touch()
        for job in jobs:
            await watcher.final(job.job_id)
    finally:
        gate.touch()
        await runtime.close()
    print(json.dumps(ports))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
