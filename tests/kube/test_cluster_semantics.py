"""KubernetesRuntime in-process against the fake, on the points where real clusters differ
from the simple picture (issue 12): injected sidecars, the kubelet's answers for containers that
do not run, podFailurePolicy, the new terminal conditions, deadlines and refused names."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from app.domain.errors import Conflict
from app.domain.jobs import JobStatus, Pod
from tests.k8sfake import Delays
from tests.kube.test_runtime import Harness, harness

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
