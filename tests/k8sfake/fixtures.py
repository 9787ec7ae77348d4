"""pytest fixtures for the fake Kubernetes API server (TEST DOUBLE; never shipped).

Use in a conftest.py::

    from tests.k8sfake.fixtures import fake_k8s, k8s_client_config  # noqa: F401

or build your own with ``FakeKubernetes.running(...)``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest_asyncio

from .controllers import Delays
from .fake import FakeKubernetes

TOKEN = "test-token"


@pytest_asyncio.fixture
async def fake_k8s() -> AsyncIterator[FakeKubernetes]:
    """A fresh fake per test (zero stage delays), on 127.0.0.1:<free port>."""
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    os.environ["no_proxy"] = "127.0.0.1,localhost"
    async with FakeKubernetes.running(token=TOKEN, delays=Delays()) as fake:
        yield fake
        assert not fake.controller_errors, fake.controller_errors


@pytest_asyncio.fixture
async def k8s_client_config(fake_k8s: FakeKubernetes):  # type: ignore[no-untyped-def]
    """A ``kubernetes_asyncio.client.Configuration`` pointing at ``fake_k8s``."""
    from kubernetes_asyncio import client, config

    cfg = client.Configuration()
    await config.load_kube_config_from_dict(fake_k8s.kubeconfig_dict(), client_configuration=cfg)
    return cfg
