"""Cross-origin calls from browser pages served elsewhere (the legacy console runs on its
own static server): Starlette's CORSMiddleware on /api and /graphql, and the same list of
origins checked on the terminal socket's handshake, to which browsers apply no CORS.

`JOBGRAPH_CORS_ORIGINS` lists the origins (`scheme://host[:port]`, comma-separated,
checked in app/settings.py); empty, the default, means the server's own origin only:
no CORS headers at all."""

from __future__ import annotations

import structlog
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import Settings
from app.web.public_url import public_base_url

log = structlog.get_logger(__name__)

CORS_PATHS = ("/api", "/graphql")
# What the console sends (reference/legacy-client.md), and the create call's key.
ALLOWED_HEADERS = ("authorization", "x-auth-token", "content-type", "idempotency-key")
ALLOWED_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
# So a cross-origin page can read when to retry a 429.
EXPOSED_HEADERS = ("retry-after",)
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight's answer
_WEB_SCHEME = {"ws": "http", "wss": "https"}


class PathScopedCORS:
    """Starlette's CORSMiddleware for requests under some path prefixes only (health and
    metrics are nobody's cross-origin business)."""

    def __init__(self, app: ASGIApp, *, prefixes: tuple[str, ...], origins: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = prefixes
        self.origins = frozenset(origins)
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            # Credentials are bearer tokens in headers, never cookies.
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _under(scope["path"], self.prefixes) and self._listed(scope):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _listed(self, scope: Scope) -> bool:
        """Only listed origins reach CORSMiddleware: it would otherwise still answer an
        unlisted one's preflight with the allowed methods and headers, and its requests
        with the exposed headers. Unlisted, a request is served as without CORS."""
        origin = Headers(scope=scope).get("origin")
        return origin is not None and origin.rstrip("/").lower() in self.origins


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Outermost, so every answer under the paths (a 413 or 401 too) carries the headers
    the console needs to read its message."""
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(PathScopedCORS, prefixes=CORS_PATHS, origins=origins)


def origin_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    """Whether a WebSocket handshake's page may open it: no Origin (not a browser), the
    server's own origin, or one of JOBGRAPH_CORS_ORIGINS. Browsers send Origin on every
    WebSocket handshake and apply no CORS to it, so this is the server's to check."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in settings.cors_origin_list:
        return True
    own = public_base_url(conn, settings)
    scheme, _, rest = own.partition("://")
    own_origins = {f"{_WEB_SCHEME.get(scheme, scheme)}://{rest}".lower()}
    host = conn.headers.get("host")
    if host:
        own_origins.add(f"{_WEB_SCHEME.get(conn.url.scheme, conn.url.scheme)}://{host}".lower())
    if origin in own_origins:
        return True
    log.info("websocket.origin_refused", origin=origin[:200], path=conn.url.path)
    return False
