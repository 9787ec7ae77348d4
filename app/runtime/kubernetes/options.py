"""A Kubernetes pool's settings, read from its entry in the pools file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.pools import ResourcePool

QUEUEING = ("kueue", "volcano", "none")
KNOWN = frozenset({
    "kubeconfig", "context", "namespace", "queueing", "nodeSelector", "tolerations",
    "defaultImage", "priorityClasses", "masterPort",
})
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _name_problem(name: str, *, label_value: bool) -> str | None:
    """Why Kubernetes would refuse `name` as an object name (a DNS subdomain: LocalQueues,
    Volcano Queues, (Workload)PriorityClasses) and, when it also goes into a label, as a
    label value (apimachinery's IsDNS1123Subdomain, IsValidLabelValue)."""
    if label_value and not (len(name) <= 63 and _LABEL_VALUE.match(name)):
        return ("it goes into a label value: at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    if not (len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
        return ("it names a cluster object: lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit, at most 253 characters")
    return None


class PoolOptionsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PriorityClass:
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class KubernetesPoolOptions:
    # None: the kubeconfig context's namespace (in a cluster: the pod's own), else "default".
    namespace: str | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    queueing: str = "none"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    # Used for jobs that name no image (the local runtime ignores images).
    default_image: str | None = None
    # Job priority -> the highest class whose value is <= the job's priority.
    priority_classes: tuple[PriorityClass, ...] = ()
    master_port: int = 29500

    @classmethod
    def of(cls, pool: ResourcePool) -> KubernetesPoolOptions:
        opts = pool.options
        where = f"pool {pool.id!r}"
        unknown = sorted(set(opts) - KNOWN)
        if unknown:
            raise PoolOptionsError(
                f"{where}: unknown setting(s) {', '.join(unknown)}; a kubernetes pool takes "
                f"{', '.join(sorted(KNOWN | {'id', 'runtime', 'queues', 'maxConcurrentJobs'}))}"
            )
        namespace = opts.get("namespace")
        if namespace is not None and not (isinstance(namespace, str) and _DNS_LABEL.match(namespace)):
            raise PoolOptionsError(f"{where}: namespace must be a DNS label")
        for key in ("kubeconfig", "context", "defaultImage"):
            if opts.get(key) is not None and not isinstance(opts[key], str):
                raise PoolOptionsError(f"{where}: {key} must be a string")
        if not all(isinstance(t, dict) for t in opts.get("tolerations") or []):
            raise PoolOptionsError(f"{where}: tolerations must be a list of mappings")
        try:
            master_port = int(opts.get("masterPort", 29500))
        except (TypeError, ValueError):
            master_port = 0
        if not 0 < master_port < 65536:
            raise PoolOptionsError(f"{where}: masterPort must be a port number")
        queueing = opts.get("queueing", "none")
        if queueing not in QUEUEING:
            raise PoolOptionsError(f"{where}: queueing must be one of {', '.join(QUEUEING)}")
        node_selector = opts.get("nodeSelector") or {}
        if not isinstance(node_selector, dict):
            raise PoolOptionsError(f"{where}: nodeSelector must be a mapping")
        tolerations = opts.get("tolerations") or []
        if not isinstance(tolerations, list):
            raise PoolOptionsError(f"{where}: tolerations must be a list")
        classes = []
        for entry in opts.get("priorityClasses") or []:
            try:
                classes.append(PriorityClass(name=str(entry["name"]), value=int(entry["value"])))
            except (KeyError, TypeError, ValueError):
                raise PoolOptionsError(
                    f"{where}: priorityClasses entries need a name and an integer value"
                ) from None
        if queueing in ("kueue", "volcano"):
            for queue in pool.queues:
                problem = _name_problem(queue, label_value=queueing == "kueue")
                if problem:
                    raise PoolOptionsError(f"{where}: queue {queue!r} cannot be a {queueing} queue: "
                                           f"{problem}")
        for cls_ in classes:
            # Kueue reads the class from a label; otherwise it is the pod's priorityClassName.
            problem = _name_problem(cls_.name, label_value=queueing == "kueue")
            if problem:
                raise PoolOptionsError(f"{where}: priority class {cls_.name!r} is not valid: {problem}")
        kubeconfig = opts.get("kubeconfig")
        return cls(
            namespace=namespace,
            kubeconfig=Path(kubeconfig).expanduser() if kubeconfig else None,
            context=opts.get("context"),
            queueing=queueing,
            node_selector={str(k): str(v) for k, v in node_selector.items()},
            tolerations=tolerations,
            default_image=opts.get("defaultImage"),
            priority_classes=tuple(sorted(classes, key=lambda c: c.value)),
            master_port=master_port,
        )

    def priority_class(self, priority: int) -> str | None:
        chosen = None
        for cls in self.priority_classes:
            if cls.value <= priority:
                chosen = cls.name
        return chosen
