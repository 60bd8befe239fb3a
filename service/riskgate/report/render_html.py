"""The daily report as one self-contained HTML page: inline CSS, inline SVG charts, no scripts
and no external resources, so it can be mailed, archived and opened offline as it is.

Every string from the document is escaped: rule ids, account ids, notes and case history are
typed by people (or by whoever can name an account)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape

from riskgate.report import figures, svg
from riskgate.report.document import Case, CoverRow, DailyReport, VarFigure
from riskgate.report.figures import NONE


class Markup(str):
    """Already-escaped HTML: the only strings the table helpers do not escape."""

    __slots__ = ()


def esc(value: object) -> Markup:
    return value if isinstance(value, Markup) else Markup(escape(str(value), quote=True))


def text(value: object) -> Markup:
    """Escaped, with an em dash for an empty figure so a blank cell never reads as zero."""
    if isinstance(value, Markup):
        return value if value.strip() else Markup(NONE)
    shown = figures.count(value)
    return esc(shown) if shown.strip() else Markup(NONE)


def badge(label: str, kind: str) -> Markup:
    return Markup(f'<span class="badge {kind}">{escape(label)}</span>')


# Class names come from these fixed maps only: a zone or severity from the document is text.
_ZONES = {"green": "ok", "yellow": "warn", "red": "bad"}
_SEVERITIES = {"critical": "bad", "high": "bad", "warning": "warn", "warn": "warn", "medium": "warn"}
_STATES = {"OPEN": "bad", "ESCALATED": "bad", "ACKNOWLEDGED": "warn", "RESOLVED": "ok"}


def zone(value: str) -> Markup:
    return badge(value, _ZONES.get(value.lower(), "muted"))


def severity(value: str) -> Markup:
    return badge(value, _SEVERITIES.get(value.lower(), "muted"))


def yes_no(value: bool, *, good: bool = True) -> Markup:
    """good: whether True is the reassuring answer (covered) or the alarming one (rejected)."""
    return badge("yes" if value else "no", "ok" if value == good else "bad")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Iterable[int] = (),
          empty: str = "None.", scroll: bool = False, head: str = "") -> Markup:
    right = set(numeric)
    body = [
        "<tr>" + "".join(f'<td class="num">{text(v)}</td>' if i in right else f"<td>{text(v)}</td>"
                         for i, v in enumerate(row)) + "</tr>"
        for row in rows
    ]
    if not body:
        return Markup(f'<p class="empty">{escape(empty)}</p>')
    header = "".join(f'<th class="num">{escape(h)}</th>' if i in right else f"<th>{escape(h)}</th>"
                     for i, h in enumerate(headers))
    # Wrapped so an unbreakable id scrolls its own table instead of widening the whole page.
    wrapped = f'<table>{head}<thead><tr>{header}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return Markup(f'<div class="{"scroll" if scroll else "tw"}">{wrapped}</div>')


def _decisions(report: DailyReport) -> str:
    d = report.decisions
    hours = [f"{h.hour:02d}" for h in d.by_hour]
    chart = svg.stacked_bars(
        hours,
        [svg.Series("accept", "#3c9a5f", [h.accept for h in d.by_hour]),
         svg.Series("reject", "#d1495b", [h.reject for h in d.by_hour]),
         svg.Series("reduce-only", "#e0a030", [h.reduce_only for h in d.by_hour])],
        title="Decisions per UTC hour", width=1200, label_every=1, empty="no decisions today")
    symbols = table(["Symbol", "Accept", "Reject", "Reduce-only", "Total", "Reject %"],
                    [[s.symbol or "(unknown)", s.accept, s.reject, s.reduce_only, s.total,
                      figures.share(s.reject, s.total)] for s in d.by_symbol], numeric=range(1, 6),
                    empty="No decisions.")
    reasons = table(["Symbol", "Decision", "Reason", "Count"],
                    [[r.symbol or "(unknown)", r.decision, r.reason or NONE, r.count] for r in d.by_reason],
                    numeric=[3], empty="No decisions.", scroll=True)
    return (f'<p class="lead">{d.total:,} decisions: {d.accept:,} accepted, {d.reject:,} rejected '
            f"({figures.share(d.reject, d.total)}), {d.reduce_only:,} reduce-only.</p>"
            f'<div class="figure">{chart}</div>'
            f'<div class="cols"><div><h3>By symbol</h3>{symbols}</div><div><h3>By reason</h3>{reasons}</div></div>')


def _rules(report: DailyReport) -> str:
    return table(["Rule", "Metric", "Severity", "Alerts", "Actions", "Subjects"],
                 [[r.rule_id, r.metric, severity(r.severity), r.alerts, figures.action_counts(r),
                   ", ".join(r.subjects)] for r in report.rules_fired], numeric=[3], empty="No rule fired.")


def _actions(report: DailyReport) -> str:
    more = (f'<p class="lead">Showing the first {len(report.actions)} of {report.actions_total} actions.</p>'
            if report.actions_total > len(report.actions) else "")
    return more + table(["At", "Actor", "Action", "Target", "Outcome", "Detail"],
                        [[a.at, a.actor, a.action, a.target, a.outcome, a.detail] for a in report.actions],
                        empty="No actions.", scroll=True)


def _history(case: Case) -> Markup:
    if not case.history:
        return Markup(NONE)
    return Markup('<ul class="history">' + "".join(f"<li>{esc(entry)}</li>" for entry in case.history) + "</ul>")


def _case_table(cases: Sequence[Case], resolved: bool, empty: str) -> Markup:
    headers = ["Alert", "Rule", "Severity", "State", "Subject", "Metric", "Value", "Action", "Raised", "Updated",
               "History"]
    rows = []
    for c in cases:
        row: list[object] = [c.alert_id, c.rule_id, severity(c.severity), badge(c.state, _STATES.get(c.state, "muted")),
                             c.subject, c.metric, figures.case_value(c), c.action, c.raised_at, c.updated_at,
                             _history(c)]
        rows.append([*row, c.rationale] if resolved else row)
    return table([*headers, "Rationale"] if resolved else headers, rows, empty=empty)


def _cases(report: DailyReport) -> str:
    c = report.cases
    return (f"<h3>Open ({len(c.open)})</h3>{_case_table(c.open, False, 'No open cases.')}"
            f"<h3>Resolved today ({len(c.resolved)})</h3>{_case_table(c.resolved, True, 'None resolved.')}")


def _exposures(report: DailyReport) -> str:
    e = report.exposures
    top = table(["Account", "Symbol", "Quantity", "Mark", "Notional", "Share of OI"],
                [[x.account_id, x.symbol, x.quantity, x.mark, x.notional, figures.percent(x.share)] for x in e.top],
                numeric=range(2, 6), empty="No positions.")
    oi = table(["Symbol", "Mark", "Long", "Short", "Open interest", "Holders"],
               [[o.symbol, o.mark, o.long, o.short, o.open_interest, o.holders] for o in e.open_interest],
               numeric=range(1, 6), empty="No open interest.")
    return f"<h3>Largest positions</h3>{top}<h3>Open interest</h3>{oi}"


def _margin_ratios(report: DailyReport) -> str:
    m = report.margin_ratios
    chart = svg.bars([b.label for b in m.buckets], [b.accounts for b in m.buckets],
                     title="Accounts by margin ratio", width=560, empty="no accounts hold positions")
    levels = table(["Level", "Accounts"],
                   [["Warning or above", m.at_warning], ["Close-only", m.at_close_only],
                    ["Liquidation", m.at_liquidation]], numeric=[1])
    return (f'<p class="lead">{m.accounts:,} accounts holding positions (ratio = maintenance / margin balance).</p>'
            f'<div class="figure">{chart}</div>{levels}')


def _cover(cover: CoverRow) -> list[object]:
    return [cover.amount, ", ".join(cover.accounts), yes_no(cover.covered), cover.margin]


_STRESS_GROUPS = Markup('<colgroup><col span="4"><col span="4" class="group"><col span="4"></colgroup>')


def _stress(report: DailyReport) -> str:
    s = report.stress
    fund = svg.number(s.insurance_fund)
    chart = svg.bars_with_line([r.label for r in s.scenarios], [svg.number(r.total_shortfall) for r in s.scenarios],
                               fund, title="Total shortfall per scenario against the insurance fund",
                               line_label="fund", width=1200, empty="no stress scenarios")
    grid = table(["Scenario", "Shortfall", "Short", "Liq.", "Cover-1", "Accounts", "Covered", "Margin",
                  "Cover-2", "Accounts", "Covered", "Margin"],
                 [[r.label, r.total_shortfall, r.accounts_short, r.liquidations, *_cover(r.cover_1),
                   *_cover(r.cover_2)] for r in s.scenarios],
                 numeric=[1, 2, 3, 4, 7, 8, 11], empty="No stress scenarios.", head=_STRESS_GROUPS)
    return (f'<p class="lead">As of {text(s.as_of)}; insurance fund {text(s.insurance_fund)}; '
            f"{s.accounts:,} accounts.</p>"
            f'<div class="figure">{chart}</div>{grid}')


def _var_table(first: str, rows: Sequence[VarFigure], empty: str) -> Markup:
    return table([first, "Confidence", "VaR", "Expected shortfall"],
                 [[v.subject, v.confidence, v.var, v.expected_shortfall] for v in rows], numeric=[1, 2, 3],
                 empty=empty)


def _var(report: DailyReport) -> str:
    v = report.value_at_risk
    return (f'<p class="lead">As of {text(v.as_of)}; historical simulation over {v.scenarios} days '
            f"(lookback {v.lookback_days}).</p>"
            f'<h3>Platform</h3>{_var_table("Subject", v.platform, "Not computed.")}'
            f'<h3>Largest accounts</h3>{_var_table("Account", v.top_accounts, "Not computed.")}')


def _backtest(report: DailyReport) -> str:
    return table(["Subject", "Confidence", "Days", "Exceptions", "Kupiec LR", "Rejected", "Zone"],
                 [[b.subject, b.confidence, b.days, b.exceptions, b.kupiec_lr, yes_no(b.rejected, good=False),
                   zone(b.zone)] for b in report.backtest], numeric=range(1, 5), empty="No backtests.")


def _adl(report: DailyReport) -> str:
    return table(["Symbol", "Side", "Queue", "Head"],
                 [[a.symbol, a.side, a.population,
                   Markup('<ol class="history">' + "".join(f"<li>{esc(h)}</li>" for h in a.head) + "</ol>")
                   if a.head else NONE] for a in report.adl], numeric=[2], empty="No ADL queues.")


def _insurance(report: DailyReport) -> str:
    f = report.insurance_fund
    when = f"set by {esc(f.updated_by or NONE)} at {esc(f.updated_at)}" if f.updated_at else "never set"
    return f'<p class="lead"><span class="big">{text(f.balance)}</span> ({when})</p>'


def _notes(report: DailyReport) -> str:
    return "<ul>" + "".join(f"<li>{esc(note)}</li>" for note in report.notes) + "</ul>"


# Wide sections span both grid columns; the short ones sit side by side to keep the page compact.
_SECTIONS: dict[str, tuple[Callable[[DailyReport], str], bool]] = {
    "decisions": (_decisions, True), "rules": (_rules, True), "actions": (_actions, True), "cases": (_cases, True),
    "exposures": (_exposures, False), "margin-ratios": (_margin_ratios, False), "stress": (_stress, True),
    "var": (_var, False), "backtest": (_backtest, False), "adl": (_adl, False), "insurance": (_insurance, False),
    "notes": (_notes, False),
}


def _card(label: str, value: str, kind: str = "", sub: str = "") -> str:
    small = f"<small>{esc(sub)}</small>" if sub else ""
    return f'<div class="card {kind}"><span>{escape(label)}</span><b>{esc(value)}</b>{small}</div>'


def _strip(report: DailyReport) -> str:
    top = figures.headline(report)
    worst_kind = {True: "ok", False: "bad", None: ""}[top.worst_covered]
    worst = figures.grouped(top.worst.total_shortfall) if top.worst is not None else NONE
    fund = f"vs fund {figures.grouped(top.fund)}"
    worst_sub = f"{fund} · {top.worst.label}" if top.worst is not None else fund
    return "".join([
        _card("Decisions", f"{top.decisions:,}"),
        _card("Reject share", top.reject_share),
        _card("Alerts", f"{top.alerts:,}", "warn" if top.alerts else ""),
        _card("Open cases", f"{top.open_cases:,}", "bad" if top.open_cases else "ok"),
        _card("Worst stress shortfall", worst, worst_kind, worst_sub),
        _card("Platform VaR 99%", figures.grouped(top.var_99) if top.var_99 else NONE),
    ])


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:#1f2933;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
header{background:#1f2933;color:#f4f6f9;padding:14px 20px 10px}
header h1{margin:0;font-size:20px;font-weight:600}
header p{margin:4px 0 10px;color:#c3cad5;font-size:12px}
nav a{color:#9fb3c8;margin-right:12px;font-size:12px;text-decoration:none}
.strip{display:grid;grid-template-columns:repeat(6,1fr);gap:8px;margin-bottom:10px}
.card{background:#2d3a48;border-radius:4px;padding:6px 10px;border-left:4px solid #52606d}
.card span{display:block;font-size:11px;color:#c3cad5;text-transform:uppercase;letter-spacing:.04em}
.card b{display:block;font-size:18px;font-variant-numeric:tabular-nums}
.card small{display:block;color:#c3cad5;font-size:11px}
.card.ok{border-left-color:#3c9a5f}.card.warn{border-left-color:#e0a030}.card.bad{border-left-color:#d1495b}
main{display:grid;grid-template-columns:1fr 1fr;gap:12px;padding:12px 20px 24px}
section{background:#fff;border:1px solid #dde2ea;border-radius:4px;padding:10px 14px;min-width:0}
section.wide{grid-column:1/-1}
h2{margin:0 0 6px;font-size:15px;font-weight:600;border-bottom:1px solid #e3e7ee;padding-bottom:4px}
h3{margin:10px 0 4px;font-size:12px;color:#52606d;text-transform:uppercase;letter-spacing:.04em}
.lead{margin:4px 0 6px}.big{font-size:18px;font-weight:600}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.figure{overflow-x:auto}
.tw{overflow-x:auto}.scroll{max-height:320px;overflow:auto}
svg.chart{display:block;width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{padding:3px 6px;border-bottom:1px solid #eef1f5;text-align:left;vertical-align:top}
th{background:#f7f9fb;color:#52606d;font-weight:600;position:sticky;top:0}
td{overflow-wrap:break-word;white-space:pre-line}td:first-child{white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
col.group{background:#fafbfc}
.badge{display:inline-block;white-space:nowrap;padding:0 6px;border-radius:3px;font-size:11px;font-weight:600}
.badge.ok{background:#dff3e6;color:#1e6b3a}.badge.warn{background:#fdf0d2;color:#8a5a00}
.badge.bad{background:#fbe0e3;color:#9b1c2c}.badge.muted{background:#eef1f5;color:#52606d}
.history{margin:0;padding-left:16px;font-size:11px;color:#3b4252}
.empty{color:#7b8794;font-style:italic;margin:4px 0}
@media (max-width:900px){main,.cols{grid-template-columns:1fr}.strip{grid-template-columns:repeat(3,1fr)}}
@media print{body{background:#fff}.scroll{max-height:none}section{break-inside:avoid}}
"""


def html(report: DailyReport) -> str:
    title = f"Daily risk report {report.date}"
    nav = "".join(f'<a href="#{sid}">{escape(heading)}</a>' for sid, heading in figures.SECTIONS
                  if sid != "notes" or report.notes)
    sections = []
    for sid, heading in figures.SECTIONS:
        if sid == "notes" and not report.notes:
            continue
        render, wide = _SECTIONS[sid]
        css_class = ' class="wide"' if wide else ""
        sections.append(f'<section id="{sid}"{css_class}><h2>{escape(heading)}</h2>{render(report)}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>Generated at {esc(report.generated_at)}. {escape(figures.PERIODS)}</p>"
        f'<div class="strip">{_strip(report)}</div><nav>{nav}</nav></header>'
        f"<main>{''.join(sections)}</main></body></html>\n"
    )
