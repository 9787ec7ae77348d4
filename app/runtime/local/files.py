"""Small, crash-safe file helpers shared by the runtime and the wrapper (stdlib only).

Every record a restart depends on is written to a temporary file and renamed into
place, so a reader sees either the old content or the new one, never half of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    """Replace `path` with `data`, atomically (a reader or a restart after a crash of
    the process sees the old content or the new). `durable`: fsync'd before the rename,
    so the new content also survives a crash of the machine."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """The decoded file, or None when it is missing or unreadable (a torn write)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def append_jsonl(path: Path, data: Any) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(data, separators=(",", ":")) + "\n")


def read_jsonl(path: Path) -> list[Any]:
    """All complete records; a torn last line (crash while appending) is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
