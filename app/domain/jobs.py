"""Jobs, pods and events as plain data. No framework imports here."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    def accepts(self, reported: JobStatus) -> bool:
        """Whether a runtime's report may replace this status. Final statuses stay, and a
        job being stopped does not fall back to running on a late report."""
        if self.is_final:
            return False
        if self is JobStatus.STOPPING:
            return reported.is_final
        return True


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED})
# The statuses in which a job waits to start (and may be held, re-ordered, given a reason).
WAITING_STATUSES = frozenset({JobStatus.PENDING, JobStatus.QUEUED})


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_job_id() -> str:
    """Short, DNS-1123 safe: it becomes a Kubernetes Job name and pod name prefix."""
    return "j-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


@dataclass(frozen=True, slots=True)
class Resources:
    cpus: float | None = None
    memory_gib: float | None = None
    gpu: int = 0


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job specification (see `app.domain.validation.validate_spec`)."""

    name: str
    command: tuple[str, ...]
    resource_pool_id: str
    queue: str
    image: str | None = None
    replicas: int = 1
    resources: Resources = field(default_factory=Resources)
    envs: tuple[EnvVar, ...] = ()
    priority: int = 0
    max_retries: int = 0
    timeout_seconds: int | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        """The spec as submitted, JSON-serialisable; stored with the job."""
        return {
            "name": self.name,
            "image": self.image,
            "command": list(self.command),
            "resourcePoolId": self.resource_pool_id,
            "queue": self.queue,
            "replicas": self.replicas,
            "resources": {
                "cpus": self.resources.cpus,
                "memory": self.resources.memory_gib,
                "gpu": self.resources.gpu,
            },
            "envs": [{"name": e.name, "value": e.value} for e in self.envs],
            "priority": self.priority,
            "maxRetries": self.max_retries,
            "timeoutSeconds": self.timeout_seconds,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> JobSpec:
        res = config.get("resources") or {}
        return cls(
            name=config["name"],
            image=config.get("image"),
            command=tuple(config["command"]),
            resource_pool_id=config["resourcePoolId"],
            queue=config["queue"],
            replicas=config.get("replicas", 1),
            resources=Resources(
                cpus=res.get("cpus"), memory_gib=res.get("memory"), gpu=res.get("gpu", 0)
            ),
            envs=tuple(EnvVar(e["name"], e["value"]) for e in config.get("envs", [])),
            priority=config.get("priority", 0),
            max_retries=config.get("maxRetries", 0),
            timeout_seconds=config.get("timeoutSeconds"),
            labels=dict(config.get("labels") or {}),
        )


@dataclass(slots=True)
class Job:
    job_id: str
    owner: str
    spec: JobSpec
    status: JobStatus = JobStatus.PENDING
    reason: str | None = None
    exit_code: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    idempotency_key: str | None = None
    # Groups whose members may read the job (not act on it).
    shared_with: tuple[str, ...] = ()
    # Kept from starting by its owner or an admin until released.
    held: bool = False
    # The job this one was created from by a rerun.
    rerun_of: str | None = None
    # Why it waits; None unless PENDING or QUEUED.
    pending_reason: PendingReason | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for passing a job between processes)."""
        def stamp(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "jobId": self.job_id, "owner": self.owner, "config": self.spec.to_config(),
            "status": self.status.value, "reason": self.reason, "exitCode": self.exit_code,
            "createdAt": stamp(self.created_at), "startedAt": stamp(self.started_at),
            "finishedAt": stamp(self.finished_at), "idempotencyKey": self.idempotency_key,
            "sharedWith": list(self.shared_with), "held": self.held, "rerunOf": self.rerun_of,
            "pendingReason": self.pending_reason.to_dict() if self.pending_reason else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        def stamp(t: str | None) -> datetime | None:
            return datetime.fromisoformat(t) if t else None

        return cls(
            job_id=data["jobId"], owner=data["owner"], spec=JobSpec.from_config(data["config"]),
            status=JobStatus(data["status"]), reason=data["reason"], exit_code=data["exitCode"],
            created_at=datetime.fromisoformat(data["createdAt"]),
            started_at=stamp(data["startedAt"]), finished_at=stamp(data["finishedAt"]),
            idempotency_key=data["idempotencyKey"],
            shared_with=tuple(data.get("sharedWith", ())),
            held=data.get("held", False), rerun_of=data.get("rerunOf"),
            pending_reason=PendingReason.from_dict(data.get("pendingReason")),
        )

    @property
    def resource_pool_id(self) -> str:
        return self.spec.resource_pool_id

    @property
    def queue(self) -> str:
        return self.spec.queue


@dataclass(frozen=True, slots=True)
class Pod:
    job_id: str
    name: str
    replica_index: int
    phase: PodPhase = PodPhase.PENDING
    node_name: str | None = None
    exit_code: int | None = None
    restart_count: int = 0
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PendingReason:
    """Why a waiting job waits: a stable machine code (`WAITING_FOR_SLOT`, `HELD`,
    `WAITING_FOR_QUOTA`, `UNSCHEDULABLE` ...), a message for people (the queueing
    system's own where there is one) and since when this code holds."""

    code: str
    message: str
    since: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "since": self.since.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PendingReason | None:
        if not data:
            return None
        return cls(data["code"], data["message"], datetime.fromisoformat(data["since"]))


@dataclass(frozen=True, slots=True)
class JobEvent:
    job_id: str
    reason: str
    message: str
    type: EventType = EventType.NORMAL
    timestamp: datetime = field(default_factory=utcnow)
    # Identifies the event at its source so that seeing it again (a runtime replaying
    # its history after a restart, a Kubernetes event re-listed) stores it once.
    key: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class JobRemoved:
    """Broker message: the job was deleted (no job change announces it)."""

    job_id: str
