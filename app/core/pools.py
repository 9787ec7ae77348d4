"""The resource-pool catalog, read from `JOBGRAPH_POOLS_FILE` (YAML)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from app.domain.errors import ValidationFailed
from app.domain.jobs import Resources
from app.domain.pools import ResourcePool

RUNTIMES = ("local", "kubernetes")
DEFAULT_POOLS = (ResourcePool(id="local", runtime="local", queues=("default",), max_concurrent_jobs=4),)
_POOL_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class PoolsFileError(ValueError):
    """The pools file cannot be used; the message says where and why."""


CAPACITY_KEYS = ("cpus", "memory", "gpu")


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value) and value > 0
    )


def _capacity(value: Any, where: str) -> Resources | None:
    """`capacity: {cpus: 16, memory: 64, gpu: 8}` (memory in GiB), what the pool has in
    total. cpus or memory left out are not checked; gpu left out means no GPUs, as on a
    node that lists none."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise PoolsFileError(
            f"{where} must be a mapping of one or more of {', '.join(CAPACITY_KEYS)}, "
            "e.g. {cpus: 16, memory: 64, gpu: 8} (memory in GiB)"
        )
    unknown = sorted(str(k) for k in value if k not in CAPACITY_KEYS)
    if unknown:
        raise PoolsFileError(
            f"{where} has unknown keys {', '.join(unknown)}; it takes {', '.join(CAPACITY_KEYS)}"
        )
    cpus, memory, gpu = value.get("cpus"), value.get("memory"), value.get("gpu", 0)
    if cpus is not None and not _positive_number(cpus):
        raise PoolsFileError(f"{where}.cpus must be a number greater than 0, got {cpus!r}")
    if memory is not None and not _positive_number(memory):
        raise PoolsFileError(
            f"{where}.memory must be a number of GiB greater than 0 (e.g. 64), got {memory!r}"
        )
    if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
        raise PoolsFileError(f"{where}.gpu must be a whole number of 0 or more, got {gpu!r}")
    return Resources(cpus=cpus, memory_gib=memory, gpu=gpu)


def _pool(entry: Any, index: int) -> ResourcePool:
    where = f"pools[{index}]"
    if not isinstance(entry, dict):
        raise PoolsFileError(f"{where} must be a mapping")
    pool_id = str(entry.get("id", ""))
    if not _POOL_ID.match(pool_id):
        raise PoolsFileError(f"{where}.id {pool_id!r} must be a DNS label (a-z, 0-9, '-')")
    runtime = entry.get("runtime", "local")
    if runtime not in RUNTIMES:
        raise PoolsFileError(f"{where}.runtime must be one of {', '.join(RUNTIMES)}")
    queues = entry.get("queues") or ["default"]
    if not isinstance(queues, list) or not all(isinstance(q, str) and q for q in queues):
        raise PoolsFileError(f"{where}.queues must be a list of names")
    slots = entry.get("maxConcurrentJobs", 4 if runtime == "local" else None)
    if slots is not None and (not isinstance(slots, int) or slots < 1):
        raise PoolsFileError(f"{where}.maxConcurrentJobs must be a positive integer")
    allowed = entry.get("allowedGroups") or []
    if not isinstance(allowed, list) or not all(isinstance(g, str) and g for g in allowed):
        raise PoolsFileError(f"{where}.allowedGroups must be a list of group names")
    capacity = _capacity(entry.get("capacity"), f"{where}.capacity")
    known = {"id", "runtime", "queues", "maxConcurrentJobs", "allowedGroups", "capacity"}
    options = {k: v for k, v in entry.items() if k not in known}
    return ResourcePool(
        id=pool_id,
        runtime=runtime,
        queues=tuple(queues),
        max_concurrent_jobs=slots,
        allowed_groups=tuple(allowed),
        capacity=capacity,
        options=options,
    )


class PoolCatalog:
    def __init__(self, pools: tuple[ResourcePool, ...]) -> None:
        if not pools:
            raise PoolsFileError("at least one pool is needed")
        self._pools = {p.id: p for p in pools}
        if len(self._pools) != len(pools):
            raise PoolsFileError("pool ids must be unique")
        self.default = pools[0]

    @classmethod
    def load(cls, path: Path | None) -> PoolCatalog:
        if path is None:
            return cls(DEFAULT_POOLS)
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PoolsFileError(f"cannot read pools file {path}: {exc}") from exc
        entries = document.get("pools") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise PoolsFileError(f"{path}: expected a top-level 'pools:' list")
        return cls(tuple(_pool(e, i) for i, e in enumerate(entries)))

    def __iter__(self) -> Iterator[ResourcePool]:
        return iter(self._pools.values())

    def get(self, pool_id: str) -> ResourcePool | None:
        return self._pools.get(pool_id)

    def resolve(self, pool_id: str | None, queue: str | None) -> tuple[ResourcePool, str]:
        """The pool and queue a job goes to; omitted means the first pool and its first queue."""
        pool = self.default if not pool_id else self._pools.get(pool_id)
        if pool is None:
            known = ", ".join(self._pools)
            raise ValidationFailed(
                f"unknown resource pool {pool_id!r}; known pools: {known}", field="resourcePoolId"
            )
        if not queue:
            return pool, pool.default_queue
        if queue not in pool.queues:
            raise ValidationFailed(
                f"pool {pool.id!r} has no queue {queue!r}; its queues: {', '.join(pool.queues)}",
                field="queue",
            )
        return pool, queue
