"""A replica's log is capped in bytes on disk: the oldest output is dropped, the log's
first line says how much, and a reader following the log goes on at the same place of
the output across the cut (JOBGRAPH_MAX_LOG_BYTES_ON_DISK)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from app.domain.jobs import JobStatus
from app.runtime.local import LocalRuntime

from .conftest import Watcher, make_job

CAP = 262_144  # the smallest cap the setting allows
LINES = 20_000
LINE = "{:06d} " + "x" * 92  # 100 bytes with the newline: 2,000,000 bytes in all
MARKER = re.compile(r"^\[jobgraph: the first (\d+) bytes of this replica's output were dropped")


def writer(gate: Path) -> list[str]:
    """Writes the first 100 lines, waits for the gate file (the test opens it once its
    follower has read a line), then the rest."""
    script = (
        "import os, sys, time\n"
        f"for i in range(100): print({LINE!r}.format(i))\n"
        "sys.stdout.flush()\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.01)\n"
        f"for i in range(100, {LINES}): print({LINE!r}.format(i))\n"
    )
    return [sys.executable, "-c", script]


async def test_the_log_on_disk_keeps_the_newest_output_and_says_what_was_dropped(
    runtimes, local_root: Path, tmp_path: Path
) -> None:
    rt: LocalRuntime = runtimes(max_log_bytes=CAP)
    await rt.start([])
    w = Watcher(rt)
    gate = tmp_path / "gate"
    job = make_job(*writer(gate))
    await rt.submit(job)
    await w.status(job.job_id, JobStatus.RUNNING)
    pod = f"{job.job_id}-0"

    followed: list[str] = []
    async for line in rt.logs(job.job_id, pod, tail_lines=None, follow=True):
        followed.append(line)
        if len(followed) == 1:
            gate.touch()
    assert (await w.final(job.job_id)).status == JobStatus.SUCCEEDED

    log_file = local_root / job.job_id / "logs" / f"{pod}.log"
    assert log_file.stat().st_size <= CAP

    # Read whole: the marker, then consecutive lines up to the last one; the marker's
    # count and what is kept add up to everything the command wrote.
    whole = [line async for line in rt.logs(job.job_id, pod, tail_lines=None, follow=False)]
    dropped = MARKER.match(whole[0])
    assert dropped, whole[0]
    assert "JOBGRAPH_MAX_LOG_BYTES_ON_DISK" in whole[0]
    numbers = [int(line[:6]) for line in whole[1:]]
    assert numbers == list(range(numbers[0], LINES))
    assert int(dropped.group(1)) + 100 * len(numbers) == 100 * LINES

    # The follower saw every line at most once and in order, and the last one; where
    # it fell behind a cut, the marker line stands right before the gap.
    seen = -1
    for previous, line in zip([None, *followed], followed, strict=False):
        if MARKER.match(line):
            continue
        number = int(line[:6])
        assert number > seen, (seen, number)
        if number != seen + 1:
            assert previous is not None and MARKER.match(previous), (seen, number, previous)
        seen = number
    assert seen == LINES - 1
    await rt.close()
