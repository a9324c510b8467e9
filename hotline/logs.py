"""structlog set-up: human-readable lines on a terminal, JSON lines in production."""

from __future__ import annotations

import logging
import sys

import structlog

_SECRET_KEYS = frozenset({"secret", "password", "token", "ami_secret", "csrf"})


def _redact(_logger: object, _name: str, event: dict[str, object]) -> dict[str, object]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


def setup_logging(level: str = "info", json: bool = False) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    for noisy in ("panoramisk", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
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
