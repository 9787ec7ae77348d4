"""The order in which waiting jobs start, and why a job waits: one rule for every pool.

The local runtime's slot queue takes its next job by `start_key`, and the core computes a
job's `queuePosition` by the same key, so the position shown is the order jobs really
start in (a held job is in neither: it does not start until released).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# Codes of `PendingReason` (the issue-13 contract). The local runtime reports the first
# three; the Kubernetes runtime reads the others from Kueue, Volcano and pod events.
WAITING_FOR_SLOT = "WAITING_FOR_SLOT"
HELD = "HELD"
SUBMITTING = "SUBMITTING"

StartKey = tuple[int, datetime, str]


def start_key(*, priority: int, created_at: datetime, job_id: str) -> StartKey:
    """Smaller starts first: higher priority, then earlier arrival (creation time; the
    id only breaks a tie of equal times, so the order is total and stable)."""
    return (-priority, created_at, job_id)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A waiting job as the order sees it."""

    job_id: str
    priority: int
    created_at: datetime

    @property
    def key(self) -> StartKey:
        return start_key(priority=self.priority, created_at=self.created_at, job_id=self.job_id)


def positions(waiting: Iterable[QueueEntry]) -> dict[str, int]:
    """1-based start positions of the waiting (not held) jobs of one pool and queue."""
    ordered = sorted(waiting, key=lambda entry: entry.key)
    return {entry.job_id: index for index, entry in enumerate(ordered, start=1)}


def slot_message(*, taken: int, slots: int, owner: str, owners_jobs: int) -> str:
    """WAITING_FOR_SLOT's message: how full the pool is, and how much of it is the
    owner's own (what they can change by stopping or holding their other jobs)."""
    return (
        f"waiting for a free job slot: {taken} of {slots} slot(s) are taken, "
        f"{owners_jobs} of them by {owner}'s own jobs"
    )


HELD_MESSAGE = "held by its owner or an administrator; it starts only once released"
SUBMITTING_MESSAGE = "recorded; the runtime has not accepted it yet"
