"""A bound on request bodies, in bytes, before anything reads them whole."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import PayloadTooLarge


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes (JOBGRAPH_MAX_REQUEST_BODY_BYTES)"
    )


class RequestBodyLimit:
    """Pure ASGI. Reading the body raises PayloadTooLarge once it passes `max_bytes`,
    at once when `Content-Length` says so; the routes answer it in their own shape
    (413). A route that never reads its body is not affected."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        announced_too_much = declared.isdigit() and int(declared) > limit
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            if announced_too_much:
                raise too_large(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, bounded_receive, send)
