"""Per-symbol mark history, bounded in time and count, and the move within a window."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

# Beyond this many marks per symbol the oldest go, even inside the longest window: a feed
# ticking faster than that would otherwise grow without bound (the move then covers the
# marks kept, and says so through `truncated`).
MAX_MARKS_PER_SYMBOL = 100_000
MOVE_QUANTUM = Decimal("1e-8")


@dataclass(frozen=True)
class Move:
    """The largest move of the latest mark from any mark in the window, as a fraction of
    that mark: (latest - reference) / reference, sign dropped. Compared exactly."""

    fraction: Decimal
    reference: Decimal
    latest: Decimal
    latest_ms: int

    def at_least(self, threshold: Decimal) -> bool:
        # |latest - reference| >= threshold x reference: no division, no rounding.
        return abs(self.latest - self.reference) >= threshold * self.reference

    def below(self, level: Decimal) -> bool:
        return not self.at_least(level)

    @property
    def shown(self) -> Decimal:
        """The fraction as published (8 places, toward zero); decisions use at_least."""
        return self.fraction.quantize(MOVE_QUANTUM, rounding=ROUND_DOWN)


class MarkHistory:
    def __init__(self, max_marks: int = MAX_MARKS_PER_SYMBOL) -> None:
        self._marks: deque[tuple[int, Decimal]] = deque(maxlen=max_marks)
        self.version = 0
        self.truncated = False

    def add(self, timestamp_ms: int, price: Decimal, version: int) -> bool:
        """Records a mark; False for one not newer than the last (a replay or a reload)."""
        if version <= self.version:
            return False
        self.version = version
        if self._marks and timestamp_ms < self._marks[-1][0]:
            # Marks carry the gate's receive time: a later version with an earlier time is a
            # clock step back on another gate process; order by version, keep time monotone.
            timestamp_ms = self._marks[-1][0]
        if len(self._marks) == self._marks.maxlen:
            self.truncated = True
        self._marks.append((timestamp_ms, price))
        return True

    @property
    def latest(self) -> tuple[int, Decimal] | None:
        return self._marks[-1] if self._marks else None

    def prune(self, keep_after_ms: int) -> None:
        """Drops marks older than the longest window, keeping the latest always."""
        while len(self._marks) > 1 and self._marks[0][0] < keep_after_ms:
            self._marks.popleft()

    def move(self, now_ms: int, window_ms: int) -> Move | None:
        """The move of the latest mark within [now - window, now]; None with no mark. A latest
        mark older than the window has moved nothing within it."""
        if not self._marks:
            return None
        latest_ms, latest = self._marks[-1]
        since = now_ms - window_ms
        if latest_ms < since:
            return Move(Decimal(0), latest, latest, latest_ms)
        low = high = latest
        for timestamp_ms, price in reversed(self._marks):
            if timestamp_ms < since:
                break
            if price < low:
                low = price
            elif price > high:
                high = price
        up = (latest - low) / low
        down = (high - latest) / high
        if up >= down:
            return Move(up, low, latest, latest_ms)
        return Move(down, high, latest, latest_ms)
