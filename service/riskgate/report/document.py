"""The daily risk report as data: what `GetDailyReport` returns (JSON) and what `report.json`,
`report.md` and `report.html` are written from. Money and ratios are decimal strings, as on
the wire; times are ISO-8601 UTC strings."""

from __future__ import annotations

import msgspec

SCHEMA_VERSION = 1


class DecisionRow(msgspec.Struct, frozen=True):
    """Decisions of one symbol with one outcome and one first reason over the day."""

    symbol: str  # "" for an order whose symbol the gate did not know
    decision: str  # "ACCEPT", "REJECT", "REDUCE_ONLY"
    reason: str  # e.g. "LEVERAGE_EXCEEDS_MAX"; "" when none (a plain ACCEPT)
    count: int


class SymbolDecisions(msgspec.Struct, frozen=True):
    symbol: str
    accept: int
    reject: int
    reduce_only: int

    @property
    def total(self) -> int:
        return self.accept + self.reject + self.reduce_only


class HourDecisions(msgspec.Struct, frozen=True):
    """All symbols, one UTC hour (0-23) of the day."""

    hour: int
    accept: int
    reject: int
    reduce_only: int


class Decisions(msgspec.Struct, frozen=True):
    total: int
    accept: int
    reject: int
    reduce_only: int
    by_symbol: list[SymbolDecisions]  # most decisions first
    by_reason: list[DecisionRow]  # most frequent first
    by_hour: list[HourDecisions]  # 24 rows, hour 0 first


class RuleFired(msgspec.Struct, frozen=True):
    """One rule's alerts raised during the day."""

    rule_id: str
    metric: str
    severity: str
    alerts: int
    # What the alerts did: action name -> how many ("" = alert only).
    actions: dict[str, int]
    # Up to 10 symbols or accounts the rule fired about.
    subjects: list[str]


class ActionRow(msgspec.Struct, frozen=True):
    """One audited state change of the day: by a person (admin RPC) or by a monitor rule."""

    at: str
    actor: str  # a principal's name, or "monitor:<rule id>"
    action: str
    target: str
    outcome: str
    detail: str


class Case(msgspec.Struct, frozen=True):
    """An alert worked as a case."""

    alert_id: str
    rule_id: str
    severity: str
    state: str  # OPEN, ACKNOWLEDGED, ESCALATED, RESOLVED
    subject: str  # symbol and/or account
    metric: str
    value: str
    threshold: str
    action: str
    raised_at: str
    updated_at: str
    # The people who worked it, in order: "at actor action: note".
    history: list[str]
    # The resolution's rationale ("" while open).
    rationale: str


class Cases(msgspec.Struct, frozen=True):
    open: list[Case]
    resolved: list[Case]  # resolved during the day


class ExposureRow(msgspec.Struct, frozen=True):
    account_id: str
    symbol: str
    quantity: str  # signed
    mark: str
    notional: str
    share: str  # of the symbol's open interest, a fraction


class OpenInterestRow(msgspec.Struct, frozen=True):
    symbol: str
    mark: str
    long: str  # contracts held long over all accounts
    short: str
    open_interest: str  # the larger of the two
    holders: int


class Exposures(msgspec.Struct, frozen=True):
    top: list[ExposureRow]  # largest notional first
    open_interest: list[OpenInterestRow]


class RatioBucket(msgspec.Struct, frozen=True):
    label: str  # e.g. "0.5-0.6", ">= 1"
    accounts: int


class MarginRatios(msgspec.Struct, frozen=True):
    """Accounts holding positions by margin ratio (maintenance / margin balance)."""

    accounts: int
    buckets: list[RatioBucket]
    # Accounts at or above the monitor's warning, close-only and liquidation levels.
    at_warning: int
    at_close_only: int
    at_liquidation: int


class CoverRow(msgspec.Struct, frozen=True):
    amount: str
    accounts: list[str]
    covered: bool
    margin: str  # fund - amount


class StressRow(msgspec.Struct, frozen=True):
    label: str
    total_shortfall: str
    accounts_short: int
    liquidations: int
    cover_1: CoverRow
    cover_2: CoverRow


class Stress(msgspec.Struct, frozen=True):
    as_of: str
    insurance_fund: str
    accounts: int
    scenarios: list[StressRow]  # a grid, most negative shock first, then historical worst moves


class VarFigure(msgspec.Struct, frozen=True):
    subject: str  # "platform" or an account id
    confidence: str  # e.g. "0.99"
    var: str  # a loss, >= 0
    expected_shortfall: str


class ValueAtRisk(msgspec.Struct, frozen=True):
    as_of: str
    lookback_days: int
    scenarios: int  # historical days actually used
    platform: list[VarFigure]  # one per confidence
    top_accounts: list[VarFigure]  # largest VaR at the first confidence first


class Backtest(msgspec.Struct, frozen=True):
    subject: str
    confidence: str
    days: int
    exceptions: int
    kupiec_lr: str
    rejected: bool  # LR > 3.841 (95%)
    zone: str  # "green", "yellow", "red"


class AdlHead(msgspec.Struct, frozen=True):
    symbol: str
    side: str  # "long", "short"
    population: int
    # The first entries of the queue: "account (rank r, lights l, score s)".
    head: list[str]


class InsuranceFund(msgspec.Struct, frozen=True):
    balance: str
    updated_by: str
    updated_at: str  # "" when never set


class DailyReport(msgspec.Struct, frozen=True):
    schema_version: int
    date: str  # YYYY-MM-DD (UTC)
    generated_at: str
    # Sections measured at generation time, not over the day ("as of"): exposures, margin
    # ratios, stress, VaR, ADL and the fund. Sections over the day: decisions, rules, actions
    # and cases.
    decisions: Decisions
    rules_fired: list[RuleFired]
    actions: list[ActionRow]  # in time order; at most 1,000 (actions_total says how many)
    actions_total: int
    cases: Cases
    exposures: Exposures
    margin_ratios: MarginRatios
    stress: Stress
    value_at_risk: ValueAtRisk
    backtest: list[Backtest]
    adl: list[AdlHead]
    insurance_fund: InsuranceFund
    # Anything the report could not include, and why (e.g. "no mark history: VaR not computed").
    notes: list[str]


encoder = msgspec.json.Encoder()
decoder = msgspec.json.Decoder(DailyReport)
