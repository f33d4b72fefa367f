"""A transform instance's pending output: what `process` returned, checked, routed to its output
partition and encoded there and then into that partition's batch.

Per record, the work a transform's own output costs the broker is: check each `Output`, pick its
partition (`output_partition`), append its encoded parts to that partition's `OutputBatch`. No
intermediate list of outputs per flush, no regrouping, no second pass to encode: the batch
bytes are ready when the buffer is taken (profiled: the regrouping and the encode pass were a
quarter of an identity transform's Python time).

Must not know: I/O, cores, the produce path (the caller looks the partition counts up and
produces what `take` returns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

from redshank.actors.embed.transform import Output
from redshank.actors.transform_spec import OUTPUT_BATCH_BYTES, OutputBatch, output_partition

__all__ = ["PendingOutput", "checked"]

# What an output of a topic not found is counted as, against the flush size.
_OVERHEAD = 64


def checked(result: object, outputs: tuple[str, ...]) -> list[Output]:
    """What `process` returned (an iterable of `Output`, one `Output`, or None), as checked
    outputs (a generator runs here, inside the caller's try; a wrong output raises TypeError
    there, a failure of `process`)."""
    if result is None:
        return []
    outs: list[object] = (
        [result] if isinstance(result, Output) else list(cast(Iterable[object], result)))
    for out in outs:
        if not isinstance(out, Output):
            raise TypeError(f"process produced {type(out).__name__}, not Output")
        value: object = out.value
        if value is not None and not isinstance(value, bytes):
            raise _not_bytes(value)
        key: object = out.key
        if key is not None and not isinstance(key, bytes):
            raise _not_bytes(key)
        if out.topic is not None and out.topic not in outputs:
            raise TypeError(f"Output topic {out.topic!r} is not an output of this transform "
                            f"({', '.join(outputs)})")
    return cast(list[Output], outs)


def _not_bytes(field: object) -> TypeError:
    return TypeError(f"Output value and key must be bytes or None, not {type(field).__name__}")


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
        self._batches: dict[tuple[str, int], OutputBatch] = {}
        # Batches of a partition that reached OUTPUT_BATCH_BYTES, in the order they filled.
        self._full: list[tuple[tuple[str, int], bytes]] = []
        self.unknown: list[tuple[int, Output]] = []
        self.size = 0  # bytes pending (encoded, or estimated for the unknown)

    def add(self, partition: int, result: object) -> int:
        """`process`'s result for a record of input `partition`, checked first (TypeError:
        nothing of it is added); -> how many outputs."""
        outs = checked(result, self._outputs)
        for out in outs:
            self.put(partition, out)
        return len(outs)

    def put(self, partition: int, out: Output) -> None:
        """One checked output of a record of input `partition`."""
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
            self._full.append((key, batch.encode()))  # sent before the partition's next one
            batch = self._batches[key] = OutputBatch()
        self.size += batch.add(out.key, out.value, out.headers,
                               self._now if out.timestamp is None else out.timestamp)

    def take(self) -> tuple[list[tuple[tuple[str, int], bytes]], list[tuple[int, Output]]]:
        """(each output partition's encoded batch, the outputs of topics not found); the
        buffer is empty after."""
        batches = self._full
        batches += [(key, batch.encode()) for key, batch in self._batches.items()]
        unknown = self.unknown
        self._batches, self._full, self.unknown, self.size = {}, [], [], 0
        return batches, unknown


def _bound(out: Output) -> int:
    """At least the bytes `out` takes in a batch (each varint at most 5 bytes, 10 for the
    timestamp delta; the attributes byte)."""
    size = len(out.value or b"") + len(out.key or b"") + 31
    for hkey, hvalue in out.headers:
        size += len(hkey.encode()) + len(hvalue or b"") + 10
    return size
