"""The service as a process: first start, health, one server per data dir, restarts."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess

import httpx

from tests.support.jobs import PY, create_job, get_job, logs, wait_for_status
from tests.support.server import JOBGRAPH, GraphQLClient, Server, free_port


async def test_first_start_prints_a_working_admin_token(server_factory):
    server: Server = await server_factory()
    server.start()
    try:
        line = server.wait_for_output("jg_", timeout=5)
        token = re.search(r"(jg_[A-Za-z0-9_-]+)", line).group(1)
        assert "admin token" in "".join(server.output)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["database"] == "ok"
        client = GraphQLClient(server.url, token)
        data = await client.execute("{ jobs { totalCount } resourcePools { id } }")
        await client.close()
        assert data == {"jobs": {"totalCount": 0}, "resourcePools": [{"id": "local"}]}

        # A second server on the same data dir is refused with a clear message.
        second = await asyncio.create_subprocess_exec(
            JOBGRAPH, "serve", "--port", str(free_port()),
            env=server.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            stdout, stderr = await second.communicate()
        assert second.returncode != 0
        assert "already using the data directory" in (stdout + stderr).decode()
    finally:
        server.stop()
    # The token list of the restarted server is not empty any more: no second banner.
    server.start()
    try:
        assert not any("admin token was created" in line for line in server.output)
    finally:
        server.stop()


async def test_jobs_survive_a_restart_of_the_service(server_factory, tmp_path):
    server: Server = await server_factory()
    token = server.token("carol")
    server.start()
    client = GraphQLClient(server.url, token)
    gate = tmp_path / "gate"
    script = (
        "import os, sys, time\nprint('before', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
        "print('after'); sys.exit(4)"
    )
    try:
        survivor = await create_job(client, command=[PY, "-c", script])
        ends_while_down = await create_job(
            client, command=[PY, "-c", f"import os,time\nwhile not os.path.exists({str(gate)!r}+'2'): time.sleep(0.02)\nprint('done')"]
        )
        await wait_for_status(client, survivor["jobId"], "RUNNING")
        await wait_for_status(client, ends_while_down["jobId"], "RUNNING")
        server.stop()  # the jobs keep running without their server

        (tmp_path / "gate2").touch()  # this one ends while nobody supervises it
        server.start()
        done = await wait_for_status(client, ends_while_down["jobId"], "SUCCEEDED", "FAILED")
        assert done["status"] == "SUCCEEDED" and done["exitCode"] == 0
        still = await get_job(client, survivor["jobId"])
        assert still["status"] == "RUNNING"  # adopted again

        gate.touch()
        done = await wait_for_status(client, survivor["jobId"], "SUCCEEDED", "FAILED")
        assert done["status"] == "FAILED" and done["exitCode"] == 4
        text = await logs(client, survivor["jobId"], f"{survivor['jobId']}-0")
        assert text.splitlines() == ["before", "after"]
    finally:
        await client.close()
        server.stop()


def test_bad_configuration_is_refused_with_what_to_fix(tmp_path):
    pools = tmp_path / "pools.yaml"
    cases = [
        ({"JOBGRAPH_POOLS_FILE": str(pools)}, "pools: [ {id: Not_A_Label, runtime: local} ]", "must be a DNS label"),
        ({"JOBGRAPH_POOLS_FILE": str(pools)}, "pools: [ {id: k, runtime: kubernetes, queueing: slurm} ]", "queueing must be one of"),
        ({"JOBGRAPH_RATE_LIMIT_BURST": "lots"}, "", "JOBGRAPH_RATE_LIMIT_BURST"),
        ({"JOBGRAPH_OIDC_ISSUER": "https://idp.example"}, "", "JOBGRAPH_OIDC_AUDIENCE is required"),
        ({"JOBGRAPH_CORS_ORIGINS": "https://ok.example, console.example/app"}, "",
         "JOBGRAPH_CORS_ORIGINS: Value error, 'console.example/app' is not an origin"),
    ]
    for extra, text, words in cases:
        pools.write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBGRAPH_")}
        env.update(JOBGRAPH_DATA_DIR=str(tmp_path / "data"), **extra)
        # The bound only turns a server that wrongly starts into a failure rather than a
        # hang: a refusal takes a fraction of that even on a busy machine.
        result = subprocess.run([JOBGRAPH, "serve", "--port", str(free_port())], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result
        assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
