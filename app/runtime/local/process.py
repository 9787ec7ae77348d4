"""Replica processes: start one through the wrapper, learn when it ends, signal it.

Ends are detected with a pidfd (readable once the process has exited); this works for
our own children and for replicas adopted from an earlier server alike, so there is no
polling. Our own children are reaped as soon as they end, so no zombies stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import app
from app.runtime.local.files import read_json
from app.runtime.local.procfs import proc_stat
from app.runtime.local.wrapper import EXIT_FILE, PID_FILE, STOP_SIGNALS

# The wrapper runs with this as its working directory so that `-m app....` imports
# this very code base (installed or not) and never a user's `app/` in the job workdir.
_CODE_ROOT = str(Path(app.__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class ExitRecord:
    """What the wrapper wrote when the command ended."""

    exit_code: int
    signal: int | None
    reason: str | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProcessId:
    """A process identified beyond doubt: pid plus start time (pids get recycled)."""

    pid: int
    start_time: int


def read_exit(attempt_dir: Path) -> ExitRecord | None:
    data = read_json(attempt_dir / EXIT_FILE)
    if not isinstance(data, dict) or not isinstance(data.get("exit_code"), int):
        return None
    finished = data.get("finished_at")
    return ExitRecord(
        exit_code=data["exit_code"],
        signal=data.get("signal"),
        reason=data.get("reason"),
        finished_at=datetime.fromisoformat(finished) if finished else None,
    )


def read_pid(attempt_dir: Path) -> ProcessId | None:
    data = read_json(attempt_dir / PID_FILE)
    if not isinstance(data, dict):
        return None
    try:
        return ProcessId(pid=int(data["pid"]), start_time=int(data["start_time"]))
    except (KeyError, TypeError, ValueError):
        return None


class _DetachedPopen(subprocess.Popen[bytes]):
    """A wrapper is meant to outlive this object (and the server): it is reaped by its
    ExitWatch, or by a later runtime that adopts it. So dropping the object while the
    wrapper runs (after `close()`) is normal, not a leak worth a ResourceWarning."""

    def __del__(self) -> None:
        if self.returncode is None:
            self.poll()  # reap it if it has ended meanwhile; never blocks


def spawn_wrapper(
    *, attempt_dir: Path, workdir: Path, log_path: Path, log_max_bytes: int,
    argv: Sequence[str], env: Mapping[str, str],
) -> tuple[subprocess.Popen[bytes], ProcessId]:
    """Start the wrapper in a new session, detached from the server's stdio.

    It starts with the stop signals blocked (a child inherits the signal mask): a stop
    that comes before the wrapper has installed its handlers waits for them instead of
    killing it unrecorded. The wrapper unblocks them itself."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        with open(log_path, "ab", buffering=0) as log:
            proc = _spawn(attempt_dir, workdir, log, [
                "--log", str(log_path), "--log-max-bytes", str(log_max_bytes), "--", *argv
            ], env)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    stat = proc_stat(proc.pid)
    # A wrapper that is already gone has no start time; 0 never matches a live one.
    return proc, ProcessId(proc.pid, stat.start_time if stat else 0)


def _spawn(
    attempt_dir: Path, workdir: Path, log: IO[bytes], args: Sequence[str], env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    # The wrapper's own stdout/stderr are the log too (for what goes wrong in it).
    return _DetachedPopen(
        [sys.executable, "-m", "app.runtime.local.wrapper",
         "--dir", str(attempt_dir), "--cwd", str(workdir), *args],
        cwd=_CODE_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # own session + process group: survives the server
        close_fds=True,  # never leak the server's sockets or data-dir lock
    )


def _reap(pid: int, proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.poll()
        return
    # An adopted replica may still be our child (same process, new runtime).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class ExitWatch:
    """Calls `on_exit` once (from the event loop) when the process has ended."""

    def __init__(
        self, pid: int, *, proc: subprocess.Popen[bytes] | None, fd: int | None,
        on_exit: Callable[[], None],
    ) -> None:
        self.pid = pid
        self._proc = proc
        self._fd = fd
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self._ended = asyncio.Event()
        self._closed = False
        if fd is None:
            self._loop.call_soon(self._fire)
        else:
            self._loop.add_reader(fd, self._fire)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait(self) -> None:
        await self._ended.wait()

    def close(self) -> None:
        """Stop watching without touching the process (it keeps running)."""
        self._closed = True
        self._detach()

    def _detach(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _fire(self) -> None:
        if self._closed or self._ended.is_set():
            return
        self._detach()
        _reap(self.pid, self._proc)
        self._ended.set()
        self._on_exit()


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def watch_child(proc: subprocess.Popen[bytes], on_exit: Callable[[], None]) -> ExitWatch:
    return ExitWatch(proc.pid, proc=proc, fd=_pidfd(proc.pid), on_exit=on_exit)


def adopt(ident: ProcessId, on_exit: Callable[[], None]) -> ExitWatch | None:
    """Watch a replica started by an earlier runtime, or None if it is gone."""
    fd = _pidfd(ident.pid)
    if fd is None:
        return None
    # Checked after opening the pidfd: the fd pins this pid, so the check cannot race
    # with a recycle. A zombie passes (its pidfd is readable at once, then reaped).
    stat = proc_stat(ident.pid)
    if stat is None or stat.start_time != ident.start_time:
        os.close(fd)
        return None
    return ExitWatch(ident.pid, proc=None, fd=fd, on_exit=on_exit)


def signal_group(ident: ProcessId, sig: signal.Signals) -> None:
    """Signal the replica's whole process group (the wrapper leads it), but only
    while the wrapper is the very process we started (alive, or a zombie not yet
    reaped: either way its pid, hence the group id, is still ours)."""
    stat = proc_stat(ident.pid)
    if stat is None or stat.start_time != ident.start_time:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(ident.pid, sig)
