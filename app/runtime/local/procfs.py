"""What /proc says about a process (stdlib only; also used by the wrapper)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcStat:
    state: str  # R, S, D, Z (zombie), X (dead) ...
    pgid: int
    start_time: int  # clock ticks after boot: with the pid, identifies one process

    @property
    def ended(self) -> bool:
        return self.state in ("Z", "X")


def proc_stat(pid: int) -> ProcStat | None:
    """Fields of /proc/<pid>/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or
    # parentheses, so split after the last ')': the rest starts at field 3 (state).
    rest = raw[raw.rfind(")") + 2 :].split()
    return ProcStat(state=rest[0], pgid=int(rest[2]), start_time=int(rest[19]))


def tagged(variable: str) -> list[int]:
    """Processes (not zombies) whose environment holds `variable` (`NAME=value`),
    this one excepted."""
    needle = b"\0" + variable.encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in b"\0" + environ + b"\0":
            found.append(int(entry.name))
    return found


def kill_tagged(variable: str, *, timeout: float) -> list[int]:
    """SIGKILL every process tagged with `variable` until none is left or `timeout`
    has passed; returns those still there. Blocking: run off the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        left = tagged(variable)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)  # on a worker thread: a killed process takes a moment to go
