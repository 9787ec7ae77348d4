"""Faults between jobgraph and the cluster: cut and expired watches, an unreachable API
server, a request failing with 500. Their own fake and server (`faulty`), since these tests
cut every connection."""

from __future__ import annotations

import asyncio

import httpx

from tests.kube.conftest import shell_job
from tests.support.jobs import CREATE_JOB, STOP_JOB, create_job, get_job, logs, wait_for_status

GATED = "echo waiting; while [ ! -e {gate} ]; do sleep 0.02; done; echo through"

LIST_JOBS = "query { jobs(first: 100) { totalCount nodes { jobId status pods { name } } } }"


async def test_a_cut_and_compacted_watch_still_converges(faulty, tmp_path):
    fake, alice = faulty.fake, faulty.alice
    gate = tmp_path / "gate"
    job = await create_job(alice, **shell_job(GATED.format(gate=gate), tmp_path))
    job_id = job["jobId"]
    await wait_for_status(alice, job_id, "RUNNING")
    mark = len(fake.requests)

    # History is dropped and every watch cut: resuming from the last RV answers 410, so the
    # runtime lists again. A list that fails once with 500 is retried too.
    fake.compact()
    fake.fail_next(1, status=500, method="GET", path="/api/v1/namespaces/default/pods")
    assert fake.close_all_watches() >= 3
    gate.touch()  # the job finishes while the runtime is between watches

    done = await wait_for_status(faulty.alice, job_id, "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED", done
    assert (await logs(alice, job_id, done["pods"][0]["name"])).splitlines() == ["waiting", "through"]
    later = fake.requests[mark:]
    relists = [r for r in later if r.method == "GET" and r.path.endswith("/jobs")
               and r.param("watch") is None]
    assert relists, later  # 410 led to a fresh list
    assert any(r.status == 500 for r in later)
    # Events are stored once even though the re-list sent them all again.
    async with asyncio.timeout(20):  # events come on their own watch
        while True:
            events = (await get_job(alice, job_id))["events"]
            if "Completed" in [e["reason"] for e in events]:
                break
            await asyncio.sleep(0.05)
    keys = [(e["reason"], e["message"], e["timestamp"]) for e in events]
    assert len(keys) == len(set(keys)) and "Completed" in [e["reason"] for e in events]


async def test_a_create_failing_once_with_500_is_retried(faulty, tmp_path):
    fake, alice = faulty.fake, faulty.alice
    fake.fail_next(1, status=500, method="POST", path="/apis/batch/v1/namespaces/default/jobs")
    job = await create_job(alice, **shell_job("echo retried", tmp_path))
    posts = [r for r in fake.calls("POST", "/apis/batch/v1/namespaces/default/jobs")
             if (r.body or {}).get("metadata", {}).get("name") == job["jobId"]]
    assert [r.status for r in posts] == [500, 201]
    done = await wait_for_status(alice, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED"


async def test_an_unreachable_cluster_keeps_reads_and_refuses_writes(faulty, tmp_path):
    fake, alice = faulty.fake, faulty.alice
    gate = tmp_path / "gate"
    job = await create_job(alice, **shell_job(GATED.format(gate=gate), tmp_path))
    job_id = job["jobId"]
    await wait_for_status(alice, job_id, "RUNNING")

    await fake.go_offline()
    try:
        # Reads come from the database.
        page = await alice.execute(LIST_JOBS)
        assert job_id in [j["jobId"] for j in page["jobs"]["nodes"]]
        assert (await get_job(alice, job_id))["status"] == "RUNNING"
        async with httpx.AsyncClient(
            base_url=faulty.url, headers={"Authorization": f"Bearer {faulty.env.alice_token}"}
        ) as http:
            got = await http.get(f"/api/jobs/{job_id}")
            assert got.status_code == 200 and got.json()["data"]["status"] == "Running"

            # Writes: "runtime unavailable" (GraphQL userErrors; REST 503).
            payload = (await alice.execute(
                CREATE_JOB, {"input": shell_job("echo never", tmp_path)}
            ))["createJob"]
            assert payload["job"] is None
            [error] = payload["userErrors"]
            assert error["code"] == "RUNTIME_UNAVAILABLE" and "cannot be reached" in error["message"]

            created = await http.post("/api/jobs/create", json={
                "jobName": "offline", "image": "registry.example/train:1",
                "command": ["/bin/sh", "-c", "true"], "resourcePoolId": "k8s"})
            assert created.status_code == 503, created.text
            assert created.json()["code"] == "RUNTIME_UNAVAILABLE"

            stopped = await http.post(f"/api/jobs/{job_id}/stop")
            assert stopped.status_code == 503, stopped.text
            assert "applied when the cluster answers again" in stopped.json()["message"]

            deleted = (await alice.execute(
                "mutation($id: ID!) { deleteJob(input: {jobId: $id}) { deletedJobId userErrors { code } } }",
                {"id": job_id},
            ))["deleteJob"]
            assert deleted == {"deletedJobId": None, "userErrors": [{"code": "RUNTIME_UNAVAILABLE"}]}
        # The jobs refused while offline were recorded as FAILED with the reason.
        failed = [j for j in (await alice.execute(LIST_JOBS))["jobs"]["nodes"] if j["status"] == "FAILED"]
        assert len(failed) >= 2
    finally:
        await fake.go_online()

    # Back online: the kept stop is applied, and the job ends STOPPED.
    done = await wait_for_status(alice, job_id, "STOPPED", "SUCCEEDED", "FAILED", timeout=30)
    assert done["status"] == "STOPPED", done
    assert fake.job(job_id)["spec"]["suspend"] is True
    again = (await alice.execute(STOP_JOB, {"id": job_id}))["stopJob"]
    assert again["userErrors"][0]["code"] == "CONFLICT"
