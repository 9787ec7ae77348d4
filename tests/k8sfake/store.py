"""Object store: a global resourceVersion counter, bounded watch history, compaction, watchers.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

Every write (API or simulated controller) goes through ``Store.create/replace/remove``, which run
synchronously on the event loop, so writes have a strict total RV order and each one is fanned
out to the watch queues and the history in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import heapq
import itertools
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors

NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Resource:
    plural: str
    group: str
    version: str
    kind: str
    list_kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = {
    "jobs": Resource("jobs", "batch", "v1", "Job", "JobList"),
    "pods": Resource("pods", "", "v1", "Pod", "PodList"),
    "events": Resource("events", "", "v1", "Event", "EventList"),
    "services": Resource("services", "", "v1", "Service", "ServiceList"),
    # Cluster-scoped, read-only through the API (tests/k8sfake/nodes.py).
    "nodes": Resource("nodes", "", "v1", "Node", "NodeList"),
    # Custom resources, served only when the fake runs Kueue / Volcano (their CRDs installed).
    "workloads": Resource("workloads", "kueue.x-k8s.io", "v1beta2", "Workload", "WorkloadList"),
    "podgroups": Resource("podgroups", "scheduling.volcano.sh", "v1beta1", "PodGroup",
                          "PodGroupList"),
}


class Clock:
    """Wall clock plus a virtual offset that ``advance()`` moves forward (waking timers)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.time(), dt.UTC)

    def rfc3339(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def micro(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    async def sleep(self, seconds: float) -> None:
        """Sleep on the virtual clock: ends at the deadline or when ``advance`` passes it."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        deadline = self.time() + seconds
        while True:
            remaining = deadline - self.time()
            if remaining <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self._changed.set()


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=dt.UTC).timestamp()


@dataclass
class WatchEvent:
    rv: int
    resource: str
    type: str  # ADDED | MODIFIED | DELETED
    old: dict[str, Any] | None
    new: dict[str, Any]


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    match: Callable[[dict[str, Any] | None], bool]
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    def translate(self, ev: WatchEvent) -> tuple[str, dict[str, Any]] | None:
        if ev.resource != self.resource:
            return None
        ns = ev.new.get("metadata", {}).get("namespace")
        if self.namespace is not None and ns != self.namespace:
            return None
        new_ok = ev.type != "DELETED" and self.match(ev.new)
        old_ok = self.match(ev.old) if ev.type != "ADDED" else False
        if ev.type == "DELETED":
            return ("DELETED", ev.new) if self.match(ev.new) or old_ok else None
        if ev.type == "ADDED":
            return ("ADDED", ev.new) if new_ok else None
        if old_ok and new_ok:
            return ("MODIFIED", ev.new)
        if new_ok:
            return ("ADDED", ev.new)
        if old_ok:
            return ("DELETED", ev.new)
        return None


CLOSE = object()  # queue sentinel: end the watch stream


class Store:
    def __init__(self, clock: Clock, history_size: int = 1000) -> None:
        self.clock = clock
        self.counter = 1
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            r: {} for r in RESOURCES}
        self.history: deque[WatchEvent] = deque(maxlen=history_size)
        self.oldest_rv = 2  # oldest RV still replayable (history covers rv >= oldest_rv)
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[WatchEvent], None]] = []
        self.changed = asyncio.Condition()
        self._rand = random.Random()

    # -- helpers -------------------------------------------------------------------------
    def _bump(self) -> int:
        self.counter += 1
        return self.counter

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects[resource].get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def require(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(resource, namespace, name)
        if obj is None:
            info = RESOURCES[resource]
            raise errors.not_found(resource, info.group, name)
        return obj

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        items = [copy.deepcopy(o) for (ns, _), o in sorted(self.objects[resource].items())
                 if namespace is None or ns == namespace]
        return items

    def generate_name(self, prefix: str) -> str:
        return prefix + "".join(self._rand.choice(NAME_CHARS) for _ in range(5))

    def _emit(self, ev: WatchEvent) -> None:
        if self.history.maxlen and len(self.history) == self.history.maxlen:
            self.oldest_rv = self.history[0].rv + 1
        self.history.append(ev)
        for w in list(self.watchers):
            out = w.translate(ev)
            if out is not None:
                w.queue.put_nowait(out)
        for listener in list(self.listeners):
            listener(ev)
        self._notify()

    def _notify(self) -> None:
        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(notify())

    # -- writes --------------------------------------------------------------------------
    def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        info = RESOURCES[resource]
        meta = obj.setdefault("metadata", {})
        ns, name = meta.get("namespace", ""), meta.get("name")
        if not name:
            raise errors.invalid_error(info.kind, info.group, "", [errors.required(
                "metadata.name", "name or generateName is required")])
        key = (ns, name)
        if key in self.objects[resource]:
            raise errors.already_exists(resource, info.group, name)
        obj["kind"], obj["apiVersion"] = info.kind, info.api_version
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())  # the API layer strips client uids
        meta["creationTimestamp"] = self.clock.rfc3339()
        if resource != "events":
            meta["generation"] = 1
        meta["resourceVersion"] = str(self._bump())
        self.objects[resource][key] = copy.deepcopy(obj)
        self._emit(WatchEvent(self.counter, resource, "ADDED", None, copy.deepcopy(obj)))
        return obj

    def replace(self, resource: str, obj: dict[str, Any], *,
                expect_rv: str | None = None) -> dict[str, Any]:
        """Write a new version of an existing object (bumps RV, generation on spec change)."""
        info = RESOURCES[resource]
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])  # "": cluster-scoped (nodes)
        old = self.objects[resource].get(key)
        if old is None:
            raise errors.not_found(resource, info.group, meta["name"])
        if expect_rv and expect_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(resource, info.group, meta["name"])
        # server-owned fields: clients cannot change them through update/patch
        old_meta = old["metadata"]
        for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        obj["kind"], obj["apiVersion"] = info.kind, info.api_version
        if resource != "events":
            gen = old_meta.get("generation", 1)
            if obj.get("spec") != old.get("spec"):
                gen += 1
            meta["generation"] = gen
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if obj == old:
            return copy.deepcopy(old)  # a no-op update does not bump the RV (as etcd3 store)
        meta["resourceVersion"] = str(self._bump())
        if (meta.get("deletionTimestamp") and not meta.get("finalizers")
                and (resource != "pods" or meta.get("deletionGracePeriodSeconds") == 0)):
            return self._remove(resource, key, obj)
        self.objects[resource][key] = copy.deepcopy(obj)
        self._emit(WatchEvent(self.counter, resource, "MODIFIED", copy.deepcopy(old),
                              copy.deepcopy(obj)))
        return obj

    def mark_deleted(self, resource: str, namespace: str, name: str, *,
                     grace: int | None = None, add_finalizer: str | None = None) -> dict[str, Any]:
        """Set deletionTimestamp (graceful / finalizers); remove now when nothing holds it."""
        obj = self.require(resource, namespace, name)
        meta = obj["metadata"]
        if add_finalizer and add_finalizer not in meta.setdefault("finalizers", []):
            meta["finalizers"].append(add_finalizer)
        if resource == "pods" and grace is not None:
            prev = meta.get("deletionGracePeriodSeconds")
            meta["deletionGracePeriodSeconds"] = grace if prev is None else min(prev, grace)
        if not meta.get("finalizers") and (resource != "pods" or grace == 0):
            return self.remove(resource, namespace, name)
        old = self.objects[resource][(namespace, name)]
        if "deletionTimestamp" not in meta:
            ts = self.clock.time() + (grace or 0)
            meta["deletionTimestamp"] = dt.datetime.fromtimestamp(
                ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["generation"] = meta.get("generation", 1) + 1
        elif old["metadata"] == meta:
            return obj
        meta["resourceVersion"] = str(self._bump())
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
            if resource == "pods" and meta.get("deletionGracePeriodSeconds") == 0:
                return self._remove(resource, (namespace, name), obj)
        self.objects[resource][(namespace, name)] = copy.deepcopy(obj)
        self._emit(WatchEvent(self.counter, resource, "MODIFIED", copy.deepcopy(old),
                              copy.deepcopy(obj)))
        return obj

    def remove(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.require(resource, namespace, name)
        obj["metadata"]["resourceVersion"] = str(self._bump())
        return self._remove(resource, (namespace, name), obj)

    def _remove(self, resource: str, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        old = self.objects[resource].pop(key)
        self._emit(WatchEvent(self.counter, resource, "DELETED", copy.deepcopy(old),
                              copy.deepcopy(obj)))
        return obj

    # -- watch ---------------------------------------------------------------------------
    def compact(self) -> int:
        """Drop all history: any resume from an RV older than the current one gets 410."""
        self.history.clear()
        self.oldest_rv = self.counter + 1
        return self.counter

    def too_old(self, rv: int) -> bool:
        return rv < self.oldest_rv - 1

    def replay_since(self, rv: int) -> list[WatchEvent]:
        return [ev for ev in self.history if ev.rv > rv]

    def add_watcher(self, watcher: Watcher) -> None:
        self.watchers.add(watcher)

    def drop_watcher(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def close_all_watches(self) -> int:
        n = len(self.watchers)
        for w in list(self.watchers):
            w.queue.put_nowait(CLOSE)
        self.watchers.clear()
        return n

    def bookmark(self) -> int:
        n = 0
        for w in self.watchers:
            if w.bookmarks:
                w.queue.put_nowait(("BOOKMARK", None))
                n += 1
        return n

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        async def waiter() -> Any:
            async with self.changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self.changed.wait()
        return await asyncio.wait_for(waiter(), timeout)


_ = heapq  # reserved
