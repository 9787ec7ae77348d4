"""The simulated Job controller, scheduler and kubelet, observed through the client."""

from __future__ import annotations

import asyncio

from kubernetes_asyncio import client, watch

from tests.k8sfake import FakeKubernetes

from .conftest import job_manifest

RANK_ENV = [{"name": "RANK", "valueFrom": {"fieldRef": {
    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]


def cond(job: client.V1Job, type_: str) -> client.V1JobCondition | None:
    return next((c for c in job.status.conditions or [] if c.type == type_ and
                 c.status == "True"), None)


async def test_indexed_job_completes_with_each_pod_seeing_its_index(
        fake: FakeKubernetes, batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest(
        "idx", ["sh", "-c", 'echo "rank=$RANK index=$JOB_COMPLETION_INDEX host=$HOSTNAME"'],
        completions=2, parallelism=2, indexed=True, env=RANK_ENV))
    w = watch.Watch()
    async for ev in w.stream(batch.list_namespaced_job, "default",
                             field_selector="metadata.name=idx"):
        if cond(ev["object"], "Complete"):
            job = ev["object"]
            break
    await w.close()
    assert job.status.succeeded == 2 and job.status.completed_indexes == "0-1"
    assert job.status.completion_time and cond(job, "SuccessCriteriaMet")
    pods = (await core.list_namespaced_pod("default", label_selector="job-name=idx")).items
    assert len(pods) == 2
    for pod in pods:
        index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert pod.metadata.labels["batch.kubernetes.io/job-completion-index"] == index
        assert pod.metadata.owner_references[0].kind == "Job"
        assert pod.status.phase == "Succeeded"
        term = pod.status.container_statuses[0].state.terminated
        assert term.exit_code == 0 and term.reason == "Completed"
        assert not pod.metadata.finalizers  # job-tracking finalizer removed after accounting
        resp = await core.read_namespaced_pod_log(pod.metadata.name, "default",
                                                  _preload_content=False)
        assert (await resp.read()).decode() == \
            f"rank={index} index={index} host=idx-{index}\n"
    reasons = [e.reason for e in (await core.list_namespaced_event(
        "default", field_selector="involvedObject.name=idx")).items]
    assert reasons.count("SuccessfulCreate") == 2 and "Completed" in reasons
    # events list in name order (as the real server): order them by resourceVersion here
    kubelet = sorted((await core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={pods[0].metadata.name}")).items,
        key=lambda e: int(e.metadata.resource_version))
    reasons = [e.reason for e in kubelet if e.reason != "Pulling"]  # 2nd pod: image present
    assert reasons[:4] == ["Scheduled", "Pulled", "Created", "Started"]
    scheduled = kubelet[0]
    assert scheduled.event_time and scheduled.last_timestamp is None  # new recorder shape
    assert scheduled.reporting_component == "default-scheduler"
    started = next(e for e in kubelet if e.reason == "Started")
    assert started.count == 1 and started.involved_object.field_path == "spec.containers{main}"


async def test_backoff_limit_exceeded(fake: FakeKubernetes, batch: client.BatchV1Api,
                                      core: client.CoreV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest(
        "bo", ["sh", "-c", "echo failing; exit 2"], backoff_limit=1))
    job = await fake.wait_job_condition("bo", "Failed")
    got = await batch.read_namespaced_job("bo", "default")
    failed = cond(got, "Failed")
    assert failed.reason == "BackoffLimitExceeded"
    assert failed.message == "Job has reached the specified backoff limit"
    assert cond(got, "FailureTarget") and got.status.failed == 2
    pods = (await core.list_namespaced_pod("default", label_selector="job-name=bo")).items
    assert len(pods) == 2  # restartPolicy Never: a new pod per retry
    assert {p.status.container_statuses[0].state.terminated.exit_code for p in pods} == {2}
    warnings = (await core.list_namespaced_event(
        "default", field_selector="involvedObject.name=bo,type=Warning")).items
    assert [e.reason for e in warnings] == ["BackoffLimitExceeded"]
    assert job["status"]["failed"] == 2


async def test_active_deadline_exceeded_on_the_virtual_clock(
        fake: FakeKubernetes, batch: client.BatchV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest(
        "dl", ["sleep", "60"], activeDeadlineSeconds=600))
    await fake.wait_for(lambda: [p for p in fake.pods_of("dl")
                                 if p["status"].get("phase") == "Running"])
    await fake.advance(601)
    await fake.wait_job_condition("dl", "Failed")
    got = await batch.read_namespaced_job("dl", "default")
    assert cond(got, "Failed").reason == "DeadlineExceeded"
    assert cond(got, "Failed").message == "Job was active longer than specified deadline"
    await fake.wait_for(lambda: not [p for p in fake.pods_of("dl")
                                     if p["status"].get("phase") == "Running"])


async def test_suspended_job_has_no_pods_until_admitted() -> None:
    async with FakeKubernetes.running(kueue=True) as fake:
        from kubernetes_asyncio import config
        cfg = client.Configuration()
        await config.load_kube_config_from_dict(fake.kubeconfig_dict(), client_configuration=cfg)
        async with client.ApiClient(cfg) as api:
            batch = client.BatchV1Api(api)
            created = await batch.create_namespaced_job("default", job_manifest(
                "q", ["true"], labels={"kueue.x-k8s.io/queue-name": "team-a"}))
            assert created.spec.suspend is True  # Kueue's webhook
            await fake.wait_idle()
            job = await batch.read_namespaced_job("q", "default")
            assert cond(job, "Suspended").reason == "JobSuspended"
            assert not fake.pods_of("q") and not job.status.start_time
            fake.admit("q")
            await fake.wait_job_condition("q", "Complete")
            job = await batch.read_namespaced_job("q", "default")
            suspended = next(c for c in job.status.conditions if c.type == "Suspended")
            assert suspended.status == "False" and suspended.reason == "JobResumed"
            reasons = [e["reason"] for e in sorted(
                fake.events_for("q", kind="Job"),
                key=lambda e: int(e["metadata"]["resourceVersion"]))]
            assert set(reasons[:2]) == {"CreatedWorkload", "Suspended"}  # two controllers
            assert "Resumed" in reasons and "Completed" in reasons


async def test_image_pull_failure(fake: FakeKubernetes, batch: client.BatchV1Api,
                                  core: client.CoreV1Api) -> None:
    rv = (await core.list_namespaced_pod("default")).metadata.resource_version
    await batch.create_namespaced_job("default", job_manifest(
        "pull", ["true"], annotations={"fake.k8s/scenario": "image-pull-backoff"}))
    reasons: list[str] = []
    w = watch.Watch()  # from the RV before the create: every transition is replayed
    async for ev in w.stream(core.list_namespaced_pod, "default", label_selector="job-name=pull",
                             resource_version=rv):
        statuses = ev["object"].status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        if waiting and (not reasons or reasons[-1] != waiting.reason):
            reasons.append(waiting.reason)
        if waiting and waiting.reason == "ImagePullBackOff":
            pod = ev["object"]
            break
    await w.close()
    assert reasons == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"]
    assert pod.status.phase == "Pending"
    warnings = sorted((await core.list_namespaced_event("default", field_selector=(
        f"involvedObject.name={pod.metadata.name},type=Warning"))).items,
        key=lambda e: int(e.metadata.resource_version))
    assert [e.message for e in warnings][1:] == ["Error: ErrImagePull",
                                                  "Error: ImagePullBackOff"]
    assert warnings[0].message.startswith('Failed to pull image "busybox:1.36"')


async def test_real_process_output_and_failure_exit_code(fake: FakeKubernetes,
                                                         batch: client.BatchV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest(
        "rp", ["python3", "-c", "import sys; print('from python'); sys.exit(7)"],
        backoff_limit=0))
    await fake.wait_job_condition("rp", "Failed")
    pod = fake.pods_of("rp")[0]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
    assert fake.container_log(pod["metadata"]["name"]) == "from python\n"
    await asyncio.sleep(0)
