"""Run it again (issue 13): `rerunJob` makes a new job from an ended job's spec, with
overrides, through the create path; `Job.rerunOf` names the old one."""

from __future__ import annotations

import pytest

from tests.live.terminal import audit_entries
from tests.support.jobs import JOB_FIELDS, PY, create_job, logs, wait_for_status
from tests.support.server import GraphQLClient

RERUN_JOB = f"""
mutation Rerun($input: RerunJobInput!) {{
  rerunJob(input: $input) {{
    job {{ {JOB_FIELDS} rerunOf sharedWithGroups envs {{ name value }} }}
    userErrors {{ field message code }}
  }}
}}
"""
SHARE_JOB = """
mutation Share($id: ID!, $groups: [String!]!) {
  shareJob(input: {jobId: $id, groups: $groups}) { userErrors { code } }
}
"""
RERUN_OF = "query RerunOf($id: ID!) { job(id: $id) { rerunOf } }"
# Prints the three variables, so the log shows which values the replica got.
PRINT_ENVS = [PY, "-c", "import os; print(os.environ.get('A'), os.environ.get('B'), os.environ.get('C'))"]
SLEEP = [PY, "-c", "import time; time.sleep(600)"]


async def rerun(client: GraphQLClient, job_id: str, **fields) -> dict:
    data = await client.execute(RERUN_JOB, {"input": {"jobId": job_id, **fields}})
    payload = data["rerunJob"]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload["job"]


async def rerun_errors(client: GraphQLClient, job_id: str, **fields) -> list[dict]:
    data = await client.execute(RERUN_JOB, {"input": {"jobId": job_id, **fields}})
    assert data["rerunJob"]["job"] is None
    return data["rerunJob"]["userErrors"]


async def ended(client: GraphQLClient, *statuses: str, **spec) -> dict:
    job = await create_job(client, **spec)
    return await wait_for_status(client, job["jobId"], *statuses)


async def test_a_rerun_runs_the_same_spec_with_the_overrides(alice, admin):
    old = await ended(
        alice, "SUCCEEDED", name="训练 again", command=PRINT_ENVS, queue="default", priority=1,
        envs=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], labels={"team": "nlp"},
        maxRetries=1, timeoutSeconds=300,
    )
    new = await rerun(alice, old["jobId"], overrides={
        "priority": 5, "queue": "high",
        "envs": [{"name": "C", "value": "4"}, {"name": "B", "value": "3"}],
    })
    assert new["jobId"] != old["jobId"] and new["rerunOf"] == old["jobId"]
    assert new["owner"] == "alice" and new["sharedWithGroups"] == []
    assert (new["priority"], new["queue"]) == (5, "high")
    # Merged by name: B replaced in its place, C added, A kept.
    assert new["envs"] == [
        {"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"},
    ]
    kept = ("name", "command", "image", "resourcePoolId", "replicas")
    assert {k: new[k] for k in kept} == {k: old[k] for k in kept}
    assert {k: new["config"][k] for k in ("labels", "maxRetries", "timeoutSeconds", "resources")} == {
        k: old["config"][k] for k in ("labels", "maxRetries", "timeoutSeconds", "resources")
    }
    done = await wait_for_status(alice, new["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED"
    assert (await logs(alice, new["jobId"], f"{new['jobId']}-0")).strip() == "1 3 4"
    # The old job is as it was, and is no rerun itself.
    assert (await logs(alice, old["jobId"], f"{old['jobId']}-0")).strip() == "1 2 None"
    assert (await alice.execute(RERUN_OF, {"id": old["jobId"]}))["job"]["rerunOf"] is None
    entries = await audit_entries(admin, action="job.rerun", jobId=new["jobId"])
    assert [(e["actor"], e["outcome"], e["detail"]) for e in entries] == [
        ("alice", "allowed", f"rerun of {old['jobId']} (priority 5; queue high; envs C, B)")
    ]


async def test_without_overrides_it_is_the_same_job_again(alice):
    old = await ended(alice, "SUCCEEDED", command=PRINT_ENVS, envs=[{"name": "A", "value": "x"}])
    new = await rerun(alice, old["jobId"])
    assert new["rerunOf"] == old["jobId"] and new["config"] == old["config"]
    await wait_for_status(alice, new["jobId"], "SUCCEEDED")
    # A rerun of a rerun names its own origin.
    again = await rerun(alice, new["jobId"], overrides={})
    assert again["rerunOf"] == new["jobId"]


async def test_any_final_status_may_run_again_but_not_a_job_still_going(alice):
    failed = await ended(alice, "FAILED", command=[PY, "-c", "raise SystemExit(3)"])
    assert (await rerun(alice, failed["jobId"]))["rerunOf"] == failed["jobId"]

    running = await create_job(alice, command=SLEEP)
    await wait_for_status(alice, running["jobId"], "RUNNING")
    errors = await rerun_errors(alice, running["jobId"])
    assert errors == [{
        "field": "jobId", "code": "CONFLICT",
        "message": f"job {running['jobId']!r} is still RUNNING; only a job that has ended "
        "(SUCCEEDED, FAILED or STOPPED) can be run again: wait for it or stop it",
    }]
    await alice.execute(
        "mutation Stop($id: ID!) { stopJob(input: {jobId: $id}) { userErrors { code } } }",
        {"id": running["jobId"]},
    )
    await wait_for_status(alice, running["jobId"], "STOPPED")
    new = await rerun(alice, running["jobId"], overrides={"queue": "high"})
    assert new["rerunOf"] == running["jobId"]
    await alice.execute(
        "mutation Stop($id: ID!) { stopJob(input: {jobId: $id}) { userErrors { code } } }",
        {"id": new["jobId"]},
    )


async def test_only_the_owner_or_an_admin_may(running, alice, bob, admin):
    old = await ended(alice, "SUCCEEDED", command=[PY, "-c", "pass"])
    errors = await rerun_errors(bob, old["jobId"])
    assert [e["code"] for e in errors] == ["NOT_FOUND"]

    reader = running.client(running.server.cli("token", "create", "--user", "reader", "--group", "readers"))
    await alice.execute(SHARE_JOB, {"id": old["jobId"], "groups": ["readers"]})
    assert (await reader.execute(RERUN_OF, {"id": old["jobId"]}))["job"]["rerunOf"] is None
    errors = await rerun_errors(reader, old["jobId"])
    assert [e["code"] for e in errors] == ["FORBIDDEN"]
    assert "read-only" in errors[0]["message"]
    refused = await audit_entries(admin, action="job.rerun", outcome="refused", jobId=old["jobId"])
    assert [e["actor"] for e in refused] == ["bob", "reader"]

    # An admin's rerun is the admin's job (checked against the admin's rights).
    by_admin = await rerun(admin, old["jobId"])
    assert by_admin["owner"] == "root" and by_admin["rerunOf"] == old["jobId"]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"queue": "nope"}, "queue", "pool 'local' has no queue 'nope'"),
        ({"priority": 5000}, "priority", "priority must be between"),
        ({"envs": [{"name": "1A", "value": "x"}]}, "envs", "'1A' is not valid"),
        ({"envs": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "envs",
         "'A' is given twice in the overrides"),
    ],
)
async def test_bad_overrides_are_refused_and_nothing_is_created(alice, overrides, field, words):
    old = await ended(alice, "SUCCEEDED", command=[PY, "-c", "pass"])
    before = (await alice.execute("{ jobs(first: 1) { totalCount } }"))["jobs"]["totalCount"]
    errors = await rerun_errors(alice, old["jobId"], overrides=overrides)
    assert [(e["code"], e["field"]) for e in errors] == [("INVALID_ARGUMENT", field)]
    assert words in errors[0]["message"]
    after = (await alice.execute("{ jobs(first: 1) { totalCount } }"))["jobs"]["totalCount"]
    assert after == before


async def test_an_unknown_job_is_not_found(alice):
    errors = await rerun_errors(alice, "j-00000000")
    assert errors == [{"field": "jobId", "code": "NOT_FOUND", "message": "job 'j-00000000' not found"}]


async def test_the_same_idempotency_key_answers_the_same_rerun(alice):
    old = await ended(alice, "SUCCEEDED", command=[PY, "-c", "pass"])
    first = await rerun(alice, old["jobId"], idempotencyKey=f"rerun-{old['jobId']}")
    second = await rerun(alice, old["jobId"], idempotencyKey=f"rerun-{old['jobId']}")
    assert second["jobId"] == first["jobId"]
