"""Reading a replica's log file: the last N lines, then (with follow) what comes next."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from app.runtime.local.logfile import read_start

_BLOCK = 64 * 1024
# Growth of the file is checked this often while following (no inotify in the stdlib);
# the end of the replica itself wakes the reader at once through an asyncio.Event.
POLL_SECONDS = 0.15


def tail_offset(f: BinaryIO, lines: int) -> int:
    """Byte offset where the last `lines` lines begin, found by reading backwards in
    blocks (a large log is never read whole)."""
    size = f.seek(0, 2)
    if lines <= 0:
        return size
    end = size
    if size:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            end = size - 1  # that newline ends the last line, it does not start one
    found = 0
    pos = end
    while pos > 0:
        start = max(0, pos - _BLOCK)
        f.seek(start)
        block = f.read(pos - start)
        i = len(block)
        while (i := block.rfind(b"\n", 0, i)) >= 0:
            found += 1
            if found == lines:
                return start + i + 1
        pos = start
    return 0


def _decode(line: bytes) -> str:
    if line.endswith(b"\r"):
        line = line[:-1]
    return line.decode("utf-8", errors="replace")


async def read_lines(
    path: Path, *, tail_lines: int | None, follow: bool, ended: asyncio.Event
) -> AsyncIterator[str]:
    """Lines without their line end. With `follow`, keeps going until `ended` is set
    and everything written before that has been read. A partial last line is held
    back until it is complete, or until the end."""
    # File reads go to a worker thread: a slow disk must not hold the event loop.
    try:
        f: BinaryIO = await asyncio.to_thread(open, path, "rb")
    except FileNotFoundError:
        return
    try:
        if tail_lines is not None:
            await asyncio.to_thread(lambda: f.seek(tail_offset(f, tail_lines)))
        pending = b""
        drained_after_end = False
        while True:
            chunk = await asyncio.to_thread(f.read, _BLOCK)
            if chunk:
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    yield _decode(line)
                continue
            if follow and (moved := await asyncio.to_thread(_moved_on, path, f)) is not None:
                # The writer cut the file's oldest part (logfile.CappedLog): everything
                # of the old file is read; go on at the same place of the output.
                f, kept_pending = moved
                if not kept_pending:
                    pending = b""  # fell behind the cut: the new file's marker says so
                continue
            if not follow or drained_after_end:
                break
            if ended.is_set():
                drained_after_end = True  # one more read: what was written before the end
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), POLL_SECONDS)
        if pending:
            yield _decode(pending)
    finally:
        f.close()


def _moved_on(path: Path, older: BinaryIO) -> tuple[BinaryIO, bool] | None:
    """None while `path` is still the file `older` reads. Otherwise the file now at
    `path`, at the output offset `older` was read to, and True; or at its start (its
    marker line first) and False, when that part of the output was cut meanwhile."""
    try:
        if os.stat(path).st_ino == os.fstat(older.fileno()).st_ino:
            return None
        newer: BinaryIO = open(path, "rb")  # noqa: SIM115 (the caller reads it on)
    except FileNotFoundError:
        return None
    old_start, old_marker = read_start(older)
    consumed = old_start + older.tell() - old_marker
    older.close()
    new_start, new_marker = read_start(newer)
    if consumed >= new_start:
        newer.seek(new_marker + consumed - new_start)
        return newer, True
    newer.seek(0)
    return newer, False
