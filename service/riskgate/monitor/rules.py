"""Rules as data: what the monitor watches, when it fires, what it does, when it lets go.

A rule comes from the `[monitor]` section of the configuration (seeds, written to Redis
only where Redis has none yet) or from `UpsertRule`; Redis holds it versioned, like every
admin record. Thresholds are exact decimals (fractions: "0.05" is 5%).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

import msgspec

Scope = Literal["platform", "symbol"]
Mode = Literal["act", "alert_only"]
Severity = Literal["info", "warning", "critical"]

# The metrics and actions built so far; the account-driven rules add theirs.
METRICS = frozenset({"mark_move"})
SYMBOL_ACTIONS = {"symbol_reduce_only": "REDUCE_ONLY", "symbol_halted": "HALTED"}
ACTIONS = frozenset({*SYMBOL_ACTIONS, "alert"})
SEVERITIES = ("info", "warning", "critical")
MODES = ("act", "alert_only")
SCOPES = ("platform", "symbol")

# Marks are kept for the longest window of any rule: a day bounds that memory.
MAX_WINDOW_MS = 86_400_000
MAX_COOLDOWN_MS = 86_400_000
MAX_CONFIRMATION = 1000
_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: str
    metric: str
    threshold: Decimal
    window_ms: int
    action: str
    scope: str = "platform"
    symbol: str = ""
    # Calm again once the metric is below this (hysteresis); None = the threshold.
    release: Decimal | None = None
    # Consecutive evaluations (mark ticks) at or above the threshold before it fires: one bad
    # tick must not halt a market.
    confirmation: int = 1
    # The market must stay calm this long before the action is undone.
    cooldown_ms: int = 120_000
    severity: str = "warning"
    mode: str = "act"
    enabled: bool = True
    # A symbol rule replaces the platform rule with this id for its symbol.
    overrides: str = ""
    version: int = 0
    updated_by: str = ""
    updated_ms: int = 0

    @property
    def actor(self) -> str:
        """Who the audit, the breaker's set_by and the alert history name for this rule."""
        return f"monitor:{self.id}"

    @property
    def calm_below(self) -> Decimal:
        return self.threshold if self.release is None else self.release

    @property
    def acts(self) -> bool:
        return self.mode == "act" and self.action != "alert"


class RuleError(ValueError):
    """A rule that cannot be used, naming the field: answered INVALID_ARGUMENT."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def validate_rule(rule: Rule) -> Rule:
    """Returns the rule if every field is usable; raises RuleError naming the first that is not."""
    if not _ID.match(rule.id):
        raise RuleError("id", "1 to 64 letters, digits, '_', '-', '.', starting with a letter or digit")
    if rule.scope not in SCOPES:
        raise RuleError("scope", f"one of {', '.join(SCOPES)}")
    if rule.scope == "symbol" and not rule.symbol:
        raise RuleError("symbol", "required with scope 'symbol'")
    if rule.scope == "platform" and (rule.symbol or rule.overrides):
        raise RuleError("symbol" if rule.symbol else "overrides", "only for scope 'symbol'")
    if rule.overrides == rule.id:
        raise RuleError("overrides", "a rule cannot override itself")
    if rule.metric not in METRICS:
        raise RuleError("metric", f"one of {', '.join(sorted(METRICS))}")
    if not rule.threshold.is_finite() or not Decimal(0) < rule.threshold < Decimal(1):
        raise RuleError("threshold", "a fraction in (0, 1): '0.05' is 5%")
    if rule.release is not None and (not rule.release.is_finite()
                                     or not Decimal(0) < rule.release <= rule.threshold):
        raise RuleError("release", "a fraction in (0, threshold]")
    if not 0 < rule.window_ms <= MAX_WINDOW_MS:
        raise RuleError("window_ms", f"between 1 and {MAX_WINDOW_MS}")
    if not 1 <= rule.confirmation <= MAX_CONFIRMATION:
        raise RuleError("confirmation", f"between 1 and {MAX_CONFIRMATION}")
    if rule.action not in ACTIONS:
        raise RuleError("action", f"one of {', '.join(sorted(ACTIONS))}")
    if not 0 <= rule.cooldown_ms <= MAX_COOLDOWN_MS:
        raise RuleError("cooldown_ms", f"between 0 and {MAX_COOLDOWN_MS}")
    if rule.severity not in SEVERITIES:
        raise RuleError("severity", f"one of {', '.join(SEVERITIES)}")
    if rule.mode not in MODES:
        raise RuleError("mode", f"one of {', '.join(MODES)}")
    return rule


def default_rules() -> list[Rule]:
    """The reference's volatility pairs: 5% within 60 s -> reduce-only, 10% within 300 s ->
    halted. Confirmation over two ticks (one bad mark must not halt a market); back to normal
    after two minutes of calm (CME's pause) and five (the LULD pause)."""
    return [
        Rule(id="volatility-5pct-60s", metric="mark_move", threshold=Decimal("0.05"), window_ms=60_000,
             action="symbol_reduce_only", confirmation=2, cooldown_ms=120_000, severity="warning"),
        Rule(id="volatility-10pct-300s", metric="mark_move", threshold=Decimal("0.10"), window_ms=300_000,
             action="symbol_halted", confirmation=2, cooldown_ms=300_000, severity="critical"),
    ]


def rules_for(symbol: str, rules: dict[str, Rule]) -> list[Rule]:
    """The rules that apply to one symbol: its own, and the platform's it does not override."""
    own = [r for r in rules.values() if r.scope == "symbol" and r.symbol == symbol]
    replaced = {r.overrides for r in own if r.overrides}
    platform = [r for r in rules.values() if r.scope == "platform" and r.id not in replaced]
    return sorted([*platform, *own], key=lambda r: r.id)
