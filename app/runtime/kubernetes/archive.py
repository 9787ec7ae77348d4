"""Pod logs kept after the pod is gone: written when a pod ends or before a stop."""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

_SAFE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class LogArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, job_id: str, pod_name: str) -> Path:
        if not (_SAFE.match(job_id) and _SAFE.match(pod_name)):
            raise ValueError("not a Kubernetes object name")
        return self.root / job_id / f"{pod_name}.log"

    def has(self, job_id: str, pod_name: str) -> bool:
        return self.path(job_id, pod_name).is_file()

    def write(self, job_id: str, pod_name: str, data: bytes) -> None:
        target = self.path(job_id, pod_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.stat().st_size > len(data):
            return  # keep the longer copy (a later read may be cut by the pod's deletion)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def lines(self, job_id: str, pod_name: str, *, tail_lines: int | None) -> Iterator[str]:
        with self.path(job_id, pod_name).open("rb") as handle:
            source = (raw.decode(errors="replace").rstrip("\r\n") for raw in handle)
            yield from (deque(source, maxlen=tail_lines) if tail_lines is not None else source)

    def remove(self, job_id: str) -> None:
        folder = self.root / job_id
        if folder.is_dir():
            for item in folder.iterdir():
                item.unlink(missing_ok=True)
            folder.rmdir()
