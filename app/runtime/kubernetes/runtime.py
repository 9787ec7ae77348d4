"""The Kubernetes runtime: batch/v1 Jobs in one cluster namespace (one resource pool).

Submit creates the Job (and a headless Service for several replicas). A list-then-watch
loop per resource (Jobs, Pods, Events; `watching`) keeps a cache and reports every change
as a `JobUpdate` (`cache`); a broken or expired watch (410) re-lists and resumes, so no
transition is missed. Pod logs are archived while pods run, and read (`logs`). Reads of
jobs never come here: the core answers them from its database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio.client import (
    ApiClient,
    BatchV1Api,
    Configuration,
    CoreV1Api,
    CustomObjectsApi,
)
from kubernetes_asyncio.client.exceptions import ApiException

from app.domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    RuntimeUnavailable,
)
from app.domain.jobs import Job, JobStatus, PodPhase, Resources, utcnow
from app.domain.pools import ResourcePool
from app.runtime.base import JobUpdate, Terminal
from app.runtime.kubernetes.archive import LogArchive
from app.runtime.kubernetes.cache import ClusterCache
from app.runtime.kubernetes.calls import CONNECTION_ERRORS, REQUEST_TIMEOUT, call, domain_error
from app.runtime.kubernetes.configuration import load_configuration
from app.runtime.kubernetes.credentials import Credentials, RenewingApiClient, bearer
from app.runtime.kubernetes.kueue import GROUP as KUEUE_GROUP
from app.runtime.kubernetes.kueue import JOB_UID_LABEL as KUEUE_JOB_UID_LABEL
from app.runtime.kubernetes.kueue import PLURAL as KUEUE_PLURAL
from app.runtime.kubernetes.kueue import PRIORITY_CLASS_LABEL as KUEUE_PRIORITY_CLASS_LABEL
from app.runtime.kubernetes.kueue import VERSION as KUEUE_VERSION
from app.runtime.kubernetes.kueue import KueueView
from app.runtime.kubernetes.logs import PodLogs
from app.runtime.kubernetes.manifests import (
    CONTAINER,
    HELD_ANNOTATION,
    JOB_ID_LABEL,
    KUEUE_QUEUE_LABEL,
    STOP_ANNOTATION,
    headless_service,
    job_manifest,
    selector,
)
from app.runtime.kubernetes.nodes import Nodes
from app.runtime.kubernetes.options import KubernetesPoolOptions
from app.runtime.kubernetes.queueing import NoQueue, QueueView, owner_job
from app.runtime.kubernetes.terminal import ExecTerminal
from app.runtime.kubernetes.translate import is_held, pod_of
from app.runtime.kubernetes.visibility import QueuePositions
from app.runtime.kubernetes.volcano import GROUP as VOLCANO_GROUP
from app.runtime.kubernetes.volcano import VERSION as VOLCANO_VERSION
from app.runtime.kubernetes.volcano import VolcanoView
from app.runtime.kubernetes.watching import Apply, ListCall, list_then_watch

log = structlog.get_logger(__name__)
QUEUE_APIS = {"kueue": (KUEUE_GROUP, KUEUE_VERSION), "volcano": (VOLCANO_GROUP, VOLCANO_VERSION)}
# Kueue copies no Job label to its Workloads; every Job's Workload has the job-uid label.
QUEUE_SELECTORS = {"kueue": KUEUE_JOB_UID_LABEL}
QUEUE_SYSTEMS = {"kueue": "Kueue v0.19", "volcano": "Volcano v1.16"}


def queue_view(queueing: str) -> QueueView:
    if queueing == "kueue":
        return KueueView()
    if queueing == "volcano":
        return VolcanoView()
    return NoQueue()


class KubernetesRuntime:
    def __init__(
        self,
        pool: ResourcePool,
        *,
        archive_dir: Path,
        configuration: Configuration | None = None,
    ) -> None:
        self.pool = pool
        self.options = KubernetesPoolOptions.of(pool)
        self.namespace = self.options.namespace or "default"
        self.selector = selector(pool.id)
        self._configuration = configuration
        self._archive = LogArchive(archive_dir)
        self._updates: asyncio.Queue[JobUpdate] = asyncio.Queue()
        self._queue = queue_view(self.options.queueing)
        self._cache = ClusterCache(
            emit=self._emit,
            keep_pod_log=lambda job_id, pod_name: self._logs.keep(job_id, pod_name),
            apply_stop=lambda job_id: self._spawn(self._apply_stop(job_id, raise_errors=False)),
            resubmit=lambda job: self._spawn(self._resubmit(job)),
            queue=self._queue,
            end_attempt=lambda job_id: self._spawn(self._end_attempt(job_id)),
            start_attempt=lambda job_id, attempt: self._spawn(self._start_attempt(job_id, attempt)),
            set_deadline=lambda job_id, seconds: self._spawn(self._set_deadline(job_id, seconds)),
            hold_queued=lambda job_id, name: self._spawn(self._hold_workload(job_id, name)),
        )
        self._nodes = Nodes(node_selector=self.options.node_selector, pool_id=pool.id)
        self._positions: QueuePositions | None = None
        # Held jobs -> their Workloads' deactivations (done or in flight): the watch may
        # still show a Workload active for a moment, no reason to patch it again.
        self._deactivations: dict[str, dict[str, asyncio.Task[None]]] = {}
        # The specs of the jobs not final yet (submitted here, or adopted at start), to run a
        # multi-replica job again; dropped when the job ends.
        self._specs: dict[str, Job] = {}
        self._logs = PodLogs(self._archive, self._cache, self._read_pod_log, spawn=self._spawn)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._api: ApiClient | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def _load_credentials(self) -> Credentials:
        """The configuration given to the constructor (kept as it is), else the pool's
        (which may also name the namespace), renewed when its tokens expire."""
        if self._configuration is not None:
            return Credentials(self._configuration, reload=None, pool_id=self.pool.id)
        configuration, namespace, loader = await load_configuration(
            self.options, pool_id=self.pool.id
        )
        if namespace is not None:
            self.namespace = namespace

        async def reload() -> Configuration:
            return (await load_configuration(self.options, pool_id=self.pool.id))[0]

        credentials = Credentials(configuration, reload=reload, pool_id=self.pool.id)
        if loader is not None:
            credentials.renew_before_expiry(loader)
        return credentials

    async def start(self, active_jobs: Sequence[Job]) -> None:
        self._credentials = await self._load_credentials()
        self._configuration = self._credentials.configuration
        self._api = RenewingApiClient(self._credentials)
        self._log_api = await RenewingApiClient.unbounded(self._credentials)
        self.batch = BatchV1Api(self._api)
        self.core = CoreV1Api(self._api)
        self.custom = CustomObjectsApi(self._api)
        # Jobs the database holds as not final; checked against the first listing.
        self._cache.adopt(active_jobs)
        self._specs.update({job.job_id: job for job in active_jobs})
        log.info("k8s.start", pool=self.pool.id, server=self._configuration.host,
                 namespace=self.namespace)
        self._tasks = [
            asyncio.create_task(
                self._watch("jobs", self.batch.list_namespaced_job, self.selector,
                            self._cache.on_jobs),
                name=f"k8s-watch-jobs:{self.pool.id}",
            ),
            asyncio.create_task(
                self._watch("pods", self.core.list_namespaced_pod, self.selector,
                            self._cache.on_pods),
                name=f"k8s-watch-pods:{self.pool.id}",
            ),
            asyncio.create_task(self._watch_events(), name=f"k8s-watch-events:{self.pool.id}"),
        ]
        # On the unbounded client, as log follows: this long-lived watch must not take one
        # of the connections the job, pod and event watches and the calls share.
        self._tasks.append(asyncio.create_task(
            self._nodes.run(self._log_api), name=f"k8s-watch-nodes:{self.pool.id}"))
        if self.options.queueing == "kueue":
            self._positions = QueuePositions(self._api, namespace=self.namespace,
                                             pool_id=self.pool.id)
        if self._queue.resource is not None:
            self._tasks.append(asyncio.create_task(
                self._watch(self._queue.resource, self._list_queue_objects, QUEUE_SELECTORS.get(
                    self.options.queueing), self._on_queue_objects),
                name=f"k8s-watch-{self._queue.resource}:{self.pool.id}",
            ))

    def _on_queue_objects(self, kind: str, obj: dict) -> None:
        if self._positions is not None:
            self._positions.changed()  # a Workload changed: queue positions may have moved
        self._cache.on_queue_objects(kind, obj)

    async def _watch(
        self, kind: str, list_call: ListCall, label_selector: str | None, apply: Apply
    ) -> None:
        assert self._api is not None  # started
        await list_then_watch(
            kind, list_call, apply, api=self._api, namespace=self.namespace,
            label_selector=label_selector, pool_id=self.pool.id,
        )

    async def _list_queue_objects(self, namespace: str, **kwargs: Any) -> Any:
        # No docstring: Watch.stream then leaves the objects as dicts (a CRD has no model
        # class in the client). A 404 for the resource itself: the queueing system is not
        # installed, which the waiting jobs then say.
        group, version = QUEUE_APIS[self.options.queueing]
        plural = self._queue.resource
        assert plural is not None  # only watched when the pool has a queueing system
        try:
            answer = await self.custom.list_namespaced_custom_object(
                group, version, namespace, plural, **kwargs
            )
        except ApiException as error:
            if error.status == 404:
                self._cache.queue_served(
                    f"the cluster serves no {plural}.{group}/{version}: is "
                    f"{QUEUE_SYSTEMS[self.options.queueing]} installed?"
                )
            raise
        self._cache.queue_served(None)
        return answer

    async def _watch_events(self) -> None:
        # Events are matched to jobs through the job cache, so they wait for its first list.
        await self._cache.jobs_listed.wait()
        await self._watch("events", self.core.list_namespaced_event, None, self._cache.on_events)

    async def close(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        if self._api is not None:
            await self._api.close()
            await self._log_api.close()

    def watch(self) -> AsyncIterator[JobUpdate]:
        return self._iterate_updates()

    async def _iterate_updates(self) -> AsyncIterator[JobUpdate]:
        while True:
            yield await self._updates.get()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- commands ------------------------------------------------------------------------

    def validate(self, job: Job) -> None:
        job_manifest(job, self.options)  # raises ValidationFailed (e.g. no image anywhere)

    def _emit(self, update: JobUpdate) -> None:
        if update.status is not None and update.status.is_final:
            self._specs.pop(update.job_id, None)
        self._updates.put_nowait(update)

    async def submit(self, job: Job) -> None:
        self._specs[job.job_id] = job
        await self._create(job, attempt=1)

    async def _create(self, job: Job, *, attempt: int) -> None:
        manifest = job_manifest(job, self.options, attempt=attempt)
        self._cache.known.add(job.job_id)
        try:
            # A retried create (after a 5xx or a dropped answer) meets the first one as 409.
            created = await call(
                f"create Job {job.job_id}",
                lambda: self.batch.create_namespaced_job(
                    # The client serialises plain dicts too; its annotation names V1Job.
                    self.namespace, manifest,  # type: ignore[arg-type]
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
            uid = created.metadata.uid
        except Conflict:
            existing = await call(
                f"read Job {job.job_id}",
                lambda: self.batch.read_namespaced_job(
                    job.job_id, self.namespace, _request_timeout=REQUEST_TIMEOUT
                ),
            )
            if (existing.metadata.labels or {}).get(JOB_ID_LABEL) != job.job_id:
                raise Conflict(f"a Job named {job.job_id} exists and is not jobgraph's") from None
            uid = existing.metadata.uid
        if job.spec.replicas > 1:
            service = headless_service(job, uid)
            try:
                await call(
                    f"create Service {job.job_id}",
                    lambda: self.core.create_namespaced_service(
                        # The client serialises plain dicts too; its annotation names V1Service.
                        self.namespace, service,  # type: ignore[arg-type]
                        _request_timeout=REQUEST_TIMEOUT,
                    ),
                )
            except Conflict:
                pass  # already there: the same job submitted again
            except DomainError:
                # Without the Service the replicas cannot find each other: take the Job back
                # so that no half-created job runs (the core records the job as FAILED).
                await self._delete_job(job.job_id, quiet=True)
                raise

    async def stop(self, job_id: str) -> None:
        if job_id not in self._cache.jobs:
            try:
                await call(
                    f"read Job {job_id}",
                    lambda: self.batch.read_namespaced_job(
                        job_id, self.namespace, _request_timeout=REQUEST_TIMEOUT
                    ),
                )
            except NotFound:
                raise NotFound(f"job {job_id!r} is not in the cluster") from None
        self._cache.stops.add(job_id)
        self._logs.keep_job(job_id)  # (kept already, unless no change of its pods was seen)
        await self._apply_stop(job_id, raise_errors=True)

    async def _apply_stop(self, job_id: str, *, raise_errors: bool) -> None:
        try:
            if self.options.queueing == "kueue":
                await self._stop_kueue_job(job_id)
            else:
                # Suspending terminates the pods and keeps the Job (its status and events);
                # the annotation tells a stopped Job from one waiting in a queue.
                await self._patch_job(job_id, {"metadata": {"annotations": {STOP_ANNOTATION: "true"}},
                                               "spec": {"suspend": True}})
        except NotFound:
            self._cache.stops.discard(job_id)
            if raise_errors:
                raise
        except RuntimeUnavailable as error:
            if raise_errors:
                raise RuntimeUnavailable(
                    f"{error.message}; the stop is kept and applied when the cluster answers again"
                ) from error
        except DomainError:
            self._cache.stops.discard(job_id)
            if raise_errors:
                raise
        else:
            self._cache.stops.discard(job_id)

    async def _patch_job(self, job_id: str, patch: dict, *, what: str = "stop") -> None:
        await call(
            f"{what} Job {job_id}",
            lambda: self.batch.patch_namespaced_job(
                job_id, self.namespace, patch, _request_timeout=REQUEST_TIMEOUT
            ),
        )

    async def _stop_kueue_job(self, job_id: str) -> None:
        """Kueue unsuspends a suspended Job whose Workload is admitted, so the stop goes
        through the Workload: `spec.active: false` (Kueue evicts it and suspends the Job). A
        Job without a Workload (Kueue has not made one, e.g. its priority class is missing)
        is deleted: nothing of it ran, and Kueue cannot admit what does not exist."""
        owned = await self._workloads_of(job_id, what="stop")
        if not owned:
            self._cache.stopped_by_deletion.add(job_id)
            await self._delete_job(job_id, quiet=False)
            return
        for workload in owned:
            await self._set_active(job_id, workload["metadata"]["name"], active=False)
        # Marked once Kueue can no longer admit it: from here the job shows STOPPING.
        await self._patch_job(job_id, {"metadata": {"annotations": {STOP_ANNOTATION: "true"}}})

    # -- steering waiting jobs (hold, release, reorder) -----------------------------------

    async def hold(self, job: Job) -> None:
        """Keep a waiting job from starting. Kueue pools: the Job is marked held and its
        Workload set `spec.active: false` — Kueue's way to deactivate a Workload: it is
        taken out of its ClusterQueue (evicted, `Deactivated`), never admitted while
        inactive (a Workload Kueue has not made yet is deactivated when it appears). Other
        pools: the Job is suspended (batch/v1 `spec.suspend`; its pending pods go)."""
        job_id = job.job_id
        marked = {"metadata": {"annotations": {HELD_ANNOTATION: "true"}}}
        if self.options.queueing != "kueue":
            await self._patch_job(job_id, {**marked, "spec": {"suspend": True}}, what="hold")
            return
        await self._patch_job(job_id, marked, what="hold")
        for workload in await self._workloads_of(job_id, what="hold"):
            if (workload.get("spec") or {}).get("active", True) is not False:
                await self._deactivate_held(job_id, workload["metadata"]["name"])

    async def release(self, job: Job) -> None:
        """Let a held job start again, in its place: Kueue orders a ClusterQueue by priority,
        then by the Workload's creation time (workload.go GetQueueOrderTimestamp), which a
        reactivation keeps ("The workload was reactivated"). Other pools: unsuspended."""
        job_id = job.job_id
        current = await self._read_job(job_id, fresh=True)  # the watch may lag a stop
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        if annotations.get(STOP_ANNOTATION) == "true":
            # Stopped (it is suspended, its Workload inactive for that): never resumed here.
            raise Conflict(f"job {job_id} is being stopped: it cannot be released")
        unmarked = {"metadata": {"annotations": {HELD_ANNOTATION: None}}}
        if self.options.queueing != "kueue":
            await self._patch_job(job_id, {**unmarked, "spec": {"suspend": False}},
                                  what="release")
            return
        await self._patch_job(job_id, unmarked, what="release")
        self._deactivations.pop(job_id, None)
        for workload in await self._workloads_of(job_id, what="release"):
            if (workload.get("spec") or {}).get("active", True) is False:
                await self._set_active(job_id, workload["metadata"]["name"], active=True)

    async def reorder(self, job: Job) -> None:
        """Give a waiting job its new priority and queue. Kueue pools: the Job's
        `kueue.x-k8s.io/priority-class` label (Kueue copies the class and its value to the
        Workload, jobframework UpdateWorkloadPriority) and `kueue.x-k8s.io/queue-name`
        label (Kueue moves a suspended Job's Workload to that LocalQueue, QueueNameChange).
        Kueue's webhook refuses a queue change once the Job runs and the removal of a class:
        a Conflict. Elsewhere the priority and queue live in the pod template, which a
        batch/v1 Job does not let change: a Conflict."""
        if self.options.queueing != "kueue":
            raise Conflict(
                f"pool {self.pool.id!r} ({self.options.queueing}) cannot re-order a waiting "
                f"job: its priority and queue are in the Job's pod template, which Kubernetes "
                f"does not let change; stop it and submit it again (rerun)")
        current = await self._read_job(job.job_id, fresh=True)  # an earlier re-order may lag
        labels = current.get("metadata", {}).get("labels") or {}
        patch: dict[str, Any] = {}
        if labels.get(KUEUE_QUEUE_LABEL) != job.queue:
            patch[KUEUE_QUEUE_LABEL] = job.queue
        priority_class = self.options.priority_class(job.spec.priority)
        old_class = labels.get(KUEUE_PRIORITY_CLASS_LABEL)
        if priority_class != old_class:
            if priority_class is None:
                classes = self.options.priority_classes
                below = (f"priority {job.spec.priority} is below the pool's lowest class "
                         f"{classes[0].name!r} ({classes[0].value})" if classes
                         else "the pool names no priority classes now")
                raise Conflict(
                    f"job {job.job_id} has the WorkloadPriorityClass {old_class!r}, and Kueue "
                    f"does not let a Job lose its class: {below}", field="priority")
            patch[KUEUE_PRIORITY_CLASS_LABEL] = priority_class
        if patch:
            await self._patch_job(job.job_id, {"metadata": {"labels": patch}}, what="re-order")

    async def _read_job(self, job_id: str, *, fresh: bool = False) -> dict:
        cached = None if fresh else self._cache.jobs.get(job_id)
        return cached or self._as_dict(await call(
            f"read Job {job_id}",
            lambda: self.batch.read_namespaced_job(job_id, self.namespace,
                                                   _request_timeout=REQUEST_TIMEOUT),
        ))

    async def _workloads_of(self, job_id: str, *, what: str) -> list[dict]:
        """The Workloads Kueue made for this Job (listed: the cache may lag behind)."""
        uid = (await self._read_job(job_id))["metadata"]["uid"]
        try:
            listing = await call(
                f"{what} {job_id}: list its Workloads",
                lambda: self.custom.list_namespaced_custom_object(
                    KUEUE_GROUP, KUEUE_VERSION, self.namespace, KUEUE_PLURAL,
                    label_selector=f"{KUEUE_JOB_UID_LABEL}={uid}", _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except NotFound:
            raise Conflict(
                f"{what} {job_id}: pool {self.pool.id!r} uses Kueue, but its cluster serves no "
                f"{KUEUE_PLURAL}.{KUEUE_GROUP}/{KUEUE_VERSION}; install Kueue v0.19 or later"
            ) from None
        return [w for w in listing["items"] if owner_job(w) == (job_id, uid)]

    async def _set_active(self, job_id: str, workload: str, *, active: bool) -> None:
        await call(
            f"{'activate' if active else 'deactivate'} Workload {workload} of Job {job_id}",
            lambda: self.custom.patch_namespaced_custom_object(  # type: ignore[call-arg]
                KUEUE_GROUP, KUEUE_VERSION, self.namespace, KUEUE_PLURAL, workload,
                {"spec": {"active": active}},
                _content_type="application/merge-patch+json", _request_timeout=REQUEST_TIMEOUT,
            ),
        )

    def _deactivate_held(self, job_id: str, workload: str) -> asyncio.Task[None]:
        """Deactivate a held job's Workload once (a failed try is forgotten, to be made again)."""
        tasks = self._deactivations.setdefault(job_id, {})
        task = tasks.get(workload)
        if task is None or (task.done() and (task.cancelled() or task.exception())):
            task = self._spawn(self._set_active(job_id, workload, active=False))
            tasks[workload] = task
        return task

    async def _hold_workload(self, job_id: str, workload: str) -> None:
        """A held Job's Workload appeared active (made after the hold): deactivate it."""
        job = self._cache.jobs.get(job_id)
        if job is None or not is_held(job):
            return
        try:
            await self._deactivate_held(job_id, workload)
        except DomainError as error:  # tried again at the job's next change
            log.warning("k8s.hold_failed", job_id=job_id, workload=workload, error=error.message)

    async def queue_positions(self, jobs: Sequence[Job]) -> dict[str, int] | None:
        """Kueue pools: each waiting job's 1-based place in its LocalQueue, from Kueue's
        visibility API (jobs it does not list, or all when the API is absent: no position).
        Other Kubernetes pools: no positions (the scheduler's order is not known here)."""
        if self._positions is None or not jobs:
            return {}
        return await self._positions.positions(jobs)

    def next_queue_change(self) -> asyncio.Event:
        """Set at the next change Kueue makes to a Workload (positions may move)."""
        return self._positions.next_change() if self._positions else asyncio.Event()

    def next_node_change(self) -> asyncio.Event:
        """Set at the next change of the cluster's nodes."""
        return self._nodes.next_change()

    async def largest_node(self) -> Resources | None:
        """The most any one of the pool's nodes can give of cpu, memory and GPUs (nodes.py);
        None when unknown."""
        return await self._nodes.largest()

    def _as_dict(self, obj: Any) -> dict:
        assert self._api is not None  # started
        return self._api.sanitize_for_serialization(obj)

    async def delete(self, job_id: str) -> None:
        self._deactivations.pop(job_id, None)
        self._cache.deleting.add(job_id)
        try:
            await self._delete_job(job_id, quiet=False)
        except BaseException:
            self._cache.deleting.discard(job_id)
            raise
        self._cache.stops.discard(job_id)
        await self._logs.forget_job(job_id)
        try:
            await asyncio.to_thread(self._archive.remove, job_id)
        except OSError as error:
            # The Job is gone from the cluster: the deletion stands (its record goes too),
            # what is left of the archive is only disk space.
            log.warning("k8s.archive_not_removed", job_id=job_id, error=str(error))

    async def _delete_job(self, job_id: str, *, quiet: bool) -> None:
        # Background: the Job goes now, its pods (and Service) are garbage-collected. Jobs
        # default to Orphan, which would leave the pods running.
        try:
            await call(
                f"delete Job {job_id}",
                lambda: self.batch.delete_namespaced_job(
                    job_id, self.namespace, propagation_policy="Background",
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except NotFound:
            pass
        except DomainError as error:
            if not quiet:
                raise
            log.warning("k8s.delete_failed", job_id=job_id, error=error.message)

    async def _end_attempt(self, job_id: str) -> None:
        """Foreground: the Job stays until its pods (and Service) are gone, so the next
        attempt's ranks never meet this one's."""
        try:
            await call(
                f"delete Job {job_id}",
                lambda: self.batch.delete_namespaced_job(
                    job_id, self.namespace, propagation_policy="Foreground",
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except NotFound:
            pass  # gone already: the next attempt starts on its deletion
        except DomainError as error:
            self._cache.retrying.pop(job_id, None)
            self._emit(JobUpdate(job_id=job_id, status=JobStatus.FAILED, finished_at=utcnow(),
                                 reason=f"could not retry: {error.message}"))

    async def _start_attempt(self, job_id: str, attempt: int) -> None:
        job = self._specs.get(job_id)
        if job is None:
            self._emit(JobUpdate(job_id=job_id, status=JobStatus.FAILED, finished_at=utcnow(),
                                 reason=f"could not start attempt {attempt}: the job is unknown"))
            return
        try:
            await self._create(job, attempt=attempt)
        except Exception as error:  # noqa: BLE001 - whatever stops it is the job's outcome
            reason = getattr(error, "message", str(error))
            self._emit(JobUpdate(job_id=job_id, status=JobStatus.FAILED, finished_at=utcnow(),
                                 reason=f"could not start attempt {attempt}: {reason}"))

    async def _set_deadline(self, job_id: str, seconds: int) -> None:
        patch = {"spec": {"activeDeadlineSeconds": seconds}}
        try:
            await call(
                f"set the deadline of Job {job_id}",
                lambda: self.batch.patch_namespaced_job(
                    job_id, self.namespace, patch, _request_timeout=REQUEST_TIMEOUT
                ),
            )
        except DomainError as error:
            log.warning("k8s.deadline_failed", job_id=job_id, error=error.message)

    async def _resubmit(self, job: Job) -> None:
        try:
            await self.submit(job)
        except Exception as error:  # noqa: BLE001 - whatever stops it is the job's outcome
            reason = getattr(error, "message", str(error))
            self._emit(
                JobUpdate(job_id=job.job_id, status=JobStatus.FAILED, finished_at=utcnow(), reason=reason)
            )

    # -- logs and terminal --------------------------------------------------------------

    def logs(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[str]:
        return self._logs.lines(job_id, pod_name, tail_lines=tail_lines, follow=follow)

    def _read_pod_log(
        self, pod_name: str, query: list[tuple[str, Any]], timeout: Any
    ) -> Awaitable[aiohttp.ClientResponse]:
        """GET …/pods/{name}/log as `CoreV1Api.read_namespaced_pod_log` sends it, plus
        `sinceTime`, which kubernetes_asyncio 36.1 does not generate."""
        return self._log_api.call_api(
            "/api/v1/namespaces/{namespace}/pods/{name}/log", "GET",
            path_params={"namespace": self.namespace, "name": pod_name},
            query_params=query,
            header_params={"Accept": "application/json"},  # as the generated method picks
            response_types_map={200: "str", 401: None},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
            _request_timeout=timeout,
        )

    async def _open_exec(self, pod_name: str) -> ExecTerminal:
        assert self._configuration is not None  # loaded by start()
        token = bearer(self._configuration)
        try:
            return await ExecTerminal.open(
                self._configuration, namespace=self.namespace, pod=pod_name, container=CONTAINER
            )
        except aiohttp.WSServerHandshakeError as error:
            # The upgrade is a plain HTTP request: a 401 is not seen by RenewingApiClient.
            if error.status != 401 or not await self._credentials.renew(rejected=token):
                raise
        return await ExecTerminal.open(
            self._configuration, namespace=self.namespace, pod=pod_name, container=CONTAINER
        )

    async def open_terminal(self, job_id: str, pod_name: str, *, rows: int, cols: int) -> Terminal:
        pod = self._cache.pod_of_job(job_id, pod_name)
        if pod is None:
            raise NotFound(f"pod {pod_name!r} not found in job {job_id!r}", field="podName")
        if pod_of(job_id, pod).phase is not PodPhase.RUNNING:
            raise Conflict(f"pod {pod_name!r} is not running", field="podName")
        try:
            terminal = await self._open_exec(pod_name)
        except aiohttp.WSServerHandshakeError as error:
            # The exec upgrade was refused: a plain HTTP error, not an ApiException.
            if error.status == 403:
                raise PermissionDenied(
                    f"open a terminal in {pod_name}: jobgraph's service account may not "
                    f"create pods/exec; see deploy/rbac.yaml"
                ) from error
            # The kubelet answers 500 `container not found ("main")` when the container is
            # not running (GetExec only finds running ones), e.g. main has ended while an
            # injected sidecar keeps the pod Running; 400/404 when the pod itself has gone.
            if error.status in (400, 404, 500):
                raise Conflict(
                    f"pod {pod_name!r} cannot take a terminal now: its container "
                    f"{CONTAINER!r} is not running",
                    field="podName",
                ) from error
            raise domain_error(error, what=f"open a terminal in {pod_name}") from error
        except (ApiException, *CONNECTION_ERRORS) as error:
            raise domain_error(error, what=f"open a terminal in {pod_name}") from error
        await terminal.resize(rows=rows, cols=cols)
        return terminal
