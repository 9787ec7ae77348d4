"""The one place the core decides whether a job could ever fit its pool (issue 13)."""

from __future__ import annotations

import structlog

from app.domain.capacity import check_fits
from app.domain.errors import RuntimeUnavailable
from app.domain.jobs import JobSpec, Resources
from app.domain.pools import ResourcePool
from app.runtime.base import Runtime

log = structlog.get_logger(__name__)


async def _largest_node(runtime: Runtime) -> Resources | None:
    # Until every runtime implements `largest_node` (the protocol's issue-13 addition),
    # one without it knows no node.
    largest_node = getattr(runtime, "largest_node", None)
    if largest_node is None:
        return None
    try:
        node: Resources | None = await largest_node()
    except RuntimeUnavailable as exc:
        # The node check is an early refusal, not a gate: with the cluster out of reach
        # the submit itself says so (a FAILED job with the reason).
        log.warning("capacity.largest_node_unknown", pool=runtime.pool.id, error=exc.message)
        return None
    return node


async def ensure_fits(*, spec: JobSpec, pool: ResourcePool, runtime: Runtime) -> None:
    """Raise `CapacityExceeded` for a job its pool could never run: more than the pool's
    declared capacity (all replicas together), or more than its largest node (one
    replica). Called before anything about the job is recorded."""
    check_fits(spec, capacity=pool.capacity, largest_node=await _largest_node(runtime))
