"""The local runtime does its file and process work off the event loop. Python's audit
hooks say which thread opened, created, removed a file or started a process; none of
that may happen on the loop's thread for the runtime's own files (no timing involved)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from app.domain.jobs import JobStatus

_AUDITED = {"open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "subprocess.Popen"}


class LoopThreadAudit:
    """Records audited file and process operations made on one thread."""

    installed: LoopThreadAudit | None = None

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.thread = threading.get_ident()
        self.seen: list[tuple[str, str]] = []
        self.active = False

    def __enter__(self) -> LoopThreadAudit:
        if LoopThreadAudit.installed is None:
            sys.addaudithook(_hook)  # hooks cannot be removed: one, pointed at the current audit
        LoopThreadAudit.installed = self
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False

    def record(self, event: str, args: tuple) -> None:
        if not self.active or threading.get_ident() != self.thread:
            return
        if event == "subprocess.Popen":
            self.seen.append((event, " ".join(map(str, args[1] or ()))[:200]))
            return
        where = args[0] if args else None
        if isinstance(where, (str, bytes, Path)) and str(where).startswith(self.root):
            self.seen.append((event, str(where)))


def _hook(event: str, args: tuple) -> None:
    audit = LoopThreadAudit.installed
    if audit is not None and event in _AUDITED:
        audit.record(event, args)


async def test_submit_run_and_logs_do_no_file_or_process_work_on_the_loop(runtime, local_root):
    from tests.runtime.conftest import sh

    rt, watcher = runtime
    job = sh("echo line-one; echo line-two", max_retries=1)
    leftover = local_root / job.job_id
    leftover.mkdir(parents=True)  # a submit that crashed half-way left this behind
    (leftover / "stale").write_text("x")
    with LoopThreadAudit(local_root) as audit:
        await rt.submit(job)
        await watcher.final(job.job_id)
        lines = [line async for line in rt.logs(job.job_id, f"{job.job_id}-0", tail_lines=None, follow=False)]
    assert lines == ["line-one", "line-two"]
    assert watcher.statuses(job.job_id)[-1] is JobStatus.SUCCEEDED
    assert audit.seen == [], audit.seen


async def test_opening_a_terminal_starts_its_shell_off_the_loop(runtime, local_root, tmp_path):
    from app.domain.jobs import EnvVar
    from tests.runtime.conftest import sh

    rt, watcher = runtime
    job = sh("sleep 600", envs=(EnvVar("HOME", str(tmp_path)),))
    await rt.submit(job)
    await watcher.status(job.job_id, JobStatus.RUNNING)
    with LoopThreadAudit(local_root) as audit:
        term = await rt.open_terminal(job.job_id, f"{job.job_id}-0", rows=24, cols=80)
    try:
        await term.write(b"echo ok-$((1+1))\n")
        seen = b""
        while b"ok-2" not in seen:
            seen += await term.read()
    finally:
        await term.close()
        await rt.stop(job.job_id)
    assert audit.seen == [], audit.seen
