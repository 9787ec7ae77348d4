"""The replica wrapper: `python -m app.runtime.local.wrapper --dir D --cwd W -- argv...`.

It runs in its own session (started by the runtime with start_new_session=True) so
that it, and the command it runs, outlive the API server. It records who it is
(`pid.json`) and, when the command ends, how it ended (`exit.json`), so a runtime
started later can adopt the replica or learn its outcome. Stdout/stderr are already
the replica's log file; the command inherits them.

Stdlib only (plus two stdlib-only helpers): it starts once per replica attempt.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.runtime.local.files import atomic_write_json
from app.runtime.local.procfs import proc_stat

PID_FILE = "pid.json"
EXIT_FILE = "exit.json"
NOT_EXECUTABLE = 127
_PR_SET_CHILD_SUBREAPER = 36


# The runtime starts the wrapper with these blocked, so none is lost before the handler
# below is in place; the wrapper unblocks them once the command runs.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
_received: list[int] = []


def _note(signum: int, frame: Any) -> None:
    """A Python-level handler. Unlike SIG_IGN it is reset to the default by exec, so the
    command still dies of the SIGTERM that the wrapper survives."""
    _received.append(signum)


def _become_subreaper() -> None:
    """Orphans of the command (a shell's children, say) become our children rather
    than init's, so the wrapper can reap them and leave nothing behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux or no prctl: orphans go to init as usual


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(pid) for pid in f.read().split()]
    except OSError:
        return []


def _reap_leftovers() -> None:
    """Once the command has ended, its replica is over (as when a container's main
    process exits): kill whatever it left running and reap everything."""
    while True:
        for pid in _children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            os.wait()
        except ChildProcessError:
            return


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _unblock_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _run(argv: list[str], cwd: str) -> dict[str, Any]:
    try:
        # The command starts with a clean signal mask; the wrapper has no threads, so
        # preexec_fn is safe here.
        proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, preexec_fn=_unblock_stop_signals
        )
    except FileNotFoundError:
        reason = f"command not found: {argv[0]}"
    except PermissionError:
        reason = f"command not executable: {argv[0]}"
    except OSError as exc:
        reason = f"cannot execute {argv[0]}: {exc.strerror or exc}"
    else:
        _unblock_stop_signals()
        if _received:  # a stop that came while the command was being started
            proc.send_signal(_received[0])
        code = proc.wait()
        if code < 0:
            signum = -code
            return {
                "exit_code": 128 + signum,
                "signal": signum,
                "reason": f"killed by signal {signum} ({_signal_name(signum)})",
            }
        return {"exit_code": code, "signal": None, "reason": None}
    _unblock_stop_signals()
    print(f"jobgraph: {reason}", file=sys.stderr, flush=True)
    return {"exit_code": NOT_EXECUTABLE, "signal": None, "reason": reason}


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobgraph-wrapper")
    parser.add_argument("--dir", required=True, type=Path, help="the attempt's record dir")
    parser.add_argument("--cwd", required=True, help="working directory of the command")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    ns = parser.parse_args(args)
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv

    for signum in STOP_SIGNALS:
        signal.signal(signum, _note)
    _become_subreaper()

    me = os.getpid()
    stat = proc_stat(me)
    assert stat is not None
    atomic_write_json(ns.dir / PID_FILE, {"pid": me, "start_time": stat.start_time})

    result: dict[str, Any] = _run(argv, ns.cwd) if argv else {
        "exit_code": NOT_EXECUTABLE, "signal": None, "reason": "empty command"
    }
    result["finished_at"] = datetime.now(UTC).isoformat()
    _reap_leftovers()  # before the record: when it exists, nothing of the replica runs
    atomic_write_json(ns.dir / EXIT_FILE, result)
    return min(result["exit_code"], 255)


if __name__ == "__main__":
    sys.exit(main())
