"""The /api/jobs routes: each maps path, query and body onto variables, runs its named
operation in-process and answers the legacy envelope."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sse_starlette import EventSourceResponse

from app.domain.errors import DomainError, PayloadTooLarge, RateLimited
from app.graphql.context import GraphQLContext
from app.web.answer_cache import mark_keepable
from app.web.auth import IdentifiedRoute, get_caller
from app.web.graphql_route import build_context
from app.web.json_body import dump_json
from rest_compat import models, shapes
from rest_compat.envelope import (
    INVALID_SPEC_STATUS,
    RestError,
    error_of,
    failure_body,
    ok,
)
from rest_compat.executor import Operations

CREATED = "训练任务创建成功"
STOPPED = "任务已停止"
DELETED = "任务已删除"

# Operation per route; start-up fails if the document lacks one (see Operations.load).
ROUTE_OPERATIONS = (
    "RestListJobs", "RestGetJob", "RestCreateJob", "RestRerunJob", "RestStopJob", "RestDeleteJob",
    "RestJobEvents", "RestPodLogs", "RestFollowPodLogs", "RestOpenWebTerminal",
    "RestCurrentUser",
)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": models.ErrorEnvelope, "description": text}
    for status, text in (
        (400, "Malformed request"), (401, "No or bad credentials"),
        (404, "Unknown job or pod"), (413, "Request body too large"), (503, "Runtime unavailable"),
    )
}


async def rest_context(request: Request) -> GraphQLContext:
    """One dependency (each costs the request path): the caller and the context."""
    caller = await get_caller(request)
    try:
        principal = caller.require()
    except DomainError as refusal:
        retry = refusal.retry_after if isinstance(refusal, RateLimited) else None
        raise RestError(refusal.code, refusal.message, retry_after=retry) from None
    return build_context(request, request.app.state.services, principal)


Context = Annotated[GraphQLContext, Depends(rest_context)]


async def json_body(request: Request) -> dict[str, Any]:
    try:
        raw = await request.body()
    except PayloadTooLarge as refusal:  # app/web/body_limit.py
        raise RestError(refusal.code, refusal.message) from None
    return shapes.parse_json_body(raw)


def _body_doc(*models_: type) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models_]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": schema}}}}


def rest_router(operations: Operations) -> APIRouter:
    router = APIRouter(
        prefix="/api", tags=["jobs (REST compatibility)"], responses=ERRORS,
        route_class=IdentifiedRoute,
    )

    async def run(
        name: str, variables: dict[str, Any], context: GraphQLContext, *,
        field: str | None = None, invalid_argument: int = 400,
        variable_names: dict[str, str] | None = None,
    ) -> Any:
        """Execute an operation; its root field's value, or a RestError."""
        result = await operations.execute(name, variables=variables, context=context)
        data = (result.data or {}).get(field) if field else result.data
        error = error_of(
            result, data if isinstance(data, dict) else None,
            invalid_argument=invalid_argument, variable_names=variable_names,
        )
        if error:
            raise error
        return data

    async def answer(
        name: str, variables: dict[str, Any], request: Request, context: GraphQLContext, *,
        envelope: Callable[[Any], dict[str, Any]], field: str, **options: Any,
    ) -> Response:
        """A read's envelope; marked for the AnswerCacheMiddleware to keep when its
        operation's answers may be kept (app/graphql/kept_answers.py)."""
        body = dump_json(envelope(await run(name, variables, context, field=field, **options)))
        if operations.keeps_answers(name):
            mark_keepable(request, context.reads)
        return Response(body, media_type="application/json")

    @router.post("/jobs", summary="List jobs", response_model=models.Envelope[models.JobList],
        openapi_extra=_body_doc(models.ListJobsRequest),
    )
    async def list_jobs(
        request: Request, context: Context,
        resourcePoolId: str | None = None, queueID: str | None = None,
    ) -> Response:
        body = await json_body(request)
        variables = shapes.list_variables(body, resource_pool_id=resourcePoolId, queue=queueID)
        return await answer(
            "RestListJobs", variables, request, context, field="jobs", envelope=_job_list,
            variable_names={"first": "pageSize", "offset": "pageNumber"},
        )

    @router.post("/jobs/create", summary="Create a job (flat, taskParams unified or native shape)",
        response_model=models.Envelope[models.CreatedJob],
        responses={422: {"model": models.ErrorEnvelope, "description": "Invalid job spec"}},
        openapi_extra=_body_doc(*models.CREATE_SHAPES),
    )
    async def create_job(request: Request, context: Context) -> dict[str, Any]:
        body = await json_body(request)
        variables = {"input": shapes.create_input(
            body, idempotency_key=request.headers.get("idempotency-key"))}
        payload = await run("RestCreateJob", variables, context, field="createJob",
                            invalid_argument=INVALID_SPEC_STATUS)
        return ok(shapes.legacy_job(payload["job"]), CREATED)

    @router.post("/jobs/{jobId}/rerun", summary="Run an ended job again (a new job from its spec)",
        response_model=models.Envelope[models.RerunJob],
        responses={
            403: {"model": models.ErrorEnvelope, "description": "Shared with you read-only"},
            409: {"model": models.ErrorEnvelope, "description": "The job has not ended"},
            422: {"model": models.ErrorEnvelope, "description": "Invalid overrides, or the job no longer fits"},
        },
        openapi_extra=_body_doc(models.RerunJobRequest),
    )
    async def rerun_job(jobId: str, request: Request, context: Context) -> dict[str, Any]:
        body = await json_body(request)
        variables = {"input": shapes.rerun_input(
            jobId, body, idempotency_key=request.headers.get("idempotency-key"))}
        payload = await run("RestRerunJob", variables, context, field="rerunJob",
                            invalid_argument=INVALID_SPEC_STATUS)
        return ok(shapes.legacy_job(payload["job"]), CREATED)

    @router.get("/jobs/{jobId}", summary="One job, with its config and pods",
                response_model=models.Envelope[models.JobDetail])
    async def get_job(
        jobId: str, request: Request, context: Context,
        needDetail: Annotated[bool, Query(description="Accepted; details always come.")] = True,
    ) -> Response:
        return await answer(
            "RestGetJob", {"jobId": jobId}, request, context, field="job", envelope=_job_detail
        )

    @router.post("/jobs/{jobId}/stop", summary="Stop a job",
                 response_model=models.Envelope[models.StoppedJob],
                 responses={409: {"model": models.ErrorEnvelope, "description": "Job already ended"}})
    async def stop_job(jobId: str, context: Context) -> dict[str, Any]:
        payload = await run("RestStopJob", {"jobId": jobId}, context, field="stopJob")
        return ok(shapes.legacy_job(payload["job"]), STOPPED)

    @router.delete("/jobs/{jobId}", summary="Delete a job",
                   response_model=models.Envelope[models.DeletedJob])
    async def delete_job(jobId: str, context: Context) -> dict[str, Any]:
        payload = await run("RestDeleteJob", {"jobId": jobId}, context, field="deleteJob")
        return ok({"jobId": payload["jobId"]}, DELETED)

    @router.get("/jobs/{jobId}/events", summary="A job's events, oldest first",
                response_model=models.Envelope[models.JobEvents])
    async def job_events(
        jobId: str, request: Request, context: Context,
        startTime: Annotated[str | None, Query(description="ISO 8601")] = None,
        endTime: Annotated[str | None, Query(description="ISO 8601")] = None,
    ) -> Response:
        variables = {"jobId": jobId, "since": startTime or None, "until": endTime or None}
        return await answer(
            "RestJobEvents", variables, request, context, field="job", envelope=_job_events,
            variable_names={"since": "startTime", "until": "endTime"},
        )

    @router.get("/jobs/{jobId}/pods/{podName}/logs", summary="A pod's log (follow=true: a text/event-stream)",
        response_model=models.Envelope[models.PodLogs],
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def pod_logs(
        jobId: str, podName: str, context: Context,
        tailLines: int | None = None, follow: bool = False,
        keywords: Annotated[str | None, Query(description="Only lines containing it.")] = None,
        keyword: Annotated[str | None, Query(include_in_schema=False)] = None,
        maxLines: int | None = None,
        startTime: Annotated[str | None, Query(description="Accepted; not applied.")] = None,
        endTime: Annotated[str | None, Query(description="Accepted; not applied.")] = None,
    ) -> Any:
        variables = {"jobId": jobId, "podName": podName, "tailLines": tailLines,
                     "keyword": keywords or keyword or None}
        if not follow:
            job = await run("RestPodLogs", {**variables, "maxLines": maxLines}, context, field="job")
            return ok({"logs": job["logs"]})
        # Refuse what would fail (unknown job or pod, bad tailLines) as a JSON answer before
        # a stream starts: the same checks, run with nothing to read (tail 0, follow off).
        check_tail = min(tailLines, 0) if tailLines is not None else 0
        await run("RestPodLogs", {**variables, "tailLines": check_tail, "maxLines": 0},
                  context, field="job")
        stream = await operations.subscribe("RestFollowPodLogs", variables=variables, context=context)
        return EventSourceResponse(_log_events(stream), ping=15)

    @router.get("/jobs/{jobId}/pods/{podName}/webterminal", summary="A web-terminal URL for a pod",
                response_model=models.Envelope[models.WebTerminal])
    async def web_terminal(
        jobId: str, podName: str, context: Context,
        handshakeTimeoutSecond: int | None = None, pingTimeoutSecond: int | None = None,
    ) -> dict[str, Any]:
        payload = await run("RestOpenWebTerminal", {"jobId": jobId, "podName": podName},
                            context, field="openWebTerminal")
        url = payload["url"]
        return ok({"webTerminalUrl": url, "WebTerminalUrl": url, "expiresAt": payload["expiresAt"]})

    @router.get("/currentUser", summary="Who is asking (for the legacy console)",
                response_model=models.Envelope[models.CurrentUser])
    async def current_user(context: Context) -> dict[str, Any]:
        viewer = await run("RestCurrentUser", {}, context, field="viewer")
        return ok(shapes.legacy_user(viewer))

    return router


def _job_list(page: dict[str, Any]) -> dict[str, Any]:
    return ok({"jobs": [shapes.legacy_job(j) for j in page["jobs"]], "totalCount": page["totalCount"]})


def _job_events(job: dict[str, Any]) -> dict[str, Any]:
    return ok({"events": job["events"]})


def _job_detail(found: dict[str, Any]) -> dict[str, Any]:
    job = shapes.legacy_job(found)
    return ok({**job, "job": job})


async def _log_events(stream: AsyncGenerator[Any, None]) -> AsyncIterator[dict[str, str]]:
    """One SSE message per log line, then `end`; a failure mid-stream is an `error`
    event carrying the envelope."""
    try:
        async for result in stream:
            error = error_of(result)
            if error:
                yield {"event": "error", "data": json.dumps(failure_body(error), ensure_ascii=False)}
                return
            for line in result.data["podLogLines"]:
                yield {"data": line}
        yield {"event": "end", "data": ""}
    finally:
        await stream.aclose()
