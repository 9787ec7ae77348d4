"""The web terminal's idle limit, on an injected clock: keystrokes (touch) push the end
back, and it ends `seconds` after the last one. No test time passes."""

from __future__ import annotations

import asyncio

from app.core.terminals import IdleLimit


class FakeTime:
    """A clock the test moves; `sleep` returns once the clock has moved far enough."""

    def __init__(self) -> None:
        self.now = 1024.0  # binary fractions below: the sums are exact
        self._moved = asyncio.Condition()
        self.parked = asyncio.Event()  # set while a sleeper waits for the clock

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        until = self.now + seconds
        async with self._moved:
            while self.now < until:
                self.parked.set()
                await self._moved.wait()
            self.parked.clear()

    async def advance(self, seconds: float) -> None:
        async with self._moved:
            self.parked.clear()
            self.now += seconds
            self._moved.notify_all()


async def settled(time: FakeTime, task: asyncio.Task[str]) -> bool:
    """After the clock moved: wait (on events) until the task ended or parked again;
    True when it ended."""
    parked = asyncio.create_task(time.parked.wait())
    try:
        async with asyncio.timeout(30):
            await asyncio.wait({task, parked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        parked.cancel()
    return task.done()


async def test_the_limit_runs_from_the_last_keystroke():
    time = FakeTime()
    idle = IdleLimit(2.0, clock=time.clock, sleep=time.sleep)
    expiry = asyncio.create_task(idle.expired())
    assert not await settled(time, expiry)

    await time.advance(1.5)
    assert not await settled(time, expiry)
    idle.touch()  # a keystroke at 1.5 s: the end moves to 3.5 s
    await time.advance(1.0)
    assert not await settled(time, expiry)  # 2.5 s: only 1 s since the keystroke
    await time.advance(0.75)
    assert not await settled(time, expiry)
    await time.advance(0.25)  # 3.5 s: 2 s since the keystroke
    assert await settled(time, expiry)
    assert expiry.result() == "closed after 2 s without input"


async def test_without_a_keystroke_it_ends_after_the_limit():
    time = FakeTime()
    idle = IdleLimit(900, clock=time.clock, sleep=time.sleep)
    expiry = asyncio.create_task(idle.expired())
    await time.advance(899.5)
    assert not await settled(time, expiry)
    await time.advance(0.5)
    assert await settled(time, expiry)
    assert expiry.result() == "closed after 900 s without input"
