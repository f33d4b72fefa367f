"""`redshank topic produce` and `redshank topic consume`: records between stdin/stdout and a topic,
through confluent-kafka's Producer and Consumer, in rpk-style formats (tools/record_format.py).

Consume stops after `-n` records, at the end of the partitions (`--end`, or an `-o ...:end`
range: the high watermarks read when it starts), or follows the topic until Ctrl-C. When it is
to stop, `--timeout` seconds without a record is a failure (exit 1), never a hang.
In a group (`-g`) it commits the offsets of the records it printed, and only those.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import click

from redshank.protocol.fast_dataclass import dataclass
from redshank.tools.clikit import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    brokers_option,
    client_config,
    cluster_metadata,
    emit,
    json_option,
    parse_kv,
    timeout_option,
    topic_metadata,
)
from redshank.tools.record_format import (
    INPUT_FIELDS,
    FormatError,
    InputRecord,
    OutputRecord,
    RecordReader,
    Template,
    compile_format,
)

__all__ = ["Offsets", "consume", "parse_offsets", "produce"]

_CHUNK = 64 * 1024


# ---------------------------------------------------------------------------------------- produce

@click.command("produce", short_help="produce records read from stdin (rpk-style -f format)")
@click.argument("topic_name", metavar="TOPIC")
@click.option("-f", "--format", "fmt", default="%v\\n", show_default=True,
              help="how to read a record from stdin: %k key, %v value, %h headers (k=v,k=v),"
                   " %p partition; \\n \\t escapes")
@click.option("-k", "--key", help="the key of every record (when the format has no %k)")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE",
              help="a header on every record, repeatable")
@click.option("-p", "--partition", type=click.IntRange(min=0),
              help="the partition of every record (default: by key, else spread)")
@click.option("--acks", type=click.Choice(["all", "-1", "0", "1"]), default="all",
              show_default=True, help="acks to wait for")
@click.option("-z", "--compression", type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]),
              default="none", show_default=True)
@click.option("-v", "--verbose", is_flag=True,
              help="print each record's partition and offset as it is acknowledged")
@click.option("--no-create", is_flag=True,
              help="fail (exit 4) if TOPIC does not exist, instead of letting the broker "
                   "auto-create it as any Kafka producer does")
@brokers_option
@timeout_option
@json_option
def produce(topic_name: str, fmt: str, key: str | None, headers: tuple[str, ...],
            partition: int | None, acks: str, compression: str, verbose: bool, no_create: bool,
            brokers: str, timeout: float, as_json: bool) -> None:
    """Produce records read from stdin (one per line by default) to TOPIC.

    \b
    echo 'hello' | redshank topic produce t1
    printf 'k1 v1\\nk2 v2\\n' | redshank topic produce t1 -f '%k %v\\n'
    printf 'k1 trace=1,app=x v1\\n' | redshank topic produce t1 -f '%k %h %v\\n'
    """
    from confluent_kafka import Producer

    try:
        reader = RecordReader(compile_format(fmt, INPUT_FIELDS))
    except FormatError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    fixed_headers = [(k, v.encode()) for k, v in parse_kv(headers, "header").items()]
    producer = Producer(client_config(brokers, timeout, **{
        "acks": acks, "compression.type": compression, "linger.ms": 5,
        "message.timeout.ms": max(1000, int(timeout * 1000)),
        "allow.auto.create.topics": not no_create}))
    tmd = (topic_metadata(producer, topic_name, brokers, timeout) if no_create
           else _auto_created(producer, topic_name, brokers, timeout))
    if partition is not None and partition not in tmd.partitions:
        raise CliError(f"topic {topic_name!r} has no partition {partition}", EXIT_NOT_FOUND)
    tally = _Tally(verbose and not as_json)
    fixed_key = key.encode() if key is not None else None
    typed = sys.stdin.isatty()
    try:
        for record in _read_records(reader, sys.stdin.buffer):
            _send(producer, topic_name, record, fixed_key, partition, fixed_headers, tally)
            if typed:  # someone types records: acknowledge each before the next line
                producer.flush(timeout + 5)
            if tally.errors:
                break  # the first failure says it all; no point sending thousands more
    except FormatError as exc:
        producer.flush(timeout + 5)  # what was read before the bad record still goes
        raise CliError(f"produce: {exc} (the {tally.acked} record(s) before it were produced)",
                       EXIT_ERROR) from None
    left = producer.flush(timeout + 5)
    tally.report(topic_name, left, as_json)


def _auto_created(producer: Any, name: str, brokers: str, timeout: float) -> Any:
    """The topic's metadata, asking for it by name as a Kafka producer does (a broker with
    auto.create.topics.enable creates it); CliError(EXIT_NOT_FOUND) if the broker will not."""
    from confluent_kafka import KafkaError

    cluster_metadata(producer, brokers, timeout)  # unreachable: exit 3, as for every command
    deadline = time.monotonic() + timeout
    while True:
        tmd = producer.list_topics(topic=name, timeout=timeout).topics.get(name)
        code = None if tmd is None or tmd.error is None else tmd.error.code()
        if tmd is not None and code in (None, 0) and tmd.partitions:
            return tmd
        if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_EXCEPTION) \
                or time.monotonic() > deadline:
            raise CliError(f"topic {name!r} does not exist and the broker did not create it",
                           EXIT_NOT_FOUND)
        time.sleep(0.1)  # being created (LEADER_NOT_AVAILABLE): ask again


@dataclass
class _Tally:
    verbose: bool
    sent: int = 0
    acked: int = 0
    errors: int = 0
    first_error: Any = None

    def __post_init__(self) -> None:
        self.ranges: dict[int, list[int]] = {}

    def delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors += 1
            self.first_error = self.first_error or err
            return
        self.acked += 1
        p, o = msg.partition(), msg.offset()
        if o is None or o < 0:  # acks=0: no offset comes back
            return
        lo_hi = self.ranges.setdefault(p, [o, o])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], o), max(lo_hi[1], o)
        if self.verbose:
            click.echo(f"produced to partition {p} at offset {o}")

    def report(self, topic: str, left: int, as_json: bool) -> None:
        parts = {p: {"first_offset": lo, "last_offset": hi}
                 for p, (lo, hi) in sorted(self.ranges.items())}
        spans = ", ".join(f"partition {p}: offsets {r['first_offset']}-{r['last_offset']}"
                          for p, r in parts.items())
        emit({"topic": topic, "produced": self.acked, "failed": self.errors + left,
              "partitions": parts}, as_json=as_json,
             text=f"produced {self.acked} records to {topic}" + (f" ({spans})" if spans else ""))
        if self.first_error is not None:
            from confluent_kafka import KafkaError

            code = {KafkaError.UNKNOWN_TOPIC_OR_PART: EXIT_NOT_FOUND,
                    KafkaError._MSG_TIMED_OUT: EXIT_UNREACHABLE}.get(
                        self.first_error.code(), EXIT_ERROR)
            name = self.first_error.name()
            text = self.first_error.str()
            raise CliError(f"produce to {topic}: {self.errors} record(s) failed: {name}"
                           + (f": {text}" if text and text != name else ""), code)
        if left:
            raise CliError(f"produce to {topic}: {left} record(s) not acknowledged in time",
                           EXIT_UNREACHABLE)


def _send(producer: Any, topic: str, record: InputRecord, key: bytes | None,
          partition: int | None, headers: list[tuple[str, bytes]], tally: _Tally) -> None:
    kwargs: dict[str, Any] = {"value": record.value, "key": record.key or key,
                              "on_delivery": tally.delivered}
    part = record.partition if record.partition is not None else partition
    if part is not None:
        kwargs["partition"] = part
    if record.headers or headers:
        kwargs["headers"] = [*headers, *record.headers]
    while True:
        try:
            producer.produce(topic, **kwargs)
            break
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.05)
    tally.sent += 1
    producer.poll(0)


def _read_records(reader: RecordReader, stream: IO[bytes]) -> Iterator[InputRecord]:
    """Records from a binary stream, with a progress bar on a terminal for a regular file."""
    size = _regular_file_size(stream)
    read = getattr(stream, "read1", stream.read)
    if size is None or not sys.stderr.isatty():
        while chunk := read(_CHUNK):
            yield from reader.feed(chunk)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            task = progress.add_task("producing", total=size)
            while chunk := read(_CHUNK):
                progress.advance(task, len(chunk))
                yield from reader.feed(chunk)
    yield from reader.close()


def _regular_file_size(stream: IO[bytes]) -> int | None:
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


# ---------------------------------------------------------------------------------------- consume

@dataclass(frozen=True, slots=True)
class Offsets:
    """Where to start and stop: `start` is 'start', 'end', an offset, `-N` (N before the end) or
    `@MS` (the first record at or after a timestamp); `stop` None (follow), 'end' (the high
    watermark when consume starts) or an offset (exclusive)."""

    start: str | int
    stop: str | int | None

    @property
    def is_reset_only(self) -> bool:
        return self.start in ("start", "end")


def parse_offsets(text: str) -> Offsets:
    head, sep, tail = text.partition(":")
    start: str | int
    if head in ("", "start", "oldest", "beginning"):
        start = "start"
    elif head in ("end", "newest"):
        start = "end"
    elif head.startswith("@") and head[1:].isdigit():
        start = head
    elif head.lstrip("-").isdigit():
        start = int(head)
    else:
        raise CliError(f"offset {text!r}: expected start, end, N, -N or @TIMESTAMP_MS,"
                       " optionally followed by :end or :N", EXIT_USAGE)
    stop: str | int | None = None
    if sep:
        if tail == "end":
            stop = "end"
        elif tail.isdigit():
            stop = int(tail)
        else:
            raise CliError(f"offset {text!r}: the part after ':' must be end or an offset",
                           EXIT_USAGE)
    return Offsets(start, stop)


@click.command("consume", short_help="print records: from offsets or times, in a group or not")
@click.argument("topic_name", metavar="TOPIC")
@click.option("-o", "--offset", "offset_text", default="start", show_default=True,
              metavar="START[:STOP]",
              help="start, end, N, -N (N before the end), @TIMESTAMP_MS; ':end' or ':N' stops"
                   " there (e.g. -o :end reads what is there now)")
@click.option("-p", "--partition", "partitions", type=click.IntRange(min=0), multiple=True,
              help="partition to read, repeatable (default: all; not with -g)")
@click.option("-g", "--group", help="consume in this consumer group, committing offsets")
@click.option("-n", "--num", type=click.IntRange(min=1), help="stop after this many records")
@click.option("-e", "--end", "stop_at_end", is_flag=True,
              help="stop at the end of the partitions (as of when consume starts)")
@click.option("-f", "--format", "fmt", default="%v\\n", show_default=True,
              help="%t topic, %p partition, %o offset, %d timestamp ms, %k key, %v value,"
                   " %h headers (k=v,k=v), %K %V %H lengths/count; \\n \\t escapes")
@brokers_option
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="print one JSON object per record")
def consume(topic_name: str, offset_text: str, partitions: tuple[int, ...], group: str | None,
            num: int | None, stop_at_end: bool, fmt: str, brokers: str, timeout: float,
            as_json: bool) -> None:
    """Consume records from TOPIC and print them, one per format.

    Without -n, --end or ':STOP' it follows the topic until Ctrl-C; with one of them, --timeout
    seconds without a record ends it with exit 1. In a group (-g) the offsets of the printed
    records are committed.

    \b
    redshank topic consume t1 -n 10
    redshank topic consume t1 -o :end -f '%p/%o %k=%v %h\\n'
    redshank topic consume t1 -g app -o end
    """
    from confluent_kafka import Consumer

    offsets = parse_offsets(offset_text)
    if stop_at_end and offsets.stop is None:
        offsets = Offsets(offsets.start, "end")
    try:
        template = compile_format(fmt)
    except FormatError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if group is not None and (partitions or not offsets.is_reset_only
                              or isinstance(offsets.stop, int)):
        raise CliError("consume -g: a group reads every partition from its committed offsets"
                       " (-o start|end only apply where none is committed; no -p, no :N)",
                       EXIT_USAGE)
    consumer = Consumer(client_config(brokers, timeout, **{
        "group.id": group or "redshank-cli", "enable.auto.commit": group is not None,
        "enable.auto.offset.store": False, "auto.commit.interval.ms": 1000,
        "auto.offset.reset": "latest" if offsets.start == "end" else "earliest",
        "enable.partition.eof": True, "fetch.wait.max.ms": 100,
        "allow.auto.create.topics": False}))
    session = _Session(consumer, topic_name, template, as_json, num,
                       offsets.stop is not None or num is not None, timeout)
    try:
        tmd = topic_metadata(consumer, topic_name, brokers, timeout)
        if group is not None:
            session.group_stop = offsets.stop == "end"
            consumer.subscribe([topic_name], on_assign=session.on_assign,
                               on_revoke=session.on_revoke, on_lost=session.on_revoke)
        else:
            chosen = sorted(set(partitions) or tmd.partitions)
            missing = [p for p in chosen if p not in tmd.partitions]
            if missing:
                raise CliError(f"topic {topic_name!r} has no partition {missing[0]}",
                               EXIT_NOT_FOUND)
            session.assign(chosen, offsets)
        session.run()
    finally:
        session.close(group is not None)


class _Session:
    """One consume run: what is left to read per partition, and the output."""

    def __init__(self, consumer: Any, topic: str, template: Template, as_json: bool,
                 num: int | None, bounded: bool, timeout: float) -> None:
        self.consumer, self.topic, self.template = consumer, topic, template
        self.as_json, self.num, self.bounded, self.timeout = as_json, num, bounded, timeout
        self.count = 0
        self.stored = 0
        self.ends: dict[int, int] = {}  # partition -> stop before this offset
        self.open: set[int] | None = None  # partitions not yet at their end (None: follow)
        self.group_stop = False  # set by consume: -g with --end
        self.warned: set[str] = set()
        self.out = sys.stdout.buffer

    def assign(self, chosen: list[int], offsets: Offsets) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

        marks = {p: self._watermarks(p) for p in chosen}
        starts: dict[int, int] = {}
        if isinstance(offsets.start, str) and offsets.start.startswith("@"):
            ms = int(offsets.start[1:])
            found = self.consumer.offsets_for_times(
                [TopicPartition(self.topic, p, ms) for p in chosen], timeout=self.timeout)
            # A timestamp after every record: offset -1, i.e. the end.
            starts = {tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition][1]
                      for tp in found}
        for p in chosen:
            lo, hi = marks[p]
            if p in starts:
                continue
            if offsets.start == "start":
                starts[p] = OFFSET_BEGINNING
            elif offsets.start == "end":
                starts[p] = OFFSET_END
            else:
                assert isinstance(offsets.start, int)
                starts[p] = offsets.start if offsets.start >= 0 else max(lo, hi + offsets.start)
        if offsets.stop is not None:
            for p in chosen:
                lo, hi = marks[p]
                self.ends[p] = hi if offsets.stop == "end" else min(int(offsets.stop), hi)
                first = {OFFSET_BEGINNING: lo, OFFSET_END: hi}.get(starts[p], starts[p])
                if first < self.ends[p]:
                    self.open = self.open or set()
                    self.open.add(p)
            self.open = self.open or set()
        self.consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in chosen])

    def on_assign(self, consumer: Any, tps: list[Any]) -> None:
        """In a group with a stop at the end: each assigned partition stays open until its
        end-of-partition event (the group's own offsets decide where reading starts)."""
        if self.group_stop:
            self.open = (self.open or set()) | {tp.partition for tp in tps}

    def on_revoke(self, consumer: Any, tps: list[Any]) -> None:
        if self.group_stop and self.open is not None:
            self.open -= {tp.partition for tp in tps}

    def _watermarks(self, partition: int) -> tuple[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            lo, hi = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=self.timeout)
        except KafkaException as exc:
            raise CliError(f"consume {self.topic}/{partition}: {exc.args[0].name()}",
                           EXIT_ERROR) from exc
        return int(lo), int(hi)

    def done(self) -> bool:
        if self.num is not None and self.count >= self.num:
            return True
        return self.open is not None and not self.open

    def run(self) -> None:
        idle_since = time.monotonic()
        while not self.done():
            msgs = self.consumer.consume(num_messages=500, timeout=0.2)
            if msgs:
                idle_since = time.monotonic()
            for msg in msgs:
                self._one(msg)
                if self.done():
                    break
            self._flush()
            if self.bounded and time.monotonic() - idle_since > self.timeout:
                want = f"{self.num}" if self.num is not None else "the end"
                raise CliError(f"consume {self.topic}: {self.count} record(s), then nothing"
                               f" for {self.timeout:g} s (wanted {want})", EXIT_ERROR)

    def _one(self, msg: Any) -> None:
        from confluent_kafka import KafkaError

        err = msg.error()
        p = msg.partition()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self._reached(p, msg.offset())
                return
            if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise CliError(f"topic {self.topic!r} does not exist", EXIT_NOT_FOUND)
            if err.fatal():
                raise CliError(f"consume {self.topic}: {err.name()}: {err.str()}", EXIT_ERROR)
            if err.name() not in self.warned:  # transient (a broker away): librdkafka retries
                self.warned.add(err.name())
                click.echo(f"redshank: consume {self.topic}: {err.name()} (retrying)", err=True)
            return
        end = self.ends.get(p)
        if end is not None and msg.offset() >= end:
            self._reached(p, msg.offset())
            return
        self._write(msg)
        self.count += 1
        self.consumer.store_offsets(msg)
        self.stored += 1
        if end is not None and msg.offset() + 1 >= end:
            self._reached(p, msg.offset() + 1)

    def _reached(self, partition: int, offset: int) -> None:
        if self.open is None:
            return
        end = self.ends.get(partition)
        if end is None or offset >= end:
            self.open.discard(partition)

    def _write(self, msg: Any) -> None:
        _kind, ts = msg.timestamp()
        record = OutputRecord(self.topic, msg.partition(), msg.offset(), ts, msg.key(),
                              msg.value(), msg.headers() or ())
        if self.as_json:
            self.out.write(json.dumps(_as_json(record)).encode() + b"\n")
        else:
            self.out.write(record.render(self.template))

    def _flush(self) -> None:
        try:
            self.out.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the exit quiet
            self.num = self.count

    def close(self, commit: bool) -> None:
        from confluent_kafka import KafkaException

        try:
            self._flush()
            if commit and self.stored:
                self.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            from confluent_kafka import KafkaError

            if exc.args[0].code() != KafkaError._NO_OFFSET:  # auto-commit got there first
                raise CliError(f"consume {self.topic}: commit failed: {exc.args[0].name()}",
                               EXIT_ERROR) from exc
        finally:
            self.consumer.close()


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", errors="backslashreplace")


def _as_json(r: OutputRecord) -> dict[str, Any]:
    return {"topic": r.topic, "partition": r.partition, "offset": r.offset,
            "timestamp": r.timestamp, "key": _text(r.key), "value": _text(r.value),
            "headers": [[k, _text(v)] for k, v in r.headers]}
