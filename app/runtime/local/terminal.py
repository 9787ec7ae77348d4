"""An interactive shell on a real PTY, read and written through the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable, Mapping
from pathlib import Path

from app.runtime.local.process import watch_child

_READ_SIZE = 64 * 1024


def pick_shell(env: Mapping[str, str]) -> str:
    for candidate in (env.get("SHELL"), "/bin/bash", "/bin/sh"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sh") or "/bin/sh"


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


# The shell's new session (start_new_session) needs the PTY, already on fd 0, as its
# controlling terminal, so job control, ^C and SIGWINCH work. subprocess could only do
# that in `preexec_fn`, which is unsafe in a server running threads (the child may
# deadlock on a lock another thread held at fork); so a short exec step does it, then
# becomes the shell (same pid). -I -S: no PYTHON* variables, no site, nothing imported.
_CONTROLLING_TTY_THEN_EXEC = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _shell_argv(shell: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", _CONTROLLING_TTY_THEN_EXEC, shell]


class PtyTerminal:
    """Implements `app.runtime.base.Terminal` for a local shell."""

    def __init__(
        self, proc: subprocess.Popen[bytes], master_fd: int,
        on_close: Callable[[PtyTerminal], None] | None,
    ) -> None:
        self._proc = proc
        self._fd: int | None = master_fd
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close
        # Reap the shell as soon as it ends (the user typed `exit`).
        self._exit = watch_child(proc, lambda: None)

    @classmethod
    async def spawn(
        cls, *, cwd: Path, env: Mapping[str, str], rows: int, cols: int,
        on_close: Callable[[PtyTerminal], None] | None = None,
    ) -> PtyTerminal:
        """Start a shell on a new PTY (the fork and exec off the event loop)."""
        proc, master = await asyncio.to_thread(_start_shell, cwd, env, rows, cols)
        return cls(proc, master, on_close)

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def read(self) -> bytes:
        while (fd := self._fd) is not None:
            try:
                return os.read(fd, _READ_SIZE)
            except BlockingIOError:
                pass
            except OSError:  # EIO: nothing holds the PTY's other side any more
                return b""
            self._waiter = self._loop.create_future()
            self._loop.add_reader(fd, _wake, self._waiter)
            try:
                await self._waiter
            finally:
                self._waiter = None
                if self._fd is not None:
                    self._loop.remove_reader(self._fd)
        return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and (fd := self._fd) is not None:
            try:
                view = view[os.write(fd, view):]
                continue
            except BlockingIOError:
                pass
            except OSError:
                return  # the shell is gone; its end shows up as b"" from read()
            waiter = self._loop.create_future()
            self._loop.add_writer(fd, _wake, waiter)
            try:
                await asyncio.wait_for(waiter, 1.0)
            except TimeoutError:
                pass
            finally:
                if self._fd is not None:
                    self._loop.remove_writer(self._fd)

    async def resize(self, *, rows: int, cols: int) -> None:
        if self._fd is not None:
            _set_winsize(self._fd, rows, cols)  # the kernel sends SIGWINCH to the shell

    def close_now(self) -> None:
        """Kill the shell's process group and release the PTY (usable from callbacks)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._loop.remove_reader(fd)
        os.close(fd)
        if not self._exit.ended:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        if self._on_close is not None:
            self._on_close(self)

    async def close(self) -> None:
        self.close_now()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exit.wait(), 5.0)


def _start_shell(
    cwd: Path, env: Mapping[str, str], rows: int, cols: int
) -> tuple[subprocess.Popen[bytes], int]:
    """The shell's process and the PTY's master side (blocking)."""
    master, slave = os.openpty()
    try:
        _set_winsize(master, rows, cols)
        full_env = {"TERM": "xterm-256color", **env}
        proc = subprocess.Popen(
            _shell_argv(pick_shell(full_env)), cwd=cwd, env=full_env,
            stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, close_fds=True,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)  # the shell holds it now; EOF/EIO reaches us when it ends
    os.set_blocking(master, False)
    return proc, master


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
