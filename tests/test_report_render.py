"""The daily report's Markdown and HTML views and write(): no browser, no Redis."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import msgspec
import pytest

from riskgate.report import render
from riskgate.report.document import Cases, DailyReport, ExposureRow, Exposures, decoder
from tests.report_samples import empty_report, sample_report

HEADINGS = ["Decisions", "Rules fired", "Actions", "Cases", "Exposures", "Margin ratios", "Stress", "Value at risk",
            "Backtest", "ADL queue", "Insurance fund", "Notes"]
SECTION_IDS = ["decisions", "rules", "actions", "cases", "exposures", "margin-ratios", "stress", "var", "backtest",
               "adl", "insurance", "notes"]
HOSTILE = "<script>alert('x')</script>"


class Outline(HTMLParser):
    """Section ids with their h2 text, svg count, and every tag's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.svgs = 0
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._section: str | None = None
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "section":
            self._section = dict(attrs).get("id") or ""
            self.sections[self._section] = ""
        elif tag == "h2":
            self._in_h2 = True
        elif tag == "svg":
            self.svgs += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2 and self._section is not None:
            self.sections[self._section] += data


def outline(page: str) -> Outline:
    parser = Outline()
    parser.feed(page)
    return parser


def headings(markdown: str) -> list[str]:
    return re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)


def test_markdown_when_busy_day_then_every_heading_in_order_and_figures_verbatim() -> None:
    report = sample_report()
    md = render.markdown(report)
    assert md.startswith(f"# Daily risk report {report.date}\n")
    assert headings(md) == HEADINGS
    assert report.generated_at in md
    assert "as of generation time" in md and "whole UTC day" in md
    worst = report.stress.scenarios[8]
    assert f"| {worst.label} | {worst.total_shortfall} |" in md
    for backtest in report.backtest:
        assert f"| {backtest.kupiec_lr} |" in md
    assert "| platform | 0.99 | 2841233.18 | 3977010.42 |" in md
    assert "**NO**" in md  # an uncovered Cover-2
    assert "Client deposited 250,000 USDT" in md  # a resolved case's rationale
    assert "- Platform VaR 99%: 2841233.18" in md


def test_markdown_when_no_notes_then_no_notes_heading() -> None:
    assert headings(render.markdown(sample_report(notes=[]))) == HEADINGS[:-1]


def test_markdown_when_cell_has_pipe_and_newline_then_the_row_keeps_its_columns() -> None:
    md = render.markdown(sample_report())
    # The sample's last action's detail is "margin topped up | ratio 0.41\nsee case a-1043".
    [row] = [line for line in md.splitlines() if "margin topped up" in line]
    assert "margin topped up \\| ratio 0.41<br>see case a-1043" in row
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # six columns


def test_markdown_when_note_has_newline_and_heading_then_it_stays_one_bullet() -> None:
    md = render.markdown(sample_report(notes=["first line\n## Forged heading"]))
    assert "- first line ## Forged heading" in md
    assert headings(md) == HEADINGS


def test_html_when_busy_day_then_each_section_has_its_id_and_h2_and_three_charts() -> None:
    page = render.html(sample_report())
    parsed = outline(page)
    assert list(parsed.sections) == SECTION_IDS
    assert list(parsed.sections.values()) == HEADINGS
    assert parsed.svgs == 3
    assert page.startswith("<!DOCTYPE html>")


def test_html_when_busy_day_then_strip_zones_and_covers_are_shown() -> None:
    page = render.html(sample_report())
    for label in ["Decisions", "Reject share", "Alerts", "Open cases", "Worst stress shortfall", "Platform VaR 99%"]:
        assert f"<span>{label}</span>" in page
    assert "<b>422,597</b>" in page and "<b>2.4%</b>" in page and "<b>7,320,500.00</b>" in page
    assert "<b>2,841,233.18</b>" in page
    assert '<div class="card bad"><span>Worst stress shortfall</span>' in page  # beyond the fund
    for zone, kind in [("green", "ok"), ("yellow", "warn"), ("red", "bad")]:
        assert f'<span class="badge {kind}">{zone}</span>' in page
    assert '<span class="badge ok">yes</span>' in page and '<span class="badge bad">no</span>' in page
    assert "16.5916" in page and "7320500.00" in page


def hostile_report() -> DailyReport:
    report = sample_report()
    row = report.exposures.top[0]
    exposures = Exposures(top=[ExposureRow(HOSTILE, row.symbol, row.quantity, row.mark, row.notional, row.share)],
                          open_interest=report.exposures.open_interest)
    case = msgspec.structs.replace(report.cases.open[0], rule_id=HOSTILE, history=[f"at {HOSTILE}"])
    stress = msgspec.structs.replace(
        report.stress, scenarios=[msgspec.structs.replace(report.stress.scenarios[0], label=HOSTILE)])
    backtest = [msgspec.structs.replace(report.backtest[0], zone='"><img onerror=alert(1) src=x>')]
    return sample_report(exposures=exposures, cases=Cases(open=[case], resolved=[]), notes=[HOSTILE],
                         stress=stress, backtest=backtest, date=HOSTILE)


def test_html_when_account_id_note_and_rule_hold_script_then_rendered_inert() -> None:
    page = render.html(hostile_report())
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert page.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") >= 6
    parsed = outline(page)
    assert not [tag for tag, _ in parsed.tags if tag in ("script", "img", "iframe", "object")]
    assert not [attrs for _, attrs in parsed.tags if any(name.startswith("on") for name in attrs)]


@pytest.mark.parametrize("report", [sample_report(), empty_report(), hostile_report()],
                         ids=["busy", "empty", "hostile"])
def test_html_when_rendered_then_no_external_resource(report: DailyReport) -> None:
    page = render.html(report)
    lowered = page.lower()
    assert "http:" not in lowered and "https:" not in lowered and "//" not in re.sub(r"<!--.*?-->", "", lowered)
    assert "<script" not in lowered and "@import" not in lowered and "url(" not in lowered
    assert "<link" not in lowered and "<iframe" not in lowered
    for _, attrs in outline(page).tags:
        assert "src" not in attrs
        assert all(value.startswith("#") for name, value in attrs.items() if name == "href" and value is not None)


def test_write_when_directory_missing_then_three_files_and_json_decodes_back_equal(tmp_path: Path) -> None:
    report = sample_report()
    out = tmp_path / "reports" / report.date
    paths = render.write(report, out)
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)
    assert decoder.decode(paths[0].read_bytes()) == report
    assert paths[1].read_text() == render.markdown(report)
    assert paths[2].read_text() == render.html(report)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]  # no temp left


def test_write_when_files_exist_then_replaced(tmp_path: Path) -> None:
    render.write(sample_report(), tmp_path)
    paths = render.write(empty_report(), tmp_path)
    assert decoder.decode(paths[0].read_bytes()) == empty_report()
    assert "No open cases." in paths[2].read_text()


def test_render_when_empty_day_then_every_section_and_charts_say_no_data() -> None:
    report = empty_report()
    md = render.markdown(report)
    assert headings(md) == HEADINGS[:-1]
    assert "- Decisions: 0 (rejected —)" in md and "never set" in md
    page = render.html(report)
    parsed = outline(page)
    assert list(parsed.sections) == SECTION_IDS[:-1]
    assert parsed.svgs == 3
    assert "no decisions today" in page and "no accounts hold positions" in page and "no stress scenarios" in page


def test_render_when_empty_lists_everywhere_then_no_error() -> None:
    report = empty_report()
    bare = msgspec.structs.replace(report, decisions=msgspec.structs.replace(report.decisions, by_hour=[]),
                                   insurance_fund=msgspec.structs.replace(report.insurance_fund, balance=""))
    assert "## Insurance fund" in render.markdown(bare)
    assert 'id="decisions"' in render.html(bare)


def test_html_when_figures_are_not_numbers_then_charts_still_render() -> None:
    report = sample_report()
    stress = msgspec.structs.replace(report.stress, insurance_fund="n/a", scenarios=[
        msgspec.structs.replace(row, total_shortfall="NaN") for row in report.stress.scenarios])
    page = render.html(sample_report(stress=stress))
    assert outline(page).svgs == 3
    assert "NaN" in page  # the table keeps the document's string
