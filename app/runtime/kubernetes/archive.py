"""Pod logs kept beyond the cluster: appended while the pod runs, read by every replica.

One file per pod, `<root>/<job id>/<pod>.log`, holds the pod's log lines as the kubelet
sends them with `timestamps=true` (`<RFC3339Nano> <line>`), so that an archiver that
stopped (a broken connection, a follow stalled at a log rotation, a restart of jobgraph,
another replica taking over) resumes from the last timestamp it holds. `<pod>.done`
marks an archive that is whole (the pod ended and everything was read).

The root may be shared by several replicas (a ReadWriteMany volume, NFS): one writer per
pod holds an exclusive `flock` on `<pod>.lock` for as long as it archives; the others read.
Every method here blocks on the file system: callers run them in a thread.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

_SAFE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Longest line kept whole; the rest of a longer one is dropped (memory stays bounded).
MAX_LINE = 1024 * 1024
CUT_MARK = b" [jobgraph: line cut at 1 MiB]"
# Tries at removing a job's archive while a keeper of another replica may add an entry.
REMOVE_ATTEMPTS = 5


def parse_timestamp(value: bytes) -> int | None:
    """Nanoseconds since the epoch of the kubelet's RFC3339Nano prefix (UTC, `Z`, the
    fraction's trailing zeros trimmed), else None."""
    try:
        text = value.decode("ascii")
        if not text.endswith("Z") or len(text) < 20 or text[10] != "T":
            return None
        seconds = int(datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=UTC).timestamp())
        fraction = text[19:-1]
        if fraction and not (fraction[0] == "." and fraction[1:].isdigit()):
            return None
        return seconds * 1_000_000_000 + int((fraction[1:] or "0").ljust(9, "0")[:9])
    except (UnicodeDecodeError, ValueError):
        return None


def since_time(ns: int) -> str:
    """`sinceTime` for a timestamp: RFC 3339 to the second."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_timestamp(line: bytes) -> tuple[int | None, bytes]:
    """(timestamp, the line without its prefix and line end)."""
    head, _, rest = line.partition(b" ")
    ts = parse_timestamp(head)
    text = rest if ts is not None else line
    return ts, text.rstrip(b"\r\n")


@dataclass
class Resume:
    """Where a log was read up to: the last timestamp, and how many lines carried it."""

    ts: int | None = None
    count: int = 0
    _skip: int = 0

    def again(self) -> str | None:
        """Before a request that resumes: its `sinceTime` (to the second, as the apiserver
        forwards it anyway), from which the lines already read come again."""
        self._skip = self.count
        return since_time(self.ts) if self.ts is not None else None

    def take(self, ts: int | None) -> bool:
        """Whether a line stamped `ts` is new (and if so, count it as read)."""
        if ts is None:
            return True
        if self.ts is None or ts > self.ts:
            self.ts, self.count, self._skip = ts, 1, 0
            return True
        if ts < self.ts:
            return False
        if self._skip > 0:  # one of the lines of that instant read before
            self._skip -= 1
            return False
        self.count += 1
        return True

    def since(self) -> str | None:
        return since_time(self.ts) if self.ts is not None else None


def resume_of(lines: list[bytes]) -> Resume:
    """The resume point after `lines` (archived, with their timestamps)."""
    resume = Resume()
    for line in lines:
        ts, _ = split_timestamp(line)
        if ts is None:
            continue
        if ts == resume.ts:
            resume.count += 1
        else:
            resume.ts, resume.count = ts, 1
    return resume


class ArchiveWriter:
    """The one writer of a pod's archive (holds its lock until `close`)."""

    def __init__(self, log: BinaryIO, lock: BinaryIO, done: Path, resume: Resume) -> None:
        self._log = log
        self._lock = lock
        self._done = done
        self.resume = resume

    def append(self, lines: list[bytes]) -> None:
        self._log.write(b"".join(lines))
        self._log.flush()

    def complete(self) -> None:
        os.fsync(self._log.fileno())
        self._done.touch()

    def close(self) -> None:
        try:
            self._log.close()
        finally:
            self._lock.close()  # releases the flock


class LogArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, job_id: str, pod_name: str) -> Path:
        if not (_SAFE.match(job_id) and _SAFE.match(pod_name)):
            raise ValueError("not a Kubernetes object name")
        return self.root / job_id / f"{pod_name}.log"

    def has(self, job_id: str, pod_name: str) -> bool:
        return self.path(job_id, pod_name).is_file()

    def is_complete(self, job_id: str, pod_name: str) -> bool:
        return self.path(job_id, pod_name).with_suffix(".done").exists()

    def open_writer(
        self, job_id: str, pod_name: str, *, create: bool = True
    ) -> ArchiveWriter | None:
        """The writer of this pod's archive, or None while another one (another replica)
        holds it, or when the archive is complete. Without `create`, a job whose archive
        directory is not there (removed: the job was deleted) gets none."""
        target = self.path(job_id, pod_name)
        if create:
            target.parent.mkdir(parents=True, exist_ok=True)
        done = target.with_suffix(".done")
        if done.exists():
            return None
        try:
            lock = target.with_suffix(".lock").open("ab")
        except FileNotFoundError:
            if create:
                raise
            return None
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        try:
            if done.exists():  # completed while we waited for the lock
                lock.close()
                return None
            log = target.open("ab+")
            lines = self._last_lines(log)
            if lines and resume_of(lines).ts is None:
                # Written whole at the pod's end by an earlier jobgraph (no timestamps).
                log.close()
                done.touch()
                lock.close()
                return None
            if lines and not lines[-1].endswith(b"\n"):
                # A line cut by a crash in the middle of a write: finish it.
                log.write(b"\n")
                lines[-1] += b"\n"
            return ArchiveWriter(log, lock, done, resume_of(lines))
        except BaseException:
            lock.close()
            raise

    @staticmethod
    def _last_lines(handle: BinaryIO, size: int | None = None) -> list[bytes]:
        """The last lines of the first `size` bytes (default: all there is now)."""
        if size is None:
            size = handle.seek(0, os.SEEK_END)
        start = max(0, size - 4 * MAX_LINE)
        handle.seek(start)
        data = handle.read(size - start)
        handle.seek(0, os.SEEK_END)
        lines = data.splitlines(keepends=True)
        return lines[1:] if start and lines else lines

    def resume_point(self, job_id: str, pod_name: str) -> tuple[Resume, int]:
        """Where the archive stops now (for a reader going on with the live log), and its
        size then: read the archive up to that size (`lines(end=...)`), since the keeper
        may append meanwhile, and what it appends comes again from the cluster."""
        try:
            with self.path(job_id, pod_name).open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                return resume_of([
                    line for line in self._last_lines(handle, size) if line.endswith(b"\n")
                ]), size
        except FileNotFoundError:
            return Resume(), 0

    def lines(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, end: int | None = None
    ) -> Generator[str, None, None]:
        """The archived lines (the first `end` bytes of them), without timestamps; a last
        line still being written (by another replica) is left out."""
        with self.path(job_id, pod_name).open("rb") as handle:
            source = (
                split_timestamp(raw)[1].decode(errors="replace")
                for raw in _complete_lines(handle, end)
            )
            yield from (deque(source, maxlen=tail_lines) if tail_lines is not None else source)

    def remove(self, job_id: str) -> None:
        """Remove a job's archive (its keepers here stopped first). A keeper of another
        replica may still hold one of its pods (until it sees the pod go): it appends to
        its open file (unlinked, no entry any more), and may add an entry (`.done` at the
        pod's end, a lock file) between rmtree's listing and its rmdir, which then fails
        with ENOTEMPTY: tried again a few times. It never makes the directory again
        (`open_writer(create=False)` once its Job is gone). What is left after the last
        try raises: the caller logs it (the job's deletion stands)."""
        if not _SAFE.match(job_id):
            return  # no archive is kept under such a name (`path` refuses it)
        folder = self.root / job_id
        for attempt in range(1, REMOVE_ATTEMPTS + 1):
            try:
                shutil.rmtree(folder)
                return
            except FileNotFoundError:
                if not folder.exists():
                    return  # gone (an entry removed meanwhile is no error either)
                if attempt == REMOVE_ATTEMPTS:
                    raise
            except OSError as error:
                if error.errno != errno.ENOTEMPTY or attempt == REMOVE_ATTEMPTS:
                    raise
            time.sleep(0.05 * attempt)  # in the caller's thread: let the writer finish


def _complete_lines(handle: BinaryIO, end: int | None) -> Generator[bytes, None, None]:
    read = 0
    for raw in handle:
        read += len(raw)
        if end is not None and read > end:
            return
        if raw.endswith(b"\n"):
            yield raw
