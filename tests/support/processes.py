"""Cleaning up job processes a test left behind (they outlive servers by design)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from app.runtime.local.process import read_pid
from app.runtime.local.procfs import proc_stat


def kill_leftover_replicas(base: Path) -> None:
    """SIGKILL every replica group recorded under `base` that is still the same process."""
    for pid_file in base.rglob("pid.json"):
        ident = read_pid(pid_file.parent)
        if ident is None:
            continue
        stat = proc_stat(ident.pid)
        if stat is not None and stat.start_time == ident.start_time:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(ident.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(ident.pid, 0)
