"""The slot queue: at most `slots` jobs run at once; the waiting ones start in the
domain's start order (`app.domain.queueing.start_key`: priority, then arrival), which is
also the order the core shows as `queuePosition`. A held job keeps its place but is
skipped until released; a new priority takes effect at the next pick."""

from __future__ import annotations

from collections.abc import Iterator

from app.domain.queueing import StartKey, start_key
from app.runtime.local.livejob import LiveJob


def _key(job: LiveJob) -> StartKey:
    return start_key(
        priority=job.spec.priority, created_at=job.record.created_at, job_id=job.job_id
    )


class SlotQueue:
    """The jobs waiting for a slot, and which of them starts next."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._waiting: list[LiveJob] = []

    def __contains__(self, job: LiveJob) -> bool:
        return job in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self) -> Iterator[LiveJob]:
        """The waiting jobs, held ones included, in no particular order."""
        return iter(self._waiting)

    def append(self, job: LiveJob) -> None:
        self._waiting.append(job)

    def remove(self, job: LiveJob) -> None:
        """Take a waiting job out of the queue (ValueError if it is not waiting)."""
        self._waiting.remove(job)

    def discard(self, job: LiveJob) -> None:
        if job in self._waiting:
            self._waiting.remove(job)

    def pop_next(self, running: int) -> LiveJob | None:
        """The job to start now, taken off the queue; None while `running` jobs take
        every slot or no job that is not held waits. The key is computed at each pick
        (not kept sorted), so a priority changed while waiting counts at once."""
        if running >= self.slots:
            return None
        best = min((j for j in self._waiting if not j.held), key=_key, default=None)
        if best is not None:
            self._waiting.remove(best)
        return best
