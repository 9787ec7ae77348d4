"""The replica wrapper: `python -m app.runtime.local.wrapper --dir D --cwd W -- argv...`.

It runs in its own session (started by the runtime with start_new_session=True) so
that it, and the command it runs, outlive the API server. It records who it is
(`pid.json`) and, when the command ends, how it ended (`exit.json`), so a runtime
started later can adopt the replica or learn its outcome. The command's stdout and
stderr go through one pipe into the replica's log file, capped in bytes on disk
(`logfile.CappedLog`: the oldest output is dropped, and the file says so).

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
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.runtime.local.files import atomic_write_json
from app.runtime.local.logfile import CappedLog
from app.runtime.local.procfs import proc_stat

PID_FILE = "pid.json"
EXIT_FILE = "exit.json"
NOT_EXECUTABLE = 127
_PR_SET_CHILD_SUBREAPER = 36


# The runtime starts the wrapper with these blocked, so none is lost before the handler
# below is in place; the wrapper unblocks them once the command runs.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
_received: list[int] = []
_pump_thread: list[threading.Thread] = []


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


def _pump(source: int, log: CappedLog) -> None:
    """The command's output (stdout and stderr, one pipe) into the capped log."""
    try:
        while chunk := os.read(source, 65536):
            log.write(chunk)
    finally:
        os.close(source)


def _run(argv: list[str], cwd: str, log: CappedLog) -> dict[str, Any]:
    try:
        # The command starts with a clean signal mask; the wrapper has no threads yet
        # (the pump starts below), so preexec_fn is safe here.
        proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, preexec_fn=_unblock_stop_signals,
        )
    except FileNotFoundError:
        reason = f"command not found: {argv[0]}"
    except PermissionError:
        reason = f"command not executable: {argv[0]}"
    except OSError as exc:
        reason = f"cannot execute {argv[0]}: {exc.strerror or exc}"
    else:
        assert proc.stdout is not None
        # The pump holds the pipe's read end; whatever the command (or what it leaves
        # behind) writes is copied until every writer has gone (see main).
        _pump_thread.append(threading.Thread(target=_pump, args=(os.dup(proc.stdout.fileno()), log)))
        proc.stdout.close()
        _pump_thread[0].start()
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
    log.write(f"jobgraph: {reason}\n".encode())
    return {"exit_code": NOT_EXECUTABLE, "signal": None, "reason": reason}


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobgraph-wrapper")
    parser.add_argument("--dir", required=True, type=Path, help="the attempt's record dir")
    parser.add_argument("--cwd", required=True, help="working directory of the command")
    parser.add_argument("--log", required=True, type=Path, help="the replica's log file")
    parser.add_argument("--log-max-bytes", required=True, type=int, help="its cap on disk")
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

    log = CappedLog(ns.log, ns.log_max_bytes)
    result: dict[str, Any] = _run(argv, ns.cwd, log) if argv else {
        "exit_code": NOT_EXECUTABLE, "signal": None, "reason": "empty command"
    }
    result["finished_at"] = datetime.now(UTC).isoformat()
    _reap_leftovers()  # before the record: when it exists, nothing of the replica runs
    for pump in _pump_thread:  # the pipe's writers are all gone: the log is complete
        pump.join()
    log.close()
    atomic_write_json(ns.dir / EXIT_FILE, result)
    return min(result["exit_code"], 255)


if __name__ == "__main__":
    sys.exit(main())
