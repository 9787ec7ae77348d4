"""Refusing at submit what a pool could never run.

A job waits until what it asks for is free; if its pool does not have that much at all,
it would wait forever (Kueue keeps such a Workload pending, a local pool keeps it
queued). So the core refuses it before anything is recorded, naming the resource, what
was asked and the most the pool can give. Two limits:

- the pool's declared capacity (pools file `capacity`): all replicas together;
- the largest node of a Kubernetes pool (its allocatable resources): one replica, since
  a pod runs on one node.
"""

from __future__ import annotations

from fractions import Fraction

from app.domain.errors import CapacityExceeded
from app.domain.jobs import JobSpec, Resources

# (attribute of Resources, how it is counted in a message, the input field)
_KINDS = (
    ("cpus", "CPU", "resources.cpus"),
    ("memory_gib", "GiB of memory", "resources.memory"),
    ("gpu", "GPU", "resources.gpu"),
)


def _exact(value: float) -> Fraction:
    # From the decimal text, so that 3 replicas of 0.1 CPU ask for exactly 0.3 (in binary
    # floats 3 * 0.1 is 0.30000000000000004, more than a capacity of 0.3).
    return Fraction(str(value))


def _amount(value: Fraction, unit: str) -> str:
    """`8 GPUs`, `1 GPU`, `0 GPUs`, `0.5 CPUs`, `64 GiB of memory`."""
    number = str(value.numerator) if value.denominator == 1 else f"{float(value):g}"
    plural = "s" if unit in ("CPU", "GPU") and value != 1 else ""
    return f"{number} {unit}{plural}"


def _first_over(
    resources: Resources, limits: Resources | None, *, times: int
) -> tuple[str, str, Fraction, Fraction] | None:
    """The first resource of which `times` replicas ask for more than `limits` give:
    (unit, field, what one replica asks, the limit)."""
    if limits is None:
        return None
    for attribute, unit, field in _KINDS:
        asked, limit = getattr(resources, attribute), getattr(limits, attribute)
        if asked and limit is not None and _exact(asked) * times > _exact(limit):
            return unit, field, _exact(asked), _exact(limit)
    return None


def check_fits(
    spec: JobSpec, *, capacity: Resources | None, largest_node: Resources | None = None
) -> None:
    """Raise `CapacityExceeded` when the job asks for more than its pool could ever give.
    A limit that is None (not declared, not known) is not checked; a GPU count of 0 is a
    limit (no GPUs)."""
    pool, replicas = spec.resource_pool_id, spec.replicas
    over = _first_over(spec.resources, capacity, times=replicas)
    if over:
        unit, field, each, most = over
        asked = (
            f"its {replicas} replicas ask for {_amount(each * replicas, unit)} together "
            f"({_amount(each, unit)} each)" if replicas > 1 else f"it asks for {_amount(each, unit)}"
        )
        raise CapacityExceeded(
            f"the job can never run in pool {pool!r}: {asked}, and the pool has at most "
            f"{_amount(most, unit)} in all (its declared capacity)",
            field=field,
        )
    over = _first_over(spec.resources, largest_node, times=1)
    if over:
        unit, field, each, most = over
        raise CapacityExceeded(
            f"the job can never run in pool {pool!r}: each replica asks for "
            f"{_amount(each, unit)}, and the pool's largest node has at most "
            f"{_amount(most, unit)} allocatable (a replica runs on one node)",
            field=field,
        )
