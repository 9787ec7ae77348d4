"""The Runtime port: what the core asks of any engine that runs jobs.

Runtimes know nothing about HTTP, GraphQL or the database. They receive jobs, run them,
and report every change as a `JobUpdate` on their `watch()` stream; the core's sync task
stores those updates and publishes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.domain.jobs import Job, JobEvent, JobStatus, PendingReason, Pod, Resources
from app.domain.pools import ResourcePool


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A change the runtime observed. `None` fields are "unchanged"."""

    job_id: str
    status: JobStatus | None = None
    reason: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The complete set of the job's pods whenever any of them changed.
    pods: tuple[Pod, ...] | None = None
    events: tuple[JobEvent, ...] = ()
    # Why a QUEUED job waits, as a code and message (`reason` carries it as text).
    pending_reason: PendingReason | None = None


class Terminal(Protocol):
    """An interactive shell inside a running replica (PTY locally, exec on Kubernetes)."""

    async def read(self) -> bytes:
        """Next chunk of terminal output; b"" once the shell has ended."""

    async def write(self, data: bytes) -> None: ...

    async def resize(self, *, rows: int, cols: int) -> None: ...

    async def close(self) -> None: ...


class Runtime(Protocol):
    pool: ResourcePool

    async def start(self, active_jobs: Sequence[Job]) -> None:
        """Begin supervising. `active_jobs` are the pool's jobs the database holds as not
        final; the runtime adopts what it still runs, reports the real outcome of what
        ended meanwhile, and reports anything it no longer knows as FAILED."""

    async def close(self) -> None:
        """Stop supervising. Jobs keep running where the runtime allows it."""

    def validate(self, job: Job) -> None:
        """Refuse, before anything is recorded, a job this runtime could never run
        (raises `ValidationFailed`), e.g. no image for a container runtime."""

    async def submit(self, job: Job) -> None:
        """Accept a new job. Raises `RuntimeUnavailable` when it cannot."""

    async def stop(self, job_id: str) -> None:
        """End the job; it reports STOPPED when its replicas are gone."""

    # Steering waiting jobs. The core decides (who may, whether the job still waits) and
    # records the decision first; the runtime then makes it so, and raises `Conflict`
    # when the job has started or ended meanwhile.

    async def hold(self, job: Job) -> None:
        """The waiting job must not start until released."""

    async def release(self, job: Job) -> None:
        """A held job may start again, back in its place (its arrival order is kept)."""

    async def reorder(self, job: Job) -> None:
        """The waiting job now carries a new priority and/or queue (in `job.spec`)."""

    async def queue_positions(self, jobs: Sequence[Job]) -> dict[str, int] | None:
        """The runtime's own 1-based positions of these waiting jobs (e.g. Kueue's
        visibility API); a job missing from the dict has no known position. None: the
        core computes them itself, exactly, from the database (local pools)."""

    async def largest_node(self) -> Resources | None:
        """The allocatable resources of the largest node (Kubernetes: read from the
        cluster, cached); None when unknown or not applicable (local)."""

    async def delete(self, job_id: str) -> None:
        """Stop the job if needed and remove everything the runtime holds for it."""

    def logs(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[str]:
        """Lines of a pod's output (without line ends). With `follow`, keeps yielding new
        lines until the pod has ended. Raises `NotFound` for an unknown pod."""

    async def open_terminal(self, job_id: str, pod_name: str, *, rows: int, cols: int) -> Terminal:
        """A shell in the pod. Raises `NotFound` or `Conflict` (pod not running)."""

    def watch(self) -> AsyncIterator[JobUpdate]:
        """Every change, in the order it happened. One consumer: the core's sync task."""
