"""Per-container-instance logs and the ``GET …/pods/{name}/log`` endpoint.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors

if TYPE_CHECKING:
    from .fake import FakeKubernetes


def rfc3339nano(ts_ns: int) -> str:
    """Go time.RFC3339Nano: nanoseconds with trailing zeros trimmed."""
    secs, nanos = divmod(ts_ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{nanos:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


# The kubelet's log rotation (pkg/kubelet/logs/container_log_manager.go): every
# `containerLogMonitorInterval` (10 s) it looks at each *running* container's current log
# file and, when its size is >= `containerLogMaxSize` (default "10Mi"), renames it to
# `<log>.<timestamp>` and has the runtime reopen the log (`ReopenContainerLog`): the runtime
# writes to a new, empty file. The log API (`ReadLogs`, staging/src/k8s.io/cri-client/pkg/
# logs/logs.go) opens only the current file, so what was rotated away is gone from it.
# The fake rotates at the append that reaches the size (one of the moments the periodic
# check could see it), counting the CRI file format: `<RFC3339Nano> <stream> <P|F> <line>`.
DEFAULT_CONTAINER_LOG_MAX_SIZE = 10 * 1024 * 1024
CRI_TAG = len(" stdout F ")


class ContainerLog:
    """The log of one container instance (one containerID). Lines keep their write time.

    `entries` is everything ever written (for tests); `files` holds the start index in
    `entries` of each log file, the last being the current one."""

    def __init__(self, clock_offset: float = 0.0, *,
                 max_size: int = DEFAULT_CONTAINER_LOG_MAX_SIZE) -> None:
        self.entries: list[tuple[int, bytes]] = []
        self.files: list[int] = [0]
        self.max_size = max_size
        self._file_bytes = 0
        self.closed = False
        self._changed = asyncio.Event()
        self._offset_ns = int(clock_offset * 1e9)
        self._partial: tuple[int, bytes] | None = None

    def _now_ns(self) -> int:
        import time
        return time.time_ns() + self._offset_ns

    def _add(self, entry: tuple[int, bytes]) -> None:
        self.entries.append(entry)
        self._file_bytes += len(rfc3339nano(entry[0])) + CRI_TAG + len(entry[1])
        if not self.closed and 0 <= self.max_size <= self._file_bytes:
            self.files.append(len(self.entries))  # rotated: a new, empty current file
            self._file_bytes = 0

    def append(self, data: bytes | str) -> None:
        """Append raw output; split into lines (a trailing partial line is kept pending)."""
        if isinstance(data, str):
            data = data.encode()
        if not data:
            return
        if self._partial is not None:
            ts, prev = self._partial
            data = prev + data
            self._partial = None
        else:
            ts = self._now_ns()
        lines = data.split(b"\n")
        for line in lines[:-1]:
            self._add((ts, line + b"\n"))
            ts = self._now_ns()
        if lines[-1]:
            self._partial = (ts, lines[-1])
        self._wake()

    def close(self) -> None:
        if self._partial is not None:
            self._add(self._partial)  # a final partial line is allowed
            self._partial = None
        self.closed = True
        self._wake()

    def current_file(self) -> list[tuple[int, bytes]]:
        """What the log API serves: the current file only."""
        return self.entries[self.files[-1]:]

    def file_end(self, position: int) -> int:
        """The end (exclusive) of the file holding entry `position`."""
        return next((start for start in self.files if start > position), len(self.entries))

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout: float | None = None) -> None:
        ev = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), timeout)

    def text(self) -> str:
        """Everything the container wrote (rotated files included)."""
        return b"".join(d for _, d in self.entries).decode(errors="replace")


def _render(entry: tuple[int, bytes], timestamps: bool) -> bytes:
    ts, data = entry
    return (rfc3339nano(ts).encode() + b" " + data) if timestamps else data


def _container_error(pod: dict[str, Any], container: str | None) -> str:
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    if container is None:
        if len(names) == 1:
            return names[0]
        if not names:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        msg = (f"a container name must be specified for pod {name}, choose one of: "
               f"[{' '.join(names)}]")
        if inits:
            msg += f" or one of the init containers: [{' '.join(inits)}]"
        raise errors.bad_request(msg)
    if container not in names and container not in inits:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def select_instance(fake: FakeKubernetes, pod: dict[str, Any], container: str,
                    previous: bool) -> ContainerLog:
    """kubelet validateContainerLogStatus: which container instance's log to serve."""
    name = pod["metadata"]["name"]
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    st = next((s for s in statuses if s.get("name") == container), None)
    if st is None:
        raise errors.bad_request(f'container "{container}" in pod "{name}" is not available')
    state, last = st.get("state") or {}, st.get("lastState") or {}
    cid = None
    if previous:
        term = last.get("terminated")
        if not term or not term.get("containerID"):
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found')
        cid = term["containerID"]
    elif state.get("running"):
        cid = st.get("containerID") or state["running"].get("containerID")
    elif state.get("terminated"):
        cid = state["terminated"].get("containerID") or (last.get("terminated") or {}).get(
            "containerID")
    elif last.get("terminated"):
        cid = last["terminated"].get("containerID")
        if not cid:
            raise errors.bad_request(f'container "{container}" in pod "{name}" is terminated')
    elif state.get("waiting"):
        reason = state["waiting"].get("reason")
        if reason == "ErrImagePull":
            detail = "image can't be pulled"
        elif reason == "ImagePullBackOff":
            detail = "trying and failing to pull image"
        else:
            detail = reason
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: {detail}')
    else:
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start - no logs yet')
    log = fake.logs.get(cid) if cid else None
    if log is None:
        raise errors.bad_request(f'container "{container}" in pod "{name}" is not available')
    return log


def _since_ns(fake: FakeKubernetes, name: str, q: dict[str, Any]) -> int | None:
    """`sinceSeconds` / `sinceTime` as the kubelet applies them, after the apiserver's
    checks (pkg/registry/core/pod/rest/log.go: ValidatePodLogOptions -> 422 Invalid
    PodLogOptions). The apiserver parses `sinceTime` as a metav1.Time (RFC 3339; Go's
    parser takes a fraction too) and forwards it to the kubelet as
    `opts.SinceTime.Format(time.RFC3339)` (pkg/registry/core/pod/strategy.go,
    LogLocation): to the second. The kubelet skips lines `Before` it (logs.go,
    logWriter.write), so lines of that very second come again."""
    tail, limit = q.get("tailLines"), q.get("limitBytes")
    since_seconds, since_time = q.get("sinceSeconds"), q.get("sinceTime")
    errs = []
    if tail is not None and tail < 0:
        errs.append(errors.invalid("tailLines", tail, "must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        errs.append(errors.invalid("limitBytes", limit, "must be greater than 0"))
    if since_seconds is not None and since_time is not None:
        errs.append(errors.forbidden(
            "", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif since_seconds is not None and since_seconds < 1:
        errs.append(errors.invalid("sinceSeconds", since_seconds, "must be greater than 0"))
    if errs:
        raise errors.invalid_error("PodLogOptions", "", name, errs)
    if since_seconds is not None:
        return int((fake.clock.time() - since_seconds) * 1e9)
    if since_time is not None:
        try:
            parsed = dt.datetime.fromisoformat(since_time)
            if parsed.tzinfo is None or "T" not in since_time:
                raise ValueError
        except ValueError:
            raise errors.bad_request(
                f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                f'"{since_time}" as "2006"') from None
        return int(parsed.timestamp()) * 1_000_000_000  # to the second (see above)
    return None


async def handle_log(fake: FakeKubernetes, request: web.Request, ns: str, name: str,
                     q: dict[str, Any]) -> web.StreamResponse:
    since = _since_ns(fake, name, q)
    pod = fake.store.require("pods", ns, name)
    container = _container_error(pod, q.get("container"))
    follow, timestamps, previous = q.get("follow"), q.get("timestamps"), q.get("previous")
    tail, limit = q.get("tailLines"), q.get("limitBytes")
    if not (pod.get("spec") or {}).get("nodeName"):
        return web.Response(status=200, body=b"", content_type="text/plain")
    log = select_instance(fake, pod, container, bool(previous))
    # ReadLogs opens the current file only, seeks to the start of its last `tail` lines,
    # then skips lines older than `since` while writing.
    file_index = len(log.files) - 1
    position = log.files[file_index]
    if tail is not None:
        position = max(position, len(log.entries) - tail)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    if follow:
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    sent = 0

    async def write(entries: list[tuple[int, bytes]]) -> bool:
        """False once `limitBytes` is reached (the kubelet cuts the last line there)."""
        nonlocal sent
        for entry in entries:
            if since is not None and entry[0] < since:
                continue
            chunk = _render(entry, bool(timestamps))
            if limit is not None:
                chunk = chunk[: max(0, limit - sent)]
            if chunk:
                await resp.write(chunk)
                sent += len(chunk)
            if limit is not None and sent >= limit:
                return False
        return True

    try:
        end = len(log.entries) if file_index + 1 >= len(log.files) else log.files[file_index + 1]
        more = await write(log.entries[position:end])
        position = end
        # Following: the kubelet reads on at each fsnotify event until the container is no
        # longer running (waitLogs -> isContainerRunning), then ends the stream.
        while more and follow and not previous and not fake.closing:
            rotated = file_index + 1 < len(log.files)
            end = log.files[file_index + 1] if rotated else len(log.entries)
            if position < end:
                more = await write(log.entries[position:end])
                position = end
                continue
            if rotated and fake.follow_across_rotation:
                # Kubelets with kubernetes/kubernetes#115702 (v1.30+) reopen the log path
                # when it is created anew (waitLogs' `recreated`): the newest file, from
                # its start (a file rotated in between is skipped).
                file_index = len(log.files) - 1
                position = log.files[file_index]
                continue
            # Older kubelets keep reading the renamed file, which gets no more writes:
            # the follow stalls until the container stops (issues #115701, #126564).
            if log.closed:
                break
            waiter = asyncio.ensure_future(log.wait(1.0))
            fake.log_streams.add(waiter)
            try:
                await waiter
            finally:
                fake.log_streams.discard(waiter)
            if request.transport is None or request.transport.is_closing():
                break
        await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp
