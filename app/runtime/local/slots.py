"""The slot queue: at most `slots` jobs run at once; the waiting ones start by priority,
then in arrival order (the `order` recorded in job.json)."""

from __future__ import annotations

from app.runtime.local.livejob import LiveJob


class SlotQueue:
    """The jobs waiting for a slot, and which of them starts next."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._waiting: list[LiveJob] = []

    def __contains__(self, job: LiveJob) -> bool:
        return job in self._waiting

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
        every slot or no job waits."""
        if not self._waiting or running >= self.slots:
            return None
        best = min(self._waiting, key=lambda j: (-j.spec.priority, j.record.order))
        self._waiting.remove(best)
        return best
