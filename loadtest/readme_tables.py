"""Copies the latest run's summary (loadtest/results/results.md) into the README's
Performance section, between the perf-run markers. Run after `python -m loadtest`:
python -m loadtest.readme_tables"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- perf-run:begin -->", "<!-- perf-run:end -->"
UNARY_RATES = {"500", "1,000", "1,500", "2,000", "2,500"}
STREAM_RATES = {"500", "1,000", "1,500", "2,000", "3,000"}


def _section(markdown: str, title: str) -> str:
    start = markdown.index(title)
    end = markdown.find("\n## ", start + 3)
    body = markdown[start:end if end >= 0 else None].strip()
    return body.split("\n", 1)[1].strip()


def _rows(markdown: str, title: str, rates: set[str]) -> str:
    out = ["| offered/s | riskgate p50 | riskgate p99 | baseline p50 | baseline p99 | p99 ratio "
           "| CPU riskgate / baseline | pass riskgate / baseline |",
           "|---|---|---|---|---|---|---|---|"]
    for line in _section(markdown, title).splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not line.startswith("| ") or cells[0] not in rates:
            continue
        cpu = " / ".join(cells[15].split(" / ")[:2])
        out.append(f"| {cells[0]} | {cells[1]} | {cells[2]} | {cells[5]} | {cells[6]} | {cells[10]} "
                   f"| {cpu} | {cells[16]} |")
    return "\n".join(out)


def summary(markdown: str) -> str:
    meta = markdown.splitlines()[2].lstrip("- ")
    return f"""{meta}; the harness and Redis on one core, the server under test alone on the other.
Latencies in microseconds from the planned send time. Full tables (p99.9, max, sender
lateness, CPU of every process, both attempts where a disturbed step was re-measured):
[`loadtest/results/results.md`](loadtest/results/results.md).

{_section(markdown, "## Targets")}

{_section(markdown, "## Engine alone")}

Highest offered rate with p99 within 1 ms:

{_section(markdown, "## Highest rate")}

Unary `CheckOrder` (plus one `ReportExecution` per allowed order):

{_rows(markdown, "## unary", UNARY_RATES)}

`CheckOrders` stream:

{_rows(markdown, "## stream", STREAM_RATES)}

![latency against offered rate, riskgate and baseline](loadtest/results/latency_vs_rate.png)"""


def main() -> int:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    results = (ROOT / "loadtest" / "results" / "results.md").read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    readme_path.write_text(readme[:start] + "\n" + summary(results) + "\n" + readme[end:])
    print("README performance tables updated from loadtest/results/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
