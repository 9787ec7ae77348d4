"""``FakeKubernetes``: the server, its store, simulated controllers, test hooks and fault hooks.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .controllers import Delays, JobController, Kubelet, has_condition
from .events import EventRecorder
from .kueue import Kueue
from .logs import DEFAULT_CONTAINER_LOG_MAX_SIZE, ContainerLog
from .nodes import node_object
from .server import RecordedRequest, build_app
from .sidecars import is_sidecar
from .store import Clock, Store
from .tokens import TokenIssuer
from .volcano import Volcano


@dataclass
class Fault:
    status: int = 500
    method: str | None = None
    path: str | re.Pattern[str] | None = None
    drop: bool = False
    message: str | None = None
    remaining: int = 1

    def matches(self, request: web.Request) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        if self.path is None:
            return True
        if isinstance(self.path, re.Pattern):
            return bool(self.path.search(request.path))
        return request.path.startswith(self.path)


@dataclass
class Delay:
    seconds: float
    method: str | None = None
    path: str | None = None
    remaining: int | None = None  # None = until cleared


@dataclass
class Faults:
    queue: list[Fault] = field(default_factory=list)
    delays: list[Delay] = field(default_factory=list)

    def take(self, request: web.Request) -> Fault | None:
        for f in self.queue:
            if f.remaining > 0 and f.matches(request):
                f.remaining -= 1
                if f.remaining == 0:
                    self.queue.remove(f)
                return f
        return None

    def delay_for(self, request: web.Request) -> float:
        for d in self.delays:
            if d.method and d.method.upper() != request.method:
                continue
            if d.path and not request.path.startswith(d.path):
                continue
            if d.remaining is not None:
                d.remaining -= 1
                if d.remaining <= 0:
                    self.delays.remove(d)
            return d.seconds
        return 0.0


class FakeKubernetes:
    """A faithful-enough fake of kube-apiserver + job controller + scheduler + kubelet.

    Use ``async with FakeKubernetes.running(token="test-token") as fake:`` in a running loop.
    """

    def __init__(self, *, token: str | list[str] = "test-token", delays: Delays | None = None,
                 history_size: int = 1000, kueue: bool = False,
                 kueue_capacity: int | None = None, namespace: str = "default",
                 volcano: bool = False,
                 node_allocatable: dict[str, int] | None = None,
                 nodes: list[dict[str, Any]] | None = None,
                 container_log_max_size: int = DEFAULT_CONTAINER_LOG_MAX_SIZE,
                 follow_across_rotation: bool = False) -> None:
        self.tokens = {token} if isinstance(token, str) else set(token)
        self.token = token if isinstance(token, str) else next(iter(token))
        self.delays = delays or Delays()
        self.namespace = namespace
        self.clock = Clock()
        self.token_issuer = TokenIssuer()  # short-lived tokens (tokens.py)
        self.store = Store(self.clock, history_size)
        self.recorder = EventRecorder(self.store)
        self.requests: list[RecordedRequest] = []
        self.faults = Faults()
        self.logs: dict[str, ContainerLog] = {}  # containerID -> log
        # The kubelet's containerLogMaxSize, and whether its log follow survives a
        # rotation (kubelets with kubernetes/kubernetes#115702) or stalls (older): logs.py.
        self.container_log_max_size = container_log_max_size
        self.follow_across_rotation = follow_across_rotation
        self.log_streams: set[asyncio.Future[Any]] = set()
        self.exec_sessions: set[Any] = set()
        self.controller_errors: list[str] = []
        # Kueue (its Workload CRD served, its controllers running) when asked for.
        self.kueue: Kueue | None = (Kueue(self, kueue_capacity)
                                    if kueue or kueue_capacity is not None else None)
        # Volcano (PodGroup CRD, podgroup controller, gang scheduler) when asked for; the
        # node's allocatable resources bound what its gang scheduler places.
        self.volcano: Volcano | None = (Volcano(self, node_allocatable or {})
                                        if volcano else None)
        # Nodes the default scheduler places pods on (nodes.py); none: all go to fake-node-1.
        self._initial_nodes = list(nodes or [])
        # (verb, resource) pairs RBAC denies (``forbid``): 403 with the authorizer's message.
        self.forbidden: set[tuple[str, str]] = set()
        self.closing = False
        self.port: int | None = None
        self.jobs = JobController(self)
        self.kubelet = Kubelet(self)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._bookmark_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, **kwargs: Any) -> AsyncIterator[FakeKubernetes]:
        """Start on 127.0.0.1:<free port> in the running loop; tear everything down after."""
        fake = cls(**kwargs)
        await fake.start()
        try:
            yield fake
        finally:
            await fake.stop()

    async def start(self, port: int = 0) -> None:
        for key in ("NO_PROXY", "no_proxy"):
            current = [p for p in os.environ.get(key, "").split(",") if p]
            for host in ("127.0.0.1", "localhost"):
                if host not in current:
                    current.append(host)
            os.environ[key] = ",".join(current)
        for node in self._initial_nodes:
            self.add_node(node["name"], node.get("allocatable") or {}, node.get("labels"))
        self.jobs.start()
        self.kubelet.start()
        if self.kueue is not None:
            self.kueue.start()
        if self.volcano is not None:
            self.volcano.start()
        self._runner = web.AppRunner(build_app(self), handle_signals=False,
                                     access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await self._site.start()
        server = self._site._server  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]
        if self.delays.bookmark_interval:
            self._bookmark_task = asyncio.create_task(self._bookmarks())

    async def stop(self) -> None:
        self.closing = True
        self.store.close_all_watches()
        for fut in list(self.log_streams):
            fut.cancel()
        for session in list(self.exec_sessions):
            session.kill()
        if self._bookmark_task:
            self._bookmark_task.cancel()
        await self.jobs.stop()
        await self.kubelet.stop()
        if self.kueue is not None:
            await self.kueue.stop()
        if self.volcano is not None:
            await self.volcano.stop()
        for log in self.logs.values():
            if not log.closed:
                log.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _bookmarks(self) -> None:
        while True:
            await asyncio.sleep(self.delays.bookmark_interval or 60)
            self.store.bookmark()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig_dict(self, namespace: str | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {
                "cluster": "fake", "user": "fake", "namespace": namespace or self.namespace}}],
        }

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str | None = None) -> Path:
        """Write a kubeconfig (JSON is valid YAML) for ``load_kube_config(config_file=path)``."""
        p = Path(path)
        p.write_text(json.dumps(self.kubeconfig_dict(namespace), indent=2))
        return p

    def write_exec_kubeconfig(self, path: str | os.PathLike[str], *, lifetime: float,
                              log_file: str | os.PathLike[str],
                              report_expiry: bool = False) -> Path:
        """A kubeconfig whose user is an exec credential plugin handing out tokens that
        expire `lifetime` seconds later on the fake's clock (tokens.py)."""
        config = self.kubeconfig_dict()
        config["users"] = [{"name": "fake", "user": self.token_issuer.exec_user(
            lifetime=lifetime, log_file=str(log_file), report_expiry=report_expiry)}]
        p = Path(path)
        p.write_text(json.dumps(config, indent=2))
        return p

    # -- fault hooks ---------------------------------------------------------------------
    def fail_next(self, n: int = 1, *, status: int = 500, method: str | None = None,
                  path: str | re.Pattern[str] | None = None, drop: bool = False,
                  message: str | None = None) -> Fault:
        """The next ``n`` matching requests fail with ``status`` (a Status body), or with a
        dropped connection when ``drop=True``. 429 carries ``Retry-After: 1``."""
        fault = Fault(status=status, method=method, path=path, drop=drop, message=message,
                      remaining=n)
        self.faults.queue.append(fault)
        return fault

    def slow(self, seconds: float, *, method: str | None = None, path: str | None = None,
             n: int | None = None) -> Delay:
        """Delay matching requests by ``seconds`` (all of them, or the next ``n``)."""
        d = Delay(seconds, method, path, n)
        self.faults.delays.append(d)
        return d

    def clear_faults(self) -> None:
        self.faults.queue.clear()
        self.faults.delays.clear()

    def close_all_watches(self) -> int:
        """End every open watch stream cleanly (EOF): clients reconnect with their last RV."""
        return self.store.close_all_watches()

    def send_bookmarks(self) -> int:
        """Send a BOOKMARK (current RV) to every watch that allowed bookmarks."""
        return self.store.bookmark()

    def compact(self) -> int:
        """Forget the watch history: resuming from any older RV gets ERROR 410 Expired."""
        return self.store.compact()

    async def go_offline(self) -> None:
        """Stop listening and cut every open connection (watches, keep-alive, logs, exec)."""
        self.store.close_all_watches()
        for session in list(self.exec_sessions):
            session.kill()
        assert self._site is not None and self._runner is not None
        await self._site.stop()
        server = self._runner.server
        if server is not None:
            for handler in list(server.connections):
                transport = handler.transport
                if transport is not None:
                    transport.abort()
        await asyncio.sleep(0)

    async def go_online(self) -> None:
        """Listen again on the same port."""
        assert self._runner is not None and self.port is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    # -- observation / determinism -------------------------------------------------------
    def calls(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded Kubernetes API requests, filtered by method and path prefix (or regex)."""
        out = []
        for r in self.requests:
            if method and r.method != method.upper():
                continue
            if path and not (r.path.startswith(path) or re.search(path, r.path)):
                continue
            out.append(r)
        return out

    @property
    def idle(self) -> bool:
        return (self.jobs.idle and self.kubelet.idle
                and (self.kueue is None or self.kueue.idle)
                and (self.volcano is None or self.volcano.idle))

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until no controller work is queued and no pod is between kubelet stages (running
        containers and pods stuck by their scenario count as settled)."""
        async def settle() -> None:
            stable = 0
            while stable < 3:
                await asyncio.sleep(0)
                stable = stable + 1 if self.idle else 0
                if not self.idle:
                    await asyncio.sleep(0.005)
        await asyncio.wait_for(settle(), timeout)

    async def advance(self, seconds: float) -> None:
        """Move the virtual clock forward (stage delays, run-seconds, activeDeadlineSeconds)."""
        self.clock.advance(seconds)
        await asyncio.sleep(0)
        for job in self.store.list("jobs"):
            self.jobs.enqueue(job["metadata"]["namespace"], job["metadata"]["name"])
        await self.wait_idle()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait (on store changes, not wall-clock sleeps) until ``predicate()`` is truthy."""
        async def poll() -> Any:
            while True:
                value = predicate()
                if value:
                    return value
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed(), 0.05)
        return await asyncio.wait_for(poll(), timeout)

    async def _changed(self) -> None:
        async with self.store.changed:
            await self.store.changed.wait()

    async def wait_job_condition(self, name: str, type_: str, namespace: str | None = None,
                                 timeout: float = 10.0) -> dict[str, Any]:
        ns = namespace or self.namespace
        return await self.wait_for(lambda: (lambda j: j if j and has_condition(j, type_)
                                            else None)(self.job(name, ns)), timeout)

    def job(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.store.get("jobs", namespace or self.namespace, name)

    def pod(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.store.get("pods", namespace or self.namespace, name)

    def pods_of(self, job_name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        ns = namespace or self.namespace
        return [p for p in self.store.list("pods", ns)
                if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name")
                == job_name]

    def events_for(self, name: str, namespace: str | None = None,
                   kind: str | None = None) -> list[dict[str, Any]]:
        ns = namespace or self.namespace
        return sorted((e for e in self.store.list("events", ns)
                       if e["involvedObject"].get("name") == name
                       and (kind is None or e["involvedObject"].get("kind") == kind)),
                      key=lambda e: int(e["metadata"]["resourceVersion"]))

    def container_log(self, pod: str, container: str | None = None,
                      namespace: str | None = None) -> str:
        p = self.pod(pod, namespace)
        assert p is not None, f"pod {pod} not found"
        for st in (p.get("status") or {}).get("containerStatuses") or []:
            if container in (None, st["name"]) and st.get("containerID"):
                return self.logs[st["containerID"]].text()
        return ""

    # -- state hooks ---------------------------------------------------------------------
    def set_status(self, resource: str, name: str, status: dict[str, Any],
                   namespace: str | None = None) -> dict[str, Any]:
        obj = self.store.require(resource, namespace or self.namespace, name)
        obj["status"] = {**(obj.get("status") or {}), **status}
        return self.store.replace(resource, obj)

    def emit_event(self, obj: dict[str, Any], reason: str, message: str, *,
                   type_: str = "Normal", component: str = "test") -> dict[str, Any]:
        return self.recorder.legacy(obj, type_, reason, message, component=component)

    def append_log(self, pod: str, text: str, container: str | None = None,
                   namespace: str | None = None) -> None:
        p = self.pod(pod, namespace)
        assert p is not None
        for st in (p.get("status") or {}).get("containerStatuses") or []:
            if container in (None, st["name"]) and st.get("containerID"):
                self.logs[st["containerID"]].append(text)
                return
        raise AssertionError(f"no started container in pod {pod}")

    def terminate_container(self, pod: str, container: str | None = None,
                            namespace: str | None = None, sig: int = 9) -> None:
        p = self.pod(pod, namespace)
        assert p is not None
        for (uid, cname), run in list(self.kubelet.running.items()):
            if uid == p["metadata"]["uid"] and container in (None, cname):
                self.kubelet._signal(run, sig)

    def evict(self, pod: str, namespace: str | None = None, *,
              reason: str = "EvictionByEvictionAPI",
              message: str = "Eviction API: evicting") -> dict[str, Any]:
        """What a node drain does through the Eviction API (kubernetes
        pkg/registry/core/pod/storage/eviction.go, addConditionAndDeletePod): the pod gets the
        DisruptionTarget condition, then is deleted gracefully; the kubelet stops it, and with
        restartPolicy Never it ends Failed. (PodDisruptionBudgets are not modelled.)"""
        ns = namespace or self.namespace
        p = self.store.require("pods", ns, pod)
        conds = p.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "DisruptionTarget"]
        conds.append({"type": "DisruptionTarget", "status": "True", "reason": reason,
                      "message": message, "lastProbeTime": None,
                      "lastTransitionTime": self.clock.rfc3339()})
        self.store.replace("pods", p)
        grace = int(p["spec"].get("terminationGracePeriodSeconds", 30))
        return self.store.mark_deleted("pods", ns, pod, grace=grace)

    def quit_sidecars(self, pod: str, namespace: str | None = None) -> None:
        """What a job's wrapper does with ``curl -X POST localhost:15020/quitquitquit``: the
        injected proxies of the pod exit 0 (tests/k8sfake/sidecars.py)."""
        import asyncio as _asyncio
        p = self.pod(pod, namespace)
        assert p is not None
        for c in p["spec"].get("containers") or []:
            if is_sidecar(p, c["name"]):
                self.kubelet.sidecar_quits.setdefault(
                    (p["metadata"]["uid"], c["name"]), _asyncio.Event()).set()

    # -- Nodes (tests/k8sfake/nodes.py) and RBAC -----------------------------------------------
    def add_node(self, name: str, allocatable: dict[str, Any],
                 labels: dict[str, str] | None = None) -> dict[str, Any]:
        """A node registers (the default scheduler then places pods on the nodes)."""
        return self.store.create("nodes", node_object(name, allocatable, labels))

    def set_allocatable(self, name: str, allocatable: dict[str, Any]) -> dict[str, Any]:
        """The kubelet reports new allocatable resources (e.g. a device plugin registered)."""
        node = self.store.require("nodes", "", name)
        amounts = {k: str(v) for k, v in allocatable.items()}
        amounts.setdefault("pods", "110")
        node["status"]["allocatable"] = dict(amounts)
        node["status"]["capacity"] = dict(amounts)
        return self.store.replace("nodes", node)

    def forbid(self, verb: str, resource: str) -> None:
        """RBAC denies ``verb`` on ``resource`` (e.g. "list", "nodes") to the client."""
        self.forbidden.add((verb, resource))

    # -- Kueue (tests/k8sfake/kueue.py) ------------------------------------------------------
    def mutate_job(self, job: dict[str, Any]) -> None:
        """Kueue's Job webhook: queued jobs are created suspended."""
        if self.kueue is not None:
            self.kueue.mutate_job(job)

    def workload(self, job_name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The Kueue Workload of a Job (found through its owner reference)."""
        assert self.kueue is not None, "the fake runs without Kueue"
        job = self.job(job_name, namespace)
        return self.kueue.workload_of(job) if job is not None else None

    def admit(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Kueue's scheduler admits the Job's Workload (its job reconciler then unsuspends
        the Job). An inactive Workload is never admitted."""
        assert self.kueue is not None, "the fake runs without Kueue"
        return self.kueue.admit(name, namespace or self.namespace)

    def kueue_hold(self, name: str, reason: str, message: str,
                   namespace: str | None = None) -> dict[str, Any]:
        """Kueue's scheduler could not fit the Job's Workload: QuotaReserved=False with
        ``reason`` and ``message``, and a Warning event on the Workload."""
        assert self.kueue is not None, "the fake runs without Kueue"
        return self.kueue.hold(name, namespace or self.namespace, reason, message)


_ = copy
