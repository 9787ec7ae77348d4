"""Size limits in bytes (set from `JOBGRAPH_MAX_*`, README "Operating"), and `clip`,
which cuts what a client sent down before it is echoed in an error or a log line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SizeLimits:
    job_spec_bytes: int = 262_144  # the whole spec: name, image, command, envs, labels
    command_arg_bytes: int = 65_536  # one argument (Linux refuses 128 KiB: E2BIG)
    job_envs: int = 256
    env_bytes: int = 65_536  # one variable, name and value
    job_labels: int = 64
    log_answer_bytes: int = 1_048_576  # one log read (GraphQL `logs`, REST logs)


# Errors are raised deep in the domain, far from the settings: the server sets this
# once at start-up (`set_echo_bytes`); messages and log values are clipped to it.
_echo_bytes = 1024


def set_echo_bytes(limit: int) -> None:
    global _echo_bytes
    _echo_bytes = limit


def clip(text: str, limit: int | None = None) -> str:
    """`text` cut to about `limit` bytes: its start and its end (where a message says
    what went wrong) around a note of how much was left out."""
    limit = _echo_bytes if limit is None else limit
    if len(text) <= limit // 4:  # at most 4 bytes a character: short enough
        return text
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= limit:
        return text
    head = data[: limit * 3 // 4].decode("utf-8", errors="ignore")
    tail = data[len(data) - limit // 4 :].decode("utf-8", errors="ignore")
    left_out = len(data) - len(head.encode("utf-8", "surrogatepass")) - len(tail.encode("utf-8", "surrogatepass"))
    return f"{head}…[{left_out} bytes left out]…{tail}"
