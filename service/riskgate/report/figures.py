"""What the Markdown and HTML views say the same way: section names, the headline figures and
the few derived strings (shares, action counts), so the two views cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from riskgate.report.document import Case, DailyReport, RuleFired, StressRow

# (HTML id, heading), in report order. Notes is last and only shown when there are any.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("decisions", "Decisions"),
    ("rules", "Rules fired"),
    ("actions", "Actions"),
    ("cases", "Cases"),
    ("exposures", "Exposures"),
    ("margin-ratios", "Margin ratios"),
    ("stress", "Stress"),
    ("var", "Value at risk"),
    ("backtest", "Backtest"),
    ("adl", "ADL queue"),
    ("insurance", "Insurance fund"),
    ("notes", "Notes"),
)

PERIODS = (
    "Decisions, rules fired, actions and cases cover the whole UTC day; exposures, margin ratios, "
    "stress, value at risk, the ADL queue and the insurance fund are as of generation time; "
    "backtests cover the days each row names."
)

NONE = "—"


def decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return value if value.is_finite() else None


def percent(fraction: str) -> str:
    """A fraction from the document as a percentage; shown verbatim when it is not a number,
    since a wrong-looking figure on the desk is better than a missing one."""
    value = decimal(fraction)
    if value is None:
        return fraction
    return f"{(value * 100).quantize(Decimal('0.01'))}%"


def count(value: object) -> str:
    """Integers with thousands separators (the desk reads 422,597 at a glance, not 422597);
    anything else as it is: decimal strings stay verbatim so they can be searched for."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def grouped(text: str) -> str:
    """A decimal string with thousands separators and its own decimals (7320500.00 ->
    7,320,500.00), for the headline only: tables keep the document's strings verbatim."""
    value = decimal(text)
    return text if value is None else f"{value:,}"


def share(part: int, whole: int) -> str:
    return NONE if whole <= 0 else f"{100 * part / whole:.1f}%"


def action_counts(rule: RuleFired) -> str:
    if not rule.actions:
        return NONE
    return ", ".join(f"{name or 'alert only'}: {count}" for name, count in sorted(rule.actions.items()))


def case_value(case: Case) -> str:
    return f"{case.value} (threshold {case.threshold})" if case.threshold else case.value


@dataclass(frozen=True)
class Headline:
    """The shift-handover strip: what the desk reads before anything else."""

    decisions: int
    reject_share: str
    alerts: int
    open_cases: int
    worst: StressRow | None
    fund: str
    worst_covered: bool | None  # worst shortfall within the fund; None without stress figures
    var_99: str  # platform VaR at 99%, "" when not computed


def headline(report: DailyReport) -> Headline:
    decisions = report.decisions
    worst = max(report.stress.scenarios, key=lambda row: decimal(row.total_shortfall) or 0, default=None)
    fund = report.stress.insurance_fund
    covered: bool | None = None
    if worst is not None:
        shortfall, balance = decimal(worst.total_shortfall), decimal(fund)
        if shortfall is not None and balance is not None:
            covered = shortfall <= balance
    var_99 = next(
        (figure.var for figure in report.value_at_risk.platform if decimal(figure.confidence) == Decimal("0.99")), ""
    )
    return Headline(
        decisions=decisions.total,
        reject_share=share(decisions.reject, decisions.total),
        alerts=sum(rule.alerts for rule in report.rules_fired),
        open_cases=len(report.cases.open),
        worst=worst,
        fund=fund,
        worst_covered=covered,
        var_99=var_99,
    )
