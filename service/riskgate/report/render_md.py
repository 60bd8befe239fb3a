"""The daily report as GitHub-flavoured Markdown: one `##` section per part, pipe tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from riskgate.report import figures
from riskgate.report.document import Case, CoverRow, DailyReport, VarFigure
from riskgate.report.figures import NONE


def cell(value: object) -> str:
    """Cell text that cannot break the table: a `|` would open a column and a newline would end
    the row, and both come from user-supplied notes and ids."""
    text = figures.count(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")
    return text if text.strip() else NONE


def line(value: object) -> str:
    """Free text outside tables (notes, history): one line each, so a note cannot forge a heading."""
    return " ".join(str(value).split()) or NONE


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str = "None.") -> list[str]:
    if not rows:
        return [f"_{empty}_", ""]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return [*out, ""]


def _decisions(report: DailyReport) -> list[str]:
    d = report.decisions
    out = [
        f"{d.total:,} decisions: {d.accept:,} accepted, {d.reject:,} rejected "
        f"({figures.share(d.reject, d.total)}), {d.reduce_only:,} reduce-only.",
        "",
        "### By symbol",
        "",
    ]
    out += table(["Symbol", "Accept", "Reject", "Reduce-only", "Total"],
                 [[s.symbol or "(unknown)", s.accept, s.reject, s.reduce_only, s.total] for s in d.by_symbol])
    out += ["### By reason", ""]
    out += table(["Symbol", "Decision", "Reason", "Count"],
                 [[r.symbol or "(unknown)", r.decision, r.reason or NONE, r.count] for r in d.by_reason])
    out += ["### By hour (UTC)", ""]
    out += table(["Hour", "Accept", "Reject", "Reduce-only"],
                 [[f"{h.hour:02d}:00", h.accept, h.reject, h.reduce_only] for h in d.by_hour])
    return out


def _rules(report: DailyReport) -> list[str]:
    return table(["Rule", "Metric", "Severity", "Alerts", "Actions", "Subjects"],
                 [[r.rule_id, r.metric, r.severity, r.alerts, figures.action_counts(r), ", ".join(r.subjects)]
                  for r in report.rules_fired], empty="No rule fired.")


def _actions(report: DailyReport) -> list[str]:
    out: list[str] = []
    if report.actions_total > len(report.actions):
        out += [f"Showing the first {len(report.actions)} of {report.actions_total} actions.", ""]
    out += table(["At", "Actor", "Action", "Target", "Outcome", "Detail"],
                 [[a.at, a.actor, a.action, a.target, a.outcome, a.detail] for a in report.actions],
                 empty="No actions.")
    return out


def _case_rows(cases: Sequence[Case], resolved: bool) -> list[list[object]]:
    rows: list[list[object]] = []
    for c in cases:
        row: list[object] = [c.alert_id, c.rule_id, c.severity, c.state, c.subject,
                             f"{c.metric} {figures.case_value(c)}", c.action, c.raised_at, c.updated_at]
        rows.append([*row, c.rationale] if resolved else row)
    return rows


def _history(cases: Sequence[Case]) -> list[str]:
    out: list[str] = []
    for c in cases:
        if c.history:
            out += [f"- {line(c.alert_id)} ({line(c.rule_id)}):"]
            out += [f"  - {line(entry)}" for entry in c.history]
    return [*out, ""] if out else []


def _cases(report: DailyReport) -> list[str]:
    headers = ["Alert", "Rule", "Severity", "State", "Subject", "Value", "Action", "Raised", "Updated"]
    out = [f"### Open ({len(report.cases.open)})", ""]
    out += table(headers, _case_rows(report.cases.open, False), empty="No open cases.")
    out += [f"### Resolved today ({len(report.cases.resolved)})", ""]
    out += table([*headers, "Rationale"], _case_rows(report.cases.resolved, True), empty="None resolved.")
    history = _history([*report.cases.open, *report.cases.resolved])
    return out + (["### History", "", *history] if history else [])


def _exposures(report: DailyReport) -> list[str]:
    e = report.exposures
    out = ["### Largest positions", ""]
    out += table(["Account", "Symbol", "Quantity", "Mark", "Notional", "Share of OI"],
                 [[x.account_id, x.symbol, x.quantity, x.mark, x.notional, figures.percent(x.share)] for x in e.top],
                 empty="No positions.")
    out += ["### Open interest", ""]
    out += table(["Symbol", "Mark", "Long", "Short", "Open interest", "Holders"],
                 [[o.symbol, o.mark, o.long, o.short, o.open_interest, o.holders] for o in e.open_interest],
                 empty="No open interest.")
    return out


def _margin_ratios(report: DailyReport) -> list[str]:
    m = report.margin_ratios
    out = [f"{m.accounts:,} accounts holding positions; {m.at_warning} at or above the warning level, "
           f"{m.at_close_only} at close-only, {m.at_liquidation} at liquidation.", ""]
    return out + table(["Margin ratio", "Accounts", "Share"],
                       [[b.label, b.accounts, figures.share(b.accounts, m.accounts)] for b in m.buckets],
                       empty="No accounts.")


def _cover(cover: CoverRow) -> list[object]:
    return [cover.amount, ", ".join(cover.accounts), "yes" if cover.covered else "**NO**", cover.margin]


def _stress(report: DailyReport) -> list[str]:
    s = report.stress
    out = [f"As of {s.as_of or NONE}; insurance fund {s.insurance_fund}; {s.accounts:,} accounts.", ""]
    return out + table(
        ["Scenario", "Total shortfall", "Accounts short", "Liquidations", "Cover-1", "Cover-1 accounts",
         "Cover-1 covered", "Cover-1 margin", "Cover-2", "Cover-2 accounts", "Cover-2 covered", "Cover-2 margin"],
        [[r.label, r.total_shortfall, r.accounts_short, r.liquidations, *_cover(r.cover_1), *_cover(r.cover_2)]
         for r in s.scenarios],
        empty="No stress scenarios.")


def _var_rows(rows: Sequence[VarFigure]) -> list[list[object]]:
    return [[v.subject, v.confidence, v.var, v.expected_shortfall] for v in rows]


def _var(report: DailyReport) -> list[str]:
    v = report.value_at_risk
    out = [f"As of {v.as_of or NONE}; historical simulation over {v.scenarios} days "
           f"(lookback {v.lookback_days} days).", "", "### Platform", ""]
    out += table(["Subject", "Confidence", "VaR", "Expected shortfall"], _var_rows(v.platform),
                 empty="Not computed.")
    out += ["### Largest accounts", ""]
    return out + table(["Account", "Confidence", "VaR", "Expected shortfall"], _var_rows(v.top_accounts),
                       empty="Not computed.")


def _backtest(report: DailyReport) -> list[str]:
    return table(["Subject", "Confidence", "Days", "Exceptions", "Kupiec LR", "Rejected (95%)", "Zone"],
                 [[b.subject, b.confidence, b.days, b.exceptions, b.kupiec_lr, "yes" if b.rejected else "no",
                   b.zone] for b in report.backtest], empty="No backtests.")


def _adl(report: DailyReport) -> list[str]:
    return table(["Symbol", "Side", "Queue", "Head"],
                 [[a.symbol, a.side, a.population, "; ".join(a.head)] for a in report.adl], empty="No ADL queues.")


def _insurance(report: DailyReport) -> list[str]:
    f = report.insurance_fund
    when = f"set by {f.updated_by or NONE} at {f.updated_at}" if f.updated_at else "never set"
    return [f"Balance {f.balance} ({line(when)}).", ""]


def _notes(report: DailyReport) -> list[str]:
    return [*(f"- {line(note)}" for note in report.notes), ""]


_SECTIONS: dict[str, Callable[[DailyReport], list[str]]] = {
    "decisions": _decisions, "rules": _rules, "actions": _actions, "cases": _cases, "exposures": _exposures,
    "margin-ratios": _margin_ratios, "stress": _stress, "var": _var, "backtest": _backtest, "adl": _adl,
    "insurance": _insurance, "notes": _notes,
}


def markdown(report: DailyReport) -> str:
    top = figures.headline(report)
    worst = (f"{top.worst.total_shortfall} ({line(top.worst.label)}) vs fund {top.fund}"
             if top.worst is not None else NONE)
    out = [
        f"# Daily risk report {line(report.date)}",
        "",
        f"Generated at {line(report.generated_at)}. {figures.PERIODS}",
        "",
        f"- Decisions: {top.decisions:,} (rejected {top.reject_share})",
        f"- Alerts: {top.alerts:,}; open cases: {top.open_cases:,}",
        f"- Worst stress shortfall: {worst}",
        f"- Platform VaR 99%: {top.var_99 or NONE}",
        "",
    ]
    for section_id, heading in figures.SECTIONS:
        if section_id == "notes" and not report.notes:
            continue
        out += [f"## {heading}", "", *_SECTIONS[section_id](report)]
    return "\n".join(out).rstrip("\n") + "\n"
