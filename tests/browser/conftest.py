"""A headless Chromium for the module, cut off from everything but loopback, and a
record of every request its pages make."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.cdp import CHROMIUM, OFFLINE_FLAGS, Browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOCAL_SCHEMES = {"data", "blob", "about"}



@dataclass
class NetworkLog:
    """Requests by id: URL, the address that answered, or why it failed."""

    urls: dict[str, str] = field(default_factory=dict)
    answered_by: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def off_loopback(self) -> dict[str, str | None]:
        """Requests for anything but 127.0.0.1: URL -> why it failed (None: it did not)."""
        return {
            url: self.failed.get(rid) for rid, url in self.urls.items()
            if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"
        }

    def answering_addresses(self) -> set[str]:
        return {address for address in self.answered_by.values() if address}


@pytest.fixture(scope="module")
async def browser(tmp_path_factory) -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (the Makefile does)")
    chromium = await Browser.launch(tmp_path_factory.mktemp("chromium"), *OFFLINE_FLAGS)
    yield chromium
    await chromium.close()


@pytest.fixture(scope="module")
def network(browser: Browser) -> NetworkLog:
    log = NetworkLog()
    browser.listen("Network.requestWillBeSent",
                   lambda p, _: log.urls.setdefault(p["requestId"], p["request"]["url"]))
    browser.listen("Network.responseReceived",
                   lambda p, _: log.answered_by.__setitem__(
                       p["requestId"], p["response"].get("remoteIPAddress", "")))
    browser.listen("Network.loadingFailed",
                   lambda p, _: log.failed.__setitem__(p["requestId"], p["errorText"]))
    return log


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
