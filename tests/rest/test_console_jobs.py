"""What the legacy web console reads and sends about jobs (issue 10, points 3-6), over
HTTP against a server of its own: name/userId beside jobName/owner, the console's
status words, the unpaged list and the native create template."""

from __future__ import annotations

import json
import secrets

from tests.support.jobs import PY

IMAGE = "registry.example/train:1"
HOLD = "import time; time.sleep(600)"


def flat(name: str, code: str, **extra) -> dict:
    return {"jobName": name, "image": IMAGE, "command": [PY, "-c", code], **extra}


def tag() -> str:
    """A keyword only this test's jobs carry."""
    return f"t{secrets.token_hex(4)}"


async def listed(rest, **body) -> dict:
    return (await rest.call("POST", "/api/jobs", json=body))["data"]


async def test_a_job_carries_name_and_userid_beside_jobname_and_owner(carol):
    key = tag()
    created = (await carol.call("POST", "/api/jobs/create", json=flat(f"{key} 名字", "pass")))["data"]
    assert created["jobName"] == created["name"] == f"{key} 名字"
    job_id = created["jobId"]
    await carol.wait_for_status(job_id, "Succeeded")

    [item] = (await listed(carol, keyword=key))["jobs"]
    assert item["name"] == item["jobName"] == f"{key} 名字"
    assert item["userId"] == item["owner"] == "carol"

    detail = (await carol.call("GET", f"/api/jobs/{job_id}", params={"needDetail": "true"}))["data"]
    for job in (detail, detail["job"]):
        assert job["name"] == job["jobName"] == f"{key} 名字"
        assert job["userId"] == job["owner"] == "carol"


async def test_answers_use_the_console_words_and_filters_take_both_vocabularies(carol):
    key = tag()
    done = await carol.create(flat(f"{key}-done", "pass"))
    failed = await carol.create(flat(f"{key}-failed", "raise SystemExit(3)"))
    stopped = await carol.create(flat(f"{key}-stopped", HOLD))
    running = await carol.create(flat(f"{key}-running", HOLD, resourcePoolId="solo"))
    await carol.wait_for_status(running, "Running")
    queued = await carol.create(flat(f"{key}-queued", HOLD, resourcePoolId="solo"))
    await carol.wait_for_status(queued, "Queued")
    await carol.wait_for_status(done, "Succeeded")
    await carol.wait_for_status(failed, "Failed")
    await carol.wait_for_status(stopped, "Running")
    await carol.call("POST", f"/api/jobs/{stopped}/stop")
    await carol.wait_for_status(stopped, "Stopped")

    # Answers: the console's word in `status`, the exact enum in `jobStatus`.
    expected = {
        done: ("Completed", "SUCCEEDED"), failed: ("Failed", "FAILED"),
        stopped: ("Stopped", "STOPPED"), running: ("Running", "RUNNING"),
        queued: ("Pending", "QUEUED"),
    }
    page = await listed(carol, keyword=key)
    assert {j["jobId"]: (j["status"], j["jobStatus"]) for j in page["jobs"]} == expected
    for job_id, words in expected.items():
        detail = (await carol.call("GET", f"/api/jobs/{job_id}"))["data"]
        assert (detail["status"], detail["jobStatus"]) == words
        assert (detail["job"]["status"], detail["job"]["jobStatus"]) == words

    # Every word of the console's filters and tags, in its casing and others, and the
    # enum's own names; Pending means pending or queued.
    selects = {
        "Pending": {queued}, "Running": {running}, "Stopped": {stopped},
        "Completed": {done}, "ManualTermination": {stopped}, "Error": {failed},
        "Failed": {failed}, "Stopping": set(), "Queued": {queued}, "Succeeded": {done},
    }
    for word, ids in selects.items():
        for spelling in (word, word.upper(), word.lower()):
            page = await listed(carol, keyword=key, status=spelling)
            assert {j["jobId"] for j in page["jobs"]} == ids, (spelling, page)
            assert page["totalCount"] == len(ids)
    both = await listed(carol, keyword=key, status=["Completed", "Error", "pending"])
    assert {j["jobId"] for j in both["jobs"]} == {done, failed, queued}
    unknown = await carol.call("POST", "/api/jobs", json={"status": "Sleeping"}, status=400)
    assert unknown["field"] == "status" and "ManualTermination" in unknown["message"]

    # GraphQL keeps its enum.
    graphql = await carol.graphql.execute("query($id: ID!) { job(id: $id) { status } }", {"id": done})
    assert graphql["job"]["status"] == "SUCCEEDED"

    # A queued job shows as Pending, so the console offers "stop" for it; and it stops.
    stop = await carol.call("POST", f"/api/jobs/{queued}/stop")
    assert stop["data"]["jobId"] == queued and stop["data"]["status"] in {"Stopping", "Stopped"}
    assert stop["data"]["jobStatus"] in {"STOPPING", "STOPPED"} and stop["data"]["userId"] == "carol"
    assert (await carol.wait_for_status(queued, "Stopped"))["status"] == "Stopped"
    await carol.call("POST", f"/api/jobs/{running}/stop")
    await carol.wait_for_status(running, "Stopped")


async def test_an_unpaged_list_answers_the_newest_hundred(carol):
    key = tag()
    ids = [await carol.create(flat(f"{key}-{i:02}", "pass")) for i in range(15)]
    for job_id in ids:
        await carol.wait_for_status(job_id, "Succeeded")

    # The console's request: no pageNumber, no pageSize; it pages on the client.
    unpaged = await listed(carol, keyword=key)
    assert unpaged["totalCount"] == 15
    assert [j["jobId"] for j in unpaged["jobs"]] == ids[::-1]  # newest first
    everything = await listed(carol)
    assert len(everything["jobs"]) == min(everything["totalCount"], 100)
    assert set(ids) <= {j["jobId"] for j in everything["jobs"]}
    assert everything == (await carol.call("POST", "/api/jobs"))["data"]  # no body at all

    # Explicit paging is unchanged.
    page1 = await listed(carol, keyword=key, pageNumber=1, pageSize=10)
    page2 = await listed(carol, keyword=key, pageNumber=2, pageSize=10)
    assert [j["jobId"] for j in page1["jobs"]] == ids[::-1][:10]
    assert [j["jobId"] for j in page2["jobs"]] == ids[::-1][10:]
    assert page1["totalCount"] == page2["totalCount"] == 15
    too_big = await carol.call("POST", "/api/jobs", json={"pageSize": 101}, status=400)
    assert too_big["field"] == "pageSize"


# The console's "native" template, as issue 10 gives it: empty lists for resources and
# labels, and datasources.
NATIVE = {
    "name": "native-template",
    "queue": "default",
    "jobType": "PyTorchJob",
    "command": "echo native",
    "jobSpec": {"replicas": 1, "image": IMAGE, "envs": [], "resources": []},
    "labels": [],
    "datasources": [{"name": "ds-imagenet", "type": "PFS", "mountPath": "/mnt/data"}],
}


async def test_the_native_template_creates_a_job(console, carol):
    for task_params in (NATIVE, json.dumps(NATIVE)):
        created = await carol.call("POST", "/api/jobs/create", json={"taskParams": task_params})
        assert created["message"] == "训练任务创建成功"
        job_id = created["data"]["jobId"]
        job = await carol.wait_for_status(job_id, "Succeeded", "Failed")
        assert job["status"] == "Completed" and job["name"] == "native-template"
        assert job["command"] == ["/bin/sh", "-c", "echo native"]
        config = job["config"]
        # Nothing asked: the core's defaults, as for a job that never named them.
        assert config["resources"] == {"cpus": None, "memory": None, "gpu": 0}
        assert not config.get("labels") and not config.get("envs")
        logs = await carol.call("GET", f"/api/jobs/{job_id}/pods/{job_id}-0/logs")
        assert logs["data"]["logs"] == "native\n"
    # datasources (and jobType) are accepted, not applied, and logged.
    line = console.server.wait_for_output("rest.create.ignored_fields", timeout=30)
    assert "datasources" in line and "native" in line

    # A non-empty list where an object belongs is still refused, saying where.
    wrong = {**NATIVE, "jobSpec": {**NATIVE["jobSpec"], "resources": [{"cpus": 1}]}}
    refused = await carol.call("POST", "/api/jobs/create", json={"taskParams": wrong}, status=400)
    assert refused["field"] == "taskParams.jobSpec.resources"
