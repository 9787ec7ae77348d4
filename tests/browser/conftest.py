"""A headless Chromium (Debian's, driven by Playwright) for the module, cut off from
everything but loopback, and a record of every request its pages make."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Request, Response, async_playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOCAL_SCHEMES = {"data", "blob", "about"}
CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage",
]
# Nothing may leave loopback: every other request goes to a proxy that is not there
# (port 9, "discard", has no listener), so it fails inside the browser.
OFFLINE_FLAGS = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost"]
# Generous: a loaded CI machine must not make a page time out (milliseconds).
TIMEOUT_MS = 60_000


@dataclass
class NetworkLog:
    """Requests: URL, the address that answered, or why it failed."""

    urls: list[str] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def off_loopback(self) -> dict[str, str | None]:
        """Requests for anything but 127.0.0.1: URL -> why it failed (None: it did not)."""
        return {
            url: self.failed.get(url) for url in self.urls
            if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"
        }

    async def answering_addresses(self) -> set[str]:
        """The addresses that answered (data: and the like have none)."""
        servers = [await response.server_addr() for response in self.responses]
        return {server["ipAddress"] for server in servers if server}

    def on_failed(self, request: Request) -> None:
        self.failed[request.url] = request.failure or "failed"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (the Makefile does)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*FLAGS, *OFFLINE_FLAGS], timeout=TIMEOUT_MS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
def network() -> NetworkLog:
    """What the test's browser context requested (its responses live as long as it)."""
    return NetworkLog()


@pytest.fixture
async def context(browser: Browser, network: NetworkLog) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    context.on("request", lambda request: network.urls.append(request.url))
    context.on("response", lambda response: network.responses.append(response))
    context.on("requestfailed", network.on_failed)
    yield context
    await context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
