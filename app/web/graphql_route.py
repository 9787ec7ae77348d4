"""The GraphQL endpoint: POST for operations, GET for GraphiQL (served without a CDN),
WebSocket for subscriptions (graphql-transport-ws and the legacy graphql-ws)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData

# The exception Strawberry's views answer as a plain-text status (re-exported here
# whichever package defines it in the installed version).
from strawberry.http.base import HTTPException
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult

from app.domain.errors import RuntimeUnavailable
from app.domain.limits import clip
from app.domain.principal import Principal
from app.graphql.context import GraphQLContext
from app.graphql.documents import keeps_answers
from app.graphql.schema import schema
from app.services import Services
from app.web.answer_cache import mark_keepable
from app.web.auth import UNAUTHENTICATED_MESSAGE, bearer_token, get_caller, identify
from app.web.graphiql import AssetsMissing, offline_graphiql_html
from app.web.json_body import JSONBodyInvalid, load_json
from app.web.public_url import public_base_url

# graphql-transport-ws's close code for a connection_init that is not authorised.
UNAUTHORIZED_CLOSE = 4401
# RFC 6455 1013 "Try Again Later": the database (or a runtime) is away while the socket
# is authorised; a close reason is at most 123 bytes.
TRY_AGAIN_LATER_CLOSE = 1013
UNAVAILABLE_REASON = "the database is unavailable; try again shortly"


def build_context(
    conn: HTTPConnection, services: Services, principal: Principal | None
) -> GraphQLContext:
    """The context of one operation, for the GraphQL route and the REST facade alike."""
    return GraphQLContext(
        services=services,
        principal=principal,
        public_url=public_base_url(conn, services.settings),
        # A WebSocket's context lives as long as the socket: no caching loaders there.
        cache_loads=conn.scope["type"] == "http",
    )


async def graphql_context(conn: HTTPConnection) -> GraphQLContext:
    """One dependency, not three (each costs the hot path)."""
    # The GraphiQL page itself is public (a browser cannot attach a header to it);
    # every operation needs a principal. WebSockets authenticate in connection_init.
    services: Services = conn.app.state.services
    caller = await get_caller(conn)
    is_ide_page = (
        conn.scope["type"] == "http"
        and conn.scope["method"] == "GET"
        and "query" not in conn.query_params
    )
    if conn.scope["type"] == "http" and not is_ide_page:
        return build_context(conn, services, caller.require())
    return build_context(conn, services, caller.principal)


def _token_from(params: dict[str, Any]) -> str | None:
    """`connectionParams` as clients send them: {"Authorization": "Bearer x"},
    {"authorization": ...}, {"token": "x"} or {"authToken": "x"}."""
    for key in ("Authorization", "authorization"):
        if isinstance(params.get(key), str):
            return bearer_token(params[key]) or params[key].strip() or None
    for key in ("token", "authToken"):
        if isinstance(params.get(key), str):
            return params[key].strip() or None
    headers = params.get("headers")
    return _token_from(headers) if isinstance(headers, dict) else None


async def authorise_socket(context: GraphQLContext, params: Any) -> str | None:
    """Checked once, at connection_init; the socket's operations run as this principal.
    Returns why the socket is refused, or None; raises RuntimeUnavailable when the
    credential cannot be checked now."""
    if context.principal is not None:
        return None
    request = context.request
    client = request.client.host if request is not None and request.client else None
    token = _token_from(params) if isinstance(params, dict) else None
    caller = await identify(context.services, token, client)
    context.principal = caller.principal
    if caller.principal is not None:
        return None
    if isinstance(caller.refusal, RuntimeUnavailable):
        raise caller.refusal  # not a refusal: the credential could not be checked
    return caller.refusal.message if caller.refusal else UNAUTHENTICATED_MESSAGE


class TransportWSHandler(BaseGraphQLTransportWSHandler[GraphQLContext, None]):
    async def handle_connection_init(self, message) -> None:
        try:
            refusal = await authorise_socket(self.context, message.get("payload"))
        except RuntimeUnavailable:
            await self.websocket.close(code=TRY_AGAIN_LATER_CLOSE, reason=UNAVAILABLE_REASON)
            return
        if refusal:
            await self.websocket.close(code=UNAUTHORIZED_CLOSE, reason="Unauthorized")
            return
        await super().handle_connection_init(message)


class LegacyWSHandler(BaseGraphQLWSHandler[GraphQLContext, None]):
    async def handle_connection_init(self, message) -> None:
        try:
            refusal = await authorise_socket(self.context, message.get("payload"))
        except RuntimeUnavailable as error:
            await self.send_message({"type": "connection_error", "payload": {"message": error.message}})
            await self.websocket.close(code=TRY_AGAIN_LATER_CLOSE, reason=UNAVAILABLE_REASON)
            return
        if refusal:
            await self.send_message({"type": "connection_error", "payload": {"message": refusal}})
            await self.websocket.close(code=UNAUTHORIZED_CLOSE, reason="Unauthorized")
            return
        await super().handle_connection_init(message)


class JobgraphGraphQLRouter(GraphQLRouter[GraphQLContext, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    async def execute_operation(  # noqa: PLR0917 (Strawberry's signature)
        self, request, request_adapter, request_data, context, root_value, sub_response
    ):
        result = await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        if _keepable(request_data, result):
            mark_keepable(request, context.reads)
        return result

    async def process_result(self, request, result: ExecutionResult) -> GraphQLHTTPResponse:
        # Syntax errors are answered before the extensions that add codes run.
        for error in result.errors or ():
            error.message = clip(error.message)  # graphql-core's echo what was sent
            if error.original_error is None and not (error.extensions or {}).get("code"):
                error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_PARSE_FAILED"}
        return await super().process_result(request, result)

    def decode_json(self, data: str | bytes) -> object:
        """WebSocket messages: what the HTTP route refuses is not JSON here either, and
        the socket closes as for any invalid message (4400), not with a crash."""
        try:
            return load_json(data, what="the message")
        except JSONBodyInvalid as error:
            raise json.JSONDecodeError(error.message, "", 0) from None

    def parse_json(self, data: str | bytes) -> Any:
        try:
            value = load_json(data)
        except JSONBodyInvalid as error:
            raise HTTPException(400, error.message) from None
        # A POST body comes as bytes (a GET's `variables` as text, type-checked by
        # Strawberry itself). A list is a batch (refused: batching is off); anything but
        # an object or a list would reach Strawberry as a value it cannot `.get` from.
        if isinstance(data, bytes) and not isinstance(value, dict | list):
            raise HTTPException(
                400, f'a GraphQL request is a JSON object ({{"query": ...}}), not {_json_kind(value)}'
            )
        return value

    async def render_graphql_ide(self, request) -> HTMLResponse:
        try:
            return HTMLResponse(offline_graphiql_html())
        except AssetsMissing as missing:  # an install without `make assets`
            return HTMLResponse(f"<p>GraphiQL is not available: {missing}</p>", status_code=503)


def _keepable(request_data: Any, result: Any) -> bool:
    """An answer the AnswerCacheMiddleware may keep: a plain HTTP request (no extensions,
    nothing streamed) of a document that keeps answers, answered without errors.
    Extensions are kept with the data: the query's cost is a function of the document
    and its variables, both part of the request."""
    if (
        not isinstance(request_data, GraphQLRequestData)
        or request_data.protocol != "http"
        or request_data.extensions
        or request_data.query is None
        or not isinstance(result, ExecutionResult)
        or result.errors
    ):
        return False
    return keeps_answers(schema._schema, request_data.query)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a string" if isinstance(value, str) else "a number"


def graphql_router() -> GraphQLRouter[GraphQLContext, None]:
    return JobgraphGraphQLRouter(schema, context_getter=graphql_context, graphql_ide="graphiql")
