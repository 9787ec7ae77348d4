"""Headless Chromium driven over the DevTools protocol (a WebSocket), with no browser
automation library: launch it, open tabs, evaluate JavaScript, type, click, screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,800",
]
# Nothing may leave loopback: every other request goes to a proxy that is not there
# (port 9, "discard", has no listener), so it fails inside the browser.
OFFLINE_FLAGS = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost"]
LAUNCH_TIMEOUT = 30.0

Listener = Callable[[dict[str, Any], str | None], None]


class DevToolsError(Exception):
    pass


class Browser:
    """One Chromium process and its browser-wide DevTools connection."""

    def __init__(self, process: subprocess.Popen, ws: ClientConnection) -> None:
        self.process = process
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict]] = {}
        self._listeners: list[tuple[str, Listener]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def launch(cls, user_data_dir: Path, *extra_flags: str) -> Browser:
        process = subprocess.Popen(  # noqa: ASYNC220 - returns once the process is forked
            [str(CHROMIUM), *FLAGS, *extra_flags, f"--user-data-dir={user_data_dir}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        # Chromium writes "<port>\n<browser path>" here once DevTools listens.
        active_port = user_data_dir / "DevToolsActivePort"
        try:
            async with asyncio.timeout(LAUNCH_TIMEOUT):
                while not (lines := _read_lines(active_port)):
                    if process.poll() is not None:
                        raise DevToolsError(f"chromium exited with {process.returncode}")
                    await asyncio.sleep(0.05)
            ws = await connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_size=None)
        except BaseException:
            process.kill()
            process.wait()
            raise
        return cls(process, ws)

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict:
        message_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self._ws.send(json.dumps(message))
        return await future

    def listen(self, method: str, listener: Listener) -> None:
        self._listeners.append((method, listener))

    async def new_page(self) -> Page:
        target = await self.call("Target.createTarget", url="about:blank")
        attached = await self.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        page = Page(self, attached["sessionId"], target["targetId"])
        for domain in ("Page", "Runtime", "Network"):
            await page.call(f"{domain}.enable")
        # Headless windows are never focused; the terminal needs focus to take keys.
        await page.call("Emulation.setFocusEmulationEnabled", enabled=True)
        return page

    async def close(self) -> None:
        self._reader.cancel()
        await self._ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            if "id" in message:
                future = self._pending.pop(message["id"])
                if "error" in message:
                    future.set_exception(DevToolsError(message["error"].get("message")))
                else:
                    future.set_result(message.get("result", {}))
                continue
            for method, listener in self._listeners:
                if method == message.get("method"):
                    listener(message.get("params", {}), message.get("sessionId"))


class Page:
    """One tab, through its flattened DevTools session."""

    def __init__(self, browser: Browser, session: str, target_id: str) -> None:
        self.browser = browser
        self.session = session
        self.target_id = target_id

    async def call(self, method: str, **params: Any) -> dict:
        return await self.browser.call(method, self.session, **params)

    async def goto(self, url: str) -> None:
        result = await self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise DevToolsError(f"{url}: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = 30.0) -> Any:
        """Until `expression` is truthy in the page: polls the page's own state (an event
        in the page), and says what it last saw when it gives up."""
        value = None
        try:
            async with asyncio.timeout(timeout):
                while not (value := await self._try(expression)):
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"page never had {expression!r}; last value {value!r}") from None
        return value

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                            button="left", clickCount=1)

    async def type(self, text: str) -> None:
        await self.call("Input.insertText", text=text)

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                            windowsVirtualKeyCode=13, nativeVirtualKeyCode=13,
                            **({"text": "\r"} if kind == "keyDown" else {}))

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))

    async def close(self) -> None:
        await self.browser.call("Target.closeTarget", targetId=self.target_id)

    async def _try(self, expression: str) -> Any:
        try:
            return await self.evaluate(expression)
        except DevToolsError:
            return None  # e.g. the page is still loading its scripts


def _read_lines(path: Path) -> list[str] | None:
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return None
    return lines if len(lines) >= 2 else None
