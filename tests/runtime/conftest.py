"""Fixtures for the local runtime tests: real processes, cleaned up afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from app.domain.jobs import Job, JobSpec, JobStatus, new_job_id
from app.domain.pools import ResourcePool
from app.runtime.base import JobUpdate
from app.runtime.local import LocalRuntime
from app.runtime.local.process import ProcessId
from tests.support.processes import kill_leftover_replicas

TIMEOUT = 15.0


def make_job(*command: str, **spec: object) -> Job:
    return Job(
        job_id=new_job_id(),
        owner="alice",
        spec=JobSpec(
            name=str(spec.pop("name", "test job")),
            command=tuple(command),
            resource_pool_id="local",
            queue="default",
            **spec,  # type: ignore[arg-type]
        ),
    )


def sh(script: str, **spec: object) -> Job:
    return make_job("sh", "-c", script, **spec)


class Watcher:
    """The single consumer of a runtime's watch(), remembering what it saw."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self._it = runtime.watch().__aiter__()
        self.seen: list[JobUpdate] = []

    async def until(
        self, predicate: Callable[[JobUpdate], bool], timeout: float = TIMEOUT
    ) -> JobUpdate:
        """The first update, seen before or arriving now, that matches."""
        for update in self.seen:
            if predicate(update):
                return update
        async with asyncio.timeout(timeout):
            while True:
                update = await anext(self._it)
                self.seen.append(update)
                if predicate(update):
                    return update

    async def status(self, job_id: str, status: JobStatus) -> JobUpdate:
        return await self.until(lambda u: u.job_id == job_id and u.status == status)

    async def final(self, job_id: str) -> JobUpdate:
        return await self.until(
            lambda u: u.job_id == job_id and u.status is not None and u.status.is_final
        )

    def events(self, job_id: str) -> list[str]:
        return [e.reason for u in self.seen if u.job_id == job_id for e in u.events]

    def statuses(self, job_id: str) -> list[JobStatus | None]:
        return [u.status for u in self.seen if u.job_id == job_id]


def wrapper_of(root: Path, job: Job, replica: int = 0) -> ProcessId:
    """The replica's wrapper as the runtime recorded it when it reported RUNNING (the
    wrapper's own pid.json may not be written yet at that moment)."""
    state = json.loads((root / job.job_id / "state.json").read_text())
    r = state["replicas"][replica]
    return ProcessId(r["pid"], r["start_time"])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def group_gone(pgid: int, within: float = 3.0) -> bool:
    """True once no process of the group is left. The wrapper is reaped by the runtime
    before it reports the end, but the command's own children that died with it are
    reaped by init, a moment later and with no event to wait on: hence a short poll."""
    async with asyncio.timeout(within):
        while group_alive(pgid):
            await asyncio.sleep(0.02)
    return True


async def process_ended(pid: int) -> None:
    """Wait (without polling) until the process has exited, and reap it if ours."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        async with asyncio.timeout(TIMEOUT):
            await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG returns at once


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    return tmp_path / "local" / "local"


@pytest.fixture
async def runtimes(tmp_path: Path) -> AsyncIterator[Callable[..., LocalRuntime]]:
    """Makes runtimes; closes them and kills every replica they left behind."""
    made: list[LocalRuntime] = []

    def factory(
        root: Path | None = None, *, slots: int | None = None, grace: float = 1.0,
        **options: Any,
    ) -> LocalRuntime:
        pool = ResourcePool(id="local", runtime="local", max_concurrent_jobs=slots)
        rt = LocalRuntime(pool, root=root or tmp_path / "local" / "local",
                          stop_grace_seconds=grace, **options)
        made.append(rt)
        return rt

    yield factory
    for rt in made:
        await rt.close()
    kill_leftover_replicas(tmp_path)


@pytest.fixture
async def runtime(
    runtimes: Callable[..., LocalRuntime],
) -> AsyncIterator[tuple[LocalRuntime, Watcher]]:
    rt = runtimes()
    await rt.start([])
    yield rt, Watcher(rt)
