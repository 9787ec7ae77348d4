"""The answer-cache middleware in front of an ASGI app: it keeps only a 200 JSON answer
its handler marked keepable, passes everything else through as it is sent (a stream is
not held), and answers a repeated request from what it kept. The caller is identified
by a stand-in for the core's IdentityService (the real one is exercised end to end in
tests/e2e/test_kept_answers.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from starlette.requests import HTTPConnection

from app.core.answers import AnswerCache, Reads
from app.core.broker import Broker
from app.domain.principal import Principal
from app.web.answer_cache import AnswerCacheMiddleware, mark_keepable


class Identity:
    async def authenticate(self, token: str, *, client_addr: str | None = None) -> Principal:
        return Principal(user="alice", client_addr=client_addr)


class Served:
    """The middleware around `inner`, and the application object routes would see."""

    def __init__(self, inner: Any) -> None:
        self.cache = AnswerCache(Broker(), max_bytes=1 << 20)
        services = SimpleNamespace(answers=self.cache, identity=Identity())
        self.app = SimpleNamespace(state=SimpleNamespace(services=services))
        self.middleware = AnswerCacheMiddleware(inner, prefixes=("/api/jobs",), max_body_bytes=1 << 20)


async def request(served: Served, path: str) -> list[dict]:
    scope = {
        "type": "http", "method": "GET", "path": path, "query_string": b"",
        "headers": [(b"authorization", b"Bearer jg_token")], "client": ("127.0.0.1", 1),
        "app": served.app,
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await served.middleware(scope, receive, send)
    return sent


def body_of(sent: list[dict]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_only_a_marked_json_answer_is_kept_and_then_served_from_memory():
    calls = []

    async def inner(scope, receive, send) -> None:
        calls.append(scope["path"])
        if scope["path"].endswith("/kept"):
            reads = Reads()
            reads.job("j-1")
            mark_keepable(HTTPConnection(scope), reads)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"n":%d}' % len(calls)})

    served = Served(inner)
    assert body_of(await request(served, "/api/jobs/kept")) == b'{"n":1}'
    assert body_of(await request(served, "/api/jobs/kept")) == b'{"n":1}'  # from memory
    assert body_of(await request(served, "/api/jobs/unmarked")) == b'{"n":2}'
    assert body_of(await request(served, "/api/jobs/unmarked")) == b'{"n":3}'
    assert calls == ["/api/jobs/kept", "/api/jobs/unmarked", "/api/jobs/unmarked"]
    assert len(served.cache) == 1


async def test_a_stream_passes_through_chunk_by_chunk_and_is_not_kept():
    async def inner(scope, receive, send) -> None:
        reads = Reads()
        reads.job("j-1")
        mark_keepable(HTTPConnection(scope), reads)  # even marked: a stream is not JSON
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(100):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    served = Served(inner)
    sent = await request(served, "/api/jobs/j-1/pods/p/logs")
    assert len([m for m in sent if m["type"] == "http.response.body"]) == 101
    assert len(served.cache) == 0 and served.cache.size_bytes == 0
