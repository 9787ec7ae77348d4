"""Jobs run as real processes through the real server, driven over GraphQL."""

from __future__ import annotations

import asyncio
import os

from tests.support.jobs import (
    PY,
    STOP_JOB,
    create_job,
    get_job,
    logs,
    wait_for_status,
)


async def test_a_job_that_prints_and_exits_succeeds_with_logs_and_events(alice):
    job = await create_job(
        alice,
        name="打印 hello",
        command=[PY, "-c", "print('hello'); print('world')"],
        image="registry.example/train:1",
        envs=[{"name": "GREETING", "value": "hi"}],
    )
    assert job["status"] in {"PENDING", "QUEUED", "RUNNING", "SUCCEEDED"}
    assert job["jobId"].startswith("j-") and job["owner"] == "alice"
    assert (job["resourcePoolId"], job["queue"]) == ("local", "default")

    done = await wait_for_status(alice, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED", done
    assert done["exitCode"] == 0
    assert done["name"] == "打印 hello"
    assert done["startedAt"].endswith("Z") and done["finishedAt"].endswith("Z")
    assert done["createdAt"] <= done["startedAt"] <= done["finishedAt"]
    assert done["config"]["envs"] == [{"name": "GREETING", "value": "hi"}]
    [pod] = done["pods"]
    assert pod["name"] == f"{job['jobId']}-0"
    assert pod["phase"] == "Succeeded" and pod["exitCode"] == 0

    text = await logs(alice, job["jobId"], pod["name"])
    assert text.splitlines() == ["hello", "world"]
    assert (await logs(alice, job["jobId"], pod["name"], tail=1)).splitlines() == ["world"]
    assert (await logs(alice, job["jobId"], pod["name"], keyword="wor")).splitlines() == ["world"]

    reasons = [e["reason"] for e in done["events"]]
    for expected in ("Created", "Queued", "Started", "Completed"):
        assert expected in reasons, reasons
    assert reasons.index("Created") < reasons.index("Started") < reasons.index("Completed")
    created = next(e for e in done["events"] if e["reason"] == "Created")
    assert "registry.example/train:1" in created["message"]  # recorded, not used locally


async def test_a_failing_job_reports_its_exit_code(alice):
    job = await create_job(alice, command=[PY, "-c", "import sys; print('boom'); sys.exit(3)"])
    done = await wait_for_status(alice, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "FAILED"
    assert done["exitCode"] == 3
    assert "3" in done["reason"]
    assert done["pods"][0]["phase"] == "Failed"
    assert any(e["reason"] == "Failed" and e["type"] == "Warning" for e in done["events"])


async def test_a_missing_program_fails_cleanly(alice):
    job = await create_job(alice, command=["/nonexistent/program-xyz"])
    done = await wait_for_status(alice, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "FAILED" and done["exitCode"] == 127


async def test_replicas_get_torchrun_variables(alice):
    script = (
        "import os; print(*(os.environ[k] for k in "
        "('RANK','WORLD_SIZE','LOCAL_RANK','MASTER_ADDR','MASTER_PORT')))"
    )
    job = await create_job(alice, command=[PY, "-c", script], replicas=2)
    done = await wait_for_status(alice, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED", done
    names = [p["name"] for p in done["pods"]]
    assert names == [f"{job['jobId']}-0", f"{job['jobId']}-1"]
    ports = set()
    for rank, name in enumerate(names):
        r, world, local, addr, port = (await logs(alice, job["jobId"], name)).split()
        assert (r, world, local, addr) == (str(rank), "2", str(rank), "127.0.0.1")
        ports.add(port)
    assert len(ports) == 1 and int(ports.pop()) > 0


async def test_a_job_waits_queued_for_a_free_slot(alice, tmp_path):
    gate = tmp_path / "gate"
    hold = f"import os,time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)"
    first = await create_job(alice, command=[PY, "-c", hold], resourcePoolId="solo")
    await wait_for_status(alice, first["jobId"], "RUNNING")
    second = await create_job(alice, command=[PY, "-c", "print('second')"], resourcePoolId="solo")
    queued = await wait_for_status(alice, second["jobId"], "QUEUED")
    assert queued["startedAt"] is None
    gate.touch()  # let the first job end; the second takes its slot
    await wait_for_status(alice, first["jobId"], "SUCCEEDED")
    done = await wait_for_status(alice, second["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED"
    first_done = await get_job(alice, first["jobId"])
    assert done["startedAt"] >= first_done["finishedAt"]


async def test_stop_ends_a_sleeping_job(alice, tmp_path):
    pidfile = tmp_path / "pid"
    job = await create_job(
        alice,
        command=["/bin/sh", "-c", f"echo $$ > {pidfile}; exec sleep 600"],
    )
    await wait_for_status(alice, job["jobId"], "RUNNING")
    async with asyncio.timeout(10):
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
    pid = int(pidfile.read_text())
    stopping = (await alice.execute(STOP_JOB, {"id": job["jobId"]}))["stopJob"]
    assert stopping["userErrors"] == []
    assert stopping["job"]["status"] in {"STOPPING", "STOPPED"}
    done = await wait_for_status(alice, job["jobId"], "STOPPED", timeout=15)
    assert done["finishedAt"] is not None
    assert any(e["reason"] == "Stopped" for e in done["events"])
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the sleep process survived the stop"

    again = (await alice.execute(STOP_JOB, {"id": job["jobId"]}))["stopJob"]
    assert again["job"] is None and again["userErrors"][0]["code"] == "CONFLICT"


async def test_retries_restart_a_failing_replica(alice, tmp_path):
    counter = tmp_path / "attempts"
    script = (
        f"import sys; p={str(counter)!r}\n"
        "n = int(open(p).read()) if __import__('os').path.exists(p) else 0\n"
        "open(p, 'w').write(str(n + 1)); print('attempt', n); sys.exit(0 if n == 2 else 1)"
    )
    job = await create_job(alice, command=[PY, "-c", script], maxRetries=2)
    done = await wait_for_status(alice, job["jobId"], "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED"
    assert counter.read_text() == "3"
    assert [e["reason"] for e in done["events"]].count("Retried") == 2


async def test_timeout_fails_with_deadline_exceeded(alice):
    job = await create_job(alice, command=["sleep", "600"], timeoutSeconds=1)
    done = await wait_for_status(alice, job["jobId"], "SUCCEEDED", "FAILED", timeout=20)
    assert done["status"] == "FAILED" and done["reason"] == "DeadlineExceeded"
