"""The local runtime's file writes (fsync'd state, events) and process starts, run on
one worker thread so they never hold the event loop, in the order they were asked for
(a state written after another is never overtaken by it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")


class SerialIO:
    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"local-io:{name}")

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Runs `fn(*args)` after everything submitted before; the future completes on
        the loop, in submission order."""
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def drain(self) -> None:
        """Returns once everything submitted so far has run (and its callbacks)."""
        await self.submit(nothing)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def nothing() -> None:
    """A no-op to submit: its future completes once everything before it has run."""
    return None


def log_failure(what: str, **context: Any) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback that logs a background write that failed (nobody awaits it)."""

    def check(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and (error := future.exception()) is not None:
            log.error(what, error=repr(error), **context)

    return check
