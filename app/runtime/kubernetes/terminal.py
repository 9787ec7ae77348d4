"""A shell in a pod over exec (v4.channel.k8s.io), speaking jobgraph's Terminal protocol."""

from __future__ import annotations

import json

import aiohttp
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.stream import WsApiClient

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
SHELL = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"]


class ExecTerminal:
    def __init__(self, client: WsApiClient, context, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._client = client
        self._context = context
        self._ws = ws
        self._closed = False
        # The shell's exit code once it has ended (from the v4 status on channel 3).
        self.exit_code: int | None = None

    @classmethod
    async def open(cls, configuration, *, namespace: str, pod: str, container: str) -> ExecTerminal:
        client = WsApiClient(configuration=configuration, heartbeat=30)
        try:
            context = await CoreV1Api(api_client=client).connect_get_namespaced_pod_exec(
                # The client sends a list as repeated `command` parameters; its
                # annotation names only str.
                pod, namespace, container=container, command=SHELL,  # type: ignore[arg-type]
                stdin=True, stdout=True, stderr=True, tty=True, _preload_content=False,
            )
            # With _preload_content=False the WebSocket client answers the connection
            # context, not the str its annotation names.
            ws = await context.__aenter__()  # type: ignore[attr-defined]
        except BaseException:
            await client.close()
            raise
        return cls(client, context, ws)

    async def read(self) -> bytes:
        while True:
            message = await self._ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                if message.type in (aiohttp.WSMsgType.TEXT,):
                    continue
                return b""  # closed or failed
            data = message.data
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel in (STDOUT, STDERR) and payload:
                return payload
            if channel == ERROR:
                self.exit_code = _exit_code(payload)
                return b""  # the shell ended; its status is on this channel

    async def write(self, data: bytes) -> None:
        if self._ws.closed:
            return
        await self._ws.send_bytes(bytes([STDIN]) + data)

    async def resize(self, *, rows: int, cols: int) -> None:
        if self._ws.closed or rows < 1 or cols < 1:
            return
        size = json.dumps({"Width": cols, "Height": rows}).encode()
        await self._ws.send_bytes(bytes([RESIZE]) + size)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._context.__aexit__(None, None, None)
        finally:
            await self._client.close()


def _exit_code(payload: bytes) -> int | None:
    """v4 status: {"status":"Success"} is 0; a failure carries the code as the ExitCode cause."""
    try:
        status = json.loads(payload)
    except ValueError:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return None
    return None
