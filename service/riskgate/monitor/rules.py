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

from riskgate.engine.spec_rules import SpecError, validate_account_id

Scope = Literal["platform", "symbol", "account"]
Mode = Literal["act", "alert_only"]
Severity = Literal["info", "warning", "critical"]


class Metric(msgspec.Struct, frozen=True):
    """What a metric is about ("symbol": evaluated per symbol; "account": per account;
    "platform": once for the whole platform), the scopes a rule on it may have, the
    threshold's range, and the actions it may take."""

    about: str
    scopes: tuple[str, ...]
    actions: tuple[str, ...]
    # Threshold bounds: low < threshold <= high (high None = unbounded).
    low: Decimal
    high: Decimal | None
    unit: str
    # Measured over a window (window_ms required); else at one moment (window_ms 0).
    windowed: bool = False


_FRACTION = "a fraction in (0, 1): '0.05' is 5%"
_ACCOUNT_SCOPES = ("platform", "account")
_FLOW_ACTIONS = ("alert", "account_reduce_only")
METRICS: dict[str, Metric] = {
    # The largest move of the mark within the window, as a fraction of the reference.
    "mark_move": Metric("symbol", ("platform", "symbol"), ("symbol_reduce_only", "symbol_halted", "alert"),
                        Decimal(0), Decimal("0.999999"), _FRACTION, windowed=True),
    # Maintenance margin / margin balance, cross, at mark (1 = liquidation).
    "margin_ratio": Metric("account", ("platform", "account"),
                           ("alert", "account_reduce_only", "liquidation_candidate"),
                           Decimal(0), Decimal(1000), "a ratio: '0.8' is 80%, '1' is liquidation"),
    # The account's position notional over the symbol's open interest (the larger side).
    "concentration": Metric("account", ("platform", "account"), ("alert", "account_reduce_only"),
                            Decimal(0), Decimal(1), "a fraction in (0, 1]: '0.2' is 20% of open interest"),
    # The monitor's own inputs: the age of a held symbol's mark over its bound, and how far
    # (ms) the account-event stream is behind.
    "mark_age": Metric("symbol", ("platform", "symbol"), ("alert",), Decimal(0), Decimal(1000),
                       "a multiple of the symbol's mark_price_max_age_ms: '1' is at the bound"),
    "account_events_lag": Metric("platform", ("platform",), ("alert",), Decimal(0), None,
                                 "milliseconds behind the newest account event"),
    # Order flow and fills per account over the window (the gate's order_flow stream).
    # min_value: the fewest orders in the window before the ratio means anything (for the
    # z-score: the fewest past windows).
    "order_to_trade_ratio": Metric("flow", _ACCOUNT_SCOPES, _FLOW_ACTIONS, Decimal(0), None,
                                   "orders / fills - 1 (MiFID II RTS 9): '99' is 1,000 orders for 10 fills",
                                   windowed=True),
    "cancel_share": Metric("flow", _ACCOUNT_SCOPES, _FLOW_ACTIONS, Decimal(0), Decimal(1),
                           "a fraction of the orders in (0, 1]", windowed=True),
    "rate_limit_rejections": Metric("flow", _ACCOUNT_SCOPES, _FLOW_ACTIONS, Decimal(0), None,
                                    "a count of orders refused for the account's rate", windowed=True),
    "wash_trades": Metric("flow", _ACCOUNT_SCOPES, _FLOW_ACTIONS, Decimal(0), None,
                          "a count of fills against the account itself or its linked group", windowed=True),
    "realized_pnl": Metric("flow", _ACCOUNT_SCOPES, ("alert",), Decimal(0), None,
                           "an amount: |realised PnL| within the window", windowed=True),
    "realized_pnl_zscore": Metric("flow", _ACCOUNT_SCOPES, ("alert",), Decimal(0), None,
                                  "standard deviations of the account's own past windows", windowed=True),
    # |funding rate| per interval of a symbol (SetFundingRate), on each change of it.
    "funding_rate": Metric("symbol", ("platform", "symbol"), ("alert",), Decimal(0), Decimal("0.999999"),
                           "a fraction per funding interval in (0, 1): '0.003' is 0.3%"),
    # |sum over every position of quantity x mark x rate| over the symbols with a rate.
    "net_funding_flow": Metric("platform", ("platform",), ("alert",), Decimal(0), None,
                               "an amount in quote currency per funding interval: '100000'"),
}
SYMBOL_ACTIONS = {"symbol_reduce_only": "REDUCE_ONLY", "symbol_halted": "HALTED"}
ACCOUNT_ACTIONS = {"account_reduce_only": "REDUCE_ONLY"}
ACTIONS = frozenset(action for metric in METRICS.values() for action in metric.actions)
SEVERITIES = ("info", "warning", "critical")
MODES = ("act", "alert_only")
SCOPES = ("platform", "symbol", "account")

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
    # A symbol (or account) rule replaces the platform rule with this id for its symbol (account).
    overrides: str = ""
    # With scope "account": the account.
    account_id: str = ""
    # A floor the measured amount must also reach (concentration: the position's notional).
    min_value: Decimal | None = None
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

    @property
    def about(self) -> str:
        """"symbol", "account" or "platform": what the rule is evaluated per."""
        metric = METRICS.get(self.metric)
        return metric.about if metric is not None else ""


class RuleError(ValueError):
    """A rule that cannot be used, naming the field: answered INVALID_ARGUMENT."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def validate_rule(rule: Rule) -> Rule:
    """Returns the rule if every field is usable; raises RuleError naming the first that is not."""
    if not _ID.match(rule.id):
        raise RuleError("id", "1 to 64 letters, digits, '_', '-', '.', starting with a letter or digit")
    metric = METRICS.get(rule.metric)
    if metric is None:
        raise RuleError("metric", f"one of {', '.join(sorted(METRICS))}")
    if rule.scope not in metric.scopes:
        raise RuleError("scope", f"one of {', '.join(metric.scopes)} for metric {rule.metric}")
    if rule.scope == "symbol" and not rule.symbol:
        raise RuleError("symbol", "required with scope 'symbol'")
    if rule.scope == "account":
        try:
            validate_account_id("account_id", rule.account_id)
        except SpecError as exc:
            raise RuleError("account_id", f"{exc.message} (required with scope 'account')") from None
    if rule.scope != "symbol" and rule.symbol:
        raise RuleError("symbol", "only for scope 'symbol'")
    if rule.scope != "account" and rule.account_id:
        raise RuleError("account_id", "only for scope 'account'")
    if rule.scope == "platform" and rule.overrides:
        raise RuleError("overrides", "only for scope 'symbol' or 'account'")
    if rule.overrides == rule.id:
        raise RuleError("overrides", "a rule cannot override itself")
    high = metric.high
    if not rule.threshold.is_finite() or not metric.low < rule.threshold or (high is not None
                                                                              and rule.threshold > high):
        raise RuleError("threshold", metric.unit)
    if rule.release is not None and (not rule.release.is_finite()
                                     or not metric.low < rule.release <= rule.threshold):
        raise RuleError("release", "in (0, threshold]")
    if rule.min_value is not None and (not rule.min_value.is_finite() or rule.min_value < 0):
        raise RuleError("min_value", "a non-negative decimal")
    if metric.windowed and not 0 < rule.window_ms <= MAX_WINDOW_MS:
        raise RuleError("window_ms", f"between 1 and {MAX_WINDOW_MS}")
    if not metric.windowed and rule.window_ms:
        raise RuleError("window_ms", f"0: metric {rule.metric} is measured at one moment")
    if not 1 <= rule.confirmation <= MAX_CONFIRMATION:
        raise RuleError("confirmation", f"between 1 and {MAX_CONFIRMATION}")
    if rule.action not in metric.actions:
        raise RuleError("action", f"one of {', '.join(metric.actions)} for metric {rule.metric}")
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
    return [*volatility_rules(), *account_default_rules(), *funding_rules(), *flow_rules(), *input_rules()]


def volatility_rules() -> list[Rule]:
    return [
        Rule(id="volatility-5pct-60s", metric="mark_move", threshold=Decimal("0.05"), window_ms=60_000,
             action="symbol_reduce_only", confirmation=2, cooldown_ms=120_000, severity="warning"),
        Rule(id="volatility-10pct-300s", metric="mark_move", threshold=Decimal("0.10"), window_ms=300_000,
             action="symbol_halted", confirmation=2, cooldown_ms=300_000, severity="critical"),
    ]


def rules_for(symbol: str, rules: dict[str, Rule]) -> list[Rule]:
    """The symbol rules that apply to one symbol: its own, and the platform's it does not override."""
    own = [r for r in rules.values() if r.scope == "symbol" and r.symbol == symbol]
    # A disabled override replaces nothing: the platform rule keeps watching.
    replaced = {r.overrides for r in own if r.overrides and r.enabled}
    platform = [r for r in rules.values() if r.scope == "platform" and r.about == "symbol" and r.id not in replaced]
    return sorted([*platform, *own], key=lambda r: r.id)


def account_rules(rules: dict[str, Rule]) -> tuple[list[Rule], dict[str, list[Rule]]]:
    """The platform account rules, and each account's own (with the platform rules it replaces
    gone from its list): what `rules_for_account` combines."""
    platform = sorted((r for r in rules.values() if r.scope == "platform" and r.about == "account"),
                      key=lambda r: r.id)
    own: dict[str, list[Rule]] = {}
    for rule in rules.values():
        if rule.scope == "account":
            own.setdefault(rule.account_id, []).append(rule)
    return platform, own


def rules_for_account(account_id: str, platform: list[Rule], own: dict[str, list[Rule]]) -> list[Rule]:
    mine = own.get(account_id)
    if not mine:
        return platform
    replaced = {r.overrides for r in mine if r.overrides and r.enabled}
    return sorted([*(r for r in platform if r.id not in replaced), *mine], key=lambda r: r.id)


def account_default_rules() -> list[Rule]:
    """The reference's margin ladder and concentration: a warning at 80% margin ratio
    (Binance's advice), close-only at 90% until back below 80%, a liquidation candidate at
    100%; a position above 20% of the open interest and 250,000 notional (OKX) alerted, calm
    again below 18% for a minute (others' positions move the open interest back and forth: a
    share on the line must not raise an alert per wiggle)."""
    return [
        Rule(id="margin-ratio-warning", metric="margin_ratio", threshold=Decimal("0.8"), release=Decimal("0.7"),
             window_ms=0, action="alert", cooldown_ms=0, severity="warning"),
        Rule(id="margin-ratio-close-only", metric="margin_ratio", threshold=Decimal("0.9"), release=Decimal("0.8"),
             window_ms=0, action="account_reduce_only", cooldown_ms=0, severity="critical"),
        Rule(id="margin-ratio-liquidation", metric="margin_ratio", threshold=Decimal(1), release=Decimal("0.9"),
             window_ms=0, action="liquidation_candidate", cooldown_ms=0, severity="critical"),
        Rule(id="concentration-20pct", metric="concentration", threshold=Decimal("0.2"), release=Decimal("0.18"),
             min_value=Decimal(250_000), window_ms=0, action="alert", cooldown_ms=60_000, severity="warning"),
    ]


def input_rules() -> list[Rule]:
    """The monitor says when it is half blind: a held symbol's mark past its bound, or the
    account events more than 5 s behind."""
    return [
        Rule(id="stale-mark", metric="mark_age", threshold=Decimal(1), window_ms=0, action="alert", cooldown_ms=0,
             severity="critical"),
        Rule(id="account-events-lag", metric="account_events_lag", threshold=Decimal(5000), window_ms=0,
             action="alert", cooldown_ms=0, severity="critical"),
    ]


def flow_rules() -> list[Rule]:
    """Abuse signals and unusual PnL (reference, section 7): RTS 9's ratio (1,000 orders for
    10 fills is 99) and Binance's 99% cancel share over 10 minutes with at least 1,000
    orders, 100 rate-limit refusals within a minute, any wash fill within an hour, and
    realised PnL above 1,000,000 or 4 standard deviations of the account's past hours."""
    def alert(rule_id: str, metric: str, threshold: str, window_ms: int, minimum: str | None = None,
              severity: str = "warning") -> Rule:
        return Rule(id=rule_id, metric=metric, threshold=Decimal(threshold), window_ms=window_ms, action="alert",
                    cooldown_ms=0, severity=severity, min_value=Decimal(minimum) if minimum else None)

    return [
        alert("order-to-trade-ratio", "order_to_trade_ratio", "99", 600_000, "1000"),
        alert("cancel-share", "cancel_share", "0.99", 600_000, "1000"),
        alert("rate-limit-rejections", "rate_limit_rejections", "100", 60_000),
        alert("wash-trade", "wash_trades", "1", 3_600_000, severity="critical"),
        alert("realized-pnl", "realized_pnl", "1000000", 3_600_000),
        alert("realized-pnl-zscore", "realized_pnl_zscore", "4", 3_600_000, "10"),
    ]


def funding_rules() -> list[Rule]:
    """A funding rate at or beyond Binance's BTCUSDT cap (0.3% per interval), and the
    platform's net funding flow at or above 100,000 per interval: alerts."""
    return [
        Rule(id="funding-rate-cap", metric="funding_rate", threshold=Decimal("0.003"), window_ms=0, action="alert",
             cooldown_ms=0, severity="warning"),
        Rule(id="net-funding-flow", metric="net_funding_flow", threshold=Decimal(100_000), window_ms=0,
             action="alert", cooldown_ms=0, severity="warning"),
    ]
