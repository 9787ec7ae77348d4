"""Structured logs (structlog): key=value lines for people, JSON when JOBGRAPH_LOG_JSON=1."""

from __future__ import annotations

import logging
import os

import structlog
from structlog.typing import EventDict, WrappedLogger

from app.domain.limits import clip


def clip_values(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Values often carry what a client sent (an id, a name, a message echoing it):
    each is cut to JOBGRAPH_MAX_ECHO_BYTES."""
    for key, value in event.items():
        if isinstance(value, str) and key != "exception":
            event[key] = clip(value)
    return event


def configure(level: str = "info") -> None:
    json_lines = os.environ.get("JOBGRAPH_LOG_JSON") == "1"
    renderer = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            clip_values,
            *([structlog.processors.format_exc_info] if json_lines else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper())
        ),
    )
