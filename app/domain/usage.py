"""What pools are doing now, and what jobs used over a time window. Plain data.

Accounting rules (the same in the `usage` query, in its SQL, and in the Prometheus
counters counted when a job ends):

- a replica runs from its pod's `started_at` to its `finished_at`; one whose end is not
  recorded runs until its job's `finished_at`, or until now while the job has not ended,
  and no replica runs past its job's end;
- GPU (CPU) seconds = the replica's requested GPUs (CPUs) × its running time, summed over
  replicas; a job that asks no CPUs counts none;
- wall seconds = the job's running time (`started_at` to `finished_at`, or now);
- queue seconds = from creation to the first start (`started_at`); a job that ended
  without starting waited until it ended, one still waiting waits until now.

In a window every interval is clipped to it (only the part inside counts), so the usage
of two adjacent windows adds up to that of both together. A job counts in a window (a
row's `jobs`) when its life (creation to end) overlaps it; `succeeded`/`failed` count
the jobs that ended so within it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.domain.errors import ValidationFailed

# The longest window one `usage` call may cover, and the one it covers by default.
MAX_WINDOW = timedelta(days=366)
DEFAULT_WINDOW = timedelta(days=30)
# More rows than this in one answer is refused: narrow the filter.
MAX_ROWS = 5000


class UsageGroupBy(StrEnum):
    OWNER = "OWNER"
    POOL = "POOL"
    QUEUE = "QUEUE"
    DAY = "DAY"


@dataclass(frozen=True, slots=True)
class UsageWindow:
    since: datetime
    until: datetime

    @classmethod
    def of(cls, *, since: datetime | None, until: datetime | None, now: datetime) -> UsageWindow:
        """The window asked for: `until` defaults to now, `since` to 30 days before
        `until`; it must not end before it starts nor be longer than 366 days."""
        end = until or now
        start = since or end - DEFAULT_WINDOW
        if start > end:
            raise ValidationFailed(
                f"since ({start.isoformat()}) must not be after until ({end.isoformat()})",
                field="since",
            )
        if end - start > MAX_WINDOW:
            raise ValidationFailed(
                f"the window from {start.isoformat()} to {end.isoformat()} is longer than "
                f"{MAX_WINDOW.days} days: ask for a shorter one",
                field="since",
            )
        return cls(since=start, until=end)


@dataclass(frozen=True, slots=True)
class UsageFilter:
    since: datetime | None = None
    until: datetime | None = None
    resource_pool_id: str | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str
    jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    wall_seconds: float = 0.0
    gpu_seconds: float = 0.0
    cpu_seconds: float = 0.0
    queue_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """A pool now. Running jobs are those started and not ended (STOPPING included while
    its processes still run); what they use is what they asked for (replicas × request
    per replica). Waiting jobs are either queued or held."""

    pool_id: str
    running_jobs: int = 0
    queued_jobs: int = 0
    held_jobs: int = 0
    gpus_in_use: int = 0
    cpus_in_use: float = 0.0
    memory_in_use: float = 0.0  # GiB
    slots_total: int | None = None
    # What the pool declares it has (pools file `capacity`); None: not declared.
    gpus_total: int | None = None
    cpus_total: float | None = None
    memory_total: float | None = None  # GiB

    @property
    def slots_in_use(self) -> int:
        """A slot is taken by each running job (a pool's `maxConcurrentJobs`)."""
        return self.running_jobs


@dataclass(frozen=True, slots=True)
class PoolChanged:
    """Something changed in a pool that no job change announces (a job was deleted)."""

    pool_id: str


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """A job that has just reached a final status, with what it used (for counters)."""

    pool_id: str
    queue: str
    owner: str
    status: str
    gpu_seconds: float
    cpu_seconds: float
