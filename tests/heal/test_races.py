"""Races in the local runtime: master ports handed out twice; and the terminal's shell
started without `preexec_fn` (unsafe in a server that runs threads)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs a network namespace (unshare -n, root)")
def test_two_running_jobs_never_get_the_same_master_port(tmp_path):
    # In a network namespace of its own, the kernel's ephemeral range is one port: a
    # port found free by binding to 0 is always that one, so a runtime that only asks
    # the kernel hands it to both jobs.
    script = (
        "echo '40000 40000' > /proc/sys/net/ipv4/ip_local_port_range && ip link set lo up && "
        f"exec {sys.executable} -m tests.heal.ports_probe {tmp_path}"
    )
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    ports = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(set(ports)) == 2, ports


def test_no_subprocess_in_the_server_uses_preexec_fn():
    """`preexec_fn` runs Python in the forked child of a multi-threaded process (the
    server runs executor and SQLite threads): it can deadlock there. None may use it.
    (The replica wrapper is a process of its own, without threads: it may.)"""
    wrapper = REPO / "app" / "runtime" / "local" / "wrapper.py"
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "app").rglob("*.py")) if path != wrapper
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "preexec_fn" in line and not line.lstrip().startswith("#")
    ]
    assert offenders == []


async def test_the_terminal_shell_has_its_pty_as_controlling_terminal(tmp_path):
    """Without `preexec_fn` the shell still owns its terminal: ^C interrupts the
    foreground command, and `tty` names the PTY."""
    import asyncio
    import re

    from app.runtime.local.terminal import PtyTerminal

    term = await PtyTerminal.spawn(
        cwd=tmp_path, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"},
        rows=24, cols=80,
    )
    seen = b""

    async def until(pattern: str) -> None:
        nonlocal seen
        async with asyncio.timeout(30):
            while not re.search(pattern, seen.decode(errors="replace")):
                seen += await term.read()

    try:
        await term.write(b"tty; echo ready-$((1+1))\n")
        await until(r"ready-2")
        assert "/dev/pts/" in seen.decode()
        await term.write(b"sleep 600; echo after-$((2+3))\n")
        await until(r"sleep 600; echo after")
        await _foreground_child(term.pid, "sleep")  # ^C must reach the sleep, not the shell
        await term.write(b"\x03")  # ^C: SIGINT to the foreground job, from the tty
        await until(r"\^C")  # echoed by the line discipline, which flushed the typeahead
        await term.write(b"echo interrupted-$((3+4))\n")
        await until(r"interrupted-7")  # within 600 s: the sleep was interrupted
        assert "after-5" not in seen.decode()
    finally:
        await term.close()


async def test_delete_kills_what_left_the_process_group_before_removing_its_directory(
    runtime, local_root, tmp_path
):
    """A job's command may start processes outside its process group (setsid, a daemon):
    SIGKILL to the group misses them. Deleting the job must not pull its directory from
    under them: they are found by the job id in their environment and killed first."""
    import asyncio
    import contextlib
    import os
    import signal

    from app.domain.jobs import JobStatus
    from app.runtime.local.procfs import proc_stat
    from tests.runtime.conftest import sh

    rt, watcher = runtime
    pidfile = tmp_path / "escaped.pid"
    job = sh(f"setsid sh -c 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 600' & sleep 600")
    await rt.submit(job)
    await watcher.status(job.job_id, JobStatus.RUNNING)
    async with asyncio.timeout(30):  # the job writes it; nothing to wait on but the file
        while not pidfile.exists():
            await asyncio.sleep(0.02)
    escaped = int(pidfile.read_text())
    try:
        stat = proc_stat(escaped)
        assert stat is not None and stat.pgid == escaped  # a group (and session) of its own

        await rt.delete(job.job_id)

        stat = proc_stat(escaped)
        assert stat is None or stat.ended, "a process of the deleted job is still running"
        assert not (local_root / job.job_id).exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(escaped, signal.SIGKILL)


async def _foreground_child(parent: int, name: str) -> None:
    """Until `parent` has a child called `name` (the shell forked and exec'd it)."""
    import asyncio
    import os

    async with asyncio.timeout(30):
        while True:
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    # procfs is answered from kernel memory: nothing to wait for.
                    raw = Path(f"/proc/{entry}/stat").read_text()  # noqa: ASYNC240
                except OSError:
                    continue
                comm = raw[raw.index("(") + 1:raw.rindex(")")]
                ppid = int(raw[raw.rindex(")") + 2:].split()[1])
                if ppid == parent and comm == name:
                    return
            await asyncio.sleep(0.02)  # nothing to wait on: the shell forks on its own time
