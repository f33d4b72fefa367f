"""structlog for a core process: configured once, every line bound to its `core`.

Concern: the process-wide logging configuration of a core (and of the supervisor). Must not know
about actors or rings.

One record, one line, always: every process of a node (supervisor, fork server, cores) writes to
the same inherited stderr, and Python's `sys.stderr` is unbuffered (write-through), so
`print(record)` is two write(2) calls, the record and then its newline; two processes logging at
once (cores at shutdown) could put two records on one line and an empty line after. Records are
therefore written by `LineWriter`: one `os.write` of the complete line. That is atomic against the
other processes' records on a regular file and on a terminal, and on a pipe for lines up to
PIPE_BUF (4096 bytes, POSIX); a longer record on a pipe may still be split by another's.

The format (`json`, one object per line; `console`, structlog's human-readable lines) and the
level travel to the cores in the environment (`REDSHANK_LOG_FORMAT`, `REDSHANK_LOG_LEVEL`): the
supervisor's `configure_logging(None, level, fmt)` sets them before any core is started, and a
core's `configure_logging(core)` reads them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import structlog

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "LineWriter", "configure_logging"]

LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
ENV_FORMAT = "REDSHANK_LOG_FORMAT"
ENV_LEVEL = "REDSHANK_LOG_LEVEL"

_configured = False


class LineWriter:
    """A structlog logger writing each record as one line with one `os.write` (see above)."""

    def __init__(self, fd: int = 2) -> None:
        self._fd = fd

    def msg(self, message: str) -> None:
        data = (message + "\n").encode("utf-8", "backslashreplace")
        while data:
            try:
                written = os.write(self._fd, data)
            except InterruptedError:
                continue
            except OSError:
                return  # stderr closed (its reader gone): logging must not stop the process
            data = data[written:]

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


def _line_writer(*_args: Any) -> LineWriter:
    return LineWriter(2)


def _resolve(level: int | str | None, fmt: str | None) -> tuple[int, str]:
    if level is None:
        level = os.environ.get(ENV_LEVEL, "info")
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO
    fmt = fmt or os.environ.get(ENV_FORMAT, "json")
    return level, fmt if fmt in LOG_FORMATS else "json"


def configure_logging(core: int | None, level: int | str | None = None,
                      fmt: str | None = None) -> None:
    """Configure structlog once per process (later calls only rebind `core`); `core=None` for the
    supervisor process, which also hands `level` and `fmt` to the cores it starts later (through
    the environment). None: what the environment says, else `info` and `json`."""
    global _configured
    if not _configured:
        level, fmt = _resolve(level, fmt)
        if core is None:
            os.environ[ENV_LEVEL] = logging.getLevelName(level).lower()
            os.environ[ENV_FORMAT] = fmt
        processors: list[Any] = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ]
        if fmt == "console":  # it formats exceptions itself
            processors.append(structlog.dev.ConsoleRenderer(colors=os.isatty(2)))
        else:
            processors += [structlog.processors.format_exc_info,
                           structlog.processors.JSONRenderer()]
        structlog.configure(
            processors=processors,
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=_line_writer,
            cache_logger_on_first_use=True,
        )
        _configured = True
    structlog.contextvars.clear_contextvars()
    if core is None:
        structlog.contextvars.bind_contextvars(role="supervisor")
    else:
        structlog.contextvars.bind_contextvars(core=core)
