"""Per-container-instance logs and the ``GET …/pods/{name}/log`` endpoint.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.
"""

from __future__ import annotations

import asyncio
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


class ContainerLog:
    """The log of one container instance (one containerID). Lines keep their write time."""

    def __init__(self, clock_offset: float = 0.0) -> None:
        self.entries: list[tuple[int, bytes]] = []
        self.closed = False
        self._changed = asyncio.Event()
        self._offset_ns = int(clock_offset * 1e9)
        self._partial: tuple[int, bytes] | None = None

    def _now_ns(self) -> int:
        import time
        return time.time_ns() + self._offset_ns

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
            self.entries.append((ts, line + b"\n"))
            ts = self._now_ns()
        if lines[-1]:
            self._partial = (ts, lines[-1])
        self._wake()

    def close(self) -> None:
        if self._partial is not None:
            self.entries.append(self._partial)  # a final partial line is allowed
            self._partial = None
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout: float | None = None) -> None:
        ev = self._changed
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except TimeoutError:
            pass

    def text(self) -> str:
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


async def handle_log(fake: FakeKubernetes, request: web.Request, ns: str, name: str,
                     q: dict[str, Any]) -> web.StreamResponse:
    pod = fake.store.require("pods", ns, name)
    container = _container_error(pod, q.get("container"))
    follow, timestamps, previous = q.get("follow"), q.get("timestamps"), q.get("previous")
    tail, limit, since = q.get("tailLines"), q.get("limitBytes"), q.get("sinceSeconds")
    if not (pod.get("spec") or {}).get("nodeName"):
        return web.Response(status=200, body=b"", content_type="text/plain")
    log = select_instance(fake, pod, container, bool(previous))
    entries = list(log.entries)
    if since is not None:
        cutoff = (fake.clock.time() - since) * 1e9
        entries = [e for e in entries if e[0] >= cutoff]
    if tail is not None:
        entries = entries[-tail:] if tail > 0 else []
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    if follow:
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    sent = 0

    async def write(chunk: bytes) -> bool:
        nonlocal sent
        if limit is not None:
            chunk = chunk[: max(0, limit - sent)]
        if chunk:
            await resp.write(chunk)
            sent += len(chunk)
        return limit is None or sent < limit

    try:
        for e in entries:
            if not await write(_render(e, bool(timestamps))):
                break
        else:
            if follow and not previous:
                pos = len(log.entries)
                while not fake.closing:
                    if pos < len(log.entries):
                        new, pos = log.entries[pos:], len(log.entries)
                        if not all([await write(_render(e, bool(timestamps))) for e in new]):
                            break
                        continue
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
