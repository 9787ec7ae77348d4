"""GraphQL flows through the real server on a kubernetes pool backed by the fake API server."""

from __future__ import annotations

import asyncio

import pytest

from tests.kube.conftest import shell_job
from tests.support.jobs import (
    DELETE_JOB,
    GET_JOB,
    STOP_JOB,
    create_errors,
    create_job,
    get_job,
    logs,
    wait_for_status,
)
from tests.support.server import GraphQLErrors
from tests.support.subscriptions import gql_session, gql_subscribe

LIST_JOBS = """
query Page($first: Int) {
  jobs(first: $first) { totalCount jobs: nodes { jobId name status pods { name phase } events { reason } } }
}
"""

POD_LOGS = """
subscription Logs($id: ID!, $pod: String!, $tail: Int) {
  podLogs(jobId: $id, podName: $pod, tailLines: $tail, follow: true)
}
"""


def kube_calls_since(fake, mark: int) -> list:
    return [r for r in fake.requests[mark:] if r.is_kubernetes_call]


async def test_a_job_runs_to_success_with_pods_events_and_logs(cluster, tmp_path):
    fake, alice = cluster.fake, cluster.alice
    job = await create_job(
        alice,
        **shell_job("echo hello; echo 世界", tmp_path, name="训练 任务 ✓"),
        resources={"cpus": 1.5, "memory": 2, "gpu": 1},
        maxRetries=2,
        timeoutSeconds=600,
        labels={"team": "vision"},
    )
    job_id = job["jobId"]
    assert job["resourcePoolId"] == "k8s"
    done = await wait_for_status(alice, job_id, "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED", done
    assert done["exitCode"] == 0 and done["startedAt"] and done["finishedAt"]
    # The pod comes on its own watch: it may land just after the Job's status.
    done = await wait_for_job(alice, job_id, lambda j: j["pods"] and j["pods"][0]["phase"] == "Succeeded")
    [pod] = done["pods"]
    assert pod["name"].startswith(job_id + "-") and pod["phase"] == "Succeeded"
    assert pod["nodeName"] == "fake-node-1" and pod["exitCode"] == 0

    # What was created in the cluster.
    created = fake.calls("POST", "/apis/batch/v1/namespaces/default/jobs")
    manifest = next(r.body for r in created if r.body["metadata"]["name"] == job_id)
    meta = manifest["metadata"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "jobgraph"
    assert meta["labels"]["jobgraph.io/job-id"] == job_id
    assert meta["labels"]["team"] == "vision"
    assert meta["annotations"]["jobgraph.io/name"] == "训练 任务 ✓"
    spec = manifest["spec"]
    # timeoutSeconds counts from the first running pod: the deadline is set once one runs.
    assert spec["backoffLimit"] == 2 and "activeDeadlineSeconds" not in spec
    assert meta["annotations"]["jobgraph.io/timeout-seconds"] == "600"
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod_spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    [container] = pod_spec["containers"]
    assert container["image"] == "registry.example/train:1"
    assert container["resources"]["requests"] == {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "1"}
    assert container["resources"]["limits"] == container["resources"]["requests"]
    assert {"name": "HOME", "value": str(tmp_path)} in container["env"]

    # Logs (live or archived) and events (both shapes), stored once each.
    assert (await logs(alice, job_id, pod["name"])).splitlines() == ["hello", "世界"]
    assert (await logs(alice, job_id, pod["name"], tail=1)).splitlines() == ["世界"]
    expected = {"SuccessfulCreate", "Scheduled", "Pulled", "Created", "Started", "Completed"}
    # Events come on their own watch: wait for them rather than for the status alone.
    full = await wait_for_job(alice, job_id, lambda j: expected <= {e["reason"] for e in j["events"]})
    assert len(full["events"]) == len({(e["reason"], e["message"]) for e in full["events"]})
    scheduled = next(e for e in full["events"] if e["reason"] == "Scheduled")
    assert scheduled["message"].startswith(pod["name"] + ": Successfully assigned")

    # Reads come from the database: no Kubernetes call for a page, a job or its events.
    await fake.wait_idle()
    mark = len(fake.requests)
    page = await alice.execute(LIST_JOBS, {"first": 50})
    assert job_id in [j["jobId"] for j in page["jobs"]["jobs"]]
    await get_job(alice, job_id)
    assert kube_calls_since(fake, mark) == []


async def test_a_failing_job_ends_failed_with_backoff_limit_exceeded(cluster, tmp_path):
    alice = cluster.alice
    job = await create_job(alice, **shell_job("echo boom >&2; exit 3", tmp_path), maxRetries=1)
    done = await wait_for_status(alice, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "FAILED"
    assert done["reason"].startswith("BackoffLimitExceeded"), done["reason"]
    assert done["exitCode"] == 3
    # Pods and events come on their own watches: they may land just after the status.
    done = await wait_for_job(
        alice, job["jobId"],
        lambda j: all(p["phase"] == "Failed" for p in j["pods"]) and any(
            e["reason"] == "BackoffLimitExceeded" and e["type"] == "Warning" for e in j["events"]
        ),
    )
    assert len(done["pods"]) == 2
    assert "boom" in await logs(alice, job["jobId"], done["pods"][0]["name"])


async def test_a_job_stuck_on_an_image_pull_is_pending_with_the_reason(cluster, tmp_path):
    alice = cluster.alice
    job = await create_job(alice, **shell_job("echo never", tmp_path), image="fake.invalid/nope:1")
    job_id = job["jobId"]
    await cluster.fake.wait_for(
        lambda: any(
            e["reason"] == "BackOff" for p in cluster.fake.pods_of(job_id)
            for e in cluster.fake.events_for(p["metadata"]["name"])
        )
    )
    stuck = await wait_for_job(alice, job_id, lambda j: "ImagePullBackOff" in (j["reason"] or ""))
    assert stuck["status"] == "PENDING"
    assert stuck["pods"][0]["phase"] == "Pending"
    stuck = await wait_for_job(alice, job_id, lambda j: "BackOff" in [e["reason"] for e in j["events"]])
    warnings = [e for e in stuck["events"] if e["type"] == "Warning"]
    assert any(e["reason"] == "Failed" and "ImagePull" in e["message"] for e in warnings), warnings
    # Its log: a clear "not started yet", not an error page.
    with pytest.raises(GraphQLErrors) as error:
        await logs(alice, job_id, stuck["pods"][0]["name"])
    assert error.value.code == "CONFLICT"
    assert "has not started yet" in str(error.value) and "ImagePullBackOff" in str(error.value)
    await alice.execute(DELETE_JOB, {"id": job_id})


async def test_stop_keeps_logs_and_events_and_delete_removes_everything(cluster, tmp_path):
    fake, alice = cluster.fake, cluster.alice
    job = await create_job(
        alice, **shell_job("echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done", tmp_path)
    )
    job_id = job["jobId"]
    running = await wait_for_status(alice, job_id, "RUNNING")
    pod_name = running["pods"][0]["name"]
    await fake.wait_for(lambda: "started" in fake.container_log(pod_name))

    # Follow the log over the podLogs subscription while the job is stopped.
    lines = []
    async with gql_session(cluster.url, cluster.env.alice_token) as session:
        stream = gql_subscribe(session, POD_LOGS, {"id": job_id, "pod": pod_name})
        lines.append((await anext(stream))["podLogs"])
        stopping = (await alice.execute(STOP_JOB, {"id": job_id}))["stopJob"]
        assert stopping["userErrors"] == [] and stopping["job"]["status"] in {"STOPPING", "STOPPED"}
        async for item in stream:
            lines.append(item["podLogs"])
    assert lines[0] == "started"

    stopped = await wait_for_status(alice, job_id, "STOPPED")
    assert stopped["finishedAt"]
    await fake.wait_for(lambda: not fake.pods_of(job_id))  # the pods are gone ...
    assert "started" in await logs(alice, job_id, pod_name)  # ... their logs are kept
    await wait_for_job(alice, job_id, lambda j: "SuccessfulCreate" in [e["reason"] for e in j["events"]])

    deleted = (await alice.execute(DELETE_JOB, {"id": job_id}))["deleteJob"]
    assert deleted == {"deletedJobId": job_id, "userErrors": []}
    [delete] = [r for r in fake.calls("DELETE", "/apis/batch/v1") if r.path.endswith("/" + job_id)]
    assert delete.param("propagationPolicy") == "Background"
    await fake.wait_for(lambda: fake.job(job_id) is None)
    with pytest.raises(GraphQLErrors) as error:
        await alice.execute(GET_JOB, {"id": job_id})
    assert error.value.code == "NOT_FOUND"


async def test_replicas_get_rank_world_size_and_master_address(cluster, tmp_path):
    fake, alice = cluster.fake, cluster.alice
    script = 'echo "$RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT"'
    job = await create_job(alice, **shell_job(script, tmp_path), replicas=3)
    job_id = job["jobId"]
    done = await wait_for_status(alice, job_id, "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED", done
    assert [p["replicaIndex"] for p in done["pods"]] == [0, 1, 2]
    for pod in done["pods"]:
        text = (await logs(alice, job_id, pod["name"])).strip()
        assert text == f"{pod['replicaIndex']} 3 {job_id}-0.{job_id} 29500"
    manifest = next(r.body for r in fake.calls("POST", "/apis/batch/v1")
                    if r.body["metadata"]["name"] == job_id)
    assert manifest["spec"]["completionMode"] == "Indexed"
    assert manifest["spec"]["completions"] == manifest["spec"]["parallelism"] == 3
    assert manifest["spec"]["template"]["spec"]["subdomain"] == job_id
    [service] = [r.body for r in fake.calls("POST", "/api/v1/namespaces/default/services")
                 if r.body["metadata"]["name"] == job_id]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"jobgraph.io/job-id": job_id}
    assert service["metadata"]["ownerReferences"][0]["name"] == job_id


async def test_kueue_holds_a_job_queued_until_admitted(cluster, tmp_path):
    fake, alice = cluster.fake, cluster.alice
    job = await create_job(alice, **shell_job("echo admitted", tmp_path, resourcePoolId="kueue"), queue="team-b")
    job_id = job["jobId"]
    queued = await wait_for_status(alice, job_id, "QUEUED")
    assert queued["pods"] == [] and queued["startedAt"] is None
    manifest = fake.job(job_id)
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-b"
    assert manifest["spec"]["suspend"] is True
    fake.admit(job_id)
    done = await wait_for_status(alice, job_id, "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED"
    assert (await logs(alice, job_id, done["pods"][0]["name"])).strip() == "admitted"
    await wait_for_job(
        alice, job_id, lambda j: {"CreatedWorkload", "Resumed"} <= {e["reason"] for e in j["events"]}
    )


async def test_a_job_needs_an_image_on_kubernetes(cluster, tmp_path):
    # The pool `bare` has no defaultImage: a job naming none is refused, clearly, and
    # before anything is recorded.
    count = '{ jobs(filter: {resourcePoolId: "bare"}) { totalCount } }'
    before = (await cluster.alice.execute(count))["jobs"]["totalCount"]
    errors = await create_errors(cluster.alice, **shell_job("true", tmp_path, resourcePoolId="bare"))
    assert errors[0]["code"] == "INVALID_ARGUMENT" and "image is required" in errors[0]["message"]
    assert errors[0]["field"] == "image"
    assert (await cluster.alice.execute(count))["jobs"]["totalCount"] == before


async def wait_for_job(client, job_id, predicate, timeout: float = 20.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            job = await get_job(client, job_id)
            if predicate(job):
                return job
            await asyncio.sleep(0.05)


async def test_a_kueue_job_says_why_it_waits(cluster, tmp_path):
    # Kueue's scheduler cannot fit the Workload: its condition and Warning event reach the
    # job's reason and events through the API.
    fake, alice = cluster.fake, cluster.alice
    job = await create_job(alice, **shell_job("echo fits", tmp_path, resourcePoolId="kueue"))
    job_id = job["jobId"]
    await wait_for_status(alice, job_id, "QUEUED")
    await wait_for_job(alice, job_id, lambda j: fake.workload(job_id) is not None)
    message = ("couldn't assign flavors to pod set main: insufficient unused quota for cpu in "
               "flavor default-flavor, 1 more needed")
    fake.kueue_hold(job_id, "Pending", message)
    waiting = await wait_for_job(alice, job_id, lambda j: j["reason"] == f"Pending: {message}")
    assert waiting["status"] == "QUEUED"
    await wait_for_job(alice, job_id, lambda j: any(
        e["reason"] == "Pending" and e["type"] == "Warning" and e["message"] == message
        for e in j["events"]))
    fake.admit(job_id)
    done = await wait_for_status(alice, job_id, "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED" and done["reason"] is None
