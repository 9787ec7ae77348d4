"""Istio-style sidecar injection (a mutating admission webhook) for pods that ask for it.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

Istio's injector adds an ``istio-proxy`` container to a pod labelled
``sidecar.istio.io/inject: "true"`` (the pod label overrides the namespace's
``istio-injection`` label; istio/istio pkg/kube/inject/inject.go, injectRequired) and records
what it added in the ``sidecar.istio.io/status`` annotation. Modelled: the classic (non-native)
injection only, as a regular container appended to ``spec.containers``. Not modelled: the
``istio-init`` init container (the fake runs no init containers) and native sidecars
(``initContainers`` with ``restartPolicy: Always``), whose statuses go to
``initContainerStatuses``.

The proxy runs until its pod is deleted or until something posts to pilot-agent's
``/quitquitquit`` (``FakeKubernetes.quit_sidecars``): a classic sidecar never exits on its own,
so a Job's pod stays ``Running`` after its main container has ended, as on a real cluster.
"""

from __future__ import annotations

import json
from typing import Any

INJECT_LABEL = "sidecar.istio.io/inject"
STATUS_ANNOTATION = "sidecar.istio.io/status"
PROXY = "istio-proxy"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.24.2"


def inject(pod: dict[str, Any]) -> None:
    """Admission: append the proxy to a pod that asks for it (once)."""
    meta = pod.setdefault("metadata", {})
    if (meta.get("labels") or {}).get(INJECT_LABEL) != "true":
        return
    containers = pod.setdefault("spec", {}).setdefault("containers", [])
    if any(c.get("name") == PROXY for c in containers if isinstance(c, dict)):
        return
    containers.append({
        "name": PROXY, "image": PROXY_IMAGE, "args": [],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    })
    annotations = meta.setdefault("annotations", {})
    annotations[STATUS_ANNOTATION] = json.dumps(
        {"initContainers": None, "containers": [PROXY], "volumes": [], "imagePullSecrets": None,
         "revision": "default"}, separators=(",", ":"))


def is_sidecar(pod: dict[str, Any], container: str) -> bool:
    status = ((pod.get("metadata") or {}).get("annotations") or {}).get(STATUS_ANNOTATION)
    if not status:
        return False
    try:
        return container in (json.loads(status).get("containers") or [])
    except ValueError:
        return False
