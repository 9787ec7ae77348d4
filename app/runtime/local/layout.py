"""Where a job's files live under the runtime's root.

    <root>/<job_id>/job.json                       the spec as submitted (+ owner, order)
    <root>/<job_id>/state.json                     the runtime's view of the job
    <root>/<job_id>/events.jsonl                   every event, replayed after a restart
    <root>/<job_id>/workdir/                       working directory shared by replicas
    <root>/<job_id>/logs/<pod>.log                 merged stdout+stderr of a replica
    <root>/<job_id>/replicas/<pod>/<attempt>/      pid.json and exit.json of one attempt

Pod names given to these helpers must be ones the runtime generated itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Job ids become directory names: accept only what `new_job_id` makes (DNS-1123 label).
JOB_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class JobPaths:
    dir: Path

    @property
    def job_file(self) -> Path:
        return self.dir / "job.json"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def events_file(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def workdir(self) -> Path:
        return self.dir / "workdir"

    def log(self, pod: str) -> Path:
        return self.dir / "logs" / f"{pod}.log"

    def attempt_dir(self, pod: str, attempt: int) -> Path:
        return self.dir / "replicas" / pod / str(attempt)

    def create(self, pods: list[str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        for pod in pods:
            (self.dir / "replicas" / pod).mkdir(parents=True, exist_ok=True)
