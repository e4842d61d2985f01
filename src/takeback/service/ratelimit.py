"""A token bucket per API key.

Each key owns a bucket of ``burst`` tokens refilled at ``rate`` tokens per
second; a request takes one token, or is refused with ``429`` and a
``Retry-After`` of the seconds until a token is back. Buckets live in memory,
per process: with N nodes behind a load balancer a key gets up to N times the
rate (set it accordingly).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Per-key token buckets.

    Parameters
    ----------
    rate : float
        Tokens added per second.
    burst : int
        Bucket size: requests a fresh key may make at once.
    clock : callable, optional
        Monotonic seconds (tests pass a fake clock).

    Examples
    --------
    >>> now = [0.0]
    >>> limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    >>> [limiter.take("k") for _ in range(3)]
    [0.0, 0.0, 1.0]
    >>> now[0] = 1.0
    >>> limiter.take("k")
    0.0
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens from ``key``'s bucket.

        Returns
        -------
        float
            0.0 when the request may go ahead, else the seconds to wait (the
            tokens are then not taken).
        """
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (cost - tokens) / self.rate

    def give_back(self, key: str, cost: float = 1.0) -> None:
        """Return tokens taken for a request that another handler will charge again."""
        with self._lock:
            found = self._buckets.get(key)
            if found is not None:
                self._buckets[key] = (min(float(self.burst), found[0] + cost), found[1])

    @staticmethod
    def retry_after(wait: float) -> str:
        """``wait`` seconds as a ``Retry-After`` header value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait)))
