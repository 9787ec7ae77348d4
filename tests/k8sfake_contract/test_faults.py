"""Fault hooks: injected 500s, dropped connections, delays, unreachable-then-back."""

from __future__ import annotations

import json

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8sfake import FakeKubernetes

from .conftest import job_manifest


async def test_fail_next_request_with_500_then_recover(fake: FakeKubernetes,
                                                       batch: client.BatchV1Api) -> None:
    fake.fail_next(status=500, method="GET", path="/apis/batch/v1")
    with pytest.raises(ApiException) as e:
        await batch.list_namespaced_job("default")
    assert e.value.status == 500 and json.loads(e.value.body)["reason"] == "InternalError"
    assert (await batch.list_namespaced_job("default")).items == []
    fake.fail_next(status=429)
    with pytest.raises(ApiException) as e:
        await batch.list_namespaced_job("default")
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "1"
    # aiohttp silently retries an idempotent request once when a reused keep-alive connection
    # is dropped, so a single drop is invisible to the caller...
    fake.fail_next(drop=True)
    assert (await batch.list_namespaced_job("default")).items == []
    assert [r.status for r in fake.requests[-2:]] == [None, 200]
    # ...and two in a row surface as a client connection error
    fake.fail_next(2, drop=True)
    with pytest.raises(aiohttp.ClientError):
        await batch.list_namespaced_job("default")
    assert (await batch.list_namespaced_job("default")).items == []


async def test_unreachable_then_back_on_the_same_port(fake: FakeKubernetes,
                                                      batch: client.BatchV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest("u", ["true"], suspend=True))
    port = fake.port
    await fake.go_offline()
    with pytest.raises(aiohttp.ClientConnectionError):
        await batch.list_namespaced_job("default")
    await fake.go_online()
    assert fake.port == port
    assert [j.metadata.name for j in (await batch.list_namespaced_job("default")).items] == ["u"]


async def test_a_page_of_reads_is_recorded(fake: FakeKubernetes, batch: client.BatchV1Api) -> None:
    before = len(fake.requests)
    # ...the service under test would serve a page of jobs here...
    assert fake.requests[before:] == []
    await batch.list_namespaced_job("default", label_selector="a=b")
    rec = fake.requests[-1]
    assert rec.method == "GET" and rec.query == {"labelSelector": ["a=b"]} and rec.status == 200
