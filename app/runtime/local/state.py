"""The runtime's per-job state as plain data, and its JSON form (state.json, events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.jobs import EventType, JobEvent, JobStatus, PodPhase


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(slots=True)
class ReplicaState:
    index: int
    attempt: int = 0  # attempts started so far; restarts = attempt - 1
    phase: PodPhase = PodPhase.PENDING
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pid: int | None = None  # the current attempt's wrapper (also in its pid.json)
    start_time: int | None = None

    @property
    def running(self) -> bool:
        return self.phase == PodPhase.RUNNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "attempt": self.attempt, "phase": self.phase.value,
            "exit_code": self.exit_code, "reason": self.reason,
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "pid": self.pid, "start_time": self.start_time,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplicaState:
        return cls(
            index=d["index"], attempt=d["attempt"], phase=PodPhase(d["phase"]),
            exit_code=d.get("exit_code"), reason=d.get("reason"),
            started_at=_dt(d.get("started_at")), finished_at=_dt(d.get("finished_at")),
            pid=d.get("pid"), start_time=d.get("start_time"),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a job will end once its remaining replicas are gone (decided earlier)."""

    status: JobStatus
    reason: str | None
    exit_code: int | None
    event_reason: str
    event_message: str
    event_type: EventType = EventType.WARNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value, "reason": self.reason, "exit_code": self.exit_code,
            "event_reason": self.event_reason, "event_message": self.event_message,
            "event_type": self.event_type.value,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Outcome:
        return cls(
            status=JobStatus(d["status"]), reason=d.get("reason"),
            exit_code=d.get("exit_code"), event_reason=d["event_reason"],
            event_message=d["event_message"], event_type=EventType(d["event_type"]),
        )


@dataclass(slots=True)
class JobState:
    status: JobStatus
    replicas: list[ReplicaState]
    reason: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stop_requested: bool = False
    killed: bool = False  # SIGKILL was sent: wrappers may have died without a record
    ending: Outcome | None = None
    master_port: int | None = None
    deadline: datetime | None = None

    @property
    def terminating(self) -> bool:
        return self.stop_requested or self.ending is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "stop_requested": self.stop_requested,
            "killed": self.killed,
            "ending": self.ending.to_dict() if self.ending else None,
            "master_port": self.master_port,
            "deadline": _iso(self.deadline),
            "replicas": [r.to_dict() for r in self.replicas],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobState:
        return cls(
            status=JobStatus(d["status"]),
            replicas=[ReplicaState.from_dict(r) for r in d["replicas"]],
            reason=d.get("reason"),
            exit_code=d.get("exit_code"),
            started_at=_dt(d.get("started_at")),
            finished_at=_dt(d.get("finished_at")),
            stop_requested=bool(d.get("stop_requested")),
            killed=bool(d.get("killed")),
            ending=Outcome.from_dict(d["ending"]) if d.get("ending") else None,
            master_port=d.get("master_port"),
            deadline=_dt(d.get("deadline")),
        )


def event_to_dict(e: JobEvent) -> dict[str, Any]:
    return {
        "key": e.key, "reason": e.reason, "message": e.message, "type": e.type.value,
        "timestamp": e.timestamp.isoformat(),
    }


def event_from_dict(job_id: str, d: dict[str, Any]) -> JobEvent:
    return JobEvent(
        job_id=job_id, reason=d["reason"], message=d["message"], type=EventType(d["type"]),
        timestamp=datetime.fromisoformat(d["timestamp"]), key=d["key"],
    )
