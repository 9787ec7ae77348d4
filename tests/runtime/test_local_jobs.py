"""The local runtime runs real processes: outcomes, replicas, queue, retries, timeout."""

from __future__ import annotations

import socket
from datetime import UTC
from pathlib import Path

from app.domain.jobs import EnvVar, EventType, JobStatus, PodPhase
from app.runtime.local import LocalRuntime
from app.runtime.local.runtime import DEADLINE_REASON

from .conftest import Watcher, group_gone, make_job, sh, wrapper_of


async def lines(rt: LocalRuntime, job_id: str, pod: str, **kw: object) -> list[str]:
    kw.setdefault("tail_lines", None)
    kw.setdefault("follow", False)
    return [line async for line in rt.logs(job_id, pod, **kw)]  # type: ignore[arg-type]


async def test_success_with_logs_events_and_pods(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path
) -> None:
    rt, w = runtime
    job = sh("echo hello; echo 'wörld' >&2; printf 'no newline'", image="pytorch:2")
    await rt.submit(job)
    queued = await w.status(job.job_id, JobStatus.QUEUED)
    assert [e.reason for e in queued.events] == ["Created", "Queued"]
    assert "image 'pytorch:2' is recorded but not used" in queued.events[0].message

    done = await w.final(job.job_id)
    assert done.status == JobStatus.SUCCEEDED and done.exit_code == 0
    assert w.events(job.job_id) == ["Created", "Queued", "Started", "Completed"]
    assert done.started_at and done.finished_at and done.started_at <= done.finished_at
    assert done.started_at.tzinfo == UTC and done.finished_at.tzinfo == UTC
    (pod,) = done.pods or ()
    assert pod.name == f"{job.job_id}-0" and pod.phase == PodPhase.SUCCEEDED
    assert pod.exit_code == 0 and pod.restart_count == 0 and pod.node_name == socket.gethostname()
    assert pod.started_at and pod.finished_at and pod.finished_at.tzinfo is not None

    assert await lines(rt, job.job_id, pod.name) == ["hello", "wörld", "no newline"]
    config = (local_root / job.job_id / "job.json").read_text()
    assert '"jobId"' in config and '"owner":"alice"' in config


async def test_failure_reports_exit_code_and_reason(runtime: tuple[LocalRuntime, Watcher]) -> None:
    rt, w = runtime
    job = sh("echo bad >&2; exit 3")
    await rt.submit(job)
    done = await w.final(job.job_id)
    assert done.status == JobStatus.FAILED and done.exit_code == 3
    assert done.reason == f"replica {job.job_id}-0 exited with code 3"
    failed = [e for u in w.seen if u.job_id == job.job_id for e in u.events if e.reason == "Failed"]
    assert failed and failed[0].type == EventType.WARNING
    assert done.pods and done.pods[0].phase == PodPhase.FAILED


async def test_command_not_found_fails_with_127(runtime: tuple[LocalRuntime, Watcher]) -> None:
    rt, w = runtime
    job = make_job("no-such-command-jobgraph", "--flag")
    await rt.submit(job)
    done = await w.final(job.job_id)
    assert done.status == JobStatus.FAILED and done.exit_code == 127
    assert done.reason and "command not found: no-such-command-jobgraph" in done.reason
    log = await lines(rt, job.job_id, f"{job.job_id}-0")
    assert log == ["jobgraph: command not found: no-such-command-jobgraph"]


async def test_replicas_get_rank_world_size_and_port(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path
) -> None:
    rt, w = runtime
    job = sh(
        'echo "rank=$RANK local=$LOCAL_RANK world=$WORLD_SIZE addr=$MASTER_ADDR '
        'port=$MASTER_PORT pod=$JOBGRAPH_POD_NAME job=$JOBGRAPH_JOB_ID foo=$FOO '
        'unbuffered=$PYTHONUNBUFFERED"; pwd',
        replicas=2, envs=(EnvVar("FOO", "bar"),),
    )
    await rt.submit(job)
    done = await w.final(job.job_id)
    assert done.status == JobStatus.SUCCEEDED
    assert [p.name for p in done.pods or ()] == [f"{job.job_id}-0", f"{job.job_id}-1"]
    ports = set()
    for rank in (0, 1):
        first, cwd = await lines(rt, job.job_id, f"{job.job_id}-{rank}")
        fields = dict(kv.split("=", 1) for kv in first.split())
        assert fields["rank"] == fields["local"] == str(rank)
        assert fields["world"] == "2" and fields["addr"] == "127.0.0.1"
        assert fields["pod"] == f"{job.job_id}-{rank}" and fields["job"] == job.job_id
        assert fields["foo"] == "bar" and fields["unbuffered"] == "1"
        ports.add(int(fields["port"]))
        assert Path(cwd) == (local_root / job.job_id / "workdir").resolve()
    assert len(ports) == 1


async def test_queue_with_one_slot_runs_by_priority_then_arrival(
    runtimes, local_root: Path
) -> None:
    rt = runtimes(slots=1)
    await rt.start([])
    w = Watcher(rt)
    blocker = sh("while [ ! -f go ]; do sleep 0.05; done")
    await rt.submit(blocker)
    await w.status(blocker.job_id, JobStatus.RUNNING)
    low, high1, high2 = sh("true", priority=0), sh("true", priority=5), sh("true", priority=5)
    for job in (low, high1, high2):
        await rt.submit(job)
        await w.status(job.job_id, JobStatus.QUEUED)

    (local_root / blocker.job_id / "workdir" / "go").touch()
    await w.final(blocker.job_id)
    for job in (high1, high2, low):
        await w.final(job.job_id)
    started = [u.job_id for u in w.seen if u.status == JobStatus.RUNNING and
               any(e.reason == "Started" for e in u.events)]
    assert started == [blocker.job_id, high1.job_id, high2.job_id, low.job_id]
    # Nobody ran before the blocker had finished: one slot means one job at a time.
    order = [(u.job_id, u.status) for u in w.seen if u.status in
             (JobStatus.RUNNING, JobStatus.SUCCEEDED) and u.events]
    assert order.index((blocker.job_id, JobStatus.SUCCEEDED)) < \
        order.index((high1.job_id, JobStatus.RUNNING))


async def test_max_retries_restarts_failed_replica(runtime: tuple[LocalRuntime, Watcher]) -> None:
    rt, w = runtime
    flaky = sh(
        'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; '
        'echo "attempt $n"; [ "$n" -ge 3 ]',
        max_retries=2,
    )
    hopeless = sh("exit 4", max_retries=1)
    await rt.submit(flaky)
    await rt.submit(hopeless)

    done = await w.final(flaky.job_id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.pods and done.pods[0].restart_count == 2
    assert w.events(flaky.job_id).count("Retried") == 2
    log = await lines(rt, flaky.job_id, f"{flaky.job_id}-0")
    assert [line for line in log if line.startswith("attempt")] == [
        "attempt 1", "attempt 2", "attempt 3"
    ]
    assert sum("restarting" in line for line in log) == 2

    failed = await w.final(hopeless.job_id)
    assert failed.status == JobStatus.FAILED and failed.exit_code == 4
    assert failed.pods and failed.pods[0].restart_count == 1
    assert w.events(hopeless.job_id).count("Retried") == 1


async def test_timeout_kills_the_job_with_deadline_exceeded(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path
) -> None:
    rt, w = runtime
    job = sh("sleep 30", timeout_seconds=1)
    await rt.submit(job)
    await w.status(job.job_id, JobStatus.RUNNING)
    pgid = wrapper_of(local_root, job).pid
    done = await w.final(job.job_id)
    assert done.status == JobStatus.FAILED and done.reason == DEADLINE_REASON
    assert done.started_at and done.finished_at
    assert 0.9 < (done.finished_at - done.started_at).total_seconds() < 5
    deadline = [e for u in w.seen if u.job_id == job.job_id for e in u.events
                if e.reason == "DeadlineExceeded"]
    assert deadline and deadline[0].type == EventType.WARNING
    assert await group_gone(pgid)


async def test_a_failing_replica_stops_its_siblings(
    runtime: tuple[LocalRuntime, Watcher], local_root: Path
) -> None:
    rt, w = runtime
    job = sh('if [ "$RANK" = 1 ]; then exit 5; fi; sleep 60', replicas=2)
    await rt.submit(job)
    done = await w.final(job.job_id)
    assert done.status == JobStatus.FAILED and done.exit_code == 5
    assert done.reason == f"replica {job.job_id}-1 exited with code 5"
    assert await group_gone(wrapper_of(local_root, job, replica=0).pid)
