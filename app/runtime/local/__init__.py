"""The `local` runtime: jobs run as real processes on this machine (see runtime.py).

`LocalRuntime` is imported lazily: the replica wrapper (`python -m
app.runtime.local.wrapper`) starts once per replica and should not pay for importing
the runtime and the domain it does not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.runtime.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]


def __getattr__(name: str) -> Any:
    if name == "LocalRuntime":
        from app.runtime.local.runtime import LocalRuntime

        return LocalRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
