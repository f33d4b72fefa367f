"""A transform instance's pending output: what `process` returned, checked, routed to its output
partition and encoded there and then into that partition's batch.

Per record, the work a transform's own output costs the broker is: check each `Output`, pick its
partition (`output_partition`), append its encoded parts to that partition's `OutputBatch`. An
`InputRecord` in the result is that record forwarded: unless it was parsed, its key, value and
headers are copied into the batch as the input stores them (`OutputBatch.add_raw`), not decoded
and encoded again. No
intermediate list of outputs per flush, no regrouping, no second pass to encode: the batch
bytes are ready when the buffer is taken (profiled: the regrouping and the encode pass were a
quarter of an identity transform's Python time).

The output is an idempotent producer's (KIP-98), as a client's with enable.idempotence:
`OutputSequencer` holds the instance's producer id and epoch and numbers each output
partition's batches as they are taken, so a partition's producer-state table refuses a batch
that would land after a gap (OUT_OF_ORDER_SEQUENCE_NUMBER: an earlier flush to it failed and
is produced again first) and answers a retry of a batch it already holds as a duplicate.

Must not know: I/O, cores, the produce path (the caller looks the partition counts up and
produces what `take` returns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from redshank.actors.embed.transform import InputRecord, Output
from redshank.actors.transform_spec import OUTPUT_BATCH_BYTES, OutputBatch, output_partition
from redshank.protocol.varint import decode_varint

Buffer = bytes | bytearray | memoryview

OutputKey = tuple[str, int]
_EPOCH_MAX = 2**15 - 1  # int16 on the wire
_SEQUENCE_MAX = 2**31 - 1  # int32 on the wire

__all__ = ["OutputSequencer", "PendingOutput", "checked"]

# What an output of a topic not found is counted as, against the flush size.
_OVERHEAD = 64


def checked(result: object, outputs: tuple[str, ...]) -> list[Output | InputRecord]:
    """What `process` returned (an iterable of `Output` or `InputRecord`, one of them, or None),
    as checked outputs (a generator runs here, inside the caller's try; a wrong output raises
    TypeError there, a failure of `process`). An `InputRecord`: that record, forwarded."""
    if result is None:
        return []
    outs: list[object] = (
        [result] if isinstance(result, Output | InputRecord)
        else list(cast(Iterable[object], result)))
    for out in outs:
        if isinstance(out, InputRecord):
            continue
        if not isinstance(out, Output):
            raise TypeError(
                f"process produced {type(out).__name__}, not an Output or InputRecord")
        value: object = out.value
        if value is not None and not isinstance(value, bytes):
            raise _not_bytes(value)
        key: object = out.key
        if key is not None and not isinstance(key, bytes):
            raise _not_bytes(key)
        if out.topic is not None and out.topic not in outputs:
            raise TypeError(f"Output topic {out.topic!r} is not an output of this transform "
                            f"({', '.join(outputs)})")
    return cast(list[Output | InputRecord], outs)


def _not_bytes(field: object) -> TypeError:
    return TypeError(f"Output value and key must be bytes or None, not {type(field).__name__}")


class OutputSequencer:
    """An instance's producer identity: `producer_id` (allocated as InitProducerId does, per
    instance incarnation), `epoch`, and the next sequence of each output partition.

    Invariant: the sequences handed out for a partition at this epoch are 0..next-1, each
    batch's in the order `stamp` was called, with no gap; a partition's first batch at an
    epoch (sequence 0) is `opening`: the producer-state table accepts an epoch it has not
    seen at any sequence (as Kafka does for a producer whose state expired), so until that
    batch is acknowledged a later one could land first. The caller holds the partition's next
    batch back until the opening one is acknowledged (`take_opening`)."""

    __slots__ = ("_next", "_opening", "epoch", "producer_id")

    def __init__(self, producer_id: int, epoch: int = 0) -> None:
        self.producer_id = producer_id
        self.epoch = epoch
        self._next: dict[OutputKey, int] = {}
        self._opening = False

    def new_epoch(self) -> bool:
        """Start again at sequence 0 in every partition, at the next epoch (what the instance
        writes after it starts over from its committed offset; the table then refuses the
        older epoch's batches still in flight). False: the epoch is exhausted (int16), a new
        producer id is needed."""
        if self.epoch >= _EPOCH_MAX:
            return False
        self.epoch += 1
        self._next.clear()
        return True

    def stamp(self, key: OutputKey, batch: OutputBatch) -> memoryview:
        """`batch` encoded as the partition's next batch of this producer and epoch."""
        seq = self._next.get(key, 0)
        if seq + batch.count > _SEQUENCE_MAX:  # wrapping would be legal (Kafka) but is
            raise OverflowError(f"sequence space of {key} exhausted")  # never reached here
        if seq == 0:
            self._opening = True
        self._next[key] = seq + batch.count
        return batch.encode(self.producer_id, self.epoch, seq)

    def take_opening(self) -> bool:
        """Whether a partition's first batch at this epoch was stamped since the last call."""
        opening, self._opening = self._opening, False
        return opening


class PendingOutput:
    """The outputs of the records processed since the last `take`, one `OutputBatch` per output
    (topic, partition), or more when one would pass OUTPUT_BATCH_BYTES; outputs of a topic
    whose partition count is not known (not found) kept as they are. `counts`: each output
    topic's partition count (None: not found); `now`: the timestamp (ms) of outputs that set
    none."""

    __slots__ = ("_batches", "_counts", "_default", "_full", "_now", "_outputs", "size",
                 "unknown")

    def __init__(self, outputs: tuple[str, ...], counts: Mapping[str, int | None],
                 now: int) -> None:
        self._outputs = outputs
        self._default = outputs[0]
        self._counts = counts
        self._now = now
        self._batches: dict[OutputKey, OutputBatch] = {}
        # Batches of a partition that reached OUTPUT_BATCH_BYTES, in the order they filled.
        self._full: list[tuple[OutputKey, OutputBatch]] = []
        self.unknown: list[tuple[int, Output]] = []
        self.size = 0  # bytes pending (encoded, or estimated for the unknown)

    def add(self, partition: int, result: Any) -> int:
        """`process`'s result for a record of input `partition`, checked first (TypeError:
        nothing of it is added; a generator runs here, so what it raises comes from here
        too); -> how many outputs.

        The per-record path of every transform: `checked` and `put` inline for the common
        result of one `Output` of known topic (their calls and `_bound`'s were a tenth of an
        identity transform's CPU), `forward` for one `InputRecord` (returned or yielded);
        anything else through them."""
        if result is None:
            return 0
        if isinstance(result, Output):
            out = result
        elif type(result) is InputRecord:
            return self.forward(partition, result)
        else:
            outs: list[object] = list(result)  # (not `cast`: a call per record)
            if len(outs) != 1 or type(outs[0]) is not Output:
                if len(outs) == 1 and type(outs[0]) is InputRecord:
                    return self.forward(partition, outs[0])
                checked_outs = checked(outs, self._outputs)
                for one in checked_outs:
                    self.put(partition, one)
                return len(checked_outs)
            out = outs[0]
        value, key, headers, topic = out.value, out.key, out.headers, out.topic
        if ((value is not None and type(value) is not bytes)
                or (key is not None and type(key) is not bytes)
                or (topic is not None and topic not in self._outputs)):
            checked(out, self._outputs)  # raises the TypeError that says why
            # (a subclass of bytes passes there)
        if topic is None:
            topic = self._default
        count = self._counts.get(topic)
        if count is None:
            self.put(partition, out)
            return 1
        target = (topic, partition if partition < count
                  else output_partition(partition, key, count))
        batch = self._batches.get(target)
        if batch is None:
            batch = self._batches[target] = OutputBatch()
        else:
            bound = batch.size + 31 + (len(value) if value is not None else 0) + (
                len(key) if key is not None else 0)
            if headers:
                bound += _bound(out) - 31 - len(value or b"") - len(key or b"")
            if bound > OUTPUT_BATCH_BYTES:
                self._full.append((target, batch))  # sent before the partition's next one
                batch = self._batches[target] = OutputBatch()
        ts = out.timestamp
        self.size += batch.add(key, value, headers, self._now if ts is None else ts)
        return 1

    def forward(self, partition: int, record: InputRecord) -> int:
        """`record` of input `partition` forwarded (its key, value, headers and timestamp, to
        the first output topic); -> 1. Not parsed when it was not read: its encoded key, value
        and headers are copied into the batch as they are (a copy: the batch never holds the
        input chunk); a record already parsed, or one that goes to a topic not found, is
        encoded from its fields."""
        data = record._data
        topic = self._default
        count = self._counts.get(topic)
        if data is None or count is None:
            self.put(partition, record)
            return 1
        pos = record._pos
        if partition < count:
            target = (topic, partition)
        else:  # by the key (not parsed: its bytes only, as `_parse` would read them)
            target = (topic, output_partition(partition, _key_at(data, pos), count))
        tail = data[pos:record._end]  # a copy (`data` is bytes; else copied below)
        if type(tail) is not bytes:  # (a memoryview's slice would hold the chunk)
            tail = bytes(tail)
        batch = self._batches.get(target)
        if batch is None:
            batch = self._batches[target] = OutputBatch()
        elif batch.size + len(tail) + 21 > OUTPUT_BATCH_BYTES:  # + the varints, attributes
            self._full.append((target, batch))  # sent before the partition's next one
            batch = self._batches[target] = OutputBatch()
        self.size += batch.add_raw(tail, record.timestamp)
        return 1

    def put(self, partition: int, out: Output | InputRecord) -> None:
        """One checked output of a record of input `partition` (an `InputRecord`: forwarded)."""
        if isinstance(out, InputRecord):
            if out._data is not None and self._counts.get(self._default) is not None:
                self.forward(partition, out)
                return
            # Its fields: parsed (if it was not yet), the input's timestamp kept.
            out = Output(out.value, out.key, out.headers, None, out.timestamp)
        topic = out.topic or self._default
        count = self._counts.get(topic)
        if count is None:
            self.unknown.append((partition, out))
            self.size += len(out.value or b"") + len(out.key or b"") + _OVERHEAD
            return
        key = (topic, output_partition(partition, out.key, count))
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = OutputBatch()
        elif batch.size + _bound(out) > OUTPUT_BATCH_BYTES:
            self._full.append((key, batch))  # sent before the partition's next one
            batch = self._batches[key] = OutputBatch()
        self.size += batch.add(out.key, out.value, out.headers,
                               self._now if out.timestamp is None else out.timestamp)

    def take(self, seq: OutputSequencer | None = None
             ) -> tuple[list[tuple[OutputKey, memoryview]], list[tuple[int, Output]]]:
        """(each output partition's encoded batch, in the order they are to be written; the
        outputs of topics not found); the buffer is empty after. `seq`: the batches are an
        idempotent producer's, numbered by it (None: no producer)."""
        full = self._full
        full += self._batches.items()
        batches: list[tuple[OutputKey, memoryview]]
        if seq is None:
            batches = [(key, batch.encode()) for key, batch in full]
        else:
            batches = [(key, seq.stamp(key, batch)) for key, batch in full]
        unknown = self.unknown
        self._batches, self._full, self.unknown, self.size = {}, [], [], 0
        return batches, unknown


def _key_at(data: Buffer, pos: int) -> bytes | None:
    """The key of the record whose key length varint is at `pos` (as `InputRecord._parse`
    reads it: a negative length is a null key)."""
    size, pos = decode_varint(data, pos)
    return bytes(data[pos:pos + size]) if size >= 0 else None


def _bound(out: Output) -> int:
    """At least the bytes `out` takes in a batch (each varint at most 5 bytes, 10 for the
    timestamp delta; the attributes byte)."""
    size = len(out.value or b"") + len(out.key or b"") + 31
    for hkey, hvalue in out.headers:
        size += len(hkey.encode()) + len(hvalue or b"") + 10
    return size
