"""Output types of the schema."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.domain import jobs as domain
from app.domain.listing import JobCursor, JobFilter
from app.domain.pools import ResourcePool as DomainPool
from app.graphql.context import GraphQLContext
from app.graphql.usage import PoolUsage, resolve_pool_usage

# strawberry.enum marks the domain enum itself (and returns it), so the GraphQL type is
# the domain type: no conversion, and type checkers see a class.
JobStatus = domain.JobStatus
strawberry.enum(
    JobStatus,
    name="JobStatus",
    description="PENDING → QUEUED → RUNNING → SUCCEEDED | FAILED; STOPPING → STOPPED.",
)

Info = strawberry.Info[GraphQLContext, None]


@strawberry.type(description="One replica of a job: a Kubernetes pod, or a local process.")
class Pod:
    name: str
    phase: str = strawberry.field(
        description="Kubernetes' spelling: Pending, Running, Succeeded, Failed, Unknown."
    )
    replica_index: int
    node_name: str | None
    exit_code: int | None
    restart_count: int
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, pod: domain.Pod) -> Pod:
        return cls(
            name=pod.name,
            phase=pod.phase.value,
            replica_index=pod.replica_index,
            node_name=pod.node_name,
            exit_code=pod.exit_code,
            restart_count=pod.restart_count,
            reason=pod.reason,
            started_at=pod.started_at,
            finished_at=pod.finished_at,
        )


@strawberry.type(description="Something that happened to a job or its pods.")
class JobEvent:
    type: str = strawberry.field(description="Normal or Warning, as in Kubernetes.")
    reason: str
    message: str
    timestamp: datetime

    @classmethod
    def of(cls, event: domain.JobEvent) -> JobEvent:
        return cls(type=event.type.value, reason=event.reason, message=event.message, timestamp=event.timestamp)


@strawberry.type(description="What each replica asks for.")
class Resources:
    cpus: float | None
    memory: float | None = strawberry.field(description="GiB")
    gpu: int


@strawberry.type
class EnvVar:
    name: str
    value: str


@strawberry.type(description="Why a waiting job waits.")
class PendingReason:
    code: str = strawberry.field(
        description="WAITING_FOR_SLOT, HELD, WAITING_FOR_QUOTA, NO_MATCHING_FLAVOR, "
        "EXCEEDS_QUOTA, UNSCHEDULABLE, GANG_NOT_READY or SUBMITTING."
    )
    message: str = strawberry.field(description="For people: the queueing system's own words where it has them.")
    since: datetime = strawberry.field(description="Since when the job has waited for this code.")

    @classmethod
    def of(cls, reason: domain.PendingReason) -> PendingReason:
        return cls(code=reason.code, message=reason.message, since=reason.since)


@strawberry.type(description="A training job.")
class Job:
    """Scalar fields are plain attributes, filled once from the domain job: the default
    resolver reads them far more cheaply than a method resolver would, which matters when
    one change fans out to many subscribers."""

    job: strawberry.Private[domain.Job]
    job_id: strawberry.ID = strawberry.field(description="The job's id, e.g. `j-7k2m9x4q`.")
    name: str = strawberry.field(description="Display name (any Unicode text).")
    status: JobStatus
    owner: str
    resource_pool_id: str
    queue: str
    image: str | None
    command: list[str]
    replicas: int
    priority: int
    max_retries: int
    timeout_seconds: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    reason: str | None = strawberry.field(
        description="Why the job is in its status (failure reason, DeadlineExceeded ...)."
    )
    exit_code: int | None
    shared_with_groups: list[str] = strawberry.field(
        description="Groups whose members may read the job."
    )
    rerun_of: strawberry.ID | None = strawberry.field(
        description="The job this one was run again from (`rerunJob`); null otherwise."
    )
    held: bool = strawberry.field(
        description="Kept from starting by holdJob until releaseJob (it keeps its place)."
    )
    pending_reason: PendingReason | None = strawberry.field(
        description="Why it waits; null unless PENDING or QUEUED."
    )

    @classmethod
    def of(cls, job: domain.Job) -> Job:
        spec = job.spec
        return cls(
            job=job,
            job_id=strawberry.ID(job.job_id),
            name=spec.name,
            status=job.status,
            owner=job.owner,
            resource_pool_id=spec.resource_pool_id,
            queue=spec.queue,
            image=spec.image,
            command=list(spec.command),
            replicas=spec.replicas,
            priority=spec.priority,
            max_retries=spec.max_retries,
            timeout_seconds=spec.timeout_seconds,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            reason=job.reason,
            exit_code=job.exit_code,
            shared_with_groups=list(job.shared_with),
            rerun_of=strawberry.ID(job.rerun_of) if job.rerun_of else None,
            held=job.held,
            pending_reason=PendingReason.of(job.pending_reason) if job.pending_reason else None,
        )

    @strawberry.field(
        description="1-based place among the waiting, not held jobs of its pool and queue, in "
        "the order they will start (priority, then arrival); null when it does not wait, is "
        "held, or its pool's queue cannot tell (a Kueue pool without the visibility API)."
    )
    async def queue_position(self, info: Info) -> int | None:
        if self.job.status not in domain.WAITING_STATUSES or self.job.held:
            return None  # known without asking anyone
        return await info.context.loaders.queue_positions.load(self.job)

    @strawberry.field
    def resources(self) -> Resources:
        res = self.job.spec.resources
        return Resources(cpus=res.cpus, memory=res.memory_gib, gpu=res.gpu)

    @strawberry.field
    def envs(self) -> list[EnvVar]:
        return [EnvVar(name=e.name, value=e.value) for e in self.job.spec.envs]

    @strawberry.field
    def labels(self) -> JSON:
        return JSON(dict(self.job.spec.labels))

    @strawberry.field(description="The job specification as submitted.")
    def config(self) -> JSON:
        return JSON(self.job.spec.to_config())

    @strawberry.field
    async def pods(self, info: Info) -> list[Pod]:
        return [Pod.of(p) for p in await info.context.loaders.pods.load(self.job.job_id)]

    @strawberry.field(description="Stored events, oldest first; optionally within a time window.")
    async def events(
        self, info: Info, since: datetime | None = None, until: datetime | None = None
    ) -> list[JobEvent]:
        events = await info.context.loaders.events.load((self.job.job_id, since, until))
        return [JobEvent.of(e) for e in events]

    @strawberry.field(description="The pod's log: its last `tailLines` lines, only those containing `keyword`.")
    async def logs(
        self,
        info: Info,
        pod_name: str,
        tail_lines: int | None = None,
        keyword: str | None = None,
        max_lines: int | None = None,
    ) -> str:
        return await info.context.services.jobs.job_logs(
            actor=info.context.actor, job_id=self.job.job_id, pod_name=pod_name,
            tail_lines=tail_lines, keyword=keyword, max_lines=max_lines,
        )


@strawberry.type(
    description="What a pool has in total (pools file `capacity`). A job whose replicas "
    "together ask for more is refused with EXCEEDS_POOL_CAPACITY."
)
class PoolCapacity:
    cpus: float | None = strawberry.field(description="Null: not declared, not checked.")
    memory: float | None = strawberry.field(
        description="GiB. Null: not declared, not checked."
    )
    gpu: int = strawberry.field(description="0 when the capacity names no GPUs.")


@strawberry.type
class ResourcePool:
    id: str
    runtime: str
    queues: list[str]
    max_concurrent_jobs: int | None
    allowed_groups: list[str] = strawberry.field(description="Empty: open to everyone.")
    capacity: PoolCapacity | None = strawberry.field(
        description="Null: the pool declares none (jobs are not checked against a total)."
    )

    @classmethod
    def of(cls, pool: DomainPool) -> ResourcePool:
        total = pool.capacity
        return cls(
            id=pool.id,
            runtime=pool.runtime,
            queues=list(pool.queues),
            max_concurrent_jobs=pool.max_concurrent_jobs,
            allowed_groups=list(pool.allowed_groups),
            capacity=PoolCapacity(cpus=total.cpus, memory=total.memory_gib, gpu=total.gpu)
            if total else None,
        )

    @strawberry.field(description="Its jobs now: running, queued, held, and what they use.")
    async def usage(self, info: Info) -> PoolUsage:
        return await resolve_pool_usage(info, self.id)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class JobEdge:
    cursor: str
    node: Job


@strawberry.type(description="A page of jobs, newest first.")
class JobConnection:
    edges: list[JobEdge]
    page_info: PageInfo
    filter: strawberry.Private[JobFilter]

    @strawberry.field
    def nodes(self) -> list[Job]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many jobs match the filter (all pages).")
    async def total_count(self, info: Info) -> int:
        return await info.context.services.jobs.count(actor=info.context.actor, job_filter=self.filter)

    @classmethod
    def of(cls, jobs: list[domain.Job], *, job_filter: JobFilter, has_next: bool, has_previous: bool) -> JobConnection:
        edges = [JobEdge(cursor=JobCursor.of(j).encode(), node=Job.of(j)) for j in jobs]
        return cls(
            edges=edges,
            filter=job_filter,
            page_info=PageInfo(
                has_next_page=has_next,
                has_previous_page=has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )



@strawberry.type(description="Who is asking.")
class Viewer:
    user: str
    groups: list[str]
    is_admin: bool


@strawberry.type(description="One entry of the audit trail.")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    actor: str
    action: str
    outcome: str = strawberry.field(description="allowed or refused")
    job_id: strawberry.ID | None
    detail: str | None
    client_addr: str | None = strawberry.field(description="Where the request came from.")


@strawberry.type
class AuditEntryConnection:
    nodes: list[AuditEntry]
    page_info: PageInfo
