"""Prometheus metrics: HTTP requests by route, live subscriptions and terminals, jobs by
status, and what finished jobs used. `/metrics` answers administrators only (scrape with
a bearer token).

The usage counters move once per job, when the sync records its final status (in the
process that recorded it: with several replicas, sum them over replicas), by the same
rules as the `usage` query: over all time, their totals are its totals. A job ended by
jobgraph itself before any runtime ran it (refused at submit, stopped before submission)
used nothing and is not counted. `owner` is a label so that usage per user can be graphed
and alerted on without the database; it multiplies the series by the number of users
(pools × queues × users, × 3 statuses for the job counter): fine for a team or a
department (hundreds of users), too many for thousands, where `usage(groupBy: OWNER)`
is the place to look."""

from __future__ import annotations

import asyncio
import re
import time

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.answers import AnswerCache
from app.domain.errors import PermissionDenied
from app.domain.usage import FinishedJob
from app.web.auth import EITHER_CREDENTIAL, CallerDep, ServicesDep

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "jobgraph_http_requests_total", "HTTP requests and WebSocket sessions.",
    ["method", "route", "status"], registry=REGISTRY,
)
LATENCY = Histogram(
    "jobgraph_http_request_duration_seconds", "Time to answer an HTTP request.",
    ["route"], registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
JOBS = Gauge("jobgraph_jobs", "Jobs in the database by status.", ["status"], registry=REGISTRY)
SUBSCRIBERS = Gauge("jobgraph_broker_subscribers", "Open subscriptions on the broker.", registry=REGISTRY)
GPU_SECONDS = Counter(
    "jobgraph_gpu_seconds", "GPU seconds used by finished jobs (requested GPUs x replica running time).",
    ["pool", "queue", "owner"], registry=REGISTRY,
)
CPU_SECONDS = Counter(
    "jobgraph_cpu_seconds", "CPU seconds used by finished jobs (requested CPUs x replica running time).",
    ["pool", "queue", "owner"], registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "jobgraph_jobs_finished", "Jobs that reached a final status.",
    ["pool", "queue", "owner", "status"], registry=REGISTRY,
)
# A count that keeps growing while the load does not means tasks leak.
TASKS = Gauge("jobgraph_event_loop_tasks", "Tasks alive on the server's event loop.", registry=REGISTRY)


class AnswerCacheMetrics(Collector):
    """Read from the cache at scrape time: nothing is counted twice on the hot path."""

    def __init__(self) -> None:
        self.cache: AnswerCache | None = None

    def collect(self):
        if self.cache is None:
            return
        lookups = CounterMetricFamily(
            "jobgraph_answer_cache_lookups", "Reads looked up in the answer cache.", labels=["outcome"]
        )
        lookups.add_metric(["hit"], self.cache.hits)
        lookups.add_metric(["miss"], self.cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            "jobgraph_answer_cache_bytes", "Bytes of answers kept.", value=self.cache.size_bytes
        )


ANSWER_CACHE = AnswerCacheMetrics()
REGISTRY.register(ANSWER_CACHE)


def count_finished(job: FinishedJob) -> None:
    """The sync's hook: a job has just ended."""
    GPU_SECONDS.labels(job.pool_id, job.queue, job.owner).inc(job.gpu_seconds)
    CPU_SECONDS.labels(job.pool_id, job.queue, job.owner).inc(job.cpu_seconds)
    JOBS_FINISHED.labels(job.pool_id, job.queue, job.owner, job.status).inc()


class MetricsMiddleware:
    """Pure ASGI: no extra task per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = [500]

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router records what it matched in the (shared) scope.
            template = _template(scope, root_path)
            REQUESTS.labels(scope["method"], template, str(status[0])).inc()
            LATENCY.labels(template).observe(time.perf_counter() - started)


_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


def _template(scope: Scope, root_path: str) -> str:
    """The path template of the route the router matched (`/api/jobs/{jobId}`), so ids
    do not explode the label set; a request that no route matched is one label."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        # The route's path is relative to the routers it was included through: what
        # precedes its filled-in form in the request's path is their prefix.
        params = scope.get("path_params") or {}
        filled = _PARAMETER.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)
        path = scope.get("path", "")
        if not path.endswith(filled):
            return template
        return path[: len(path) - len(filled)] + template
    mounted = scope.get("root_path", "")
    if mounted != root_path:  # a mounted app answered (the static files): its prefix
        return mounted[len(root_path):] + "/{path}"
    return "unmatched"


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics", summary="Prometheus metrics (administrators)", response_class=PlainTextResponse,
    openapi_extra={"security": EITHER_CREDENTIAL},
    responses={401: {"description": "No or bad credentials"}, 403: {"description": "Not an administrator"}},
)
async def metrics(services: ServicesDep, caller: CallerDep) -> Response:
    if not caller.require().is_admin:
        raise PermissionDenied("metrics are for administrators")
    for status, count in (await services.jobs.count_by_status()).items():
        JOBS.labels(status).set(count)
    SUBSCRIBERS.set(services.broker.subscriber_total())
    TASKS.set(len(asyncio.all_tasks()))
    ANSWER_CACHE.cache = services.answers
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
