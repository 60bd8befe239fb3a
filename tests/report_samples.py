"""Daily reports to render: a busy, realistic day and an empty one. Figures are consistent with
each other (hours, symbols and reasons add up to the totals; Cover-2 >= Cover-1; margins are
fund - amount) so a view that derives anything from them is tested on sane data."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from riskgate.report.document import (
    SCHEMA_VERSION,
    ActionRow,
    AdlHead,
    Backtest,
    Case,
    Cases,
    CoverRow,
    DailyReport,
    DecisionRow,
    Decisions,
    ExposureRow,
    Exposures,
    HourDecisions,
    InsuranceFund,
    MarginRatios,
    OpenInterestRow,
    RatioBucket,
    RuleFired,
    Stress,
    StressRow,
    SymbolDecisions,
    ValueAtRisk,
    VarFigure,
)

DATE = "2025-03-14"
GENERATED_AT = "2025-03-15T00:05:12.481Z"
FUND = "4000000.00"

# (symbol, accept, reject, reduce-only)
_SYMBOLS = [
    ("BTCUSDT", 182_340, 3_912, 1_204),
    ("ETHUSDT", 121_877, 2_655, 843),
    ("SOLUSDT", 64_210, 1_874, 391),
    ("XRPUSDT", 23_455, 512, 88),
    ("DOGEUSDT", 18_002, 1_140, 57),
    ("", 0, 37, 0),  # symbol the gate did not know
]
# Share of each outcome's day by hour: quiet Asian night, busy US open.
_HOUR_WEIGHTS = [3, 2, 2, 2, 2, 3, 4, 5, 6, 6, 5, 5, 5, 6, 8, 9, 8, 7, 6, 5, 5, 4, 4, 3]
_REJECT_REASONS = [("LEVERAGE_EXCEEDS_MAX", 0.41), ("INSUFFICIENT_MARGIN", 0.33), ("POSITION_LIMIT", 0.14),
                   ("PRICE_BAND", 0.12)]


def _spread(total: int, weights: list[float]) -> list[int]:
    """total split by weights, largest remainders first, so the parts add up exactly."""
    raw = [total * w / sum(weights) for w in weights]
    parts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _decisions() -> Decisions:
    by_symbol = sorted((SymbolDecisions(s, a, r, ro) for s, a, r, ro in _SYMBOLS), key=lambda s: -s.total)
    accept, reject, reduce_only = (sum(getattr(s, f) for s in by_symbol) for f in ("accept", "reject", "reduce_only"))
    hours = zip(_spread(accept, _HOUR_WEIGHTS), _spread(reject, _HOUR_WEIGHTS),
                _spread(reduce_only, _HOUR_WEIGHTS), strict=True)
    rows: list[DecisionRow] = []
    for s in by_symbol:
        if s.accept:
            rows.append(DecisionRow(s.symbol, "ACCEPT", "", s.accept))
        if s.symbol == "":
            rows.append(DecisionRow("", "REJECT", "UNKNOWN_SYMBOL", s.reject))
        else:
            for (reason, _), count in zip(_REJECT_REASONS, _spread(s.reject, [w for _, w in _REJECT_REASONS]),
                                          strict=True):
                rows.append(DecisionRow(s.symbol, "REJECT", reason, count))
        if s.reduce_only:
            rows.append(DecisionRow(s.symbol, "REDUCE_ONLY", "MARGIN_RATIO_CLOSE_ONLY", s.reduce_only))
    return Decisions(
        total=accept + reject + reduce_only, accept=accept, reject=reject, reduce_only=reduce_only,
        by_symbol=by_symbol, by_reason=sorted(rows, key=lambda r: -r.count),
        by_hour=[HourDecisions(h, a, r, ro) for h, (a, r, ro) in enumerate(hours)],
    )


def _rules() -> list[RuleFired]:
    return [
        RuleFired("margin-ratio-close-only", "margin_ratio", "critical", 14, {"CLOSE_ONLY": 12, "": 2},
                  ["acct-7781", "acct-1204", "acct-5530", "acct-0042"]),
        RuleFired("margin-ratio-warning", "margin_ratio", "warning", 61, {"": 61},
                  ["acct-7781", "acct-1204", "acct-5530", "acct-9001", "acct-3377"]),
        RuleFired("oi-concentration", "oi_share", "warning", 3, {"": 3}, ["DOGEUSDT", "SOLUSDT"]),
        RuleFired("stress-cover-2", "stress_cover_2", "critical", 1, {"HALT_SYMBOL": 1}, ["BTCUSDT"]),
        RuleFired("reject-rate-spike", "reject_rate", "info", 5, {}, ["DOGEUSDT"]),
    ]


def _actions() -> list[ActionRow]:
    return [
        ActionRow("2025-03-14T03:12:40Z", "monitor:margin-ratio-close-only", "SET_CLOSE_ONLY", "acct-7781", "OK",
                  "margin ratio 0.9312 >= 0.9"),
        ActionRow("2025-03-14T07:45:02Z", "alice", "SET_LEVERAGE_CAP", "DOGEUSDT", "OK", "cap 20 -> 10 until review"),
        ActionRow("2025-03-14T14:31:18Z", "monitor:stress-cover-2", "HALT_SYMBOL", "BTCUSDT", "DENIED",
                  "two-person rule: needs approval"),
        ActionRow("2025-03-14T14:33:50Z", "bob", "SET_INSURANCE_FUND", "fund", "OK", "3,850,000.00 -> 4,000,000.00"),
        ActionRow("2025-03-14T19:02:11Z", "alice", "CLEAR_CLOSE_ONLY", "acct-7781", "OK",
                  "margin topped up | ratio 0.41\nsee case a-1043"),
    ]


def _cases() -> Cases:
    open_cases = [
        Case("a-1071", "margin-ratio-close-only", "critical", "OPEN", "acct-1204 BTCUSDT", "margin_ratio", "0.9544",
             "0.9", "CLOSE_ONLY", "2025-03-14T22:41:09Z", "2025-03-14T22:41:09Z", [], ""),
        Case("a-1066", "oi-concentration", "warning", "ACKNOWLEDGED", "DOGEUSDT acct-3377", "oi_share", "0.2710",
             "0.25", "", "2025-03-14T16:05:44Z", "2025-03-14T16:20:01Z",
             ["2025-03-14T16:20:01Z carol ACKNOWLEDGE: market maker, checking inventory limits"], ""),
        Case("a-1052", "stress-cover-2", "critical", "ESCALATED", "BTCUSDT", "stress_cover_2", "-1250000.00", "0",
             "HALT_SYMBOL", "2025-03-14T14:31:18Z", "2025-03-14T15:02:37Z",
             ["2025-03-14T14:40:12Z bob ACKNOWLEDGE: fund top-up requested",
              "2025-03-14T15:02:37Z bob ESCALATE: -30% grid still uncovered after top-up, CRO informed"], ""),
    ]
    resolved = [
        Case("a-1043", "margin-ratio-close-only", "critical", "RESOLVED", "acct-7781 BTCUSDT", "margin_ratio",
             "0.9312", "0.9", "CLOSE_ONLY", "2025-03-14T03:12:40Z", "2025-03-14T19:02:11Z",
             ["2025-03-14T03:20:00Z dave ACKNOWLEDGE: account contacted",
              "2025-03-14T19:02:11Z alice RESOLVE: collateral received"],
             "Client deposited 250,000 USDT; ratio 0.41, close-only cleared."),
        Case("a-1039", "reject-rate-spike", "info", "RESOLVED", "DOGEUSDT", "reject_rate", "0.071", "0.05", "",
             "2025-03-14T01:55:00Z", "2025-03-14T02:30:45Z",
             ["2025-03-14T02:30:45Z dave RESOLVE: price band hit during listing volatility"],
             "Expected: price-band rejects while DOGE moved 9% in 10 minutes; no client impact."),
    ]
    return Cases(open=open_cases, resolved=resolved)


def _exposures() -> Exposures:
    marks = {"BTCUSDT": "83412.5", "ETHUSDT": "1918.27", "SOLUSDT": "127.84", "DOGEUSDT": "0.17312"}
    oi = {"BTCUSDT": "412.337", "ETHUSDT": "9120.4", "SOLUSDT": "88240", "DOGEUSDT": "91000000"}
    top = [("acct-3377", "BTCUSDT", "-61.250"), ("acct-9001", "BTCUSDT", "48.100"), ("acct-1204", "ETHUSDT", "1520.0"),
           ("acct-3377", "DOGEUSDT", "24661000"), ("acct-7781", "SOLUSDT", "-9800"), ("acct-5530", "ETHUSDT", "-870.5")]
    rows = [ExposureRow(a, s, q, marks[s], str((abs(Decimal(q)) * Decimal(marks[s])).quantize(Decimal("0.01"))),
                        str((abs(Decimal(q)) / Decimal(oi[s])).quantize(Decimal("0.0001"))))
            for a, s, q in top]
    rows.sort(key=lambda r: -Decimal(r.notional))
    holders = {"BTCUSDT": 1843, "ETHUSDT": 1510, "SOLUSDT": 822, "DOGEUSDT": 409}
    open_interest = [OpenInterestRow(s, marks[s], oi[s], str(Decimal(oi[s]) * Decimal("0.97")), oi[s], holders[s])
                     for s in marks]
    return Exposures(top=rows, open_interest=open_interest)


def _margin_ratios() -> MarginRatios:
    counts = [("< 0.1", 2210), ("0.1-0.2", 1180), ("0.2-0.3", 640), ("0.3-0.4", 351), ("0.4-0.5", 190),
              ("0.5-0.6", 96), ("0.6-0.7", 51), ("0.7-0.8", 27), ("0.8-0.9", 12), ("0.9-1", 4), (">= 1", 1)]
    buckets = [RatioBucket(label, n) for label, n in counts]
    return MarginRatios(accounts=sum(n for _, n in counts), buckets=buckets, at_warning=44, at_close_only=5,
                        at_liquidation=1)


def _cover(amount: str, accounts: list[str]) -> CoverRow:
    margin = Decimal(FUND) - Decimal(amount)
    return CoverRow(amount, accounts, margin >= 0, str(margin))


def _stress() -> Stress:
    # (label, total shortfall, accounts short, liquidations, cover-1, cover-2)
    grid = [
        ("-30% all", "6850000.00", 57, 212, "2950000.00", "4720000.00"),
        ("-20% all", "2115400.50", 19, 96, "1210000.00", "1795000.25"),
        ("-10% all", "312880.10", 4, 31, "240000.00", "298000.10"),
        ("-5% all", "0.00", 0, 6, "0.00", "0.00"),
        ("+5% all", "0.00", 0, 4, "0.00", "0.00"),
        ("+10% all", "98300.00", 2, 22, "61000.00", "98300.00"),
        ("+20% all", "1480220.75", 11, 70, "905000.00", "1320000.00"),
        ("+30% all", "4410000.00", 41, 160, "2210000.00", "3630000.00"),
        ("2020-03-12 (BTC -39%)", "7320500.00", 63, 240, "3100000.00", "5210000.00"),
        ("2022-11-08 (FTX, SOL -42%)", "1902000.00", 14, 58, "1250000.00", "1690000.00"),
    ]
    names = ["acct-3377", "acct-9001", "acct-1204", "acct-7781"]
    rows = [StressRow(label, total, short, liq, _cover(c1, names[:1] if short else []),
                      _cover(c2, names[1:3] if short else []))
            for label, total, short, liq, c1, c2 in grid]
    return Stress(as_of=GENERATED_AT, insurance_fund=FUND, accounts=4762, scenarios=rows)


def _value_at_risk() -> ValueAtRisk:
    return ValueAtRisk(
        as_of=GENERATED_AT, lookback_days=500, scenarios=497,
        platform=[VarFigure("platform", "0.99", "2841233.18", "3977010.42"),
                  VarFigure("platform", "0.995", "3512904.77", "4630512.90")],
        top_accounts=[VarFigure("acct-3377", "0.99", "612030.00", "881200.45"),
                      VarFigure("acct-9001", "0.99", "455100.10", "640980.00"),
                      VarFigure("acct-1204", "0.99", "180220.35", "251004.12")],
    )


def _backtest() -> list[Backtest]:
    return [
        Backtest("platform", "0.99", 250, 3, "0.1035", False, "green"),
        Backtest("platform", "0.995", 250, 4, "2.6312", False, "green"),
        Backtest("acct-3377", "0.99", 250, 7, "5.3887", True, "yellow"),
        Backtest("acct-9001", "0.99", 250, 11, "16.5916", True, "red"),
    ]


def _adl() -> list[AdlHead]:
    return [
        AdlHead("BTCUSDT", "long", 1022, ["acct-9001 (rank 1, lights 5, score 3.412)",
                                          "acct-4410 (rank 2, lights 5, score 2.987)",
                                          "acct-0815 (rank 3, lights 4, score 2.101)"]),
        AdlHead("BTCUSDT", "short", 821, ["acct-3377 (rank 1, lights 5, score 4.005)",
                                          "acct-2291 (rank 2, lights 4, score 1.873)"]),
        AdlHead("ETHUSDT", "long", 760, ["acct-1204 (rank 1, lights 5, score 2.550)"]),
        AdlHead("DOGEUSDT", "short", 150, []),
    ]


def sample_report(**overrides: Any) -> DailyReport:
    """A busy day; any field of DailyReport can be overridden."""
    report = DailyReport(
        schema_version=SCHEMA_VERSION,
        date=DATE,
        generated_at=GENERATED_AT,
        decisions=_decisions(),
        rules_fired=_rules(),
        actions=_actions(),
        actions_total=5,
        cases=_cases(),
        exposures=_exposures(),
        margin_ratios=_margin_ratios(),
        stress=_stress(),
        value_at_risk=_value_at_risk(),
        backtest=_backtest(),
        adl=_adl(),
        insurance_fund=InsuranceFund(FUND, "bob", "2025-03-14T14:33:50Z"),
        notes=["ADL queue for XRPUSDT not included: no positions on either side.",
               "VaR uses 497 of 500 lookback days: mark history has gaps on 2024-08-05."],
    )
    return msgspec.structs.replace(report, **overrides)


def empty_report(**overrides: Any) -> DailyReport:
    """A day with nothing: no decisions, no alerts, no positions, no figures, a fund never set."""
    report = DailyReport(
        schema_version=SCHEMA_VERSION,
        date=DATE,
        generated_at=GENERATED_AT,
        decisions=Decisions(0, 0, 0, 0, [], [], [HourDecisions(h, 0, 0, 0) for h in range(24)]),
        rules_fired=[],
        actions=[],
        actions_total=0,
        cases=Cases(open=[], resolved=[]),
        exposures=Exposures(top=[], open_interest=[]),
        margin_ratios=MarginRatios(0, [], 0, 0, 0),
        stress=Stress(as_of=GENERATED_AT, insurance_fund="0", accounts=0, scenarios=[]),
        value_at_risk=ValueAtRisk(as_of=GENERATED_AT, lookback_days=500, scenarios=0, platform=[], top_accounts=[]),
        backtest=[],
        adl=[],
        insurance_fund=InsuranceFund("0", "", ""),
        notes=[],
    )
    return msgspec.structs.replace(report, **overrides)
