"""structlog set-up: human-readable lines on a terminal, JSON lines in production."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SQL_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg")
_SECRET_KEYS = frozenset({"secret", "password", "token", "ami_secret", "csrf"})


def _redact(_logger: object, _name: str,
            event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


def setup_logging(level: str = "info", json: bool = False) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    for noisy in ("panoramisk", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # SQLAlchemy (from INFO) and the database drivers (at DEBUG) log statements with their
    # parameters: citizens' names, phones, policy numbers. Never, whatever LOG_LEVEL says
    # (the engines hide parameters in their error messages too).
    for driver in SQL_LOGGERS:
        logging.getLogger(driver).setLevel(logging.WARNING)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
