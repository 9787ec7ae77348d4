"""CRUD, Status errors, selectors, optimistic concurrency, delete propagation, auth."""

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.k8sfake import FakeKubernetes

from .conftest import job_manifest


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


async def test_create_get_defaults_and_list_shape(fake: FakeKubernetes, batch: client.BatchV1Api,
                                                  api: client.ApiClient) -> None:
    created = await batch.create_namespaced_job("default", job_manifest("j1", ["true"]))
    assert created.metadata.uid and created.metadata.generation == 1
    assert created.spec.backoff_limit == 6 and created.spec.completion_mode == "NonIndexed"
    assert created.spec.selector.match_labels == {
        "batch.kubernetes.io/controller-uid": created.metadata.uid}
    tmpl_labels = created.spec.template.metadata.labels
    assert tmpl_labels["batch.kubernetes.io/job-name"] == "j1" and tmpl_labels["job-name"] == "j1"
    assert created.spec.template.spec.containers[0].termination_message_path == \
        "/dev/termination-log"
    got = await batch.read_namespaced_job("j1", "default")
    assert int(got.metadata.resource_version) >= int(created.metadata.resource_version)
    resp = await batch.list_namespaced_job("default", _preload_content=False)
    raw = json.loads(await resp.read())
    assert raw["kind"] == "JobList" and raw["apiVersion"] == "batch/v1"
    assert "kind" not in raw["items"][0] and "continue" not in raw["metadata"]
    rec = fake.calls("POST", "/apis/batch/v1/namespaces/default/jobs")[0]
    assert rec.headers["Authorization"] == "Bearer test-token"
    assert rec.headers["Content-Type"] == "application/json"


async def test_errors_are_exact_status_bodies(batch: client.BatchV1Api,
                                              core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as e:
        await batch.read_namespaced_job("missing", "default")
    assert e.value.status == 404
    assert status_of(e.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'jobs.batch "missing" not found', "reason": "NotFound",
        "details": {"name": "missing", "group": "batch", "kind": "jobs"}, "code": 404}
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod("p", "default")
    assert status_of(e.value)["details"] == {"name": "p", "kind": "pods"}
    await batch.create_namespaced_job("default", job_manifest("dup", ["true"]))
    with pytest.raises(ApiException) as e:
        await batch.create_namespaced_job("default", job_manifest("dup", ["true"]))
    assert e.value.status == 409 and status_of(e.value)["reason"] == "AlreadyExists"
    bad = job_manifest("bad", ["true"], restart_policy="Always")
    with pytest.raises(ApiException) as e:
        await batch.create_namespaced_job("default", bad)
    body = status_of(e.value)
    assert e.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"] == ('Job.batch "bad" is invalid: spec.template.spec.restartPolicy: '
                               'Unsupported value: "Always": supported values: "OnFailure", '
                               '"Never"')
    assert body["details"]["causes"][0]["reason"] == "FieldValueNotSupported"
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_event("default", field_selector="spec.foo=bar")
    assert e.value.status == 400
    assert status_of(e.value)["message"] == "field label not supported: spec.foo"
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map("default")
    assert e.value.status == 404
    assert status_of(e.value)["message"] == "the server could not find the requested resource"
    with pytest.raises(ApiException) as e:  # server-side apply is not implemented → 415
        await batch.patch_namespaced_job("dup", "default", {"metadata": {}},
                                         _content_type="application/apply-patch+yaml",
                                         field_manager="t")
    assert e.value.status == 415 and status_of(e.value)["reason"] == "UnsupportedMediaType"


async def test_unauthorized_without_bearer(fake: FakeKubernetes) -> None:
    from kubernetes_asyncio import config
    kcfg = fake.kubeconfig_dict()
    kcfg["users"][0]["user"]["token"] = "wrong"
    c = client.Configuration()
    await config.load_kube_config_from_dict(kcfg, client_configuration=c)
    async with client.ApiClient(c) as a:
        with pytest.raises(ApiException) as e:
            await client.BatchV1Api(a).list_namespaced_job("default")
    assert e.value.status == 401
    assert status_of(e.value) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Failure", "message": "Unauthorized",
                                  "reason": "Unauthorized", "code": 401}


async def test_exec_plugin_tokens_expire_with_the_real_401(fake: FakeKubernetes,
                                                           tmp_path) -> None:
    from kubernetes_asyncio import config
    runs = tmp_path / "plugin.log"
    kubeconfig = fake.write_exec_kubeconfig(tmp_path / "kubeconfig", lifetime=900, log_file=runs)
    c = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=c)
    token = runs.read_text().strip()
    assert c.api_key["BearerToken"] == f"Bearer {token}"
    async with client.ApiClient(c) as a:
        await client.BatchV1Api(a).list_namespaced_job("default")
        fake.token_issuer.expire_issued()
        with pytest.raises(ApiException) as e:
            await client.BatchV1Api(a).list_namespaced_job("default")
    assert e.value.status == 401 and status_of(e.value)["reason"] == "Unauthorized"
    # A forged signature is refused too.
    assert not fake.token_issuer.authenticates(token[:-1] + ("0" if token[-1] != "0" else "1"))


async def test_selectors_filter_lists(fake: FakeKubernetes, batch: client.BatchV1Api) -> None:
    for name, labels in [("a", {"team": "x", "tier": "gpu"}), ("b", {"team": "y"}),
                         ("c", {"tier": "cpu"})]:
        await batch.create_namespaced_job(
            "default", job_manifest(name, ["true"], suspend=True, labels=labels))

    async def names(**kw: str) -> list[str]:
        return sorted(j.metadata.name for j in
                      (await batch.list_namespaced_job("default", **kw)).items)

    assert await names(label_selector="team=x") == ["a"]
    assert await names(label_selector="team!=x") == ["b", "c"]
    assert await names(label_selector="team in (x,y),!tier") == ["b"]
    assert await names(label_selector="tier notin (gpu)") == ["b", "c"]
    assert await names(label_selector="tier") == ["a", "c"]
    assert await names(field_selector="metadata.name=c") == ["c"]
    page = await batch.list_namespaced_job("default", limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = await batch.list_namespaced_job("default", limit=2, _continue=page.metadata._continue)
    assert [j.metadata.name for j in rest.items] == ["c"] and not rest.metadata._continue
    with pytest.raises(ApiException) as e:
        await batch.list_namespaced_job("default", label_selector="team in (x")
    assert e.value.status == 400


async def test_stale_resource_version_conflicts(fake: FakeKubernetes,
                                                batch: client.BatchV1Api) -> None:
    await batch.create_namespaced_job("default", job_manifest("rv", ["true"], suspend=True))
    await fake.wait_idle()  # the job controller writes the Suspended condition
    job = await batch.read_namespaced_job("rv", "default")
    stale = job.metadata.resource_version
    job.metadata.labels = {"edited": "1"}
    updated = await batch.replace_namespaced_job("rv", "default", job)
    assert int(updated.metadata.resource_version) > int(stale)
    assert updated.metadata.generation == 1  # labels don't bump the generation
    job.metadata.labels = {"edited": "2"}
    with pytest.raises(ApiException) as e:
        await batch.replace_namespaced_job("rv", "default", job)  # body carries the stale RV
    assert e.value.status == 409
    assert status_of(e.value)["message"] == (
        'Operation cannot be fulfilled on jobs.batch "rv": the object has been modified; please '
        'apply your changes to the latest version and try again')
    with pytest.raises(ApiException) as e:
        await batch.patch_namespaced_job("rv", "default", {"metadata": {
            "resourceVersion": stale, "labels": {"x": "y"}}})
    assert e.value.status == 409
    # strategic merge (dict body), JSON patch (list body), merge patch
    p = await batch.patch_namespaced_job("rv", "default", {"spec": {"parallelism": 3}})
    assert p.spec.parallelism == 3 and p.metadata.generation == 2
    p = await batch.patch_namespaced_job(
        "rv", "default", [{"op": "replace", "path": "/spec/parallelism", "value": 2}])
    assert p.spec.parallelism == 2
    p = await batch.patch_namespaced_job("rv", "default", {"metadata": {"labels": None}},
                                         _content_type="application/merge-patch+json")
    assert not p.metadata.labels
    with pytest.raises(ApiException) as e:
        await batch.patch_namespaced_job("rv", "default", {"spec": {"completions": 5}})
    assert e.value.status == 422 and "field is immutable" in status_of(e.value)["message"]


async def test_delete_orphan_default_vs_background(fake: FakeKubernetes, batch: client.BatchV1Api,
                                                   core: client.CoreV1Api) -> None:
    for name in ("orph", "bg"):
        await batch.create_namespaced_job("default", job_manifest(name, ["sleep", "30"]))
        await fake.wait_for(lambda n=name: [p for p in fake.pods_of(n)
                                            if p["status"].get("phase") == "Running"])
    # no propagationPolicy: Orphan, with the Warning header, the Job object returned
    resp = await batch.delete_namespaced_job("orph", "default", _preload_content=False)
    assert resp.status == 200
    assert "child pods are preserved by default" in resp.headers["Warning"]
    body = json.loads(await resp.read())
    assert body["kind"] == "Job" and "orphan" in body["metadata"]["finalizers"]
    await fake.wait_for(lambda: fake.job("orph") is None)
    orphans = fake.pods_of("orph")
    assert orphans and not orphans[0]["metadata"].get("ownerReferences")
    assert orphans[0]["status"]["phase"] == "Running"  # pods keep running
    # Background: a Status, and the pods are garbage-collected
    status = await batch.delete_namespaced_job("bg", "default", propagation_policy="Background")
    assert status.status == "Success" and status.details.kind == "jobs"
    assert status.details.group == "batch"
    rec = fake.calls("DELETE", "/apis/batch/v1/namespaces/default/jobs/bg")[-1]
    assert rec.param("propagationPolicy") == "Background"
    await fake.wait_for(lambda: not fake.pods_of("bg"), timeout=15)
    events = [e["reason"] for p in fake.store.list("events") for e in [p]
              if e["involvedObject"]["name"].startswith("bg-")]
    assert "Killing" in events
    for p in orphans:
        await core.delete_namespaced_pod(p["metadata"]["name"], "default",
                                         grace_period_seconds=0)


async def test_headless_services_are_served_and_collected_with_their_job(batch, core, fake):
    """Services (added for the jobgraph runtime's multi-replica jobs): create/get/delete,
    422 for a non-headless one without ports, garbage collection with the owning Job."""

    job = await batch.create_namespaced_job("default", job_manifest("svc-owner", ["sleep", "30"]))
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc-owner", "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": "svc-owner",
                "uid": job.metadata.uid, "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"clusterIP": "None", "selector": {"job-name": "svc-owner"}}}
    created = await core.create_namespaced_service("default", body)
    assert created.spec.cluster_ip == "None" and created.spec.type == "ClusterIP"
    assert (await core.read_namespaced_service("svc-owner", "default")).metadata.uid
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_service("default", body)
    assert e.value.status == 409
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_service("default", {"metadata": {"name": "no-ports"},
                                                          "spec": {"selector": {"a": "b"}}})
    assert e.value.status == 422 and "spec.ports: Required value" in status_of(e.value)["message"]
    await batch.delete_namespaced_job("svc-owner", "default", propagation_policy="Background")
    await fake.wait_for(lambda: fake.store.get("services", "default", "svc-owner") is None)
