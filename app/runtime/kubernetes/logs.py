"""Pod logs: read from the cluster (following a running pod), or from the archive once
the pod has ended; and the archiving itself (when a pod ends, and before a stop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio.client.exceptions import ApiException

from app.domain.errors import Conflict, NotFound, RuntimeUnavailable
from app.runtime.kubernetes.archive import LogArchive
from app.runtime.kubernetes.cache import ClusterCache
from app.runtime.kubernetes.calls import REQUEST_TIMEOUT, call, domain_error, status_message
from app.runtime.kubernetes.manifests import CONTAINER
from app.runtime.kubernetes.translate import (
    ENDED,
    STUCK_REASONS,
    container_started,
    pod_of,
    waiting_reason,
)

log = structlog.get_logger(__name__)

# `read_namespaced_pod_log` in the runtime's namespace: (pod name, **keyword arguments).
ReadLog = Callable[..., Awaitable[Any]]


class PodLogs:
    def __init__(self, archive: LogArchive, cache: ClusterCache, read_log: ReadLog) -> None:
        self._archive = archive
        self._cache = cache
        self._read_log = read_log

    async def lines(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[str]:
        pod = self._cache.pod_of_job(job_id, pod_name)
        if self._archive.has(job_id, pod_name) and (
            pod is None or pod_of(job_id, pod).phase in ENDED or not follow
        ):
            for line in self._archive.lines(job_id, pod_name, tail_lines=tail_lines):
                yield line
            return
        # (A pod the cache does not hold may still be there, e.g. before the first listing:
        # the cluster says.)
        if follow and pod is not None:
            await self._until_started(job_id, pod_name)
        try:
            response = await self._open_log(
                job_id, pod_name, tail_lines=tail_lines, follow=follow, wait=follow
            )
        except NotFound:
            raise NotFound(
                f"pod {pod_name!r} is gone and its log was not kept", field="podName"
            ) from None
        try:
            pending = b""
            try:
                async for chunk in response.content.iter_any():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        yield line.decode(errors="replace").rstrip("\r")
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as error:
                raise RuntimeUnavailable(
                    f"the log of {pod_name} was cut off: the cluster connection broke ({error})"
                ) from error
            if pending:
                yield pending.decode(errors="replace").rstrip("\r")
        finally:
            response.release()

    async def _until_started(self, job_id: str, pod_name: str) -> None:
        """Wait (on the watch cache) until the container has started; a container that
        cannot start by itself (image pull, configuration) answers at once."""
        while True:
            pod = self._cache.pods.get(pod_name)
            if pod is None or container_started(pod) or pod_of(job_id, pod).phase in ENDED:
                return
            reason = waiting_reason(pod)
            if reason and reason.split(":")[0] in STUCK_REASONS:
                raise Conflict(f"pod {pod_name!r} has not started yet: {reason}", field="podName")
            changed = self._cache.next_pod_change()
            await changed.wait()

    async def _open_log(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, follow: bool,
        wait: bool = False,
    ) -> aiohttp.ClientResponse:
        """The raw log response (bytes: `_preload_content=False`, which also means the
        status is ours to check)."""
        kwargs: dict[str, Any] = {"container": CONTAINER, "follow": follow, "_preload_content": False}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        if not follow:
            kwargs["_request_timeout"] = REQUEST_TIMEOUT
        while True:
            response = await call(
                f"read the log of {pod_name}",
                lambda: self._read_log(pod_name, **kwargs),
            )
            if response.status == 200:
                return response
            body = (await response.text())[:1000]
            response.release()
            error = ApiException(status=response.status, reason=response.reason)
            error.body = body
            message = status_message(error)
            if response.status == 400 and "is waiting to start" in message:
                # The kubelet's answer for a container that has not started (yet).
                pod = self._cache.pods.get(pod_name)
                reason = waiting_reason(pod) if pod else None
                stuck = bool(reason and reason.split(":")[0] in STUCK_REASONS)
                if wait and not stuck:
                    changed = self._cache.next_pod_change()
                    try:
                        await asyncio.wait_for(changed.wait(), 2.0)
                    except TimeoutError:
                        pass
                    continue
                detail = reason or message.rsplit(":", 1)[-1].strip()
                raise Conflict(
                    f"pod {pod_name!r} has not started yet ({detail}); its log is empty so far",
                    field="podName",
                )
            raise domain_error(error, what=f"read the log of {pod_name}")

    # -- archive -------------------------------------------------------------------------

    async def archive_pod_log(self, job_id: str, pod_name: str) -> None:
        try:
            response = await self._open_log(job_id, pod_name, tail_lines=None, follow=False)
            try:
                data = await response.read()
            finally:
                response.release()
            self._archive.write(job_id, pod_name, data)
        except (Conflict, NotFound, RuntimeUnavailable) as error:
            log.info("k8s.archive_skipped", pod=pod_name, reason=error.message)
        except Exception:  # an archive failure must not end the watch task (logged with its trace)
            log.exception("k8s.archive_failed", pod=pod_name)

    async def archive_job_logs(self, job_id: str) -> None:
        names = self._cache.pod_names_of_job(job_id)
        await asyncio.gather(*(self.archive_pod_log(job_id, n) for n in names))
