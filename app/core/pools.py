"""The resource-pool catalog, read from `JOBGRAPH_POOLS_FILE` (YAML)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from app.domain.errors import ValidationFailed
from app.domain.pools import ResourcePool

RUNTIMES = ("local", "kubernetes")
DEFAULT_POOLS = (ResourcePool(id="local", runtime="local", queues=("default",), max_concurrent_jobs=4),)
_POOL_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class PoolsFileError(ValueError):
    """The pools file cannot be used; the message says where and why."""


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
    known = {"id", "runtime", "queues", "maxConcurrentJobs", "allowedGroups"}
    options = {k: v for k, v in entry.items() if k not in known}
    return ResourcePool(
        id=pool_id,
        runtime=runtime,
        queues=tuple(queues),
        max_concurrent_jobs=slots,
        allowed_groups=tuple(allowed),
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
