"""Pydantic models of the REST shapes, for the OpenAPI document at /docs only.

Requests are not validated with them (the core validates; see shapes.py): they describe
what the routes accept and answer."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Envelope(_Open, Generic[T]):
    success: bool = True
    data: T | None = None
    message: str = ""


class ErrorEnvelope(_Open):
    success: bool = False
    data: None = None
    message: str = Field(description="What is wrong, and how to fix it.")
    code: str = Field(description="BAD_REQUEST, INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND, CONFLICT, EXCEEDS_POOL_CAPACITY, RUNTIME_UNAVAILABLE ...")
    field: str | None = None


class ListJobsRequest(_Open):
    keyword: str | None = Field(None, description="Part of the job name or id.")
    status: str | list[str] | None = Field(None, description=(
        "Either vocabulary, any case: the console's Pending (= PENDING or QUEUED), Running, "
        "Stopping, Stopped, Completed (= SUCCEEDED), ManualTermination (= STOPPED), "
        "Error (= FAILED), Failed; or the exact status (QUEUED, SUCCEEDED ...)."))
    owner: str | None = None
    pageNumber: int = Field(1, ge=1)
    pageSize: int = Field(100, ge=1, le=100, description=(
        "Without it the answer is the newest 100 jobs (the largest page): the legacy "
        "console pages on the client."))


_STATUS_WORD = (
    "The console's word: Pending (PENDING or QUEUED), Running, Stopping, Completed "
    "(SUCCEEDED), Failed, Stopped. GraphQL keeps its enum; `jobStatus` carries it."
)
_JOB_STATUS = "The exact status: PENDING QUEUED RUNNING STOPPING SUCCEEDED FAILED STOPPED."


class JobSummary(_Open):
    jobId: str
    jobName: str
    name: str = Field(description="The same as jobName (the legacy console reads name).")
    status: str = Field(description=_STATUS_WORD)
    jobStatus: str = Field(description=_JOB_STATUS)
    owner: str
    userId: str = Field(description="The same as owner (the legacy console reads userId).")
    resourcePoolId: str
    queue: str
    priority: int
    createdAt: str
    startedAt: str | None = None
    finishedAt: str | None = None


class JobList(_Open):
    jobs: list[JobSummary]
    totalCount: int


class PodInfo(_Open):
    name: str
    status: str
    phase: str
    nodeName: str | None = None


class JobDetail(JobSummary):
    config: dict[str, Any]
    pods: list[PodInfo]
    job: dict[str, Any] | None = Field(None, description="The same job again (legacy clients read data.job).")


class EnvVar(_Open):
    name: str
    value: str


class FlatCreateRequest(_Open):
    """The documented body of POST /api/jobs/create."""

    jobName: str
    image: str
    command: list[str] = Field(description="argv, e.g. [\"python\", \"train.py\"]")
    resourcePoolId: str | None = None
    queue: str | None = None


class Gpu(_Open):
    count: int = 0


class UnifiedResources(_Open):
    cpus: float | None = None
    memory: float | None = Field(None, description="GiB")
    gpu: Gpu | None = None


class Volume(_Open):
    """Accepted and ignored: no runtime mounts volumes yet."""

    type: str | None = None
    name: str | None = None
    mountPath: str | None = None
    sourcePath: str | None = None
    readOnly: bool | None = None


class Container(_Open):
    image: str
    command: list[str] | None = None
    resources: UnifiedResources | None = None
    envs: list[EnvVar] | None = None
    volumes: list[Volume] | None = Field(None, description="Accepted and ignored.")


class UnifiedTaskParams(_Open):
    name: str
    queueName: str | None = None
    replicas: int | None = 1
    container: Container
    command: str | None = Field(None, description="A shell line; replaces container.command.")
    priority: str | int | None = Field(None, description="low, normal, high, urgent or a number.")
    maxRetries: int | None = 0


class NativeJobSpec(_Open):
    replicas: int | None = 1
    image: str
    envs: list[EnvVar] | None = Field(None, description="[] asks for nothing.")
    resources: UnifiedResources | list[Any] | None = Field(None, description="[] asks for nothing.")


class NativeTaskParams(_Open):
    name: str
    queue: str | None = None
    jobType: str | None = Field(None, description="Accepted and ignored.")
    command: str = Field(description="A shell line.")
    jobSpec: NativeJobSpec
    labels: dict[str, str] | list[Any] | None = Field(None, description="[] asks for nothing.")
    datasources: list[Any] | None = Field(None, description="Accepted and ignored.")


class TaskParamsRequest(_Open):
    taskParams: UnifiedTaskParams | NativeTaskParams | str = Field(
        description="The unified or native shape, as an object or a JSON string of one."
    )


class CreatedJob(_Open):
    jobId: str
    jobName: str
    name: str
    status: str = Field(description=_STATUS_WORD)
    jobStatus: str = Field(description=_JOB_STATUS)


class RerunJobRequest(_Open):
    """POST /api/jobs/{jobId}/rerun: what to change; an empty body (or none) runs the job
    again as it was. Other fields are refused (400)."""

    priority: str | int | None = Field(None, description="low, normal, high, urgent or a number.")
    queue: str | None = Field(None, description="Another queue of the job's pool.")
    envs: list[EnvVar] | None = Field(None, description=(
        "Merged by name: each replaces the old job's variable of that name, or is added; "
        "the others are kept."))


class RerunJob(CreatedJob):
    rerunOf: str = Field(description="The job it was run again from.")


class StoppedJob(_Open):
    jobId: str
    jobName: str
    name: str
    owner: str
    userId: str
    status: str = Field(description=_STATUS_WORD)
    jobStatus: str = Field(description=_JOB_STATUS)


class DeletedJob(_Open):
    jobId: str


class JobEventInfo(_Open):
    type: str = Field(description="Normal or Warning")
    reason: str
    message: str
    timestamp: str


class JobEvents(_Open):
    events: list[JobEventInfo]


class PodLogs(_Open):
    logs: str


class WebTerminal(_Open):
    webTerminalUrl: str = Field(description="ws(s)://<host>/webterminal/<credential>; single use.")
    WebTerminalUrl: str = Field(description="The same URL (legacy spelling).")
    expiresAt: str


class LoginRequest(_Open):
    """The legacy console's login form."""

    ak: str = Field(description="The user name.")
    sk: str = Field(description="An API token (`jobgraph token create`) or OIDC token of that user.")
    type: str = Field("account", description="Echoed back.")


class LoginAnswer(_Open):
    status: str = Field("ok", description="ok")
    type: str = "account"
    currentAuthority: str = Field(description="admin or user")
    token: str = Field(description=(
        "Send as `Authorization: Bearer <token>` (or `X-Auth-Token`). For an API token sk: "
        "a session token of the same user, valid JOBGRAPH_SESSION_TTL_SECONDS (12 h), "
        "revoked by outLogin. For an OIDC token sk: that token itself."))
    success: bool = True
    data: dict[str, Any] = Field(description="token, user, currentAuthority, expiresAt (null for OIDC)")
    message: str = ""


class LoginRefused(ErrorEnvelope):
    status: str = Field("error", description="error")
    type: str = "account"
    currentAuthority: str = "guest"


class LoggedOut(_Open):
    sessionEnded: bool = Field(description="True when the request's token was a login's and is now revoked.")


CREATE_SHAPES = (FlatCreateRequest, TaskParamsRequest)
REQUEST_MODELS = (ListJobsRequest, *CREATE_SHAPES, RerunJobRequest, LoginRequest)


class CurrentUser(BaseModel):
    name: str
    userid: str
    user: str
    groups: list[str]
    isAdmin: bool
    access: str = Field(description="admin or user")
