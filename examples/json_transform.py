"""A transform that runs inside the broker: keep the orders above 100 and reshape them.

Each input record is a JSON order such as `{"id": "o-1", "customer": "ada", "amount": 120.5}`.
Orders with `amount` above 100 go to the first output topic as
`{"id": "o-1", "customer": "ada", "amount_cents": 12050}`, keyed by the order id; the others are
dropped. A record that is not such an order (not JSON, not an object, a field missing or of the
wrong type, no value) is counted and skipped, never an exception: a transform that raises is
retried, and a bad record would be retried forever. With a second output topic, such records are
also copied there unchanged (a dead-letter topic), with the reason in a `reason` header.

Deploy it (the broker runs one instance per input partition, on the core owning it):

    redshank topic create orders --partitions 2
    redshank topic create big-orders --partitions 2
    redshank topic create bad-orders --partitions 2
    cd examples && redshank transform deploy --name big-orders --input orders \\
        --output big-orders,bad-orders json_transform:BigOrders

This file is shipped to the broker as the transform's single source file: it imports only the
standard library and the transform API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal

from redshank.actors.embed.transform import InputRecord, Output, Transform, TransformContext

THRESHOLD = Decimal(100)
CENT = Decimal("0.01")


class Malformed(ValueError):
    """The record is not an order; the message says why (it becomes the `reason` header)."""


def parse_order(value: bytes | None) -> tuple[str, str, Decimal]:
    """(id, customer, amount) of a JSON order, or Malformed."""
    if value is None:
        raise Malformed("no value")
    try:
        order = json.loads(value, parse_float=Decimal, parse_int=Decimal)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise Malformed("not JSON") from None
    if not isinstance(order, dict):
        raise Malformed("not a JSON object")
    oid, customer, amount = order.get("id"), order.get("customer"), order.get("amount")
    if not isinstance(oid, str) or not isinstance(customer, str):
        raise Malformed("id and customer must be strings")
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise Malformed("amount must be a number")
    return oid, customer, amount


class BigOrders(Transform):
    """Orders above THRESHOLD, reshaped; malformed records counted (and dead-lettered)."""

    def setup(self, ctx: TransformContext) -> None:
        outputs = tuple(ctx.output_topics)
        self.dead_letter = outputs[1] if len(outputs) > 1 else None
        self.kept = self.dropped = self.malformed = 0

    def process(self, record: InputRecord) -> Iterator[Output]:
        try:
            oid, customer, amount = parse_order(record.value)
        except Malformed as exc:
            self.malformed += 1
            if self.dead_letter is not None:
                yield Output(value=record.value, key=record.key, topic=self.dead_letter,
                             headers=(("reason", str(exc).encode()),))
            return
        if amount <= THRESHOLD:
            self.dropped += 1
            return
        self.kept += 1
        cents = int((amount / CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        body = {"id": oid, "customer": customer, "amount_cents": cents}
        yield Output(value=json.dumps(body, separators=(",", ":")).encode(), key=oid.encode())
