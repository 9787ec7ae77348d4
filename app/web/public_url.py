"""The base URL clients reach this server at, for links the server hands out."""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection

from app.settings import Settings

# host[:port], an IPv6 literal in brackets included; anything else in a forwarded
# header is ignored rather than echoed into a URL.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")


def public_base_url(conn: HTTPConnection, settings: Settings) -> str:
    """`Settings.public_url` if configured; else the request's scheme and host,
    honouring X-Forwarded-Proto/-Host from a reverse proxy. No trailing slash."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    headers = conn.headers
    scheme = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    if scheme not in ("http", "https", "ws", "wss"):
        scheme = conn.url.scheme
    host = (headers.get("x-forwarded-host") or "").split(",")[0].strip()
    if not _HOST.match(host):
        host = headers.get("host") or conn.url.netloc
        if not _HOST.match(host):
            host = conn.url.netloc
    return f"{scheme}://{host}"
