"""structlog for a core process: configured once, every line bound to its `core`.

Concern: the process-wide logging configuration of a core. Must not know about actors or rings.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]

_configured = False


def configure_logging(core: int | None, level: int = logging.INFO) -> None:
    """Configure structlog once per process (later calls only rebind `core`); `core=None` for the
    supervisor process."""
    global _configured
    if not _configured:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            cache_logger_on_first_use=True,
        )
        _configured = True
    structlog.contextvars.clear_contextvars()
    if core is None:
        structlog.contextvars.bind_contextvars(role="supervisor")
    else:
        structlog.contextvars.bind_contextvars(core=core)
