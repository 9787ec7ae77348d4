"""Credentials that expire (issue 12, point 6): a kubeconfig whose exec plugin hands out
tokens that the fake API server stops accepting when they expire.
The runtime renews them: after a 401 it runs the plugin again and sends the request once
more, for ordinary calls, watches and the exec terminal alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.domain.jobs import JobStatus
from app.domain.pools import ResourcePool
from app.runtime.kubernetes import KubernetesRuntime
from tests.k8sfake import Delays, FakeKubernetes
from tests.kube.test_runtime import Harness

LIFETIME = 900.0  # EKS hands out tokens of about 15 minutes


def plugin_runs(log_file: Path) -> list[str]:
    return log_file.read_text().split() if log_file.exists() else []


async def test_tokens_from_an_exec_plugin_are_renewed_when_they_expire(tmp_path):
    async with FakeKubernetes.running(token="static-token-nobody-has", delays=Delays()) as fake:
        runs = tmp_path / "plugin.log"
        kubeconfig = fake.write_exec_kubeconfig(
            tmp_path / "kubeconfig", lifetime=LIFETIME, log_file=runs
        )
        pool = ResourcePool(id="p", runtime="kubernetes", options={"kubeconfig": str(kubeconfig)})
        runtime = KubernetesRuntime(pool, archive_dir=tmp_path / "archive")
        await runtime.start([])
        h = Harness(fake, runtime, tmp_path)
        consumer = asyncio.create_task(h.consume())
        try:
            first = h.job("sleep 600")
            await runtime.submit(first)
            await h.status(first.job_id, JobStatus.RUNNING)
            assert len(plugin_runs(runs)) == 1

            fake.token_issuer.expire_issued()  # the plugin's token has expired
            before = len(fake.requests)
            # The watches' next requests (after a reconnect) meet the 401 too.
            fake.close_all_watches()
            second = h.job("sleep 600")
            await runtime.submit(second)  # refused once with 401, renewed, sent again
            await h.status(second.job_id, JobStatus.RUNNING)
            refused = [r for r in fake.requests[before:] if r.status == 401]
            assert refused, "the expired token was never refused: the test proves nothing"
            # One new token for all the refused requests that were in flight together.
            assert len(plugin_runs(runs)) == 2
            assert fake.requests[-1].headers["Authorization"] == f"Bearer {plugin_runs(runs)[-1]}"

            # The exec upgrade is a plain HTTP request: renewed there as well.
            fake.token_issuer.expire_issued()
            pod = next(u.pods for u in reversed(h.updates)
                       if u.job_id == second.job_id and u.pods)[0].name
            terminal = await runtime.open_terminal(second.job_id, pod, rows=24, cols=80)
            await terminal.close()
            assert len(plugin_runs(runs)) == 3

            await runtime.stop(first.job_id)
            await h.status(first.job_id, JobStatus.STOPPED)
        finally:
            consumer.cancel()
            await runtime.close()
            assert not fake.controller_errors


async def test_a_token_whose_expiry_is_known_is_renewed_before_it_expires(tmp_path):
    async with FakeKubernetes.running(token="static-token-nobody-has", delays=Delays()) as fake:
        runs = tmp_path / "plugin.log"
        kubeconfig = fake.write_exec_kubeconfig(
            tmp_path / "kubeconfig", lifetime=LIFETIME, log_file=runs, report_expiry=True
        )
        pool = ResourcePool(id="p", runtime="kubernetes", options={"kubeconfig": str(kubeconfig)})
        runtime = KubernetesRuntime(pool, archive_dir=tmp_path / "archive")
        await runtime.start([])
        h = Harness(fake, runtime, tmp_path)
        consumer = asyncio.create_task(h.consume())
        try:
            first = h.job("true")
            await runtime.submit(first)
            assert len(plugin_runs(runs)) == 1
            # Ten minutes later: the token expires within the five minutes the client
            # keeps in hand, so the next request runs the plugin first — no 401 at all.
            loader = runtime._credentials.loader
            assert loader is not None
            loader.exec_plugin_expiry = datetime.now(UTC) + timedelta(minutes=4)
            before = len(fake.requests)
            await runtime.submit(h.job("true"))
            assert len(plugin_runs(runs)) == 2
            assert not [r for r in fake.requests[before:] if r.status == 401]
            assert fake.requests[-1].headers["Authorization"] == f"Bearer {plugin_runs(runs)[-1]}"

            # A 401 renews through a reload; the early renewal must not put the loader's
            # older token back afterwards.
            fake.token_issuer.expire_issued()
            await runtime.submit(h.job("true"))
            assert len(plugin_runs(runs)) == 3
            before = len(fake.requests)
            await runtime.submit(h.job("true"))
            assert not [r for r in fake.requests[before:] if r.status == 401]
            assert len(plugin_runs(runs)) == 3
        finally:
            consumer.cancel()
            await runtime.close()
