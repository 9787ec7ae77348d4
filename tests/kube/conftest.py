"""The real `jobgraph serve` process on kubernetes pools backed by the fake API server.

The fake (tests/k8sfake, a TEST DOUBLE) runs in this test session's event loop on
127.0.0.1; the server process reaches it through a kubeconfig file written by
`fake.write_kubeconfig`. Two fakes: `cluster` is shared by the flow tests, `faulty` by the
fault tests (which cut connections and compact history), each with its own server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Running
from tests.k8sfake import Delays, FakeKubernetes
from tests.support.server import GraphQLClient

os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"

POOLS = """
pools:
  - id: k8s
    runtime: kubernetes
    kubeconfig: {kubeconfig}
    context: fake
    namespace: default
    queueing: none
    queues: [default]
    defaultImage: registry.example/train:1
    nodeSelector: {{"nvidia.com/gpu.present": "true"}}
    tolerations:
      - {{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}
  - id: kueue
    runtime: kubernetes
    kubeconfig: {kubeconfig}
    queueing: kueue
    queues: [team-a, team-b]
    defaultImage: registry.example/train:1
  - id: bare
    runtime: kubernetes
    kubeconfig: {kubeconfig}
"""


class Cluster:
    """A fake cluster, the server that uses it, and clients of that server."""

    def __init__(self, fake: FakeKubernetes, env: Running) -> None:
        self.fake = fake
        self.env = env
        self.alice = env.client(env.alice_token)
        self.bob = env.client(env.bob_token)
        self.admin = env.client(env.admin_token)

    @property
    def url(self) -> str:
        return self.env.server.url

    def graphql(self, token: str) -> GraphQLClient:
        return self.env.client(token)


async def _cluster(server_factory, tmp_path_factory) -> AsyncIterator[Cluster]:
    async with FakeKubernetes.running(token="test-token", delays=Delays(), kueue=True) as fake:
        folder = Path(tmp_path_factory.mktemp("kube"))
        kubeconfig = fake.write_kubeconfig(folder / "kubeconfig")
        pools = folder / "pools.yaml"
        pools.write_text(POOLS.format(kubeconfig=kubeconfig))
        server = await server_factory(JOBGRAPH_POOLS_FILE=str(pools))
        env = Running(server)
        # The fake answers in this loop, so wait for the server without blocking it.
        await asyncio.to_thread(server.start)
        cluster = Cluster(fake, env)
        try:
            yield cluster
        finally:
            for client in env.clients:
                await client.close()
            await asyncio.to_thread(server.stop)
            assert not fake.controller_errors, fake.controller_errors


@pytest.fixture(scope="session")
async def cluster(server_factory, tmp_path_factory) -> AsyncIterator[Cluster]:
    async for c in _cluster(server_factory, tmp_path_factory):
        yield c


@pytest.fixture(scope="session")
async def faulty(server_factory, tmp_path_factory) -> AsyncIterator[Cluster]:
    async for c in _cluster(server_factory, tmp_path_factory):
        yield c


def shell_job(script: str, tmp_path: Path, **spec) -> dict:
    """A job input running `script` in /bin/sh, with a private HOME (root's shell start-up
    files here run slow tools)."""
    spec.setdefault("name", "kube test")
    spec.setdefault("resourcePoolId", "k8s")
    envs = list(spec.pop("envs", []))
    envs.append({"name": "HOME", "value": str(tmp_path)})
    return {**spec, "command": ["/bin/sh", "-c", script], "envs": envs}
