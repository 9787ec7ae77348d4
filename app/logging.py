"""Structured logs (structlog): key=value lines for people, JSON when JOBGRAPH_LOG_JSON=1."""

from __future__ import annotations

import logging
import os

import structlog


def configure(level: str = "info") -> None:
    renderer = (
        structlog.processors.JSONRenderer()
        if os.environ.get("JOBGRAPH_LOG_JSON") == "1"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper())
        ),
    )
