"""The last lines of a log that fit one answer, and a first line saying what was left
out and how to read it all."""

from __future__ import annotations

from collections import deque


def truncation_notice(left_out: int, max_bytes: int) -> str:
    return (
        f"[jobgraph: {left_out} bytes of earlier log left out; one answer holds at most "
        f"{max_bytes} bytes (JOBGRAPH_MAX_LOG_ANSWER_BYTES). Ask for fewer lines with "
        "tailLines, or stream the whole log: the podLogLines subscription, or the REST "
        "logs call with follow=true]"
    )


class LogWindow:
    """Keeps the newest lines within `max_bytes` (UTF-8, with their line ends) and, if
    given, `max_lines`; memory stays within the bound whatever the log's size."""

    def __init__(self, *, max_bytes: int, max_lines: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_lines = max_lines
        self._lines: deque[tuple[str, int]] = deque()
        self._bytes = 0
        self.left_out = 0  # bytes dropped for the byte bound (not for max_lines)

    def add(self, line: str) -> None:
        if self.max_lines == 0:
            return
        size = len(line.encode("utf-8", errors="replace")) + 1
        if size > self.max_bytes:  # one line longer than a whole answer: keep its end
            kept = line.encode("utf-8", errors="replace")[-(self.max_bytes - 1):]
            line = kept.decode("utf-8", errors="ignore")
            self.left_out += size - len(line.encode()) - 1
            size = len(line.encode()) + 1
        self._lines.append((line, size))
        self._bytes += size
        if self.max_lines is not None and len(self._lines) > self.max_lines:
            self._bytes -= self._lines.popleft()[1]
        while self._bytes > self.max_bytes:
            _, dropped = self._lines.popleft()
            self._bytes -= dropped
            self.left_out += dropped

    def text(self) -> str:
        body = "".join(f"{line}\n" for line, _ in self._lines)
        if self.left_out:
            return truncation_notice(self.left_out, self.max_bytes) + "\n" + body
        return body
