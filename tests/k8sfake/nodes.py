"""Nodes and the default scheduler's fit check.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

Nodes are served read-only (``GET /api/v1/nodes[/{name}]``, list and watch; a write → 405:
no kubelet registers here). They exist only when a test names them
(``FakeKubernetes(nodes=[{"name": ..., "allocatable": {...}, "labels": {...}}])``); without
them the scheduler binds every pod to ``fake-node-1`` as before.

With nodes, the default scheduler places a pod on the first node (by name) whose labels match
its ``nodeSelector`` and whose allocatable, less the requests of the pods bound there and not
finished, covers the pod's requests (NodeAffinity and NodeResourcesFit filters). Otherwise the
pod gets ``PodScheduled=False`` (``Unschedulable``) and a Warning ``FailedScheduling`` with the
message kubernetes/kubernetes writes: ``FitError.Error()`` (pkg/scheduler/framework/types.go:
"0/N nodes are available: " + the sorted histogram of filter reasons + ".") followed by the
DefaultPreemption post-filter message (pkg/scheduler/framework/plugins/defaultpreemption:
"preemption: 0/N nodes are available: ..."), both set by ``handleSchedulingFailure``
(pkg/scheduler/schedule_one.go). Filter reasons: ``Insufficient <resource>``
(noderesources/fit.go) and ``node(s) didn't match Pod's node affinity/selector``
(nodeaffinity, UnschedulableAndUnresolvable: preemption "is not helpful"). The pod is tried
again when a node or a pod changes (the scheduling queue's cluster events). Not modelled:
taints, affinity terms, pod (anti-)affinity, topology spread, the pods-per-node count,
scoring, preemption itself.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .volcano import quantity, requests_of

NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"


def node_object(name: str, allocatable: dict[str, Any],
                labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Ready node as a kubelet registers it (capacity = allocatable here)."""
    amounts = {k: str(v) for k, v in allocatable.items()}
    amounts.setdefault("pods", "110")
    return {
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", **(labels or {})}},
        "spec": {},
        "status": {
            "capacity": dict(amounts), "allocatable": dict(amounts),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "Hostname", "address": name}],
            "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion":
                         "containerd://1.7.0", "kernelVersion": "6.1.0", "kubeProxyVersion": "",
                         "kubeletVersion": "v1.33.0", "machineID": "", "operatingSystem": "linux",
                         "osImage": "fake", "systemUUID": ""},
        },
    }


def _used(pods: list[dict[str, Any]], node: str) -> dict[str, float]:
    used: dict[str, float] = {}
    for pod in pods:
        if pod["spec"].get("nodeName") != node:
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for k, v in requests_of(pod).items():
            used[k] = used.get(k, 0.0) + v
    return used


def place(pod: dict[str, Any], nodes: list[dict[str, Any]],
          pods: list[dict[str, Any]]) -> tuple[str | None, str]:
    """(the node to bind to, "") or (None, the FitError message)."""
    selector = pod["spec"].get("nodeSelector") or {}
    need = requests_of(pod)
    reasons: Counter[str] = Counter()
    unresolvable = 0
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            reasons[NODE_AFFINITY] += 1
            unresolvable += 1
            continue
        allocatable = {k: quantity(v) for k, v in
                       (node.get("status") or {}).get("allocatable", {}).items()}
        used = _used(pods, node["metadata"]["name"])
        lacking = [k for k, v in need.items()
                   if v > 0 and used.get(k, 0.0) + v > allocatable.get(k, 0.0)]
        if not lacking:
            return node["metadata"]["name"], ""
        for k in lacking:
            reasons[f"Insufficient {k}"] += 1
    total = len(nodes)
    filters = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
    post = Counter({NOT_HELPFUL: unresolvable, NO_VICTIMS: total - unresolvable})
    preemption = ", ".join(sorted(f"{n} {r}" for r, n in post.items() if n))
    return None, (f"0/{total} nodes are available: {filters}. "
                  f"preemption: 0/{total} nodes are available: {preemption}.")
