"""Logs that outlive pods, whole (issue 12, point 5).

The fake kubelet rotates a container's log at `containerLogMaxSize` (1000 bytes here)
and serves only the current file; its follow stalls at a rotation, as kubelets before
kubernetes/kubernetes#115702 do. jobgraph archives each pod's log while it runs (follow,
append, resume with sinceTime), so what was rotated away is still served, by every
replica that shares the archive directory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
from kubernetes_asyncio import config
from kubernetes_asyncio.client import Configuration

from app.domain.jobs import JobStatus
from app.domain.pools import ResourcePool
from app.runtime.kubernetes import KubernetesRuntime
from app.runtime.kubernetes.manifests import job_manifest
from tests.k8sfake import Delays, FakeKubernetes
from tests.kube.test_runtime import Harness

MAX_SIZE = 1000


def burst(name: str, gate: str) -> str:
    """Wait for the file `gate`, then print 15 lines of ~70 bytes (a rotation of a
    1000-byte log)."""
    return (f'while [ ! -e {gate} ]; do sleep 0.05; done; i=0; while [ $i -lt 15 ]; do '
            f'echo "{name} line $i ......................................"; i=$((i+1)); done; ')


async def until(predicate: Callable[[], object], timeout: float = 20) -> None:
    """Wait for a condition on files the runtime writes in its threads (no event to
    await there); a slow machine only waits longer."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def archived(archive: Path, job_id: str, pod: str) -> list[str]:
    path = archive / job_id / f"{pod}.log"
    if not path.exists():
        return []
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()]


async def start(fake: FakeKubernetes, tmp_path: Path, archive: Path, name: str) -> Harness:
    kubeconfig = fake.write_kubeconfig(tmp_path / f"kubeconfig-{name}")
    pool = ResourcePool(id="p", runtime="kubernetes", options={"kubeconfig": str(kubeconfig)})
    runtime = KubernetesRuntime(pool, archive_dir=archive)
    await runtime.start([])
    h = Harness(fake, runtime, tmp_path)
    h.consumer = asyncio.create_task(h.consume())  # type: ignore[attr-defined]
    return h


async def stop(*harnesses: Harness) -> None:
    for h in harnesses:
        h.consumer.cancel()  # type: ignore[attr-defined]
        await h.runtime.close()


async def test_a_log_rotated_away_is_archived_whole_and_read_by_every_replica(tmp_path):
    async with FakeKubernetes.running(delays=Delays(), container_log_max_size=MAX_SIZE) as fake:
        archive = tmp_path / "shared-archive"  # one directory, two replicas
        a = await start(fake, tmp_path, archive, "a")
        b = await start(fake, tmp_path, archive, "b")
        try:
            job = a.job("echo ready; " + burst("burst", "go1")
                        + "while [ ! -e go2 ]; do sleep 0.05; done; echo after")
            await a.runtime.submit(job)
            running = await a.status(job.job_id, JobStatus.RUNNING)
            pod = running.pods[0].name
            await until(lambda: archived(archive, job.job_id, pod) == ["ready"])
            workdir = fake.kubelet.root / fake.pod(pod)["metadata"]["uid"]
            (workdir / "go1").touch()
            await fake.wait_for(lambda: "burst line 14" in fake.container_log(pod))
            container_log = next(log for log in fake.logs.values() if "ready" in log.text())
            assert len(container_log.files) == 2, "the burst must rotate the log once"
            (workdir / "go2").touch()
            await a.status(job.job_id, JobStatus.SUCCEEDED)
            await b.status(job.job_id, JobStatus.SUCCEEDED)
            written = fake.container_log(pod).splitlines()
            assert written[0] == "ready" and written[-1] == "after" and len(written) == 17
            await until(lambda: (archive / job.job_id / f"{pod}.done").exists())
            # Exactly once each: one replica wrote, the other one waited on the lock.
            assert archived(archive, job.job_id, pod) == written

            # The pod is gone (a clean-up); both replicas serve its whole log.
            async with aiohttp.ClientSession() as session, session.delete(
                f"{fake.url}/api/v1/namespaces/default/pods/{pod}",
                headers={"Authorization": f"Bearer {fake.token}"},
            ) as response:
                assert response.status == 200
            await fake.wait_for(lambda: fake.pod(pod) is None)
            await until(lambda: all(pod not in h.runtime._cache.pods for h in (a, b)))
            before = len(fake.requests)
            for h in (a, b):
                lines = [x async for x in h.runtime.logs(job.job_id, pod, tail_lines=None,
                                                         follow=False)]
                assert lines == written
                followed = [x async for x in h.runtime.logs(job.job_id, pod, tail_lines=3,
                                                            follow=True)]
                assert followed == written[-3:]
            # The finished pod's log came from the archive, not from the cluster.
            assert not [r for r in fake.requests[before:] if r.path.endswith("/log")]
            # The keeper followed the log and resumed with sinceTime and timestamps.
            log_calls = fake.calls("GET", f"/api/v1/namespaces/default/pods/{pod}/log")
            assert all(c.param("timestamps") == "True" for c in log_calls)
            assert any(c.param("follow") == "True" for c in log_calls)
            assert any(c.param("sinceTime") for c in log_calls)
        finally:
            await stop(a, b)


async def test_a_stalled_follow_is_reopened_while_the_pod_runs(tmp_path):
    async with FakeKubernetes.running(delays=Delays(), container_log_max_size=MAX_SIZE) as fake:
        archive = tmp_path / "archive"
        h = await start(fake, tmp_path, archive, "a")
        h.runtime._logs.idle_reopen = 0.3  # reopen a silent follow soon (default: 60 s)
        try:
            job = h.job("echo ready; " + burst("first", "go1") + burst("second", "go2")
                        + "while [ ! -e go3 ]; do sleep 0.05; done; echo after")
            await h.runtime.submit(job)
            running = await h.status(job.job_id, JobStatus.RUNNING)
            pod = running.pods[0].name
            await until(lambda: archived(archive, job.job_id, pod) == ["ready"])
            workdir = fake.kubelet.root / fake.pod(pod)["metadata"]["uid"]
            (workdir / "go1").touch()
            # The follow stalled at the rotation; reopened, it gets the rest of the burst
            # from the new file while the container still runs.
            await until(lambda: "first line 14" in "\n".join(archived(archive, job.job_id, pod)))
            # A read of the running pod: the archive, then the live log after it.
            so_far = [x async for x in h.runtime.logs(job.job_id, pod, tail_lines=None,
                                                      follow=False)]
            assert so_far == fake.container_log(pod).splitlines()
            assert so_far[0] == "ready" and so_far[-1].startswith("first line 14 ")
            (workdir / "go2").touch()
            await until(lambda: "second line 14" in "\n".join(archived(archive, job.job_id, pod)))
            (workdir / "go3").touch()
            await h.status(job.job_id, JobStatus.SUCCEEDED)
            await until(lambda: (archive / job.job_id / f"{pod}.done").exists())
            written = fake.container_log(pod).splitlines()
            assert len(written) == 32 and written[-1] == "after"
            assert archived(archive, job.job_id, pod) == written
        finally:
            await stop(h)


async def test_a_restarted_containers_previous_instance_is_archived(tmp_path):
    """A container restarted in place (restartPolicy OnFailure, which a Job of someone
    else's making may use): what its first instance wrote while nobody could follow it is
    read with previous=true."""
    async with FakeKubernetes.running(delays=Delays()) as fake:
        archive = tmp_path / "archive"
        h = await start(fake, tmp_path, archive, "a")
        h.runtime._logs.idle_reopen = 0.3
        try:
            job = h.job('if [ -e ran ]; then echo "second run"; exit 0; fi; touch ran; '
                        'echo "first run"; while [ ! -e go ]; do sleep 0.05; done; '
                        'echo "first end"; exit 1')
            manifest = job_manifest(job, h.runtime.options)
            manifest["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
            manifest["spec"].pop("podFailurePolicy", None)  # it requires restartPolicy Never
            manifest["spec"]["backoffLimit"] = 1  # (with OnFailure, restarts count)
            async with aiohttp.ClientSession() as session, session.post(
                f"{fake.url}/apis/batch/v1/namespaces/default/jobs", json=manifest,
                headers={"Authorization": f"Bearer {fake.token}"},
            ) as response:
                assert response.status == 201
            h.runtime._cache.known.add(job.job_id)
            running = await h.status(job.job_id, JobStatus.RUNNING)
            pod = running.pods[0].name
            await until(lambda: archived(archive, job.job_id, pod) == ["first run"])
            await fake.go_offline()  # nobody follows the end of the first instance
            (fake.kubelet.root / fake.pod(pod)["metadata"]["uid"] / "go").touch()
            await fake.wait_for(lambda: fake.pod(pod)["status"].get("phase") == "Succeeded")
            await fake.go_online()
            await until(lambda: (archive / job.job_id / f"{pod}.done").exists())
            assert archived(archive, job.job_id, pod) == ["first run", "first end", "second run"]
            previous = [c for c in fake.calls("GET", f"/api/v1/namespaces/default/pods/{pod}/log")
                        if c.param("previous") == "True"]
            assert previous and all(c.param("sinceTime") for c in previous)
        finally:
            await stop(h)


async def test_log_follows_do_not_take_the_connections_of_other_calls(tmp_path):
    """Each running pod's log is followed on a long-lived request: they have a connection
    pool of their own, so the API calls keep theirs (the library allows 100 by default;
    4 here, with 3 watches)."""
    async with FakeKubernetes.running(delays=Delays()) as fake:
        configuration = Configuration()
        await config.load_kube_config_from_dict(fake.kubeconfig_dict(),
                                                client_configuration=configuration)
        configuration.connection_pool_maxsize = 4
        pool = ResourcePool(id="p", runtime="kubernetes", options={})
        runtime = KubernetesRuntime(pool, archive_dir=tmp_path / "archive",
                                    configuration=configuration)
        await runtime.start([])
        h = Harness(fake, runtime, tmp_path)
        consumer = asyncio.create_task(h.consume())
        try:
            jobs = [h.job("echo up; sleep 600") for _ in range(3)]
            for job in jobs:
                await runtime.submit(job)
            for job in jobs:
                running = await h.status(job.job_id, JobStatus.RUNNING)
                await until(lambda r=running, j=job: archived(
                    tmp_path / "archive", j.job_id, r.pods[0].name) == ["up"])
            async with asyncio.timeout(20):
                for job in jobs:
                    await runtime.stop(job.job_id)
                    await h.status(job.job_id, JobStatus.STOPPED)
        finally:
            consumer.cancel()
            await runtime.close()


def test_a_reader_takes_the_archive_as_it_was_when_it_took_the_resume_point(tmp_path):
    # The keeper may append between the reader's resume point and its read of the archive:
    # what it appends then comes again from the cluster, so the read must stop where the
    # resume point was taken, or those lines would be served twice.
    from app.runtime.kubernetes.archive import LogArchive

    archive = LogArchive(tmp_path)
    writer = archive.open_writer("j-1", "j-1-0-abc")
    assert writer is not None
    writer.append([b"2026-12-01T03:00:00.000000001Z hello\n"])
    resume, end = archive.resume_point("j-1", "j-1-0-abc")
    writer.append([b"2026-12-01T03:00:01.000000001Z later\n", b"2026-12-01T03:00:02.0Z cut"])
    assert list(archive.lines("j-1", "j-1-0-abc", tail_lines=None, end=end)) == ["hello"]
    assert list(archive.lines("j-1", "j-1-0-abc", tail_lines=None)) == ["hello", "later"]
    assert (resume.ts, resume.count) == (1796094000000000001, 1)  # "hello" was read
    writer.close()


CHATTY = 'i=0; while :; do echo "line $i ........................"; i=$((i+1)); sleep 0.001; done'


async def test_deleting_a_job_whose_pod_keeps_writing_leaves_no_archive(tmp_path):
    """The keepers are stopped before the archive goes, and none comes back for the pod
    while the cluster removes it (its last changes are seen after the delete)."""
    async with FakeKubernetes.running(delays=Delays()) as fake:
        archive = tmp_path / "archive"
        h = await start(fake, tmp_path, archive, "a")
        try:
            job = h.job(CHATTY)
            await h.runtime.submit(job)
            running = await h.status(job.job_id, JobStatus.RUNNING)
            pod = running.pods[0].name
            await until(lambda: len(archived(archive, job.job_id, pod)) > 100)
            await h.runtime.delete(job.job_id)
            assert not (archive / job.job_id).exists()
            await fake.wait_for(lambda: fake.pod(pod) is None)
            await until(lambda: pod not in h.runtime._cache.pods)
            assert not (archive / job.job_id).exists()
        finally:
            await stop(h)


async def test_deleting_a_job_that_another_replica_archives_leaves_no_archive(tmp_path):
    """Replica b holds the pod's archive (its flock) while a deletes the job: a's delete
    succeeds, and b, seeing the job and its pod go, does not bring the archive back."""
    async with FakeKubernetes.running(delays=Delays()) as fake:
        archive = tmp_path / "shared-archive"
        b = await start(fake, tmp_path, archive, "b")
        try:
            job = b.job(CHATTY)
            await b.runtime.submit(job)
            running = await b.status(job.job_id, JobStatus.RUNNING)
            pod = running.pods[0].name
            await until(lambda: len(archived(archive, job.job_id, pod)) > 100)
            a = await start(fake, tmp_path, archive, "a")  # b keeps the pod: a only reads
            try:
                await until(lambda: pod in a.runtime._cache.pods)
                await a.runtime.delete(job.job_id)
                await fake.wait_for(lambda: fake.pod(pod) is None)
                await until(lambda: all(pod not in h.runtime._cache.pods for h in (a, b)))
                await until(lambda: not b.runtime._logs._keepers)
                assert not (archive / job.job_id).exists()
            finally:
                await stop(a)
        finally:
            await stop(b)
