"""The volatility rule's decision, per rule and symbol: pure, no I/O.

Fires after `confirmation` consecutive mark ticks at or above the threshold, once per
episode; the episode ends (and its action is undone) once the move has stayed below the
release level for the cooldown. Timer evaluations only advance the calm clock: confirmation
counts ticks, so the same mark is never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from riskgate.monitor.marks import Move
from riskgate.monitor.rules import Rule


class Verdict(Enum):
    NONE = "none"
    FIRE = "fire"
    CLEAR = "clear"


@dataclass
class Tracker:
    breaches: int = 0
    calm_since_ms: int | None = None

    def evaluate(self, rule: Rule, move: Move, now_ms: int, tick: bool, episode_open: bool) -> Verdict:
        if tick:
            self.breaches = self.breaches + 1 if move.at_least(rule.threshold) else 0
        if move.below(rule.calm_below):
            if self.calm_since_ms is None:
                self.calm_since_ms = now_ms
        else:
            self.calm_since_ms = None
        if episode_open:
            if self.calm_since_ms is not None and now_ms - self.calm_since_ms >= rule.cooldown_ms:
                return Verdict.CLEAR
            return Verdict.NONE
        if rule.enabled and self.breaches >= rule.confirmation:
            # A new episode needs a new confirmation.
            self.breaches = 0
            return Verdict.FIRE
        return Verdict.NONE
