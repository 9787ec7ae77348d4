"""The fake behaves as real clusters do where a job runner is easily fooled: injected sidecars
and the kubelet's status order, exec into a container that does not run, metadata the
apiserver refuses."""

from __future__ import annotations

import json

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8sfake import FakeKubernetes

from .conftest import job_manifest


async def test_an_injected_sidecar_sorts_first_and_keeps_the_pod_running(
        fake: FakeKubernetes, batch: client.BatchV1Api, ws_core: client.CoreV1Api) -> None:
    body = job_manifest("sc", ["sh", "-c", "exit 2"], backoff_limit=0)
    body["spec"]["template"]["metadata"]["labels"] = {"sidecar.istio.io/inject": "true"}
    await batch.create_namespaced_job("default", body)
    [pod] = await fake.wait_for(lambda: [
        p for p in fake.pods_of("sc")
        if any((s.get("state") or {}).get("terminated") for s in p["status"].get(
            "containerStatuses") or [])])
    assert [c["name"] for c in pod["spec"]["containers"]] == ["main", "istio-proxy"]
    statuses = pod["status"]["containerStatuses"]
    assert [s["name"] for s in statuses] == ["istio-proxy", "main"]
    assert statuses[1]["state"]["terminated"]["exitCode"] == 2
    assert "running" in statuses[0]["state"] and pod["status"]["phase"] == "Running"
    # The kubelet only execs into running containers; anything else is a plain 500.
    name = pod["metadata"]["name"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await ws_core.connect_get_namespaced_pod_exec(
            name, "default", container="main", command=["true"], stdout=True, stderr=True,
            stdin=False, tty=False)
    assert refused.value.status == 500
    assert fake.calls("GET", f"/api/v1/namespaces/default/pods/{name}/exec")[-1].status == 500
    fake.quit_sidecars(name)
    await fake.wait_job_condition("sc", "Failed")
    assert fake.pod(name)["status"]["phase"] == "Failed"


@pytest.mark.parametrize(("labels", "cause"), [
    ({"kueue.x-k8s.io/queue-name": "Team A"}, (
        'Invalid value: "Team A": a valid label must be an empty string or consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")),
    ({"team": "x" * 64}, f'Invalid value: "{"x" * 64}": must be no more than 63 characters'),
    ({"-bad": "v"}, 'Invalid value: "-bad": name part must consist of alphanumeric characters'),
])
async def test_metadata_the_apiserver_refuses_is_a_422_status(
        batch: client.BatchV1Api, labels: dict[str, str], cause: str) -> None:
    with pytest.raises(ApiException) as refused:
        await batch.create_namespaced_job("default", job_manifest("bad", ["true"], labels=labels))
    assert refused.value.status == 422
    status = json.loads(refused.value.body)
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    assert status["message"].startswith('Job.batch "bad" is invalid: metadata.labels: ')
    assert cause in status["message"]
    [first] = status["details"]["causes"][:1]
    assert first["field"] == "metadata.labels" and first["reason"] == "FieldValueInvalid"


async def test_pod_failure_policy_and_the_two_step_terminal_condition(
        fake: FakeKubernetes, batch: client.BatchV1Api) -> None:
    seen: list[list[str]] = []
    fake.store.listeners.append(lambda ev: seen.append(
        [c["type"] for c in (ev.new.get("status") or {}).get("conditions") or []])
        if ev.resource == "jobs" else None)
    policy = {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In",
                                              "values": [3]}}]}
    created = await batch.create_namespaced_job("default", job_manifest(
        "pfp", ["sh", "-c", "exit 3"], podFailurePolicy=policy))
    assert created.spec.pod_replacement_policy == "Failed"
    assert created.spec.pod_failure_policy.rules[0].on_pod_conditions[0].status == "True"
    job = await fake.wait_job_condition("pfp", "Failed")
    target, failed = (next(c for c in job["status"]["conditions"] if c["type"] == t)
                      for t in ("FailureTarget", "Failed"))
    assert target["reason"] == failed["reason"] == "PodFailurePolicy"
    assert target["message"].startswith("Container main for pod default/pfp-")
    assert target["message"].endswith("failed with exit code 3 matching FailJob rule at index 1")
    # FailureTarget was written alone first; Failed came in a later update.
    first = next(i for i, types in enumerate(seen) if "FailureTarget" in types)
    assert "Failed" not in seen[first]
    assert job["status"].get("failed") == 1


async def test_a_pod_failure_policy_needs_restart_policy_never(batch: client.BatchV1Api) -> None:
    body = job_manifest("pfp", ["true"], restart_policy="OnFailure", podFailurePolicy={
        "rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [0]}}]})
    with pytest.raises(ApiException) as refused:
        await batch.create_namespaced_job("default", body)
    assert refused.value.status == 422
    causes = {c["field"]: c["message"] for c in json.loads(refused.value.body)["details"]["causes"]}
    assert causes["spec.template.spec.restartPolicy"].endswith(
        'only "Never" is supported when podFailurePolicy is specified')
    assert "backoffLimitPerIndex" in causes["spec.podFailurePolicy.rules[0].action"]
    assert "must not be 0" in causes["spec.podFailurePolicy.rules[0].onExitCodes.values[0]"]
