"""The RPC client's reconnect backoff: grows, is capped, is jittered by the injected rng, and
starts over after a success."""

from __future__ import annotations

import random

import pytest

from redshank.actors.rpc import Backoff


def test_grows_then_caps() -> None:
    b = Backoff(base_s=0.1, cap_s=1.0, jitter=0.0, rng=random.Random(1))
    assert [round(b.failed(), 6) for _ in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for _ in range(10_000):  # no overflow however long a peer stays away
        assert b.failed() == 1.0


def test_jitter_is_bounded_and_seeded() -> None:
    delays = [Backoff(base_s=1, cap_s=1, jitter=0.5, rng=random.Random(s)).failed()
              for s in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100
    again = [Backoff(base_s=1, cap_s=1, jitter=0.5, rng=random.Random(s)).failed()
             for s in range(200)]
    assert again == delays


def test_success_starts_over() -> None:
    b = Backoff(base_s=0.1, cap_s=5.0, jitter=0.0)
    b.failed()
    b.failed()
    b.succeeded()
    assert b.failed() == pytest.approx(0.1)


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="bad backoff"):
        Backoff(base_s=2.0, cap_s=1.0)
