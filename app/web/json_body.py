"""Request bodies as JSON, refused with a message when a client sends bytes that are not
UTF-8, JSON nested deeper or holding more values than anything this API takes, or
strings that are not text (lone surrogates from `\\ud800` escapes, which no database
or encoder accepts)."""

from __future__ import annotations

import json
from typing import Any

import orjson

# No request of this API nests more than a few levels; a deep document only costs
# recursion further in (variable coercion, validation) and ends as a RecursionError.
MAX_JSON_DEPTH = 32
# Values (objects, lists, strings, numbers ...) in one body. Each costs GraphQL's variable
# coercion a few calls: 37,000 environment variables took seconds of the event loop
# before any rule could refuse them. The largest real request, a command of 4,096
# arguments, holds about as many.
MAX_JSON_VALUES = 10_000


class JSONBodyInvalid(ValueError):
    """The body cannot be taken as JSON; `message` says why, in the client's terms."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def load_json(raw: bytes | str, *, what: str = "the body") -> Any:
    """Parse a body (or a JSON string inside one, named by `what`); JSONBodyInvalid
    with what to fix."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JSONBodyInvalid(
                f"{what} is not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start})"
            ) from None
    try:
        value = json.loads(raw)
    except RecursionError:  # the C scanner's own guard, near 1,000 levels
        raise JSONBodyInvalid(_too_deep(what)) from None
    except ValueError as error:
        raise JSONBodyInvalid(f"{what} is not valid JSON: {error}") from None
    _check_nesting_and_text(value, what)
    return value


def _too_deep(what: str) -> str:
    return f"{what} is JSON nested more than {MAX_JSON_DEPTH} levels deep"


def _check_nesting_and_text(value: Any, what: str) -> None:
    """One pass over the document, without recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while pending:
        item, depth = pending.pop()
        seen += 1
        if seen > MAX_JSON_VALUES:
            raise JSONBodyInvalid(
                f"{what} holds more than {MAX_JSON_VALUES} JSON values (list items, fields, "
                "strings, numbers); send less in one request"
            )
        if isinstance(item, str):
            _check_text(item, what)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise JSONBodyInvalid(_too_deep(what))
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, what)
                pending.append((child, depth + 1))
        else:
            pending.extend((child, depth + 1) for child in item)


def _check_text(text: str, what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise JSONBodyInvalid(
            f"a string in {what} is not valid Unicode text (an unpaired surrogate "
            f"\\u{ord(text[error.start]):04x})"
        ) from None


def dump_json(value: Any) -> bytes:
    """An answer's body: compact UTF-8 JSON, by orjson; the standard library for what
    orjson refuses (an integer beyond 64 bits in a job's JSON config)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
