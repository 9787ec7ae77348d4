"""``GET|POST …/pods/{name}/exec``: the WebSocket remotecommand protocol, running a REAL process.

TEST DOUBLE: part of the fake Kubernetes API server under tests/; never shipped.

The command runs as a local process in the pod's work directory with the container's env.
tty=true gives it a real PTY (os.openpty) as controlling terminal, so resize (channel 4,
``{"Width":W,"Height":H}``) is a real TIOCSWINSZ that ``stty size`` reports.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import signal
import struct
import termios
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import errors

if TYPE_CHECKING:
    from .fake import FakeKubernetes

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
BINARY_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
BASE64_PROTOCOLS = ("v4.base64.channel.k8s.io", "base64.channel.k8s.io")
SUPPORTED = BINARY_PROTOCOLS + BASE64_PROTOCOLS


def split_utf8(buf: bytes) -> tuple[bytes, bytes]:
    """Keep whole frames valid UTF-8: hold back an incomplete trailing sequence."""
    for back in range(1, min(4, len(buf)) + 1):
        b = buf[-back]
        if b & 0xC0 == 0x80:
            continue  # continuation byte
        need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
        if need > back:
            return buf[:-back], buf[-back:]
        return buf, b""
    return buf, b""


def _resize_sizes(payload: bytes) -> list[tuple[int, int]]:
    out, dec, text, idx = [], json.JSONDecoder(), payload.decode(errors="replace"), 0
    while idx < len(text):
        while idx < len(text) and text[idx].isspace():
            idx += 1
        if idx >= len(text):
            break
        try:
            obj, idx = dec.raw_decode(text, idx)
        except ValueError:
            break
        if isinstance(obj, dict):
            low = {str(k).lower(): v for k, v in obj.items()}
            w, h = low.get("width", 0), low.get("height", 0)
            if isinstance(w, int) and isinstance(h, int) and w >= 1 and h >= 1:
                out.append((w, h))
    return out


class Framer:
    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws, self.protocol = ws, protocol
        self.base64 = protocol in BASE64_PROTOCOLS
        self.v4 = protocol.startswith(("v4.", "v5."))

    async def send(self, channel: int, data: bytes) -> None:
        if self.ws.closed:
            return
        if self.base64:
            await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            await self.ws.send_bytes(bytes([channel]) + data)

    def decode(self, msg: Any) -> tuple[int, bytes] | None:
        if msg.type == WSMsgType.BINARY:
            data = msg.data
        elif msg.type == WSMsgType.TEXT:
            data = msg.data.encode()
        else:
            return None
        if not data:
            return None
        if self.base64:
            try:
                return data[0] - ord("0"), base64.b64decode(data[1:])
            except ValueError:
                return None
        return data[0], data[1:]


async def handle_exec(fake: FakeKubernetes, request: web.Request, ns: str, name: str,
                      q: dict[str, Any], query: list[tuple[str, str]]) -> web.StreamResponse:
    pod = fake.store.require("pods", ns, name)
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    from .logs import _container_error  # same container resolution as logs
    container = _container_error(pod, q.get("container"))
    command = [v for k, v in query if k == "command"]
    stdin, stdout, stderr, tty = (bool(q.get(k)) for k in ("stdin", "stdout", "stderr", "tty"))
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise errors.bad_request("Upgrade request required")
    if not (stdin or stdout or stderr):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    if not command:
        raise errors.bad_request("you must specify at least one command for the container")
    run = fake.kubelet.running.get((pod["metadata"]["uid"], container))
    if run is None:
        # The kubelet only finds running containers (pkg/kubelet/kubelet_pods.go GetExec:
        # findContainer over GetPods(running only), else fmt.Errorf("container not found
        # (%q)")); that plain error goes through pkg/kubelet/server/server.go getExec ->
        # streaming.WriteError, which maps every non-gRPC error to 500 with the error text as
        # a text/plain body, and the apiserver's upgrade-aware proxy (apimachinery
        # pkg/util/proxy/upgradeaware.go) passes a non-101 backend answer through as is.
        return web.Response(status=500, text=f'container not found ("{container}")',
                            content_type="text/plain")
    if tty:
        stderr = False  # merged into the pty
    requested = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", [])
                 for p in h.split(",") if p.strip()]
    if requested:
        chosen = next((p for p in requested if p in SUPPORTED), None)
        if chosen is None:
            raise errors.bad_request(f"requested protocol(s) are not supported: {requested}; "
                                     f"supports {list(SUPPORTED)}")
        ws = web.WebSocketResponse(protocols=(chosen,), autoping=True)
    else:
        chosen = ""
        ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    session = ExecSession(fake, ws, Framer(ws, chosen), pod, container, command,
                          stdin, stdout, stderr, tty, run.env or {})
    fake.exec_sessions.add(session)
    try:
        await session.run()
    finally:
        fake.exec_sessions.discard(session)
    return ws


class ExecSession:
    def __init__(self, fake: FakeKubernetes, ws: web.WebSocketResponse, framer: Framer,
                 pod: dict[str, Any], container: str, command: list[str], stdin: bool,
                 stdout: bool, stderr: bool, tty: bool, env: dict[str, str]) -> None:
        self.fake, self.ws, self.framer = fake, ws, framer
        self.pod, self.container, self.command = pod, container, command
        self.stdin, self.stdout, self.stderr, self.tty = stdin, stdout, stderr, tty
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None
        self.resizes: list[tuple[int, int]] = []

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def run(self) -> None:
        first = STDOUT if self.stdout else STDERR if self.stderr else ERROR
        await self.framer.send(first, b"")  # "the connection is established"
        workdir = self.fake.kubelet.root / self.pod["metadata"]["uid"]
        workdir.mkdir(exist_ok=True)
        env = {**self.env, "HOME": self.env.get("HOME", str(workdir))}
        if self.tty:
            env.setdefault("TERM", "xterm")
        try:
            if self.tty:
                self.master, slave = os.openpty()
                try:
                    self.proc = await asyncio.create_subprocess_exec(
                        *self.command, stdin=slave, stdout=slave, stderr=slave, env=env,
                        cwd=str(workdir), start_new_session=True, preexec_fn=_set_ctty)
                finally:
                    os.close(slave)
            else:
                pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
                self.proc = await asyncio.create_subprocess_exec(
                    *self.command, stdin=pipe if self.stdin else null,
                    stdout=pipe if self.stdout else null, stderr=pipe if self.stderr else null,
                    env=env, cwd=str(workdir), start_new_session=True)
        except OSError as e:
            reason = ("executable file not found in $PATH" if isinstance(e, FileNotFoundError)
                      else e.strerror or str(e))
            msg = (f"error executing command in container: failed to exec in container: failed "
                   f"to start exec: OCI runtime exec failed: exec failed: unable to start "
                   f"container process: exec: \"{self.command[0]}\": {reason}: unknown")
            await self._finish_status({"metadata": {}, "status": "Failure",
                                       "message": f"Internal error occurred: {msg}",
                                       "reason": "InternalError",
                                       "details": {"causes": [{"message": msg}]}, "code": 500},
                                      plain=msg)
            return
        reader = asyncio.create_task(self._read_client())
        pumps = [asyncio.create_task(self._pump_pty())] if self.tty else [
            asyncio.create_task(self._pump(self.proc.stdout, STDOUT)),
            asyncio.create_task(self._pump(self.proc.stderr, STDERR))]
        waiter = asyncio.create_task(self.proc.wait())
        try:
            done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:  # client went away: kill the process
                self.kill()
                await waiter
                for p in pumps:
                    p.cancel()
                return
            await asyncio.wait(pumps, timeout=5)  # a background child may hold the pty open
            code = waiter.result()
            code = 128 - code if code < 0 else code
            if code == 0:
                await self._finish_status({"metadata": {}, "status": "Success"}, plain=None)
            else:
                cmd = " ".join(self.command)
                await self._finish_status({
                    "metadata": {}, "status": "Failure",
                    "message": f"command terminated with non-zero exit code: error executing "
                               f"command [{cmd}], exit code {code}",
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}},
                    plain=f"command terminated with non-zero exit code: error executing command "
                          f"[{cmd}], exit code {code}")
        finally:
            self.kill()
            reader.cancel()
            for p in pumps:
                p.cancel()
            await asyncio.gather(reader, *pumps, return_exceptions=True)
            if self.master is not None:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(self.master)
                os.close(self.master)
                self.master = None
            if not self.ws.closed:
                await self.ws.close()

    async def _finish_status(self, status: dict[str, Any], plain: str | None) -> None:
        if self.framer.v4:
            await self.framer.send(ERROR, json.dumps(status).encode())
        elif plain:
            await self.framer.send(ERROR, plain.encode())
        await self.ws.close(code=1000)

    async def _read_client(self) -> None:
        async for msg in self.ws:
            decoded = self.framer.decode(msg)
            if decoded is None:
                continue
            channel, payload = decoded
            if channel == STDIN and self.stdin and payload:
                await self._write_stdin(payload)
            elif channel == RESIZE and self.tty:
                for w, h in _resize_sizes(payload):
                    self.resizes.append((w, h))
                    if self.master is not None:
                        fcntl.ioctl(self.master, termios.TIOCSWINSZ,
                                    struct.pack("HHHH", h, w, 0, 0))
            elif channel == CLOSE and self.framer.protocol.startswith("v5.") and payload[:1] == b"\x00":
                if self.proc and self.proc.stdin:
                    self.proc.stdin.close()
                elif self.master is not None:
                    os.write(self.master, b"\x04")

    async def _write_stdin(self, data: bytes) -> None:
        if self.tty and self.master is not None:
            os.write(self.master, data)
        elif self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(data)
                await self.proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass

    async def _pump(self, stream: asyncio.StreamReader | None, channel: int) -> None:
        if stream is None:
            return
        rest = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                if rest:
                    await self.framer.send(channel, rest)
                return
            out, rest = split_utf8(rest + chunk)
            if out:
                await self.framer.send(channel, out)

    async def _pump_pty(self) -> None:
        assert self.master is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        master = self.master
        os.set_blocking(master, False)

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(master)
            queue.put_nowait(data)

        loop.add_reader(master, readable)
        rest = b""
        while True:
            data = await queue.get()
            if not data:
                if rest:
                    await self.framer.send(STDOUT, rest)
                return
            out, rest = split_utf8(rest + data)
            if out:
                await self.framer.send(STDOUT, out)


def _set_ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
