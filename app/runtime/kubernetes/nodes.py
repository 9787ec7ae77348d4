"""The cluster's nodes as far as a submit check needs them: what the largest can give.

`largest_node()` answers, for the nodes a pool's jobs may land on (its `nodeSelector`), the
most allocatable cpu, memory and nvidia.com/gpu any one of them has — the per-resource
maximum, not one chosen node. A replica that asks more of any resource than that can never
be placed; a replica within it might still not fit one node (e.g. the node with the most
GPUs has fewer CPUs), and then it waits UNSCHEDULABLE instead of being refused: the check
refuses only what certainly cannot run.

The nodes are kept by a list-then-watch (as Jobs and Pods are): a node that joins, leaves or
changes its allocatable (a GPU device plugin registering after the node is Ready) is seen at
once, where a TTL would refuse jobs for up to that long after a GPU node joined. Kubelets
write their Node status only on a change or every 5 minutes (nodeStatusReportFrequency), so
the watch is quiet. Only the allocatable amounts and labels of each node are kept.
RBAC may not let jobgraph list nodes (a ClusterRole is needed, see deploy/rbac.yaml): then
the answer is None (no check), logged once, and the list is tried again every 10 minutes.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from app.domain.jobs import Resources
from app.runtime.kubernetes.calls import CONNECTION_ERRORS, REQUEST_TIMEOUT
from app.runtime.kubernetes.watching import MAX_BACKOFF, list_then_watch

log = structlog.get_logger(__name__)
GPU = "nvidia.com/gpu"
FORBIDDEN_RETRY = 600.0  # seconds between lists while RBAC forbids them
FIRST_LIST_WAIT = 5.0  # seconds a check waits for the first listing at start-up
PAGE = 500  # nodes per list request

# resource.Quantity (k8s.io/apimachinery/pkg/api/resource/quantity.go): a signed decimal
# number, then a binary suffix (Ki..Ei), a decimal SI suffix (n u m "" k M G T P E), or a
# decimal exponent (e3, E-2).
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
           "Ei": 2 ** 60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("3800m", "62Gi", "1.5", "8", "1e3") as a number; ValueError
    for anything else."""
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ValueError(f"not a quantity: {text!r}")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        raise ValueError(f"not a quantity: {text!r}") from None
    suffix = m.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    if exponent := _EXPONENT.match(suffix):
        return number.scaleb(int(exponent.group(1)))
    raise ValueError(f"not a quantity: {text!r}")


@dataclass(frozen=True, slots=True)
class NodeSize:
    labels: dict[str, str]
    cpus: float
    memory_gib: float
    gpu: int


def node_size(node: dict) -> NodeSize:
    """A Node's allocatable cpu, memory (GiB) and nvidia.com/gpu; 0 for what it lacks or
    reports unreadably."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}

    def amount(key: str) -> Decimal:
        try:
            return parse_quantity(str(allocatable[key])) if key in allocatable else Decimal(0)
        except ValueError:
            return Decimal(0)

    return NodeSize(
        labels=dict((node.get("metadata") or {}).get("labels") or {}),
        cpus=float(amount("cpu")),
        memory_gib=float(amount("memory") / 2 ** 30),
        gpu=int(amount(GPU)),
    )


class Nodes:
    """The allocatable resources of the cluster's nodes, kept current by a watch."""

    def __init__(self, *, node_selector: dict[str, str], pool_id: str) -> None:
        self._selector = node_selector
        self._pool_id = pool_id
        self._sizes: dict[str, NodeSize] = {}
        self._listed = asyncio.Event()
        self._known = asyncio.Event()  # listed, or known to be forbidden
        self._changed = asyncio.Event()  # set (and replaced) at every change
        self.forbidden = False  # RBAC does not let jobgraph list nodes

    def apply(self, kind: str, obj: dict) -> None:
        if kind == "LIST":
            self._sizes = {n["metadata"]["name"]: node_size(n) for n in obj["items"]}
            self._listed.set()
            self._known.set()
        elif kind == "DELETED":
            self._sizes.pop(obj["metadata"]["name"], None)
        else:
            self._sizes[obj["metadata"]["name"]] = node_size(obj)
        self._changed.set()
        self._changed = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """An event set at the next change of the nodes (take it before reading)."""
        return self._changed

    async def largest(self) -> Resources | None:
        """The most any one of the pool's nodes can give of each resource; None when not
        known (not listed yet, no node matches, or RBAC forbids reading nodes)."""
        if not self._known.is_set():
            try:
                await asyncio.wait_for(self._known.wait(), FIRST_LIST_WAIT)
            except TimeoutError:
                return None
        if self.forbidden or not self._listed.is_set():
            return None
        sizes = [s for s in self._sizes.values()
                 if all(s.labels.get(k) == v for k, v in self._selector.items())]
        if not sizes:
            return None
        return Resources(cpus=max(s.cpus for s in sizes),
                         memory_gib=max(s.memory_gib for s in sizes),
                         gpu=max(s.gpu for s in sizes))

    async def run(self, api: ApiClient) -> None:
        """List (until RBAC allows it), then list-then-watch. Runs until cancelled."""
        core = CoreV1Api(api)

        async def list_nodes(namespace: str, **kwargs: Any) -> Any:
            # Cluster-scoped: the namespace list_then_watch passes does not apply. No
            # docstring, so Watch.stream leaves the watched objects as dicts.
            if kwargs.get("watch"):
                return await core.list_node(**kwargs)
            return await _list_pages(core, kwargs.get("_request_timeout", REQUEST_TIMEOUT))

        while True:
            try:
                await core.list_node(limit=1, _request_timeout=REQUEST_TIMEOUT)
            except (ApiException, *CONNECTION_ERRORS) as error:
                if not isinstance(error, ApiException) or error.status != 403:
                    await asyncio.sleep(MAX_BACKOFF)  # the cluster is away: try again
                    continue
                if not self.forbidden:
                    log.warning("k8s.nodes_forbidden", pool=self._pool_id,
                                reason="jobgraph may not list nodes: the largest node is "
                                       "unknown and not checked; see deploy/rbac.yaml")
                self.forbidden = True
                self._known.set()
                await asyncio.sleep(FORBIDDEN_RETRY)
                continue
            self.forbidden = False
            break
        await list_then_watch(
            "nodes", list_nodes, self.apply, api=api, namespace="", label_selector=None,
            pool_id=self._pool_id,
        )


async def _list_pages(core: CoreV1Api, request_timeout: Any) -> dict:
    """All nodes, PAGE at a time, as plain dicts of what `node_size` reads: a Node carries
    its image list (kilobytes each), and thousands of them as one response or as models
    would be a burst of memory. A continue token that expired is a 410, which the
    list-then-watch loop answers by listing again."""
    items: list[dict] = []
    token: str | None = None
    while True:
        more: dict[str, Any] = {"_continue": token} if token else {}
        # The raw response (not a V1NodeList): _preload_content=False.
        response: Any = await core.list_node(
            limit=PAGE, _preload_content=False, _request_timeout=request_timeout, **more)
        try:
            status, body = response.status, await response.read()
        finally:
            response.release()
        if status != 200:
            raise ApiException(status=status, reason=body[:200].decode(errors="replace"))
        page = json.loads(body)
        items += [{"metadata": {"name": n["metadata"]["name"],
                                "labels": (n["metadata"].get("labels") or {})},
                   "status": {"allocatable": (n.get("status") or {}).get("allocatable") or {}}}
                  for n in page.get("items") or []]
        meta = page.get("metadata") or {}
        token = meta.get("continue") or None
        if token is None:
            return {"items": items, "metadata": {"resourceVersion": meta.get("resourceVersion")}}
