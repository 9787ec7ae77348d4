"""Reads answered from the core's AnswerCache before routing (pure ASGI).

A handler that computed an answer which may be kept (a job read, by the GraphQL route or
the REST facade: app/graphql/kept_answers.py decides which) marks its response with
what it was read from (`mark_keepable`). This middleware stores the answer's bytes once
they are sent with status 200, under everything the answer is a function of: method,
path, query string, `Accept`, body and who asks. The same request by the same principal
is then answered with those bytes until the broker hears of a change to what they were
read from (app/core/answers.py).

Who asks is still checked on every request, as the routes check it (token or JWT,
revocation, expiry, rate limit): the caller identified here is handed to the route on a
miss (`get_caller` reuses it), so a request is identified once. A refused caller is not
answered here: the route answers the refusal in its own shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.answers import Reads
from app.services import Services
from app.web.auth import CALLER_STATE, identify_request

# Where a handler leaves what a keepable answer was read from.
READS_STATE = "jobgraph.answer_reads"
# Bodies of reads are small; a larger one is passed through unread and never kept.
MAX_KEPT_REQUEST_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class KeptResponse:
    body: bytes
    # What routing found, so that metrics label a kept answer like a computed one.
    route: Any
    path_params: dict[str, Any]


def mark_keepable(conn: HTTPConnection, reads: Reads) -> None:
    conn.scope.setdefault("state", {})[READS_STATE] = reads


class AnswerCacheMiddleware:
    def __init__(self, app: ASGIApp, *, prefixes: tuple[str, ...], max_body_bytes: int) -> None:
        self.app = app
        self.prefixes = prefixes
        # Never read more here than the body limit lets through (RequestBodyLimit
        # refuses more, and a route answers that refusal in its own shape).
        self.max_body_bytes = min(MAX_KEPT_REQUEST_BYTES, max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "POST")
            or not scope["path"].startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return
        body = b""
        if scope["method"] == "POST":
            declared = _header(scope, b"content-length")
            if not declared.isdigit() or int(declared) > self.max_body_bytes:
                await self.app(scope, receive, send)
                return
            body, receive = await _read_body(receive)
        conn = HTTPConnection(scope)
        caller = await identify_request(conn)
        scope.setdefault("state", {})[CALLER_STATE] = caller
        if caller.principal is None:
            await self.app(scope, receive, send)
            return
        principal = caller.principal
        key = (
            scope["method"], scope["path"], scope["query_string"], _header(scope, b"accept"), body,
            principal.user, principal.is_admin, principal.groups,
        )
        services: Services = scope["app"].state.services
        answers = services.answers
        kept: KeptResponse | None = answers.get(key)
        if kept is not None:
            scope["route"], scope["path_params"] = kept.route, kept.path_params
            await _send(send, kept)
            return
        begun = answers.begin()
        keeping = False
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal keeping
            if message["type"] == "http.response.start":
                # Marked by the handler before it answered; anything else (a stream of
                # log lines, an error) passes through without being held.
                content_type = dict(message.get("headers") or ()).get(b"content-type", b"")
                keeping = (
                    message["status"] == 200
                    and content_type.startswith(b"application/json")
                    and READS_STATE in scope["state"]
                )
            elif keeping and message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if keeping:
            answer = b"".join(parts)
            answers.put(
                key,
                KeptResponse(answer, scope.get("route"), scope.get("path_params") or {}),
                size=len(answer), reads=scope["state"][READS_STATE], begun=begun,
            )


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that hands it to the app as if unread."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away before sending it all: the app sees the same.
            return b"".join(chunks), _once(message, receive)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, _once({"type": "http.request", "body": body, "more_body": False}, receive)


def _once(message: Message, receive: Receive) -> Receive:
    """A `receive` that first gives `message`, then what `receive` gives."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return message

    return replay


async def _send(send: Send, kept: KeptResponse) -> None:
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(kept.body)).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": kept.body})
