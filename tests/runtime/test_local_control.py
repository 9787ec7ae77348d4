"""Stopping, deleting, reading logs of and opening a terminal in local jobs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.domain.errors import Conflict, NotFound
from app.domain.jobs import EnvVar, JobStatus
from app.runtime.base import Terminal
from app.runtime.local import LocalRuntime
from app.runtime.local.logs import tail_offset

from .conftest import TIMEOUT, Watcher, group_gone, sh, wrapper_of


async def collect(rt: LocalRuntime, job_id: str, pod: str, **kw: object) -> list[str]:
    kw.setdefault("tail_lines", None)
    kw.setdefault("follow", False)
    async with asyncio.timeout(TIMEOUT):
        return [line async for line in rt.logs(job_id, pod, **kw)]  # type: ignore[arg-type]


async def test_stop_running_job_kills_its_process_group(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path
) -> None:
    rt, w = runtime
    job = sh("sleep 60")
    await rt.submit(job)
    await w.status(job.job_id, JobStatus.RUNNING)
    pgid = wrapper_of(local_root, job).pid

    await rt.stop(job.job_id)
    await w.status(job.job_id, JobStatus.STOPPING)
    done = await w.final(job.job_id)
    # sleep obeys SIGTERM (no SIGKILL needed), and the wrapper recorded it, even though
    # the stop came right after the start.
    [pod] = done.pods
    assert pod.exit_code == 128 + 15 and "SIGTERM" in pod.reason, pod
    assert done.status == JobStatus.STOPPED and done.finished_at is not None
    assert "Stopped" in w.events(job.job_id)
    assert await group_gone(pgid, within=0.5)

    await rt.stop(job.job_id)  # already final: nothing happens
    assert w.statuses(job.job_id)[-1] == JobStatus.STOPPED
    with pytest.raises(NotFound):
        await rt.stop("j-doesnotexist")


async def test_stop_escalates_to_sigkill_after_the_grace(
    runtimes, local_root: Path
) -> None:
    rt = runtimes(grace=0.3)
    await rt.start([])
    w = Watcher(rt)
    job = sh("trap '' TERM; echo ready; sleep 60")  # the ignored SIGTERM is inherited
    await rt.submit(job)
    await w.status(job.job_id, JobStatus.RUNNING)
    await anext(aiter(rt.logs(job.job_id, f"{job.job_id}-0", tail_lines=None, follow=True)))
    pgid = wrapper_of(local_root, job).pid
    await rt.stop(job.job_id)
    done = await w.final(job.job_id)
    assert done.status == JobStatus.STOPPED
    assert done.pods and done.pods[0].exit_code == 137
    assert await group_gone(pgid)


async def test_stop_queued_job_leaves_the_queue(runtimes) -> None:
    rt = runtimes(slots=1)
    await rt.start([])
    w = Watcher(rt)
    blocker, waiting = sh("sleep 60"), sh("echo never")
    await rt.submit(blocker)
    await rt.submit(waiting)
    await w.status(waiting.job_id, JobStatus.QUEUED)
    await rt.stop(waiting.job_id)
    done = await w.final(waiting.job_id)
    assert done.status == JobStatus.STOPPED and done.finished_at is not None
    assert w.events(waiting.job_id)[-1] == "Stopped"
    assert JobStatus.RUNNING not in w.statuses(waiting.job_id)
    assert await collect(rt, waiting.job_id, f"{waiting.job_id}-0") == []

    await rt.stop(blocker.job_id)
    await w.final(blocker.job_id)
    assert JobStatus.RUNNING not in w.statuses(waiting.job_id)


async def test_delete_kills_and_forgets_the_job(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path
) -> None:
    rt, w = runtime
    job = sh("sleep 60")
    await rt.submit(job)
    await w.status(job.job_id, JobStatus.RUNNING)
    pgid = wrapper_of(local_root, job).pid
    await rt.delete(job.job_id)
    assert not (local_root / job.job_id).exists()
    assert await group_gone(pgid)
    for call in (rt.stop(job.job_id), rt.delete(job.job_id)):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(NotFound):  # on iterating, as for a finished job read from its files
        [line async for line in rt.logs(job.job_id, f"{job.job_id}-0", tail_lines=None,
                                        follow=False)]

    after = sh("true")  # the stream goes on, with nothing more about the deleted job
    await rt.submit(after)
    await w.final(after.job_id)
    seen_after_delete = w.seen[w.seen.index(await w.status(after.job_id, JobStatus.QUEUED)):]
    assert all(u.job_id != job.job_id for u in seen_after_delete)


async def test_logs_tail_and_follow(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path
) -> None:
    rt, w = runtime
    job = sh(
        "i=1; while [ $i -le 50 ]; do echo line $i; i=$((i+1)); done; "
        "while [ ! -f go ]; do sleep 0.02; done; "
        "echo late 1; sleep 0.2; echo late 2; printf 'partial'; sleep 0.2; printf ' end'"
    )
    pod = f"{job.job_id}-0"
    await rt.submit(job)
    await w.status(job.job_id, JobStatus.RUNNING)
    head = rt.logs(job.job_id, pod, tail_lines=None, follow=True)
    async with asyncio.timeout(TIMEOUT):
        first = [line async for line in _until(head, "line 50")]
    assert first == [f"line {i}" for i in range(1, 51)]

    follower = rt.logs(job.job_id, pod, tail_lines=2, follow=True)
    assert [await anext(follower), await anext(follower)] == ["line 49", "line 50"]
    assert await collect(rt, job.job_id, pod, tail_lines=3) == ["line 48", "line 49", "line 50"]
    assert await collect(rt, job.job_id, pod, tail_lines=0) == []

    (local_root / job.job_id / "workdir" / "go").touch()
    async with asyncio.timeout(TIMEOUT):
        rest = [line async for line in follower]  # ends by itself when the pod ends
    assert rest == ["late 1", "late 2", "partial end"]
    assert (await w.final(job.job_id)).status == JobStatus.SUCCEEDED
    full = await collect(rt, job.job_id, pod)
    assert len(full) == 53 and full[-1] == "partial end"
    assert await collect(rt, job.job_id, pod, tail_lines=1, follow=True) == ["partial end"]


async def _until(lines: AsyncIterator[str], last: str) -> AsyncIterator[str]:
    async for line in lines:
        yield line
        if line == last:
            break


def test_tail_offset_reads_backwards_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"%06d %s\n" % (i, b"x" * 200) for i in range(2000)))
    with open(path, "rb") as f:
        f.seek(tail_offset(f, 700))
        lines = f.read().splitlines()
        assert len(lines) == 700 and lines[0].startswith(b"001300 ")
        assert tail_offset(f, 5000) == 0


async def test_unknown_or_malicious_pod_names_are_not_found(
    runtime: tuple[LocalRuntime, Watcher],
) -> None:
    rt, w = runtime
    job = sh("true")
    await rt.submit(job)
    await w.final(job.job_id)
    bad_pods = ["../../etc/passwd", f"{job.job_id}-0/../../x", f"{job.job_id}-1", "", "/etc"]
    for pod in bad_pods:
        with pytest.raises(NotFound):  # a finished job: read back from its files
            [line async for line in rt.logs(job.job_id, pod, tail_lines=None, follow=False)]
        with pytest.raises(NotFound):
            await rt.open_terminal(job.job_id, pod, rows=24, cols=80)
    for job_id in ("../..", "..", "j-unknown"):
        with pytest.raises(NotFound):
            [line async for line in rt.logs(job_id, f"{job_id}-0", tail_lines=None,
                                            follow=False)]
    with pytest.raises(Conflict, match="is not running"):
        await rt.open_terminal(job.job_id, f"{job.job_id}-0", rows=24, cols=80)


async def read_until(term: Terminal, pattern: str) -> str:
    seen = b""
    try:
        async with asyncio.timeout(TIMEOUT):
            while not re.search(pattern, seen.decode(errors="replace")):
                chunk = await term.read()
                assert chunk, f"terminal ended before {pattern!r}; got {seen!r}"
                seen += chunk
    except TimeoutError:
        raise AssertionError(f"no {pattern!r} in terminal output {seen!r}") from None
    return seen.decode(errors="replace")


async def test_terminal_is_a_real_pty_in_the_replica(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path, tmp_path: Path
) -> None:
    rt, w = runtime
    # The job's HOME keeps the machine's ~/.bashrc (which may do anything, slowly) out.
    job = sh("sleep 60", replicas=2, envs=(EnvVar("HOME", str(tmp_path)),))
    await rt.submit(job)
    await w.status(job.job_id, JobStatus.RUNNING)
    term = await rt.open_terminal(job.job_id, f"{job.job_id}-1", rows=24, cols=80)
    try:
        await term.resize(rows=30, cols=100)
        await term.write(b"stty size\n")
        await read_until(term, r"(?<!\d)30 100\r?\n")
        await term.write(b"echo $((6*7)) rank=$RANK; pwd; echo done-$((1+1))\n")
        out = await read_until(term, r"done-2")
        assert "42 rank=1" in out
        assert str((local_root / job.job_id / "workdir").resolve()) in out
    finally:
        await term.close()
    assert await term.read() == b""

    # A terminal of a replica closes when the replica ends.
    other = await rt.open_terminal(job.job_id, f"{job.job_id}-0", rows=24, cols=80)
    await rt.stop(job.job_id)
    await w.final(job.job_id)
    async with asyncio.timeout(TIMEOUT):
        while await other.read():
            pass
    await other.close()
