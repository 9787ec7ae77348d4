"""KubernetesRuntime in-process against the fake, on the points where real clusters differ
from the simple picture (issue 12): injected sidecars, the kubelet's answers for containers that
do not run, podFailurePolicy, the new terminal conditions, deadlines and refused names."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from dataclasses import replace

import pytest

from app.domain.errors import Conflict
from app.domain.jobs import JobStatus, Pod
from app.domain.pools import ResourcePool
from app.runtime.base import JobUpdate
from app.runtime.kubernetes import KubernetesRuntime
from tests.k8sfake import Delays
from tests.kube.conftest import shell_job
from tests.kube.test_runtime import Harness, harness
from tests.support.jobs import create_errors, create_job, wait_for_status
from tests.support.server import JOBGRAPH, free_port

SIDECAR = {"sidecar.istio.io/inject": "true"}


async def _pod(h: Harness, job_id: str, check: Callable[[Pod], bool], timeout: float = 10) -> Pod:
    """The first pod the runtime reported for the job that passes `check`."""
    async with asyncio.timeout(timeout):
        while True:
            for update in reversed(h.updates):
                if update.job_id == job_id:
                    found = next((p for p in update.pods or () if check(p)), None)
                    if found is not None:
                        return found
            await h.next_update()


async def _update(h: Harness, job_id: str, check: Callable[[JobUpdate], bool],
                  timeout: float = 30) -> JobUpdate:
    """The first update of the job that passes `check` (waiting for it)."""
    async with asyncio.timeout(timeout):
        while True:
            found = next((u for u in h.updates if u.job_id == job_id and check(u)), None)
            if found is not None:
                return found
            await h.next_update()


@pytest.fixture
async def h(tmp_path):
    async for item in harness(tmp_path, delays=Delays()):
        yield item


async def test_the_main_container_is_read_by_name_behind_an_injected_sidecar(h):
    job = h.job("echo hello; exit 3", labels=SIDECAR)
    await h.runtime.submit(job)
    # main ends with 3 while the proxy keeps the pod Running (a classic sidecar never exits).
    pod = await _pod(h, job.job_id, lambda p: p.exit_code is not None)
    assert pod.exit_code == 3 and pod.reason == "Error" and pod.started_at is not None
    status = h.fake.pod(pod.name)["status"]
    assert status["phase"] == "Running"
    assert [c["name"] for c in status["containerStatuses"]] == ["istio-proxy", "main"]
    main = status["containerStatuses"][1]["state"]["terminated"]
    assert pod.started_at.isoformat().replace("+00:00", "Z") == main["startedAt"]
    assert [line async for line in h.runtime.logs(
        job.job_id, pod.name, tail_lines=None, follow=False)] == ["hello"]

    # The kubelet refuses an exec into the ended container with a 500: the caller gets a 409.
    with pytest.raises(Conflict) as refused:
        await h.runtime.open_terminal(job.job_id, pod.name, rows=24, cols=80)
    assert "'main' is not running" in refused.value.message
    assert h.fake.calls("GET", f"/api/v1/namespaces/default/pods/{pod.name}/exec")[-1].status == 500

    # Once the proxy is told to quit, the pod fails with main's exit code, and so does the job.
    h.fake.quit_sidecars(pod.name)
    failed = await h.status(job.job_id, JobStatus.FAILED)
    assert failed.exit_code == 3


def _index(pod: dict) -> str:
    return pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]


def _running(h: Harness, job_id: str) -> list[dict]:
    return [p for p in h.fake.pods_of(job_id) if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


async def test_a_drained_pod_is_replaced_without_using_up_a_retry(h):
    job = h.job("while :; do sleep 0.05; done", replicas=2)  # maxRetries 0
    await h.runtime.submit(job)
    await h.status(job.job_id, JobStatus.RUNNING)
    pods = await h.fake.wait_for(lambda: len(_running(h, job.job_id)) == 2 and _running(
        h, job.job_id))
    victim = next(p for p in pods if _index(p) == "1")["metadata"]["name"]
    h.fake.evict(victim)  # a node drain: DisruptionTarget, then a graceful delete
    replaced = await h.fake.wait_for(lambda: [
        p for p in _running(h, job.job_id)
        if _index(p) == "1" and p["metadata"]["name"] != victim])
    assert replaced and not h.fake.job(job.job_id)["status"].get("failed")
    last = next(u for u in reversed(h.updates) if u.job_id == job.job_id and u.status)
    assert last.status is JobStatus.RUNNING
    await h.runtime.delete(job.job_id)


async def test_a_failed_rank_runs_the_whole_job_again_under_max_retries(h):
    # Attempt 1: rank 1 fails, rank 0 would wait forever in its rendezvous. Attempt 2: both
    # ranks run from the start and succeed.
    job = h.job(
        'if [ -e "$HOME/attempt-1-failed" ]; then echo "rank $RANK again"; exit 0; fi; '
        'if [ "$RANK" = 1 ]; then touch "$HOME/attempt-1-failed"; exit 3; fi; '
        "while :; do sleep 0.05; done",
        replicas=2, max_retries=1)
    await h.runtime.submit(job)
    retrying = await _update(h, job.job_id, lambda u: u.status is JobStatus.PENDING
                             and "retrying" in (u.reason or ""))
    assert retrying.reason.startswith("attempt 1 of 2 failed (PodFailurePolicy: Container main")
    done = await h.status(job.job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, timeout=30)
    assert done.status is JobStatus.SUCCEEDED, done
    retried = [e for u in h.updates if u.job_id == job.job_id for e in u.events
               if e.reason == "Retried"]
    assert len(retried) == 1 and "starting attempt 2 with all 2 replicas" in retried[0].message
    creates = [r.body for r in h.fake.calls("POST", "/apis/batch/v1/namespaces/default/jobs")
               if r.body["metadata"]["name"] == job.job_id]
    assert [c["metadata"]["annotations"]["jobgraph.io/attempt"] for c in creates] == ["1", "2"]
    [delete] = h.fake.calls("DELETE", f"/apis/batch/v1/namespaces/default/jobs/{job.job_id}")
    assert delete.param("propagationPolicy") == "Foreground"
    await h.runtime.delete(job.job_id)


async def test_the_outcome_is_known_before_every_pod_has_terminated(tmp_path):
    # Rank 0 ignores SIGTERM: it keeps terminating (up to its grace period) after rank 1 failed.
    async for h in harness(tmp_path, delays=Delays(max_grace=60)):
        job = h.job('if [ "$RANK" = 1 ]; then exit 1; fi; trap "" TERM; '
                    "while :; do sleep 0.05; done", replicas=2)
        await h.runtime.submit(job)
        failed = await h.status(job.job_id, JobStatus.FAILED, timeout=20)
        assert failed.reason.startswith("PodFailurePolicy: ")
        conditions = {c["type"] for c in h.fake.job(job.job_id)["status"]["conditions"]}
        assert "FailureTarget" in conditions and "Failed" not in conditions
        [terminating] = [p for p in h.fake.pods_of(job.job_id)
                         if p["metadata"].get("deletionTimestamp")
                         and p["status"]["phase"] == "Running"]
        h.fake.terminate_container(terminating["metadata"]["name"], sig=9)
        await h.fake.wait_job_condition(job.job_id, "Failed")


async def test_the_timeout_counts_running_time_not_waiting(tmp_path):
    async for h in harness(tmp_path, delays=Delays(pull=100)):
        job = h.job("while :; do sleep 0.05; done", timeout_seconds=30)
        await h.runtime.submit(job)
        await h.status(job.job_id, JobStatus.PENDING)
        await h.fake.advance(100)  # the image pull: 100 s of waiting, past the timeout
        await h.status(job.job_id, JobStatus.RUNNING)
        deadline = await h.fake.wait_for(
            lambda h=h, job=job: h.fake.job(job.job_id)["spec"].get("activeDeadlineSeconds"))
        assert 130 <= deadline <= 132  # 30 s of running after 100 s of waiting
        await h.fake.advance(deadline - 100 - 5)
        assert h.fake.job(job.job_id)["status"].get("conditions") in (None, [])
        await h.fake.advance(10)
        failed = await h.status(job.job_id, JobStatus.FAILED)
        assert failed.reason == "DeadlineExceeded"


async def test_labels_with_reserved_prefixes_are_refused_at_submit(cluster, tmp_path):
    before = len(cluster.fake.calls("POST", "/apis/batch/v1"))
    for key in ("kueue.x-k8s.io/queue-name", "kubernetes.io/arch", "node.k8s.io/x",
                "scheduling.volcano.sh/queue-name", "jobgraph.io/pool"):
        [error] = await create_errors(cluster.alice, **shell_job(
            "true", tmp_path, resourcePoolId="kueue", queue="team-a", labels={key: "x"}))
        assert error["field"] == "labels" and error["code"] == "INVALID_ARGUMENT", error
        assert f"reserved prefix '{key.split('/')[0]}/'" in error["message"]
    assert len(cluster.fake.calls("POST", "/apis/batch/v1")) == before  # nothing was sent
    job = await create_job(cluster.alice, **shell_job(
        "true", tmp_path, labels={"sidecar.istio.io/inject": "false", "team": "vision"}))
    assert (await wait_for_status(cluster.alice, job["jobId"], "SUCCEEDED", "FAILED"))[
        "status"] == "SUCCEEDED"


@pytest.mark.parametrize(("pools", "words"), [
    ("pools: [ {id: k, runtime: kubernetes, queueing: kueue, queues: [Team A]} ]",
     "queue 'Team A' cannot be a kueue queue: it goes into a label value"),
    (f"pools: [ {{id: k, runtime: kubernetes, queueing: kueue, queues: [{'q' * 64}]}} ]",
     "cannot be a kueue queue: it goes into a label value: at most 63"),
    ("pools: [ {id: k, runtime: kubernetes, queueing: volcano, queues: [Research]} ]",
     "queue 'Research' cannot be a volcano queue: it names a cluster object"),
    (("pools: [ {id: k, runtime: kubernetes, queueing: kueue, queues: [a],"
      " priorityClasses: [{name: 'high prio', value: 1}]} ]"),
     "priority class 'high prio' is not valid"),
])
def test_serve_refuses_a_pools_file_with_names_kubernetes_refuses(tmp_path, pools, words):
    (tmp_path / "pools.yaml").write_text(pools)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBGRAPH_")}
    env.update(JOBGRAPH_DATA_DIR=str(tmp_path / "data"),
               JOBGRAPH_POOLS_FILE=str(tmp_path / "pools.yaml"))
    result = subprocess.run([JOBGRAPH, "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr


async def test_a_job_deleted_while_it_retries_is_not_run_again(tmp_path):
    # The failed attempt's last pod takes its grace period to go: delete the job meanwhile.
    async for h in harness(tmp_path, delays=Delays(max_grace=60)):
        job = h.job('if [ "$RANK" = 1 ]; then exit 3; fi; trap "" TERM; '
                    "while :; do sleep 0.05; done", replicas=2, max_retries=2)
        await h.runtime.submit(job)
        await _update(h, job.job_id, lambda u: "retrying" in (u.reason or ""))
        await h.runtime.delete(job.job_id)
        for pod in h.fake.pods_of(job.job_id):
            h.fake.terminate_container(pod["metadata"]["name"], sig=9)
        await h.fake.wait_for(lambda h=h, job=job: h.fake.job(job.job_id) is None
                              and not h.fake.pods_of(job.job_id))
        # Anything the runtime does on the Job's deletion is sent before this job's create.
        await h.fake.wait_for(lambda job=job, h=h: job.job_id not in h.runtime._cache.jobs)
        marker = h.job("true")
        await h.runtime.submit(marker)
        creates = [r for r in h.fake.calls("POST", "/apis/batch/v1/namespaces/default/jobs")
                   if r.body["metadata"]["name"] == job.job_id]
        assert len(creates) == 1


async def test_a_retry_goes_on_across_a_restart_of_jobgraph(tmp_path):
    async for h in harness(tmp_path, delays=Delays(max_grace=60)):
        job = h.job('if [ -e "$HOME/failed-once" ]; then exit 0; fi; '
                    'if [ "$RANK" = 1 ]; then touch "$HOME/failed-once"; exit 3; fi; '
                    'trap "" TERM; while :; do sleep 0.05; done', replicas=2, max_retries=1)
        await h.runtime.submit(job)
        await _update(h, job.job_id, lambda u: "retrying" in (u.reason or ""))
        # jobgraph stops while the failed attempt's Job waits for its last pod to go.
        await h.runtime.close()
        pool = ResourcePool(id="p", runtime="kubernetes",
                            options={"kubeconfig": str(tmp_path / "kubeconfig")})
        h.runtime = KubernetesRuntime(pool, archive_dir=tmp_path / "archive")
        await h.runtime.start([replace(job, status=JobStatus.PENDING)])
        consumer = asyncio.create_task(h.consume())
        try:
            for pod in h.fake.pods_of(job.job_id):
                h.fake.terminate_container(pod["metadata"]["name"], sig=9)
            done = await h.status(job.job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, timeout=30)
            assert done.status is JobStatus.SUCCEEDED, done
            creates = [r.body["metadata"]["annotations"]["jobgraph.io/attempt"]
                       for r in h.fake.calls("POST", "/apis/batch/v1/namespaces/default/jobs")
                       if r.body["metadata"]["name"] == job.job_id]
            assert creates == ["1", "2"]
        finally:
            consumer.cancel()
            await h.runtime.close()
