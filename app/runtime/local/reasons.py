"""Why each queued job of a local pool waits, kept current as slots fill and free.

A queued job that is not held waits only while every slot is taken (the scheduler starts
it otherwise): WAITING_FOR_SLOT, saying how many slots are taken and how many of them by
the job's owner. A held job waits for its release: HELD. A reason is reported only when
its code or message changed, and the whole queue is looked at again only when who holds
the slots changed: a burst of submissions costs one look per new job, not one per job
already waiting."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from app.domain.jobs import JobStatus, PendingReason
from app.domain.queueing import HELD, HELD_MESSAGE, WAITING_FOR_SLOT, slot_message
from app.runtime.local.livejob import LiveJob

Occupancy = tuple[int, dict[str, int]]


class WaitingReasons:
    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._occupancy: Occupancy | None = None
        self._fresh: list[LiveJob] = []  # to look at although occupancy is unchanged

    def touch(self, job: LiveJob) -> None:
        """The job was queued: its reason is looked at in the next pass."""
        self._fresh.append(job)

    def now(self, job: LiveJob, running: Iterable[LiveJob]) -> None:
        """Set the job's reason at once (it was held or released), so the update that
        reports this carries the reason that goes with it."""
        reason = self._reason(job, _occupancy(running), {})
        if job.pending is None or (job.pending.code, job.pending.message) != reason:
            job.pending = PendingReason(*reason)

    def changed(self, running: Iterable[LiveJob], waiting: Iterable[LiveJob]) -> list[LiveJob]:
        """The waiting jobs whose reason changed, with `pending` set to the new one."""
        occupancy = _occupancy(running)
        everyone = occupancy != self._occupancy
        self._occupancy = occupancy
        fresh, self._fresh = self._fresh, []
        if not everyone:
            # Only the new ones (those started meanwhile no longer wait).
            waiting = [job for job in fresh if job.state.status == JobStatus.QUEUED]
        messages: dict[str, str] = {}
        changed = []
        for job in waiting:
            reason = self._reason(job, occupancy, messages)
            current = job.pending
            if current is None or (current.code, current.message) != reason:
                job.pending = PendingReason(*reason)
                changed.append(job)
        return changed

    def _reason(
        self, job: LiveJob, occupancy: Occupancy, messages: dict[str, str]
    ) -> tuple[str, str]:
        if job.held:
            return HELD, HELD_MESSAGE
        owner = job.record.owner
        if owner not in messages:  # one message per owner and pass
            taken, by_owner = occupancy
            messages[owner] = slot_message(
                taken=taken, slots=self.slots, owner=owner, owners_jobs=by_owner.get(owner, 0)
            )
        return WAITING_FOR_SLOT, messages[owner]


def _occupancy(running: Iterable[LiveJob]) -> Occupancy:
    owners = Counter(job.record.owner for job in running)
    return sum(owners.values()), dict(owners)
