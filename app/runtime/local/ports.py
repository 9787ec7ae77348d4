"""Master ports (MASTER_PORT) for the jobs of one local runtime.

A port found free by binding to port 0 is only free at that moment: once the probe
socket is closed the kernel may hand the same number out again. So the runtime keeps
the ports its live jobs hold and never hands one of them out twice; when the kernel
keeps offering held ports (a narrow ephemeral range), a free port is looked for in a
range of its own."""

from __future__ import annotations

import random
import socket

_PROBES = 16
# Below Linux's default ephemeral range (32768-60999), so outgoing connections do not
# take them meanwhile.
FALLBACK_RANGE = range(20000, 32768)


def _bind(port: int) -> int | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
        return s.getsockname()[1]


class PortReservations:
    def __init__(self) -> None:
        self._held: set[int] = set()

    def take(self) -> int:
        """A port no live job of this runtime holds, and free right now."""
        for _ in range(_PROBES):
            port = _bind(0)
            if port is not None and port not in self._held:
                return self.hold(port)
        for port in random.sample(FALLBACK_RANGE, k=len(FALLBACK_RANGE)):
            if port not in self._held and _bind(port) is not None:
                return self.hold(port)
        raise OSError("no free TCP port for MASTER_PORT")

    def hold(self, port: int) -> int:
        """Also for the ports of jobs adopted from an earlier server."""
        self._held.add(port)
        return port

    def release(self, port: int | None) -> None:
        if port is not None:
            self._held.discard(port)
