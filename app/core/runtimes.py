"""Which runtime serves which pool."""

from __future__ import annotations

from collections.abc import Iterator

from app.domain.errors import RuntimeUnavailable
from app.runtime.base import Runtime


class RuntimeRegistry:
    def __init__(self, runtimes: dict[str, Runtime]) -> None:
        self._runtimes = runtimes

    def for_pool(self, pool_id: str) -> Runtime:
        runtime = self._runtimes.get(pool_id)
        if runtime is None:
            raise RuntimeUnavailable(f"no runtime is serving pool {pool_id!r}")
        return runtime

    def __iter__(self) -> Iterator[Runtime]:
        return iter(self._runtimes.values())
