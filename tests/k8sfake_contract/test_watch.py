"""Watch: bookmarks, reconnect with the last RV, 410 Expired, selector filtering."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8sfake import FakeKubernetes

from .conftest import job_manifest


async def test_reconnect_after_server_close_resumes_from_bookmark_rv(
        fake: FakeKubernetes, batch: client.BatchV1Api) -> None:
    first = await batch.create_namespaced_job("default",
                                              job_manifest("w1", ["true"], suspend=True))
    await fake.wait_idle()
    start_rv = (await batch.list_namespaced_job("default")).metadata.resource_version
    w = watch.Watch()
    stream = w.stream(batch.list_namespaced_job, "default", resource_version=start_rv,
                      allow_watch_bookmarks=True)
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        async for ev in stream:
            if ev["type"] == "BOOKMARK":  # object stays a dict; only the RV is taken
                seen.append(("BOOKMARK", ev["object"]["metadata"]["resourceVersion"]))
                continue
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["object"].metadata.name == "w3":
                return

    task = asyncio.create_task(consume())
    await batch.create_namespaced_job("default", job_manifest("w2", ["true"], suspend=True))
    await fake.wait_for(lambda: ("ADDED", "w2") in seen)
    await fake.wait_idle()
    await fake.wait_for(lambda: fake.send_bookmarks() or True)
    bookmark_rv = str(fake.store.counter)
    await fake.wait_for(lambda: w.resource_version == bookmark_rv)
    assert fake.close_all_watches() == 1  # server-side EOF → the client re-issues the watch
    await batch.create_namespaced_job("default", job_manifest("w3", ["true"], suspend=True))
    await asyncio.wait_for(task, 10)
    await w.close()
    assert ("ADDED", "w1") not in seen and ("ADDED", "w3") in seen
    watches = [r for r in fake.calls("GET", "/apis/batch/v1/namespaces/default/jobs")
               if r.param("watch") == "True"]
    assert [r.param("resourceVersion") for r in watches] == [start_rv, bookmark_rv]
    assert watches[0].param("allowWatchBookmarks") == "True"
    assert first.metadata.name == "w1"


async def test_expired_rv_raises_after_one_retry_and_relist_works(
        fake: FakeKubernetes, batch: client.BatchV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest("e1", ["true"], suspend=True))
    await fake.wait_idle()
    old_rv = (await batch.list_namespaced_job("default")).metadata.resource_version
    await batch.create_namespaced_job("default", job_manifest("e2", ["true"], suspend=True))
    await fake.wait_idle()
    current = fake.compact()
    before = len(fake.requests)
    w = watch.Watch()
    with pytest.raises(ApiException) as e:
        async for _ in w.stream(batch.list_namespaced_job, "default", resource_version=old_rv):
            pass
    await w.close()
    assert e.value.status == 410
    assert e.value.reason == f"Expired: too old resource version: {old_rv} ({current})"
    assert len(fake.requests) - before == 2  # the documented single retry with the same RV
    # re-list and restart from the list's RV
    listing = await batch.list_namespaced_job("default")
    assert sorted(j.metadata.name for j in listing.items) == ["e1", "e2"]
    w = watch.Watch()
    got: list[str] = []

    async def consume() -> None:
        async for ev in w.stream(batch.list_namespaced_job, "default",
                                 resource_version=listing.metadata.resource_version):
            got.append(ev["object"].metadata.name)
            return

    task = asyncio.create_task(consume())
    await fake.wait_for(lambda: fake.store.watchers)
    await batch.create_namespaced_job("default", job_manifest("e3", ["true"], suspend=True))
    await asyncio.wait_for(task, 10)
    await w.close()
    assert got == ["e3"]


async def test_watch_selectors_and_timeout(fake: FakeKubernetes, batch: client.BatchV1Api,
                                           core: client.CoreV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest(
        "s1", ["true"], suspend=True, labels={"app": "a"}))
    await batch.create_namespaced_job("default", job_manifest(
        "s2", ["true"], suspend=True, labels={"app": "b"}))
    await fake.wait_idle()
    w = watch.Watch()
    names = [ev["object"].metadata.name async for ev in w.stream(
        batch.list_namespaced_job, "default", label_selector="app=a", timeout_seconds=1)]
    assert set(names) == {"s1"}  # initial ADDED (no RV) then the stream ends at timeoutSeconds
    evs = [(ev["type"], ev["object"].reason) async for ev in watch.Watch().stream(
        core.list_namespaced_event, "default", field_selector="involvedObject.name=s2,"
        "reason=Suspended", timeout_seconds=1)]
    assert evs == [("ADDED", "Suspended")]
