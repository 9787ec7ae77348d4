"""Resource pools: where jobs run (a runtime) and the queues they wait in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.domain.jobs import Resources


@dataclass(frozen=True, slots=True)
class ResourcePool:
    id: str
    runtime: str  # "local" | "kubernetes"
    queues: tuple[str, ...] = ("default",)
    max_concurrent_jobs: int | None = None
    # Groups whose members may submit here; empty: everyone.
    allowed_groups: tuple[str, ...] = ()
    # What the pool has in total (pools file `capacity`); None: not declared. A job whose
    # replicas together ask for more can never run there (app/domain/capacity.py).
    capacity: Resources | None = None
    # Runtime-specific settings (kubeconfig, namespace, queueing ...), kept opaque here.
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def default_queue(self) -> str:
        return self.queues[0]

    def usable_by(self, *, groups: tuple[str, ...], is_admin: bool) -> bool:
        return is_admin or not self.allowed_groups or bool(set(groups) & set(self.allowed_groups))
