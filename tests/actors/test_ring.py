"""The SPSC ring: framing, wrap-around, full ring, in-place reads, handshake flags, corruption."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from redshank.actors.runtime.ring import (
    HEADER_SIZE,
    SMALL_FRAME,
    RingConsumer,
    RingCorruptError,
    RingProducer,
    RingSegment,
)


@pytest.fixture
def segment() -> Iterator[RingSegment]:
    name = f"/rstest-ring-{os.getpid()}-{random.randrange(1 << 30)}"
    seg = RingSegment(name, 4096, create=True)
    try:
        yield seg
    finally:
        seg.close()
        RingSegment.unlink(name)
        assert not os.path.exists(f"/dev/shm{name}")


def test_frames_survive_many_wraparounds_in_order(segment: RingSegment) -> None:
    producer, consumer = RingProducer(segment), RingConsumer(segment)
    rng = random.Random(5)
    sent: list[bytes] = []
    received: list[bytes] = []
    wraps = 0
    for i in range(5000):
        payload = bytes([i & 0xFF]) * rng.randrange(0, 700)
        while not producer.try_write(payload[:3], payload[3:]):
            producer.publish()
            received.extend(bytes(v) for v in consumer.read())
            consumer.release()
        sent.append(payload)
        if rng.random() < 0.3:
            producer.publish()
            before = consumer._read_to
            received.extend(bytes(v) for v in consumer.read())
            wraps += (consumer._read_to // segment.capacity) > (before // segment.capacity)
            consumer.release()
    producer.publish()
    received.extend(bytes(v) for v in consumer.read())
    consumer.release()
    assert received == sent
    assert wraps > 100
    assert segment.depth == 0


def test_full_ring_refuses_and_never_overwrites(segment: RingSegment) -> None:
    producer, consumer = RingProducer(segment), RingConsumer(segment)
    written = 0
    while producer.try_write(b"x" * 500):
        written += 1
    assert written == segment.capacity // 512
    assert not producer.try_write(b"y")
    producer.publish()
    frames = consumer.read()
    assert [bytes(f) for f in frames] == [b"x" * 500] * written
    del frames
    consumer.release()
    assert producer.try_write(b"y")


def test_in_place_views_stay_valid_until_release(segment: RingSegment) -> None:
    producer, consumer = RingProducer(segment), RingConsumer(segment)
    big = bytes(range(256)) * 7
    assert producer.try_write(big)
    producer.publish()
    (view,) = consumer.read()
    assert view.obj is not None and view == big  # a view into the mapping, not a copy
    # The producer cannot reuse that space before the consumer releases it.
    filler = 0
    while producer.try_write(b"z" * 200):
        filler += 1
    assert bytes(view) == big
    consumer.release()


def test_oversized_frame_is_refused(segment: RingSegment) -> None:
    producer = RingProducer(segment)
    with pytest.raises(ValueError):
        producer.try_write(b"x" * (segment.max_payload + 1))
    assert producer.try_write(b"x" * segment.max_payload)


def test_sleep_and_wait_flags_drive_the_doorbells(segment: RingSegment) -> None:
    producer, consumer = RingProducer(segment), RingConsumer(segment)
    consumer.set_sleeping(False)
    producer.try_write(b"a")
    assert producer.publish() is False  # consumer awake: no doorbell
    consumer.set_sleeping(True)
    producer.try_write(b"b")
    assert producer.publish() is True  # consumer asleep: ring it
    assert producer.publish() is False  # nothing new to publish
    while producer.try_write(b"c" * 1000):
        pass
    assert producer.wait_for_room() is False  # still full: producer waits
    consumer.read()
    assert consumer.release() is True  # consumer frees space and must ring the producer
    assert consumer.release() is False


def test_corrupt_sequence_is_detected(segment: RingSegment) -> None:
    producer, consumer = RingProducer(segment), RingConsumer(segment)
    producer.try_write(b"abc")
    producer.publish()
    segment.data_words[0] = 3 | (7 << 32)  # sequence 7 where 0 is due
    with pytest.raises(RingCorruptError):
        consumer.read()


def test_attach_by_name_sees_the_same_memory(segment: RingSegment) -> None:
    other = RingSegment(segment.name)
    try:
        assert other.capacity == segment.capacity
        producer, consumer = RingProducer(segment), RingConsumer(other)
        producer.try_write(b"hello")
        producer.publish()
        assert [bytes(v) for v in consumer.read()] == [b"hello"]
        consumer.release()
    finally:
        other.close()


def test_bad_segments_are_refused() -> None:
    with pytest.raises(ValueError):
        RingSegment("/rstest-bad", 5000, create=True)
    assert HEADER_SIZE % 64 == 0


def test_staged_and_written_frames_keep_order_across_wraparounds(segment: RingSegment) -> None:
    # Small frames go into batch frames (stage), others straight in (try_write), interleaved.
    producer, consumer = RingProducer(segment), RingConsumer(segment)
    rng = random.Random(11)
    sent: list[bytes] = []
    received: list[bytes] = []
    batches = 0

    def drain() -> None:
        received.extend(bytes(v) for v in consumer.read())
        consumer.release()

    for i in range(8000):
        payload = bytes([i & 0xFF]) * rng.choice((0, 1, 5, 30, 200, 512, 700))
        if len(payload) <= SMALL_FRAME:
            buffer = bytearray(payload[2:])  # reused by the caller after stage() returns
            while not producer.stage(payload[:2], memoryview(buffer)):
                producer.publish()
                drain()
            buffer[:] = b"?" * len(buffer)
        else:
            while not producer.try_write(payload):
                producer.publish()
                drain()
        sent.append(payload)
        if rng.random() < 0.1:
            batches += len(producer._batch) > 3
            producer.publish()
            drain()
    producer.publish()
    drain()
    assert received == sent
    assert batches > 50
    assert consumer.frames == producer.frames == len(sent)
    assert segment.depth == 0


def test_a_full_ring_refuses_a_staged_frame_and_keeps_the_batch(segment: RingSegment) -> None:
    producer, consumer = RingProducer(segment), RingConsumer(segment)
    staged = 0
    while producer.stage(b"s" * 100):
        staged += 1
    assert 0 < staged < segment.capacity // 100
    assert producer.unpublished and producer.staged_bytes > segment.capacity // 2
    assert not producer.try_write(b"t" * 100)  # the batch was written: no room for more
    producer.publish()
    frames = consumer.read()
    assert [bytes(f) for f in frames] == [b"s" * 100] * staged
    del frames
    consumer.release()
    assert producer.stage(b"u")


def test_corrupt_batch_frame_is_detected(segment: RingSegment) -> None:
    producer, consumer = RingProducer(segment), RingConsumer(segment)
    producer.stage(b"abc")
    producer.stage(b"defg")
    producer.publish()
    segment.data[8:12] = (1000).to_bytes(4, "little")  # first length runs past the batch
    with pytest.raises(RingCorruptError):
        consumer.read()
