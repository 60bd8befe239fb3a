"""Per-account order-rate throttle (token bucket, one second of burst)."""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("_last", "_tokens", "rate")

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._last = now

    def set_rate(self, rate: int) -> None:
        self.rate = rate
        self._tokens = min(self._tokens, float(rate))

    def try_take(self, now: float) -> bool:
        # A clock reading older than the last one (another time source) must not drain the bucket.
        # (The same arithmetic as max/min, without their calls: this runs for every order.)
        last = self._last
        if now > last:
            elapsed = now - last
            self._last = now
        else:
            elapsed = 0.0
        # Token counts are not money; a float is exact enough for a throttle.
        rate = self.rate
        tokens = self._tokens + elapsed * rate
        if tokens > rate:
            tokens = float(rate)
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False
