"""What /proc says about a process (stdlib only; also used by the wrapper)."""

from __future__ import annotations

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
