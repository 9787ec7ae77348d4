"""The one place the core decides whether a job could ever fit its pool (issue 13)."""

from __future__ import annotations

from app.domain.capacity import check_fits
from app.domain.jobs import JobSpec
from app.domain.pools import ResourcePool
from app.runtime.base import Runtime


async def ensure_fits(*, spec: JobSpec, pool: ResourcePool, runtime: Runtime) -> None:
    """Raise `CapacityExceeded` for a job its pool could never run: more than the pool's
    declared capacity (all replicas together), or more than its largest node (one
    replica; the runtime answers None when it does not know one, e.g. local pools).
    Called before anything about the job is recorded."""
    check_fits(spec, capacity=pool.capacity, largest_node=await runtime.largest_node())
