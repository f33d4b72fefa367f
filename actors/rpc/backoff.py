"""Reconnect backoff of the internal RPC client: exponential, capped, jittered.

Concern: how long to wait before the next connection attempt after `n` failed ones. Pure: the
randomness is an injected `random.Random` and it reads no clock (the client keeps the time).
Must not know: sockets, loops.
"""

from __future__ import annotations

import random
from dataclasses import field

from redshank.protocol.fast_dataclass import dataclass

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """delay(n) = min(cap, base * multiplier**(n-1)) scaled by a factor drawn in [1 - jitter, 1]:
    never above `cap_s`, so a peer that comes back is retried within `cap_s`, and jittered so the
    nodes that lost the same peer do not reconnect in lockstep."""

    base_s: float = 0.05
    cap_s: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.base_s <= self.cap_s and self.multiplier >= 1 and 0 <= self.jitter < 1):
            raise ValueError(f"bad backoff {self.base_s}/{self.cap_s}/{self.multiplier}/"
                             f"{self.jitter}")

    def failed(self) -> float:
        """Count one more failed attempt; the delay before the next one."""
        self.failures += 1
        # Exponent capped: multiplier**n overflows a float long before a peer is given up on.
        raw = self.base_s * self.multiplier ** min(self.failures - 1, 64)
        return min(self.cap_s, raw) * (1 - self.jitter * self.rng.random())

    def succeeded(self) -> None:
        self.failures = 0
