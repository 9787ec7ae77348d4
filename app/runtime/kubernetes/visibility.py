"""Where a waiting job stands in its Kueue LocalQueue: Kueue's on-demand visibility API.

`GET /apis/visibility.kueue.x-k8s.io/v1beta2/namespaces/{ns}/localqueues/{lq}/pendingworkloads`
(kueue v0.19 apis/visibility/v1beta2/types.go, pkg/visibility/storage/pending_workloads_lq.go)
answers a `PendingWorkloadsSummary`: the LocalQueue's pending Workloads in the order Kueue
will try them (priority, then queue-order time), each with `positionInLocalQueue` counted
from 0 and its owner references (the Job). jobgraph's positions are 1-based. Kueue lists at
most `limit` (default 1000) per call: a job further back has no position.

The API is an aggregated API server that Kueue installs with the VisibilityOnDemand feature
(beta, on by default since v0.9). Without it the path is 404 (no such group), or 503 while
its APIService is registered but unavailable, or 403 when RBAC does not allow
`localqueues/pendingworkloads`: then no job has a position, said once in the log, and the API
is tried again after ABSENT_RETRY. A LocalQueue Kueue does not know is 404 with its name: its
jobs have no position.

Answers are kept until the next change of a Workload (the runtime's Workload watch calls
`changed()`): a page of jobs asks Kueue once per LocalQueue, not once per job.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import structlog

from app.domain.jobs import Job
from app.runtime.kubernetes.calls import CONNECTION_ERRORS

log = structlog.get_logger(__name__)
GROUP = "visibility.kueue.x-k8s.io"
VERSION = "v1beta2"
PATH = ("/apis/visibility.kueue.x-k8s.io/v1beta2/namespaces/{namespace}/localqueues/{name}/"
        "pendingworkloads")
LIMIT = 1000  # Kueue's DefaultPendingWorkloadsLimit
ABSENT_RETRY = 300.0  # seconds without asking an API that was not there
# (connect, read) seconds: a page of jobs waits on this, so less than other calls.
TIMEOUT = (5, 10)


class QueuePositions:
    def __init__(self, api: Any, *, namespace: str, pool_id: str) -> None:
        self._api = api  # an ApiClient (call_api)
        self._namespace = namespace
        self._pool_id = pool_id
        self._absent_until = 0.0
        self._logged_absent = False
        self._generation = 0
        # local queue -> (generation, job id -> 1-based position)
        self._answers: dict[str, tuple[int, dict[str, int]]] = {}
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """A Workload changed: positions may have moved."""
        self._generation += 1
        self._answers.clear()
        self._changed.set()
        self._changed = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """An event set at the next change of a Workload (take it before asking)."""
        return self._changed

    async def positions(self, jobs: Sequence[Job]) -> dict[str, int]:
        queues = sorted({job.queue for job in jobs})
        wanted = {job.job_id for job in jobs}
        found: dict[str, int] = {}
        async with self._lock:  # concurrent pages share one call per queue
            for queue in queues:
                if time.monotonic() < self._absent_until:
                    return {}
                answer = self._answers.get(queue)
                if answer is None or answer[0] != self._generation:
                    generation = self._generation
                    positions = await self._ask(queue)
                    if positions is None:
                        continue
                    answer = (generation, positions)
                    if generation == self._generation:
                        self._answers[queue] = answer
                found.update({j: p for j, p in answer[1].items() if j in wanted})
        return found

    async def _ask(self, queue: str) -> dict[str, int] | None:
        """job id -> 1-based position in the LocalQueue; None when there is no answer."""
        try:
            response = await self._api.call_api(
                PATH, "GET",
                path_params={"namespace": self._namespace, "name": queue},
                query_params=[("limit", LIMIT)],
                header_params={"Accept": "application/json"},
                response_types_map={200: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
            try:
                status, body = response.status, await response.read()
            finally:
                response.release()
        except CONNECTION_ERRORS as error:
            log.warning("k8s.visibility_unreachable", pool=self._pool_id,
                        error=f"{error.__class__.__name__}: {error}")
            return None
        if status == 200:
            self._logged_absent = False
            return _positions(json.loads(body))
        details = _details(body)
        if status == 404 and details.get("name") == queue:
            return None  # Kueue knows no such LocalQueue: no positions in it
        if status in (403, 404, 503):
            self._absent_until = time.monotonic() + ABSENT_RETRY
            if not self._logged_absent:
                self._logged_absent = True
                log.warning("k8s.visibility_absent", pool=self._pool_id, status=status,
                            reason="Kueue's visibility API (visibility.kueue.x-k8s.io/v1beta2 "
                                   "localqueues/pendingworkloads) cannot be used: queue "
                                   "positions are null", message=_message(body))
            return None
        log.warning("k8s.visibility_failed", pool=self._pool_id, status=status,
                    message=_message(body))
        return None


def _positions(summary: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in summary.get("items") or []:
        owners = (item.get("metadata") or {}).get("ownerReferences") or []
        job = next((o.get("name") for o in owners
                    if o.get("kind") == "Job" and str(o.get("apiVersion", "")).startswith("batch/")),
                   None)
        position = item.get("positionInLocalQueue")
        if job and isinstance(position, int):
            out[job] = position + 1
    return out


def _status(body: bytes) -> dict:
    try:
        status = json.loads(body)
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


def _details(body: bytes) -> dict:
    return _status(body).get("details") or {}


def _message(body: bytes) -> str:
    return str(_status(body).get("message") or body[:200].decode(errors="replace"))
