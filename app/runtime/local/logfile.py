"""A replica's log file, capped in bytes on disk: when it would pass the cap, its oldest
part is dropped and a first line says so (and where in the replica's output the file
now starts, so a follower can go on exactly where it was).

Written by the wrapper (one writer per file); read by `logs.py`. Stdlib only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_MAX_LOG_BYTES = 100 * 1024 * 1024

# The first line of a file whose oldest part was dropped.
_MARKER = re.compile(rb"^\[jobgraph: the first (\d+) bytes of this replica's output were dropped")


def marker(start: int, max_bytes: int) -> bytes:
    return (
        f"[jobgraph: the first {start} bytes of this replica's output were dropped: its "
        f"log keeps at most {max_bytes} bytes on disk (JOBGRAPH_MAX_LOG_BYTES_ON_DISK)]\n"
    ).encode()


def file_start(first_line: bytes) -> tuple[int, int]:
    """(offset in the replica's whole output where the file's text begins, length of the
    marker line before that text); (0, 0) for a file that was never cut."""
    match = _MARKER.match(first_line)
    if match is None or not first_line.endswith(b"\n"):
        return 0, 0
    return int(match.group(1)), len(first_line)


def read_start(f) -> tuple[int, int]:  # f: a binary file open for reading
    position = f.tell()
    f.seek(0)
    first = f.readline(512)
    f.seek(position)
    return file_start(first)


class CappedLog:
    """Appends to `path`; before a write would take the file past `max_bytes`, the file
    is replaced by its newest half (from a line start) under a marker line."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        if self.size + len(data) > self.max_bytes:
            self._drop_oldest()
        _write_all(self.fd, data)
        self.size += len(data)

    def _drop_oldest(self) -> None:
        with open(self.path, "rb") as f:
            start, marker_length = read_start(f)
            keep_from = max(marker_length, self.size - self.max_bytes // 2)
            f.seek(keep_from)
            kept = f.read()
        if keep_from > marker_length:  # begin at a line: skip the rest of a cut one
            newline = kept.find(b"\n")
            kept = kept[newline + 1:] if newline >= 0 else b""
        new_start = start + (self.size - marker_length - len(kept))
        temporary = self.path.with_name(self.path.name + ".cut")
        fd = os.open(temporary, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
        _write_all(fd, marker(new_start, self.max_bytes) + kept)
        os.replace(temporary, self.path)  # readers see the old file or the new one, whole
        os.close(self.fd)
        self.fd = fd
        self.size = os.fstat(fd).st_size

    def close(self) -> None:
        os.close(self.fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
