"""The web terminal at `/webterminal/{credential}`: GET serves the xterm.js page, the
WebSocket at the same path speaks the legacy console's protocol
(reference/legacy-client.md, "Web terminal"):

- client -> server, each frame starts with a channel byte: `0x00` + UTF-8 is stdin,
  `0x04` + JSON {"Height": rows, "Width": cols} a resize, and exactly `00 00 00` the
  console's 30-second keep-alive (not input). Text frames carry the same bytes.
- server -> client: the terminal's output as is, no channel byte.

Who may open what is decided in `app.core.terminals`; this module only moves frames."""

from __future__ import annotations

import asyncio
import codecs
import html
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from fastapi.responses import HTMLResponse
from starlette.websockets import WebSocketState

from app.core.terminals import IdleLimit, TerminalService, TerminalSession
from app.domain.errors import DomainError
from app.runtime.base import Terminal
from app.web.auth import ServicesDep
from app.web.cors import origin_allowed
from app.web.graphiql import VENDOR_DIR

STDIN, RESIZE = 0x00, 0x04
KEEPALIVE = b"\x00\x00\x00"
MAX_SIZE = 1000  # rows or columns; anything larger is not a real screen
# Closed before accept(), the handshake is answered with HTTP 403 (no upgrade).
REFUSED = status.WS_1008_POLICY_VIOLATION
TEMPLATE = Path(__file__).parent / "templates" / "terminal.html"
XTERM_JS = VENDOR_DIR / "@xterm" / "xterm" / "lib" / "xterm.js"
# The URL is the credential: keep it out of caches and Referer headers.
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Resize:
    rows: int
    cols: int


def parse_frame(data: bytes) -> bytes | Resize | None:
    """Stdin bytes, a Resize, or None for the keep-alive and anything not understood."""
    if len(data) < 2 or data == KEEPALIVE:
        return None
    channel, payload = data[0], data[1:]
    if channel == STDIN:
        return payload
    if channel == RESIZE:
        try:
            size = json.loads(payload)
            rows, cols = int(size["Height"]), int(size["Width"])
        except (ValueError, KeyError, TypeError):
            return None
        if 0 < rows <= MAX_SIZE and 0 < cols <= MAX_SIZE:
            return Resize(rows, cols)
    return None


@router.get("/webterminal/{credential}", response_class=HTMLResponse)
async def terminal_page(credential: str, services: ServicesDep) -> HTMLResponse:
    """The page a browser opens at the URL's http(s) form. Only its socket spends the
    credential, so loading (or reloading) the page does not."""
    problem, code = "", status.HTTP_200_OK
    if not XTERM_JS.is_file():
        problem = "The terminal's scripts are not installed on this server (run `make assets`)."
        code = status.HTTP_503_SERVICE_UNAVAILABLE
    else:
        try:
            await services.terminals.check(credential)
        except DomainError as exc:
            problem, code = exc.message, status.HTTP_403_FORBIDDEN
    page = _template().substitute(problem=html.escape(problem, quote=True))
    return HTMLResponse(page, status_code=code, headers=PAGE_HEADERS)


@router.websocket("/webterminal/{credential}")
async def terminal_socket(websocket: WebSocket, credential: str, services: ServicesDep) -> None:
    terminals: TerminalService = services.terminals
    client = websocket.client.host if websocket.client else None
    if not origin_allowed(websocket, services.settings):
        # A page of an origin not listed in JOBGRAPH_CORS_ORIGINS: refused before the
        # credential is looked at, so it stays usable from the right page.
        await websocket.close(code=REFUSED)
        return
    try:
        session = await terminals.open(credential, client_addr=client)
    except DomainError:
        await websocket.close(code=REFUSED)  # before accept(): the client sees HTTP 403
        return
    reason = "the server closed the session"
    try:
        await websocket.accept()
        reason = await _bridge(websocket, session, terminals.idle_limit())
    finally:
        await terminals.close(session, reason)
    if websocket.client_state is WebSocketState.CONNECTED:
        try:
            await websocket.send_bytes(f"\r\n[jobgraph: {reason}]\r\n".encode())
            await websocket.close(code=status.WS_1000_NORMAL_CLOSURE, reason=reason[:120])
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away meanwhile


async def _bridge(websocket: WebSocket, session: TerminalSession, idle: IdleLimit) -> str:
    """Move bytes both ways until one side ends or the session sat idle too long; answers
    why the session ended."""
    tasks = [
        asyncio.create_task(_output(websocket, session.terminal)),
        asyncio.create_task(_input(websocket, session.terminal, idle)),
        asyncio.create_task(idle.expired()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _output(websocket: WebSocket, terminal: Terminal) -> str:
    # Whole UTF-8 characters per frame: a console decoding each frame on its own would
    # garble a character split across two reads of the PTY.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while chunk := await terminal.read():
            if text := decoder.decode(chunk):
                await websocket.send_bytes(text.encode())
    except WebSocketDisconnect:
        return "closed by the client"
    return "the shell ended"


async def _input(websocket: WebSocket, terminal: Terminal, idle: IdleLimit) -> str:
    # Only keystrokes count as activity: the console's keep-alive arrives every 30 s
    # from any open tab, and would otherwise keep an abandoned shell open for ever.
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return "closed by the client"
        data = message.get("bytes")
        if data is None:
            data = (message.get("text") or "").encode()
        frame = parse_frame(data)
        if isinstance(frame, Resize):
            await terminal.resize(rows=frame.rows, cols=frame.cols)
        elif frame:
            idle.touch()
            await terminal.write(frame)


@cache
def _template() -> Template:
    return Template(TEMPLATE.read_text(encoding="utf-8"))
