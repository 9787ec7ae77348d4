"""Answers already computed, kept until a change to what they were read from.

An answer (e.g. the encoded body of a read) is stored with what it was read from: some jobs
by id, or "every job" (a list, a count). Any change the broker hears to one of those
jobs drops it: a job's change or event, a share, a deletion; on PostgreSQL another
replica's change arrives by NOTIFY, this replica's own at its commit. Nothing expires
by time.

A read that raced a change must not be stored: `begin()` is taken before the read, and
`put` refuses the answer if anything it depends on changed since then (or if that can
no longer be told). While the broker may be missing changes (its connection is lost),
nothing is answered from here; once it has re-read what it missed, all is dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from app.core.broker import ALL_EVENTS_TOPIC, ALL_JOBS_TOPIC, REMOVED_JOBS_TOPIC, Broker

# Changes remembered (job id -> when) to tell whether a read raced one; a read older
# than the oldest remembered change is not stored.
RECENT_CHANGES = 4096


@dataclass(slots=True)
class Reads:
    """What one answer was read from, noted by the readers as they read."""

    job_ids: set[str] = field(default_factory=set)
    every_job: bool = False

    def job(self, job_id: str) -> None:
        self.job_ids.add(job_id)

    def all_jobs(self) -> None:
        self.every_job = True


@dataclass(slots=True)
class _Entry:
    value: Any
    size: int
    job_ids: frozenset[str]
    every_job: bool


class AnswerCache:
    def __init__(self, broker: Broker, *, max_bytes: int) -> None:
        self._broker = broker
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._by_job: dict[str, set[Hashable]] = {}
        self._on_every_job: set[Hashable] = set()
        self._clock = 0  # counts changes heard
        self._changed: OrderedDict[str, int] = OrderedDict()  # job id -> clock of its last change
        self._forgotten_until = 0  # changes up to this clock are no longer remembered
        self.hits = 0
        self.misses = 0
        broker.listen(ALL_JOBS_TOPIC, self._job_changed)
        broker.listen(ALL_EVENTS_TOPIC, self._job_changed)
        broker.listen(REMOVED_JOBS_TOPIC, self._job_changed)
        broker.on_resync(self.clear)

    # ---------------------------------------------------------------- reading

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key) if self._broker.hearing else None
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.value

    def begin(self) -> int:
        """Taken before a read whose answer may be `put`."""
        return self._clock

    def put(self, key: Hashable, value: Any, *, size: int, reads: Reads, begun: int) -> bool:
        """Keep `value` (of about `size` bytes) unless what it was read from changed since
        `begun`; whether kept."""
        size += _key_size(key)
        if (
            not (reads.job_ids or reads.every_job)
            or size > self._max_bytes // 8
            or not self._broker.hearing
            or self._raced(reads, begun)
        ):
            return False
        self._drop(key)
        entry = _Entry(value, size, frozenset(reads.job_ids), reads.every_job)
        self._entries[key] = entry
        self._bytes += size
        for job_id in entry.job_ids:
            self._by_job.setdefault(job_id, set()).add(key)
        if entry.every_job:
            self._on_every_job.add(key)
        while self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    def _raced(self, reads: Reads, begun: int) -> bool:
        if begun == self._clock:
            return False
        if reads.every_job or begun < self._forgotten_until:
            return True
        return any(self._changed.get(job_id, 0) > begun for job_id in reads.job_ids)

    # ---------------------------------------------------------------- forgetting

    def _job_changed(self, message: Any) -> None:
        job_id: str = message.job_id
        self._clock += 1
        self._changed[job_id] = self._clock
        self._changed.move_to_end(job_id)
        if len(self._changed) > RECENT_CHANGES:
            _, when = self._changed.popitem(last=False)
            self._forgotten_until = max(self._forgotten_until, when)
        for key in list(self._by_job.get(job_id, ())):
            self._drop(key)
        for key in list(self._on_every_job):
            self._drop(key)

    def clear(self) -> None:
        """Everything may have changed (the broker re-read what it missed)."""
        self._clock += 1
        self._forgotten_until = self._clock
        self._changed.clear()
        self._entries.clear()
        self._by_job.clear()
        self._on_every_job.clear()
        self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= entry.size
        for job_id in entry.job_ids:
            keys = self._by_job.get(job_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_job[job_id]
        self._on_every_job.discard(key)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes


def _key_size(key: Hashable) -> int:
    """Bytes a key holds of its own (the texts in it; a shared document text counts too,
    conservatively)."""
    if isinstance(key, tuple):
        return sum(_key_size(part) for part in key)
    if isinstance(key, str | bytes):
        return len(key)
    return 16
