"""Pod logs: archived while the pod runs, read from the archive and the cluster.

The kubelet keeps only the current log file of a container (`containerLogMaxSize`, 10 MiB
by default, then the file is rotated away) and a `follow` of kubelets before 1.30 stalls
at a rotation (kubernetes/kubernetes#115701). So each pod's log is archived as it is
written: a keeper per pod follows it with `timestamps=true` and appends to the archive
(`archive.py`); after any break (a closed or stalled stream, a restart, another replica
taking over) it goes on from the last timestamp with `sinceTime`, skipping what it has;
a restarted container's previous instance is read with `previous=true`. Reads serve the
archive, then what the cluster has after it.

kubernetes_asyncio 36.1 does not generate `sinceTime` for `read_namespaced_pod_log`: the
request is made through `ApiClient.call_api`, as the generated method makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import structlog
from kubernetes_asyncio.client.exceptions import ApiException

from app.domain.errors import Conflict, DomainError, NotFound, RuntimeUnavailable
from app.runtime.kubernetes.archive import (
    CUT_MARK,
    MAX_LINE,
    ArchiveWriter,
    LogArchive,
    Resume,
    split_timestamp,
)
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
T = TypeVar("T")

# GET …/pods/{name}/log with these query parameters (a list of pairs, as call_api takes
# them), and a request timeout (None: none, for a follow) -> the raw response.
ReadLog = Callable[[str, list[tuple[str, Any]], Any], Awaitable[aiohttp.ClientResponse]]
# A follow silent this long is reopened from its last timestamp: an idle container costs
# one request per interval; a follow stalled at a rotation loses nothing unless the
# container writes more than a whole log file meanwhile.
IDLE_REOPEN_SECONDS = 60.0
ARCHIVE_BATCH_LINES = 1000  # archived lines read per trip to a thread


class _Silent(Exception):
    """A follow that sent nothing for `idle_reopen` seconds."""


Batch = list[tuple[int | None, bytes]]  # (timestamp, the line as sent, with its "\n")


async def _settled(work: Awaitable[T]) -> T:
    """Await work done in a thread; a cancel (the job is being deleted) first waits for
    the thread to end, so that no file of a cancelled keeper is written after it."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


def _restarts(pod: dict) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    main: dict[str, Any] = next((s for s in statuses if s.get("name") == CONTAINER), {})
    return int(main.get("restartCount") or 0)


class PodLogs:
    def __init__(
        self,
        archive: LogArchive,
        cache: ClusterCache,
        read_log: ReadLog,
        *,
        spawn: Callable[[Any], asyncio.Task[Any]],
    ) -> None:
        self._archive = archive
        self._cache = cache
        self._read_log = read_log
        self._spawn = spawn
        self._keepers: dict[str, tuple[str, asyncio.Task[None]]] = {}  # pod -> (job, keeper)
        self._whole: dict[str, str] = {}  # pod -> job, of the archives that are complete
        self.idle_reopen = IDLE_REOPEN_SECONDS

    # -- reads ---------------------------------------------------------------------------

    async def lines(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[str]:
        pod = self._cache.pod_of_job(job_id, pod_name)
        archived, whole = await asyncio.to_thread(self._archived_state, job_id, pod_name)
        if archived and (whole or pod is None):
            async for line in self._archived_lines(job_id, pod_name, tail_lines):
                yield line
            return
        # The archive (if any), then what the cluster has after it; `tail_lines` counts
        # both. (A pod the cache does not hold may still be there, e.g. before the first
        # listing: the cluster says.)
        resume = Resume()
        history: deque[str] | None = deque(maxlen=tail_lines) if tail_lines is not None else None
        if archived:
            resume, end = await asyncio.to_thread(self._archive.resume_point, job_id, pod_name)
            async for line in self._archived_lines(job_id, pod_name, tail_lines, end=end):
                if history is None:
                    yield line
                else:
                    history.append(line)
        if follow and pod is not None:
            await self._until_started(job_id, pod_name)
        try:
            async for batch in self._stream(
                pod_name, resume=resume, follow=False, tail_lines=tail_lines, wait=follow
            ):
                for _, raw in batch:
                    line = split_timestamp(raw)[1].decode(errors="replace")
                    if history is None:
                        yield line
                    else:
                        history.append(line)
        except NotFound:
            if not archived:
                raise NotFound(
                    f"pod {pod_name!r} is gone and its log was not kept", field="podName"
                ) from None
            follow = False  # gone meanwhile: the archive is all there is
        for line in history or ():
            yield line
        if follow:
            async for batch in self._stream(pod_name, resume=resume, follow=True):
                for _, raw in batch:
                    yield split_timestamp(raw)[1].decode(errors="replace")

    def _archived_state(self, job_id: str, pod_name: str) -> tuple[bool, bool]:
        return self._archive.has(job_id, pod_name), self._archive.is_complete(job_id, pod_name)

    async def _archived_lines(
        self, job_id: str, pod_name: str, tail_lines: int | None, *, end: int | None = None
    ) -> AsyncIterator[str]:
        """The archive (its first `end` bytes), read in a thread a batch at a time."""
        source = self._archive.lines(job_id, pod_name, tail_lines=tail_lines, end=end)
        try:
            while batch := await asyncio.to_thread(
                lambda: list(itertools.islice(source, ARCHIVE_BATCH_LINES))
            ):
                for line in batch:
                    yield line
        finally:
            await asyncio.to_thread(source.close)

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

    # -- the cluster's log ---------------------------------------------------------------

    async def _stream(
        self,
        pod_name: str,
        *,
        resume: Resume,
        follow: bool,
        previous: bool = False,
        tail_lines: int | None = None,
        wait: bool = False,
        reopen: bool = True,
    ) -> AsyncIterator[Batch]:
        """The lines after `resume` (which advances), in batches as they arrive. A follow
        goes on until the container ends; one silent for `idle_reopen` seconds is reopened
        from the last timestamp (it may have stalled at a rotation); without `reopen`,
        `_Silent` is raised instead."""
        while True:
            response = await self._open_log(
                pod_name, follow=follow, previous=previous, since_time=resume.again(),
                tail_lines=tail_lines if resume.ts is None else None, wait=wait,
            )
            try:
                async for batch in self._batches(response, pod_name, follow=follow):
                    fresh = [(ts, raw) for ts, raw in batch if resume.take(ts)]
                    if fresh:
                        yield fresh
                return
            except _Silent:
                if not reopen:
                    raise
                log.info("k8s.log_follow_reopened", pod=pod_name, since=resume.since())
            finally:
                response.release()

    async def _batches(
        self, response: aiohttp.ClientResponse, pod_name: str, *, follow: bool
    ) -> AsyncIterator[Batch]:
        """Whole lines as they arrive, bounded: a line over MAX_LINE is cut there."""
        pending = b""
        dropping = False  # the rest of a cut line
        while True:
            try:
                if follow:
                    async with asyncio.timeout(self.idle_reopen):
                        chunk = await response.content.readany()
                else:
                    chunk = await response.content.readany()
            except TimeoutError:
                raise _Silent from None
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as error:
                raise RuntimeUnavailable(
                    f"the log of {pod_name} was cut off: the cluster connection broke ({error})"
                ) from error
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            if dropping and complete:
                complete, dropping = complete[1:], False
            batch: Batch = [(split_timestamp(raw)[0], raw + b"\n") for raw in complete]
            if len(pending) > MAX_LINE:
                if not dropping:
                    batch.append((split_timestamp(pending)[0], pending[:MAX_LINE] + CUT_MARK + b"\n"))
                pending, dropping = b"", True
            if batch:
                yield batch
        if pending and not dropping:
            yield [(split_timestamp(pending)[0], pending + b"\n")]

    async def _open_log(
        self,
        pod_name: str,
        *,
        follow: bool,
        previous: bool = False,
        since_time: str | None = None,
        tail_lines: int | None = None,
        wait: bool = False,
    ) -> aiohttp.ClientResponse:
        """The raw log response, with timestamps (the status is ours to check)."""
        query: list[tuple[str, Any]] = [
            ("container", CONTAINER), ("follow", follow), ("timestamps", True)
        ]
        if previous:
            query.append(("previous", True))
        if since_time is not None:
            query.append(("sinceTime", since_time))
        if tail_lines is not None:
            query.append(("tailLines", tail_lines))
        timeout = None if follow else REQUEST_TIMEOUT
        while True:
            response = await call(
                f"read the log of {pod_name}",
                lambda: self._read_log(pod_name, query, timeout),
            )
            if response.status == 200:
                return response
            body = (await response.text())[:1000]
            response.release()
            error = ApiException(status=response.status, reason=response.reason)
            error.body = body.encode()
            message = status_message(error)
            if response.status == 400 and "is waiting to start" in message:
                # The kubelet's answer for a container that has not started (yet).
                pod = self._cache.pods.get(pod_name)
                reason = waiting_reason(pod) if pod else None
                stuck = bool(reason and reason.split(":")[0] in STUCK_REASONS)
                if wait and not stuck:
                    changed = self._cache.next_pod_change()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), 2.0)
                    continue
                detail = reason or message.rsplit(":", 1)[-1].strip()
                raise Conflict(
                    f"pod {pod_name!r} has not started yet ({detail}); its log is empty so far",
                    field="podName",
                )
            raise domain_error(error, what=f"read the log of {pod_name}")

    # -- archive -------------------------------------------------------------------------

    def keep(self, job_id: str, pod_name: str) -> None:
        """Archive this pod's log from now on (unless it is done, or kept here already).
        Called at every change of a pod whose container has started; a pod that another
        replica keeps is tried again at its next change (the lock is free once that
        replica has gone)."""
        if pod_name in self._whole or pod_name in self._keepers:
            return
        if job_id in self._cache.deleting:
            return  # its archive is being removed (its pods still change as they go)
        task = self._spawn(self._keep(job_id, pod_name))
        self._keepers[pod_name] = (job_id, task)
        task.add_done_callback(lambda _: self._keepers.pop(pod_name, None))

    def keep_job(self, job_id: str) -> None:
        for name in self._cache.pod_names_of_job(job_id):
            self.keep(job_id, name)

    async def forget_job(self, job_id: str) -> None:
        """Stop archiving a job's pods (it is being deleted): when this returns, no keeper
        of it here writes or will write (`keep` refuses it while it is `deleting`)."""
        tasks = [task for job, task in self._keepers.values() if job == job_id]
        for name in [name for name, job in self._whole.items() if job == job_id]:
            del self._whole[name]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, job_id: str, pod_name: str) -> None:
        # A Job the cache no longer holds was deleted (by another replica, maybe, which
        # removes its archive): its directory is not made again.
        create = not self._cache.jobs_listed.is_set() or job_id in self._cache.jobs
        try:
            writer = await self._open_writer(job_id, pod_name, create=create)
            if writer is None:
                if await asyncio.to_thread(self._archive.is_complete, job_id, pod_name):
                    self._whole[pod_name] = job_id
                return  # complete, or another replica keeps it
        except OSError:
            log.exception("k8s.archive_failed", pod=pod_name)
            return
        try:
            await self._archive_until_ended(job_id, pod_name, writer)
            self._whole[pod_name] = job_id
        except FileNotFoundError:
            # `.done` has no directory: the job was deleted (by another replica).
            log.info("k8s.archive_removed", job_id=job_id, pod=pod_name)
        except Exception:  # retried at the pod's next change; logged with its trace
            log.exception("k8s.archive_failed", pod=pod_name)
        finally:
            await asyncio.to_thread(writer.close)

    async def _open_writer(
        self, job_id: str, pod_name: str, *, create: bool
    ) -> ArchiveWriter | None:
        """`open_writer` in a thread; a writer opened for a cancelled keeper is closed."""
        opening = asyncio.ensure_future(
            asyncio.to_thread(self._archive.open_writer, job_id, pod_name, create=create)
        )
        try:
            return await _settled(opening)
        except asyncio.CancelledError:
            if not opening.exception() and (late := opening.result()) is not None:
                await asyncio.to_thread(late.close)  # the lock it took
            raise

    async def _archive_until_ended(self, job_id: str, pod_name: str, writer: ArchiveWriter) -> None:
        resumed = False
        while True:
            changed = self._cache.next_pod_change()
            pod = self._cache.pods.get(pod_name)
            ended = pod is None or pod_of(job_id, pod).phase in ENDED
            copied = 0
            try:
                # After any break the container may have restarted meanwhile (the cache
                # may not know yet): first the rest of the previous instance, older.
                if pod is not None and (resumed or _restarts(pod)):
                    try:
                        copied += await self._copy(writer, pod_name, previous=True, follow=False)
                    except (Conflict, NotFound):
                        raise
                    except DomainError:
                        pass  # no previous instance (400 "previous terminated container ...")
                resumed = True
                copied += await self._copy(writer, pod_name, previous=False, follow=not ended)
            except _Silent:
                continue  # reopen now (previous instance first: it may have restarted)
            except NotFound:
                ended = True  # the pod is gone: there is nothing more to read
            except Conflict:
                pass  # the container waits to (re)start
            except RuntimeUnavailable as error:
                log.info("k8s.archive_interrupted", pod=pod_name, reason=error.message)
                if ended:
                    ended = False  # try the last read again when the cluster answers
            if ended:
                await _settled(asyncio.to_thread(writer.complete))
                log.info("k8s.archive_complete", pod=pod_name)
                return
            if not copied:
                # Nothing new (the container ended or waits, the cluster is away): wait
                # for the pod to change, or look again after a while.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self.idle_reopen)

    async def _copy(
        self, writer: ArchiveWriter, pod_name: str, *, previous: bool, follow: bool
    ) -> int:
        copied = 0
        async for batch in self._stream(
            pod_name, resume=writer.resume, follow=follow, previous=previous, reopen=False
        ):
            await _settled(asyncio.to_thread(writer.append, [raw for _, raw in batch]))
            copied += len(batch)
        return copied
