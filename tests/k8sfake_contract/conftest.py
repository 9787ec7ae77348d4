"""Fixtures: a fresh fake per test and unmodified kubernetes_asyncio clients pointed at it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from kubernetes_asyncio import client, config
from kubernetes_asyncio.stream import WsApiClient

from tests.k8sfake import Delays, FakeKubernetes

os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeKubernetes]:
    async with FakeKubernetes.running(token="test-token", delays=Delays()) as f:
        yield f
        assert not f.controller_errors, f.controller_errors


@pytest_asyncio.fixture
async def cfg(fake: FakeKubernetes) -> client.Configuration:
    c = client.Configuration()
    await config.load_kube_config_from_dict(fake.kubeconfig_dict(), client_configuration=c)
    return c


@pytest_asyncio.fixture
async def api(cfg: client.Configuration) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(cfg) as a:
        yield a


@pytest_asyncio.fixture
async def batch(api: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api)


@pytest_asyncio.fixture
async def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest_asyncio.fixture
async def ws_core(cfg: client.Configuration) -> AsyncIterator[client.CoreV1Api]:
    async with WsApiClient(cfg) as ws:
        yield client.CoreV1Api(api_client=ws)


def job_manifest(name: str, command: list[str] | None = None, *, completions: int = 1,
                 parallelism: int = 1, indexed: bool = False, backoff_limit: int | None = None,
                 labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                 env: list[dict[str, Any]] | None = None, image: str = "busybox:1.36",
                 restart_policy: str = "Never", **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if command is not None:
        container["command"] = command
    if env:
        container["env"] = env
    body: dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"completions": completions, "parallelism": parallelism,
                 "template": {"metadata": {"annotations": annotations or {}},
                              "spec": {"restartPolicy": restart_policy,
                                       "containers": [container]}},
                 **spec},
    }
    if indexed:
        body["spec"]["completionMode"] = "Indexed"
    if backoff_limit is not None:
        body["spec"]["backoffLimit"] = backoff_limit
    return body
