"""Background tasks that heal: one that crashes is logged and started again (after a
backoff with jitter, so a failing dependency is not hammered), one that returns ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

log = structlog.get_logger(__name__)

RESTART_MAX_SECONDS = 5.0


def supervised(name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """A task that runs `run()` until it returns or the task is cancelled."""
    return asyncio.create_task(_keep_running(name, run), name=name)


async def _keep_running(name: str, run: Callable[[], Awaitable[None]]) -> None:
    def crashed(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.error(
            "task.crashed", task=name, restarts=state.attempt_number,
            error=repr(error), exc_info=error,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Exception),  # not CancelledError: that is a stop
        wait=wait_random_exponential(multiplier=0.1, max=RESTART_MAX_SECONDS),
        before_sleep=crashed,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await run()
