"""The FastAPI application factory."""

from __future__ import annotations

import ctypes
import gc
import math
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from app.core.pools import PoolCatalog
from app.domain.errors import (
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RuntimeUnavailable,
    Unauthenticated,
)
from app.domain.limits import set_echo_bytes
from app.settings import Settings
from app.web import health, metrics, terminal_socket
from app.web.answer_cache import AnswerCacheMiddleware
from app.web.auth import document_credentials
from app.web.body_limit import RequestBodyLimit
from app.web.bootstrap import start_services, stop_services
from app.web.cors import install_cors
from app.web.datadir import DataDirLock
from app.web.graphiql import STATIC_DIR
from app.web.graphql_route import graphql_router
from rest_compat.app import install as install_rest_facade

log = structlog.get_logger(__name__)
# Seconds a client is told to wait when the database (or a runtime) is away.
UNAVAILABLE_RETRY_AFTER = 5


def print_first_admin_token(secret: str) -> None:
    bar = "=" * 72
    print(
        f"\n{bar}\n  jobgraph: no API token existed, so an admin token was created.\n"
        f"  It is shown only this once; keep it safe:\n\n    {secret}\n\n"
        f"  Use it as:  Authorization: Bearer {secret}\n{bar}\n",
        file=sys.stdout,
        flush=True,
    )


def tune_garbage_collector() -> None:
    """Move everything built at start-up out of the collector's view and collect young
    objects less often: with many open subscriptions, full collections otherwise stall
    a fan-out for tens of milliseconds (bench/README.md, "Subscriptions")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives a thread that allocates an arena of its own (up to 8 per core) and
    memory freed in one arena serves no other: with aiosqlite's thread per connection and
    the runtimes' I/O threads, the server's RSS grew with every job run (bench/README.md,
    "Memory"). Two arenas are shared by all threads; Python's own small objects are not
    in them (pymalloc), and the GIL serialises most allocation anyway. Not through the
    environment (MALLOC_ARENA_MAX): the jobs' processes inherit it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl has no per-thread arenas)
        return
    m_arena_max = -8  # <malloc.h>
    libc.mallopt(m_arena_max, arenas)


def _supervises_alone(settings: Settings) -> bool:
    """Whether this server must be the only one on its data dir: it runs local pools, or
    keeps its database (SQLite) and broker to itself. With PostgreSQL and kubernetes pools
    only, several processes share one (`jobgraph serve --workers N`)."""
    if not settings.database_url_resolved.startswith("postgresql"):
        return True
    return any(pool.runtime == "local" for pool in PoolCatalog.load(settings.pools_file))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    set_echo_bytes(settings.max_echo_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_malloc_arenas()  # before the services start their threads
        # Whatever was taken is given back, in reverse order, however start-up ends.
        async with AsyncExitStack() as stack:
            if _supervises_alone(settings):
                lock = DataDirLock(settings.data_dir)
                lock.acquire()
                stack.callback(lock.release)
            services = await start_services(settings)
            stack.push_async_callback(stop_services, services)
            app.state.services = services
            secret = await services.tokens.ensure_first_admin()
            if secret:
                print_first_admin_token(secret)
            tune_garbage_collector()
            yield

    app = FastAPI(
        title="jobgraph",
        summary="Run machine-learning training jobs and watch them.",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        # Raised before a GraphQL operation runs: answer in GraphQL's error shape.
        return JSONResponse(
            {"data": None, "errors": [{"message": exc.message, "extensions": {"code": exc.code}}]},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        retry = str(max(1, math.ceil(exc.retry_after)))
        return JSONResponse(
            {"data": None, "errors": [{"message": exc.message, "extensions": {"code": exc.code, "retryAfter": float(retry)}}]},
            status_code=429,
            headers={"Retry-After": retry},
        )

    @app.exception_handler(PayloadTooLarge)
    async def _too_large(_: Request, exc: PayloadTooLarge) -> JSONResponse:
        # The GraphQL route's shape; the REST routes answer it in their envelope.
        return JSONResponse(
            {"data": None, "errors": [{"message": exc.message, "extensions": {"code": exc.code}}]},
            status_code=413,
        )

    @app.exception_handler(RuntimeUnavailable)
    async def _unavailable(_: Request, exc: RuntimeUnavailable) -> JSONResponse:
        # Raised before a GraphQL operation runs (e.g. the database is away while the
        # caller's token is checked): a 503 saying so, in GraphQL's error shape.
        return JSONResponse(
            {"data": None, "errors": [{"message": exc.message, "extensions": {"code": exc.code}}]},
            status_code=503,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        )

    @app.exception_handler(PermissionDenied)
    async def _forbidden(_: Request, exc: PermissionDenied) -> JSONResponse:
        return JSONResponse({"message": exc.message, "code": exc.code}, status_code=403)

    # Innermost: reads answered from the answer cache, once the body limit holds.
    app.add_middleware(
        AnswerCacheMiddleware, prefixes=("/api/jobs", "/graphql"),
        max_body_bytes=settings.max_request_body_bytes,
    )
    app.add_middleware(RequestBodyLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(metrics.MetricsMiddleware)
    install_cors(app, settings)  # last added: outermost
    app.include_router(health.router)
    app.include_router(metrics.router)
    # GraphiQL's and the terminal page's scripts, from `make assets`; no CDN needed.
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    app.include_router(graphql_router(), prefix="/graphql", include_in_schema=False)
    app.include_router(terminal_socket.router)
    # The REST facade; its operations are validated here, so a bad one stops start-up.
    install_rest_facade(app)
    _document_credentials(app)
    return app


def _document_credentials(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = build()
        document_credentials(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
