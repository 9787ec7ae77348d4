"""Per-principal request rate limit: a token bucket per user, in this process."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from app.domain.errors import RateLimited

# Buckets of users not seen for a while are forgotten first (bounded memory).
MAX_TRACKED = 10_000


class RateLimiter:
    def __init__(
        self, *, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, key: str, *, units: int = 1) -> None:
        """Take `units` (a request, or each mutation of one) from `key`'s bucket, all or
        none, or raise `RateLimited` saying when to retry."""
        if self.rate <= 0 or units <= 0:
            return
        now = self._clock()
        tokens, stamp = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        if tokens < units:
            self._buckets[key] = (tokens, now)
            retry_after = (units - tokens) / self.rate
            what = "requests" if units == 1 else f"mutations ({units} more in this request)"
            raise RateLimited(
                f"too many {what} from {key!r}: at most {self.rate * 60:g} a minute "
                f"(bursts of {self.burst}); retry in {max(retry_after, 0.01):.2f} s",
                retry_after=retry_after,
            )
        self._buckets[key] = (tokens - units, now)
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
