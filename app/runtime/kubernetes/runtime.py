"""The Kubernetes runtime: batch/v1 Jobs in one cluster namespace (one resource pool).

Submit creates the Job (and a headless Service for several replicas). A list-then-watch
loop per resource (Jobs, Pods, Events) keeps a cache and reports every change as a
`JobUpdate`; a broken or expired watch (410) re-lists and resumes, so no transition is
missed. Reads of jobs never come here: the core answers them from its database.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, BatchV1Api, Configuration, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.watch import Watch

from app.domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    RuntimeUnavailable,
)
from app.domain.jobs import Job, JobStatus, PodPhase, utcnow
from app.domain.pools import ResourcePool
from app.runtime.base import JobUpdate, Terminal
from app.runtime.kubernetes.archive import LogArchive
from app.runtime.kubernetes.calls import (
    CONNECTION_ERRORS,
    REQUEST_TIMEOUT,
    call,
    domain_error,
    status_message,
)
from app.runtime.kubernetes.manifests import (
    CONTAINER,
    JOB_ID_LABEL,
    STOP_ANNOTATION,
    headless_service,
    job_manifest,
    selector,
)
from app.runtime.kubernetes.options import KubernetesPoolOptions, PoolOptionsError
from app.runtime.kubernetes.terminal import ExecTerminal
from app.runtime.kubernetes.translate import (
    STUCK_REASONS,
    container_started,
    event_of,
    event_sort_key,
    gone_pod,
    job_id_of,
    job_state,
    pod_of,
    waiting_reason,
)

log = structlog.get_logger(__name__)
MAX_BACKOFF = 2.0
ENDED = (PodPhase.SUCCEEDED, PodPhase.FAILED)
# A watch is idle at most this long before the client reconnects (servers send bookmarks
# about once a minute, so a healthy idle watch never hits it; a half-open one does).
WATCH_TIMEOUT = (10, 300)
# Events of objects not (yet) known, kept to be matched once their job or pod shows up.
UNMATCHED_EVENTS = 2000
INCLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
        self._jobs: dict[str, dict] = {}  # job id -> Job object
        self._pods: dict[str, dict] = {}  # pod name -> Pod object
        # Pods that went away (a stop, a retry's failed pod being cleaned up): still shown
        # with their job, so that their archived logs stay reachable.
        self._gone: dict[str, dict[str, dict]] = {}  # job id -> pod name -> last state
        self._known: set[str] = set()  # job ids submitted or listed (to match events)
        self._unmatched: deque[dict] = deque(maxlen=UNMATCHED_EVENTS)
        self._reported: dict[str, tuple] = {}
        self._deleting: set[str] = set()
        self._stops: set[str] = set()  # stops not yet applied (the cluster was unreachable)
        self._awaiting_first_list: dict[str, Job] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._api: ApiClient | None = None
        self._changed = asyncio.Event()  # set (and replaced) on every pod change
        # Events are matched to jobs through the job cache, so they wait for its first list.
        self._jobs_listed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def _load_configuration(self) -> Configuration:
        """The pool's kubeconfig (and context); without one: in-cluster, then ~/.kube/config."""
        if self._configuration is not None:
            return self._configuration
        configuration = Configuration()
        try:
            if self.options.kubeconfig:
                loader = await kube_config.load_kube_config(
                    config_file=str(self.options.kubeconfig),
                    context=self.options.context,
                    client_configuration=configuration,
                )
            else:
                try:
                    kube_config.load_incluster_config(client_configuration=configuration)
                    loader = None
                    if self.options.namespace is None and INCLUSTER_NAMESPACE.is_file():
                        self.namespace = INCLUSTER_NAMESPACE.read_text().strip() or "default"
                except kube_config.ConfigException:
                    loader = await kube_config.load_kube_config(
                        context=self.options.context, client_configuration=configuration
                    )
        except (kube_config.ConfigException, OSError, ValueError) as error:
            raise PoolOptionsError(
                f"pool {self.pool.id!r}: cannot load the cluster configuration: {error}"
            ) from error
        if loader is not None and self.options.namespace is None:
            try:
                context_namespace = loader.current_context["context"].safe_get("namespace")
            except (AttributeError, KeyError, TypeError):
                context_namespace = None
            self.namespace = context_namespace or "default"
        return configuration

    async def start(self, active_jobs: Sequence[Job]) -> None:
        self._configuration = await self._load_configuration()
        self._api = ApiClient(configuration=self._configuration)
        self.batch = BatchV1Api(self._api)
        self.core = CoreV1Api(self._api)
        # Jobs the database holds as not final; checked against the first listing.
        self._awaiting_first_list = {job.job_id: job for job in active_jobs}
        self._known.update(self._awaiting_first_list)
        self._stops.update(j.job_id for j in active_jobs if j.status is JobStatus.STOPPING)
        log.info("k8s.start", pool=self.pool.id, server=self._configuration.host,
                 namespace=self.namespace)
        self._tasks = [
            asyncio.create_task(
                self._watch("jobs", self.batch.list_namespaced_job, self.selector, self._on_jobs),
                name=f"k8s-watch-jobs:{self.pool.id}",
            ),
            asyncio.create_task(
                self._watch("pods", self.core.list_namespaced_pod, self.selector, self._on_pods),
                name=f"k8s-watch-pods:{self.pool.id}",
            ),
            asyncio.create_task(
                self._watch("events", self.core.list_namespaced_event, None, self._on_events),
                name=f"k8s-watch-events:{self.pool.id}",
            ),
        ]

    async def close(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        if self._api is not None:
            await self._api.close()

    def watch(self) -> AsyncIterator[JobUpdate]:
        return self._iterate_updates()

    async def _iterate_updates(self) -> AsyncIterator[JobUpdate]:
        while True:
            yield await self._updates.get()

    # -- commands ------------------------------------------------------------------------

    def validate(self, job: Job) -> None:
        job_manifest(job, self.options)  # raises ValidationFailed (e.g. no image anywhere)

    async def submit(self, job: Job) -> None:
        manifest = job_manifest(job, self.options)
        self._known.add(job.job_id)
        try:
            # A retried create (after a 5xx or a dropped answer) meets the first one as 409.
            created = await call(
                f"create Job {job.job_id}",
                lambda: self.batch.create_namespaced_job(
                    self.namespace, manifest, _request_timeout=REQUEST_TIMEOUT
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
                        self.namespace, service, _request_timeout=REQUEST_TIMEOUT
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
        if job_id not in self._jobs:
            try:
                await call(
                    f"read Job {job_id}",
                    lambda: self.batch.read_namespaced_job(
                        job_id, self.namespace, _request_timeout=REQUEST_TIMEOUT
                    ),
                )
            except NotFound:
                raise NotFound(f"job {job_id!r} is not in the cluster") from None
        self._stops.add(job_id)
        await self._archive_job_logs(job_id)
        await self._apply_stop(job_id, raise_errors=True)

    async def _apply_stop(self, job_id: str, *, raise_errors: bool) -> None:
        # Suspending terminates the pods and keeps the Job (its status and events); the
        # annotation tells a stopped Job from one waiting in a queue.
        patch = {"metadata": {"annotations": {STOP_ANNOTATION: "true"}}, "spec": {"suspend": True}}
        try:
            await call(
                f"stop Job {job_id}",
                lambda: self.batch.patch_namespaced_job(
                    job_id, self.namespace, patch, _request_timeout=REQUEST_TIMEOUT
                ),
            )
        except NotFound:
            self._stops.discard(job_id)
            if raise_errors:
                raise
        except RuntimeUnavailable as error:
            if raise_errors:
                raise RuntimeUnavailable(
                    f"{error.message}; the stop is kept and applied when the cluster answers again"
                ) from error
        except DomainError:
            self._stops.discard(job_id)
            if raise_errors:
                raise
        else:
            self._stops.discard(job_id)

    async def delete(self, job_id: str) -> None:
        self._deleting.add(job_id)
        try:
            await self._delete_job(job_id, quiet=False)
        except BaseException:
            self._deleting.discard(job_id)
            raise
        self._stops.discard(job_id)
        self._archive.remove(job_id)

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

    # -- logs and terminal --------------------------------------------------------------

    def _pod_of_job(self, job_id: str, pod_name: str) -> dict | None:
        pod = self._pods.get(pod_name)
        if pod is not None and job_id_of(pod) != job_id:
            raise NotFound(f"pod {pod_name!r} not found in job {job_id!r}")
        return pod

    async def logs(
        self, job_id: str, pod_name: str, *, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[str]:
        pod = self._pod_of_job(job_id, pod_name)
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
            pod = self._pods.get(pod_name)
            if pod is None or container_started(pod) or pod_of(job_id, pod).phase in ENDED:
                return
            reason = waiting_reason(pod)
            if reason and reason.split(":")[0] in STUCK_REASONS:
                raise Conflict(f"pod {pod_name!r} has not started yet: {reason}", field="podName")
            changed = self._changed
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
                lambda: self.core.read_namespaced_pod_log(pod_name, self.namespace, **kwargs),
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
                pod = self._pods.get(pod_name)
                reason = waiting_reason(pod) if pod else None
                stuck = bool(reason and reason.split(":")[0] in STUCK_REASONS)
                if wait and not stuck:
                    changed = self._changed
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

    async def open_terminal(self, job_id: str, pod_name: str, *, rows: int, cols: int) -> Terminal:
        pod = self._pod_of_job(job_id, pod_name)
        if pod is None:
            raise NotFound(f"pod {pod_name!r} not found in job {job_id!r}", field="podName")
        if pod_of(job_id, pod).phase is not PodPhase.RUNNING:
            raise Conflict(f"pod {pod_name!r} is not running", field="podName")
        try:
            terminal = await ExecTerminal.open(
                self._configuration, namespace=self.namespace, pod=pod_name, container=CONTAINER
            )
        except aiohttp.WSServerHandshakeError as error:
            # The exec upgrade was refused: a plain HTTP error, not an ApiException.
            if error.status == 403:
                raise PermissionDenied(
                    f"open a terminal in {pod_name}: jobgraph's service account may not "
                    f"create pods/exec; see deploy/rbac.yaml"
                ) from error
            if error.status in (400, 404):
                raise Conflict(
                    f"pod {pod_name!r} cannot take a terminal now (its container is not running)",
                    field="podName",
                ) from error
            raise domain_error(error, what=f"open a terminal in {pod_name}") from error
        except (ApiException, *CONNECTION_ERRORS) as error:
            raise domain_error(error, what=f"open a terminal in {pod_name}") from error
        await terminal.resize(rows=rows, cols=cols)
        return terminal

    # -- watching ------------------------------------------------------------------------

    async def _watch(
        self, kind: str, list_call, label_selector: str | None,
        apply: Callable[[str, dict], None],
    ) -> None:
        """List, then watch from the list's resourceVersion; on 410 or a broken stream,
        list again (apply() sees the fresh state as a whole, so nothing is missed)."""
        backoff = 0.2
        kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        if kind == "events":
            await self._jobs_listed.wait()
        while True:
            watch = Watch()
            try:
                listing = await list_call(self.namespace, _request_timeout=REQUEST_TIMEOUT, **kwargs)
                items = [self._api.sanitize_for_serialization(i) for i in listing.items]
                apply("LIST", {"items": items})
                backoff = 0.2
                async for event in watch.stream(
                    list_call, self.namespace, resource_version=listing.metadata.resource_version,
                    allow_watch_bookmarks=True, _request_timeout=WATCH_TIMEOUT, **kwargs,
                ):
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        apply(event["type"], event["raw_object"])
            except asyncio.CancelledError:
                raise
            except ApiException as error:
                if error.status == 410:
                    log.info("k8s.watch_expired", pool=self.pool.id, kind=kind)
                    continue  # too old: list again at once
                log.warning("k8s.watch_failed", pool=self.pool.id, kind=kind,
                            status=error.status, reason=error.reason)
            except Exception as error:  # noqa: BLE001 - any fault: list again; reads go on from the DB
                log.warning("k8s.watch_broken", pool=self.pool.id, kind=kind,
                            error=f"{error.__class__.__name__}: {error}")
            finally:
                await watch.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _on_jobs(self, kind: str, obj: dict) -> None:
        if kind == "LIST":
            listed = {job_id_of(o): o for o in obj["items"] if job_id_of(o)}
            vanished = set(self._jobs) - set(listed)
            self._jobs = listed
            self._known.update(listed)
            for job_id in vanished:
                self._job_vanished(job_id)
            for job_id in listed:
                self._report(job_id)
            self._check_first_list(listed)
            self._jobs_listed.set()
            self._match_unmatched()
            for job_id in list(self._stops):
                if job_id in listed:
                    self._spawn(self._apply_stop(job_id, raise_errors=False))
                else:
                    self._stops.discard(job_id)
            return
        job_id = job_id_of(obj)
        if not job_id:
            return
        if kind == "DELETED":
            self._jobs.pop(job_id, None)
            self._job_vanished(job_id)
        else:
            new = job_id not in self._known
            self._jobs[job_id] = obj
            self._known.add(job_id)
            self._report(job_id)
            if new:
                self._match_unmatched()

    def _on_pods(self, kind: str, obj: dict) -> None:
        if kind == "LIST":
            before = self._pods
            self._pods = {o["metadata"]["name"]: o for o in obj["items"]}
            touched = {job_id_of(o) for o in [*before.values(), *obj["items"]]} - {None}
            for name, pod in before.items():
                if name not in self._pods:
                    self._pod_gone(pod)
            for name, pod in self._pods.items():
                self._archive_if_ended(job_id_of(pod), name, before.get(name), pod)
            for job_id in touched:
                self._report(job_id)
            self._match_unmatched()
        else:
            name = obj["metadata"]["name"]
            job_id = job_id_of(obj)
            before = self._pods.get(name)
            if kind == "DELETED":
                self._pods.pop(name, None)
                self._pod_gone(obj)
            else:
                self._pods[name] = obj
                self._archive_if_ended(job_id, name, before, obj)
            if job_id:
                self._report(job_id)
            if before is None:
                self._match_unmatched()
        self._changed.set()
        self._changed = asyncio.Event()

    def _pod_gone(self, pod: dict) -> None:
        job_id = job_id_of(pod)
        if job_id and job_id in self._jobs:
            self._gone.setdefault(job_id, {})[pod["metadata"]["name"]] = pod

    def _archive_if_ended(self, job_id: str | None, name: str, before: dict | None, pod: dict) -> None:
        if before is None and job_id and self._archive.has(job_id, name):
            return  # archived by an earlier run
        if job_id and pod_of(job_id, pod).phase in ENDED and (
            before is None or pod_of(job_id, before).phase not in ENDED
        ):
            self._spawn(self._archive_pod_log(job_id, name))

    def _job_for_event(self, event: dict) -> str | None:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        name = involved.get("name") or ""
        kind = involved.get("kind")
        if kind == "Job":
            return name if name in self._known else None
        if kind == "Pod":
            pod = self._pods.get(name)
            if pod is not None:
                return job_id_of(pod)
            # A pod not seen yet (or already gone): the Job controller names them <job>-...
            owners = [j for j in self._known if name.startswith(j + "-")]
            return max(owners, key=len) if owners else None
        return None

    def _on_events(self, kind: str, obj: dict) -> None:
        items = obj["items"] if kind == "LIST" else ([] if kind == "DELETED" else [obj])
        self._publish_events(sorted(items, key=event_sort_key), keep_unmatched=True)

    def _publish_events(self, items: list[dict], *, keep_unmatched: bool) -> None:
        by_job: dict[str, list] = {}
        for event in items:
            job_id = self._job_for_event(event)
            if job_id:
                by_job.setdefault(job_id, []).append(event_of(job_id, event))
            elif keep_unmatched and (event.get("involvedObject") or {}).get("kind") in ("Job", "Pod"):
                self._unmatched.append(event)
        for job_id, events in by_job.items():
            self._updates.put_nowait(JobUpdate(job_id=job_id, events=tuple(events)))

    def _match_unmatched(self) -> None:
        if not self._unmatched:
            return
        waiting = list(self._unmatched)
        self._unmatched.clear()
        matched = [e for e in waiting if self._job_for_event(e)]
        self._unmatched.extend(e for e in waiting if not self._job_for_event(e))
        if matched:
            self._publish_events(matched, keep_unmatched=False)

    def _report(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        live = [p for p in self._pods.values() if job_id_of(p) == job_id]
        names = {p["metadata"]["name"] for p in live}
        gone = [p for name, p in self._gone.get(job_id, {}).items() if name not in names]
        raw = sorted(
            [*live, *gone],
            key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
        )
        pods = sorted(
            [pod_of(job_id, p) for p in live] + [gone_pod(pod_of(job_id, p)) for p in gone],
            key=lambda p: (p.replica_index, next(i for i, r in enumerate(raw)
                                                 if r["metadata"]["name"] == p.name)),
        )
        state = job_state(job, [pod_of(job_id, p) for p in live])
        snapshot = (state, tuple(pods))
        if self._reported.get(job_id) == snapshot:
            return
        self._reported[job_id] = snapshot
        self._updates.put_nowait(
            JobUpdate(
                job_id=job_id,
                status=state.status,
                reason=state.reason,
                exit_code=state.exit_code,
                started_at=state.started_at,
                finished_at=state.finished_at or (utcnow() if state.status.is_final else None),
                # No pod known for an ended job (e.g. after a restart, its pods cleaned up):
                # keep the pods the database has.
                pods=tuple(pods) if pods or not state.status.is_final else None,
            )
        )

    def _job_vanished(self, job_id: str) -> None:
        self._reported.pop(job_id, None)
        self._gone.pop(job_id, None)
        if job_id in self._deleting:
            self._deleting.discard(job_id)
            return
        # Deleted behind jobgraph's back: the job cannot end by itself any more.
        stopped = job_id in self._stops
        self._updates.put_nowait(
            JobUpdate(
                job_id=job_id,
                status=JobStatus.STOPPED if stopped else JobStatus.FAILED,
                finished_at=utcnow(),
                reason=None if stopped else "the Job was deleted from the cluster",
            )
        )

    def _check_first_list(self, listed: dict[str, dict]) -> None:
        waiting, self._awaiting_first_list = self._awaiting_first_list, {}
        for job_id, job in waiting.items():
            if job_id in listed:
                continue
            if job.status is JobStatus.PENDING and job.started_at is None:
                # Recorded, but the server stopped before the create reached the cluster.
                self._spawn(self._resubmit(job))
            elif job.status is JobStatus.STOPPING:
                self._stops.discard(job_id)
                self._updates.put_nowait(
                    JobUpdate(job_id=job_id, status=JobStatus.STOPPED, finished_at=utcnow())
                )
            else:
                self._updates.put_nowait(
                    JobUpdate(job_id=job_id, status=JobStatus.FAILED, finished_at=utcnow(),
                              reason="lost: the Job no longer exists in the cluster")
                )

    async def _resubmit(self, job: Job) -> None:
        try:
            await self.submit(job)
        except Exception as error:
            reason = getattr(error, "message", str(error))
            self._updates.put_nowait(
                JobUpdate(job_id=job.job_id, status=JobStatus.FAILED, finished_at=utcnow(), reason=reason)
            )

    # -- log archive ---------------------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _archive_pod_log(self, job_id: str, pod_name: str) -> None:
        try:
            response = await self._open_log(job_id, pod_name, tail_lines=None, follow=False)
            try:
                data = await response.read()
            finally:
                response.release()
            self._archive.write(job_id, pod_name, data)
        except (Conflict, NotFound, RuntimeUnavailable) as error:
            log.info("k8s.archive_skipped", pod=pod_name, reason=error.message)
        except Exception:  # noqa: BLE001 - an archive failure must not end the watch task
            log.exception("k8s.archive_failed", pod=pod_name)

    async def _archive_job_logs(self, job_id: str) -> None:
        names = [n for n, p in self._pods.items() if job_id_of(p) == job_id]
        await asyncio.gather(*(self._archive_pod_log(job_id, n) for n in names))
