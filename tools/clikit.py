"""What every `redshank` command that talks to a node shares: options, output, errors, clients.

- Options: `--brokers` (default 127.0.0.1:9092, env REDSHANK_BROKERS), `--admin-url` (default
  http://127.0.0.1:9644, env REDSHANK_ADMIN_URL), `--json`.
- Output: `emit` prints a rich table for people or one JSON document for scripts.
- Errors: raise `CliError(message, code)`; `tools/cli.py` prints it as one line on stderr
  (`redshank: ...`, no traceback) and exits with `code`.
- Clients: confluent-kafka's AdminClient, Producer and Consumer (librdkafka: the same client most
  of our users run, every admin API we serve, and no second Kafka client to maintain), made with
  short timeouts so an unreachable broker fails in seconds, not librdkafka's minutes.

Exit codes: 0 done; 1 the node refused or failed the operation; 2 bad usage (click's own);
3 the node cannot be reached; 4 the named thing (topic, group) does not exist.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import click

__all__ = [
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "admin_client",
    "admin_url_option",
    "brokers_option",
    "client_config",
    "emit",
    "json_option",
    "kafka_call",
    "print_table",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_FOUND = 4

DEFAULT_BROKERS = "127.0.0.1:9092"
DEFAULT_ADMIN_URL = "http://127.0.0.1:9644"
# Seconds a command waits for a node before it says the node cannot be reached.
DEFAULT_TIMEOUT_S = 10.0

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class CliError(Exception):
    """A failure the user should read as one line; `code` is the process exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def brokers_option(fn: F) -> F:
    return click.option(
        "--brokers", "-X", "brokers", envvar="REDSHANK_BROKERS", default=DEFAULT_BROKERS,
        show_default=True, metavar="HOST:PORT[,...]",
        help="Kafka bootstrap addresses of the node(s) (env REDSHANK_BROKERS)")(fn)


def admin_url_option(fn: F) -> F:
    return click.option(
        "--admin-url", envvar="REDSHANK_ADMIN_URL", default=DEFAULT_ADMIN_URL,
        show_default=True, metavar="URL",
        help="the node's admin HTTP API (env REDSHANK_ADMIN_URL)")(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="print one JSON document (for scripts)")(fn)


def timeout_option(fn: F) -> F:
    return click.option("--timeout", type=click.FloatRange(min=0.1), default=DEFAULT_TIMEOUT_S,
                        show_default=True, metavar="SECS",
                        help="how long to wait for the node")(fn)


def client_config(brokers: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                  **extra: Any) -> dict[str, Any]:
    """librdkafka settings for a short-lived CLI client: fail fast, log nothing to stderr."""
    ms = max(100, int(timeout_s * 1000))
    config: dict[str, Any] = {
        "bootstrap.servers": brokers,
        "socket.timeout.ms": ms,
        "socket.connection.setup.timeout.ms": ms,
        "log_level": 0,  # errors reach us as exceptions; librdkafka's own log lines would not
        "logger": _quiet_logger(),
    }
    config.update(extra)
    return config


def _quiet_logger() -> Any:
    import logging

    logger = logging.getLogger("redshank.cli.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def admin_client(brokers: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """An AdminClient that has reached the cluster (raises CliError(EXIT_UNREACHABLE) if not)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(brokers, timeout_s))
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise CliError(f"cannot reach a broker at {brokers}: {_kafka_error_text(exc)}",
                       EXIT_UNREACHABLE) from exc
    return admin


def kafka_call(future: Future[T], what: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> T:
    """The result of an AdminClient future, or CliError naming `what` and Kafka's error."""
    from concurrent.futures import TimeoutError as FutureTimeout

    from confluent_kafka import KafkaError, KafkaException

    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout as exc:
        raise CliError(f"{what}: no answer within {timeout_s:g} s", EXIT_UNREACHABLE) from exc
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        code = EXIT_ERROR
        if isinstance(err, KafkaError) and err.code() in (
                KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.GROUP_ID_NOT_FOUND):
            code = EXIT_NOT_FOUND
        raise CliError(f"{what}: {_kafka_error_text(exc)}", code) from exc


def _kafka_error_text(exc: BaseException) -> str:
    from confluent_kafka import KafkaError

    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        text = err.str() or ""
        name = err.name()
        return f"{name}: {text}" if text and text != name else name
    return str(exc) or type(exc).__name__


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
                title: str | None = None) -> None:
    """A rich table on stdout (plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    # Piped output (grep, scripts) is never folded at rich's default 80 columns.
    width = None if sys.stdout.isatty() else 100_000
    Console(soft_wrap=True, width=width).print(table)


def emit(data: Any, *, as_json: bool, columns: Sequence[str] = (),
         rows: Sequence[Sequence[Any]] = (), title: str | None = None,
         text: str | None = None) -> None:
    """Print `data` as JSON (`as_json`), else `text` if given, else a table of `rows`."""
    if as_json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    elif text is not None:
        click.echo(text)
    else:
        print_table(columns, rows, title)
    sys.stdout.flush()


def parse_kv(pairs: Sequence[str], what: str = "config") -> Mapping[str, str]:
    """`k=v` arguments as a dict (CliError on one without `=`)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{what} {pair!r}: expected KEY=VALUE", EXIT_USAGE)
        out[key.strip()] = value
    return out


def env_default(name: str, default: str) -> str:
    return os.environ.get(name, default)


def cluster_metadata(client: Any, brokers: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """Metadata for every topic from any confluent-kafka client (AdminClient, Producer,
    Consumer); CliError(EXIT_UNREACHABLE) when no broker answers within `timeout_s`."""
    from confluent_kafka import KafkaError, KafkaException

    try:
        return client.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        unreachable = (KafkaError._TRANSPORT, KafkaError._TIMED_OUT,
                       KafkaError._ALL_BROKERS_DOWN)
        if isinstance(err, KafkaError) and err.code() in unreachable:
            raise CliError(f"cannot reach a broker at {brokers}: {_kafka_error_text(exc)}",
                           EXIT_UNREACHABLE) from exc
        raise CliError(f"metadata: {_kafka_error_text(exc)}", EXIT_ERROR) from exc


def topic_metadata(client: Any, name: str, brokers: str,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A topic's metadata (TopicMetadata), or CliError(EXIT_NOT_FOUND). Asks for every topic:
    a Metadata request naming a missing topic may auto-create it."""
    tmd = cluster_metadata(client, brokers, timeout_s).topics.get(name)
    if tmd is None or (tmd.error is not None and tmd.error.code() != 0):
        raise CliError(f"topic {name!r} does not exist", EXIT_NOT_FOUND)
    return tmd


# --- Raw requests (tools/kafka_raw.py) for what confluent-kafka's binding lacks -------------

def raw_connection(addresses: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A `kafka_raw.RawConnection` to the first of `addresses` (host:port,...) that accepts one,
    or CliError(EXIT_UNREACHABLE)."""
    from redshank.tools.kafka_raw import RawConnection

    errors = []
    for address in (a.strip() for a in addresses.split(",") if a.strip()):
        try:
            return RawConnection(address, timeout_s)
        except (OSError, ValueError) as exc:
            errors.append(f"{address}: {exc.strerror or exc}"
                          if isinstance(exc, OSError) else f"{address}: {exc}")
    raise CliError(f"cannot reach a broker at {addresses}: {'; '.join(errors)}",
                   EXIT_UNREACHABLE)


def error_name(code: int) -> str:
    """A Kafka error code's name (`NOT_CONTROLLER`), or the number if we do not know it."""
    from redshank.protocol.error_codes import ErrorCode

    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


def kafka_admin_module() -> Any:
    """`confluent_kafka.admin`, untyped: its stubs do not re-export ConfigResource, OffsetSpec,
    ... (mypy --strict refuses them), and they are used as plain values here anyway."""
    import confluent_kafka.admin

    return confluent_kafka.admin
