"""Turns the measurements into the report: paired figures and ratios, targets, the Markdown table, JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.search import highest_passing
from loadtest.step_result import StepResult

RISKGATE = "riskgate"
BASELINE = "baseline"
STYLES = ("unary", "stream")
FIGURES = ("p50", "p99", "p999", "max")
# Rates at which the issue sets a target; the ratio target is read there.
UNARY_TARGET_RATE = 1500.0
STREAM_TARGET_RATE = 5000.0
ENGINE_TARGET_CHECKS = 100_000
ENGINE_TARGET_P99_US = 20
UNARY_MAX_P99_RATIO = 1.15
STREAM_MIN_RATE_RATIO = 0.85


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)):
        return None
    return round(a / b, 3)


@dataclass
class Pair:
    style: str
    rate: float
    riskgate: StepResult | None
    baseline: StepResult | None

    def figure(self, server: str, name: str) -> int | None:
        step = self.riskgate if server == RISKGATE else self.baseline
        return int(getattr(step.latency_us, name)) if step is not None else None

    def ratios(self) -> dict[str, float | None]:
        return {name: ratio(self.figure(RISKGATE, name), self.figure(BASELINE, name)) for name in FIGURES}


def pairs(steps: Sequence[StepResult]) -> list[Pair]:
    found: dict[tuple[str, float], Pair] = {}
    for step in steps:
        pair = found.setdefault((step.style, step.rate), Pair(step.style, step.rate, None, None))
        if step.server == RISKGATE:
            pair.riskgate = step
        else:
            pair.baseline = step
    return sorted(found.values(), key=lambda p: (STYLES.index(p.style), p.rate))


def floors(steps: Sequence[StepResult]) -> dict[str, dict[str, int]]:
    """Per style, the best p50 and p99 the bare baseline reached at any rate: what this machine allows."""
    result = {}
    for style in STYLES:
        base = [s for s in steps if s.server == BASELINE and s.style == style and s.answered]
        if base:
            result[style] = {"p50": min(s.latency_us.p50 for s in base), "p99": min(s.latency_us.p99 for s in base)}
    return result


def highest(steps: Sequence[StepResult]) -> dict[str, dict[str, float | None]]:
    table = {}
    for style in STYLES:
        rg, base = highest_passing(steps, RISKGATE, style), highest_passing(steps, BASELINE, style)
        table[style] = {RISKGATE: rg, BASELINE: base, "ratio": ratio(rg, base)}
    return table


def _at(all_pairs: Sequence[Pair], style: str, rate: float) -> Pair | None:
    return next((p for p in all_pairs if p.style == style and p.rate == rate), None)


def targets(engine: dict[str, Any] | None, steps: Sequence[StepResult]) -> list[dict[str, Any]]:
    all_pairs = pairs(steps)
    best = highest(steps)
    rows: list[dict[str, Any]] = []

    def row(name: str, target: str, measured: str, met: bool | None) -> None:
        rows.append({"target": name, "wanted": target, "measured": measured, "met": met})

    if engine is not None:
        row("engine checks/s on one core", f">= {ENGINE_TARGET_CHECKS:,}", f"{engine['checks_per_second']:,}",
            engine["checks_per_second"] >= ENGINE_TARGET_CHECKS)
        row("engine check p99", f"< {ENGINE_TARGET_P99_US} us", f"{engine['check_us']['p99']:g} us",
            engine["check_us"]["p99"] < ENGINE_TARGET_P99_US)
    for style, rate, in (("unary", UNARY_TARGET_RATE), ("stream", STREAM_TARGET_RATE)):
        got = best[style][RISKGATE]
        row(f"{style}: highest rate with p99 < 1 ms", f">= {rate:,.0f}/s",
            f"{got:,.0f}/s" if got else "none passed", bool(got and got >= rate))
    pair = _at(all_pairs, "unary", UNARY_TARGET_RATE)
    p99_ratio = pair.ratios()["p99"] if pair is not None else None
    row(f"unary: p99 riskgate / baseline at {UNARY_TARGET_RATE:,.0f}/s", f"<= {UNARY_MAX_P99_RATIO}",
        f"{p99_ratio:.2f}" if p99_ratio is not None else "not measured",
        p99_ratio is not None and p99_ratio <= UNARY_MAX_P99_RATIO)
    rate_ratio = best["stream"]["ratio"]
    row("stream: highest rate riskgate / baseline", f">= {STREAM_MIN_RATE_RATIO}",
        f"{rate_ratio:.2f}" if rate_ratio is not None else "not measured",
        rate_ratio is not None and rate_ratio >= STREAM_MIN_RATE_RATIO)
    return rows


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    steps: list[StepResult] = result["_steps"]
    lines = [f"# riskgate load test ({'quick' if result['meta']['quick'] else 'full'})", ""]
    meta = result["meta"]
    lines += [f"- {meta['started']}, {meta['duration_s']:.0f} s, {meta['machine']}",
              f"- sender: {meta['sender']}; placement: {meta['placement']}",
              f"- workload: {meta['workload']}",
              f"- latency from each request's planned send time; budget p99 <= {meta['budget_us']} us; "
              f"{meta['step_seconds']} s per step", ""]
    lines += ["## Targets", "", "| target | wanted | measured | met |", "|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['wanted']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |"
              for t in result["targets"]]
    engine = result.get("engine")
    if engine:
        lines += ["", "## Engine alone (in process, one core)", "",
                  f"{engine['checks']:,} checks of the same workload; `check_order` alone: "
                  f"{engine['checks_per_second']:,} checks/s, p50 {engine['check_us']['p50']:g} us, "
                  f"p99 {engine['check_us']['p99']:g} us, p99.9 {engine['check_us']['p999']:g} us, "
                  f"mean {engine['check_us']['mean']:g} us. Parse + check + reserve: "
                  f"{engine['path_checks_per_second']:,} /s, p99 {engine['path_us']['p99']:g} us."]
    lines += ["", "## Highest rate with p99 within budget", "", "| style | riskgate | baseline | ratio |",
              "|---|---|---|---|"]
    for style, best in result["highest"].items():
        lines.append(f"| {style} | {_num(best[RISKGATE])} | {_num(best[BASELINE])} | {_num(best['ratio'], 2)} |")
    floor = result["floor"]
    for style in STYLES:
        rows = [p for p in pairs(steps) if p.style == style]
        if not rows:
            continue
        lines += ["", f"## {style} (latency in us; rg = riskgate, bl = baseline, ratio = rg / bl)", "",
                  "| offered/s | rg p50 | rg p99 | rg p99.9 | rg max | bl p50 | bl p99 | bl p99.9 | bl max "
                  "| ratio p50 | ratio p99 | ratio p99.9 | rg achieved/s | bl p99 / floor | late max rg/bl "
                  "| cpu rg/bl/client/other | pass rg/bl |",
                  "|" + "---|" * 17]
        for p in rows:
            rg, bl = p.riskgate, p.baseline
            r = p.ratios()
            floor_ratio = ratio(bl.latency_us.p99, floor[style]["p99"]) if bl and style in floor else None
            late = f"{_late(rg)} / {_late(bl)}"
            main = rg or bl
            assert main is not None
            cpu = (f"{_num(rg.cpu.server if rg else None, 2)} / {_num(bl.cpu.server if bl else None, 2)} / "
                   f"{main.cpu.client:.2f} / {main.cpu.background:.2f}")
            verdict = f"{_verdict(rg)} / {_verdict(bl)}"
            lines.append(
                f"| {p.rate:,.0f} | {_num(p.figure(RISKGATE, 'p50'))} | {_num(p.figure(RISKGATE, 'p99'))} "
                f"| {_num(p.figure(RISKGATE, 'p999'))} | {_num(p.figure(RISKGATE, 'max'))} "
                f"| {_num(p.figure(BASELINE, 'p50'))} | {_num(p.figure(BASELINE, 'p99'))} "
                f"| {_num(p.figure(BASELINE, 'p999'))} | {_num(p.figure(BASELINE, 'max'))} "
                f"| {_num(r['p50'], 2)} | {_num(r['p99'], 2)} | {_num(r['p999'], 2)} "
                f"| {_num(rg.achieved_rate if rg else None)} | {_num(floor_ratio, 2)} | {late} | {cpu} | {verdict} |")
    lines += ["", "## Reading it", "",
              "- *late max*: the worst delay, in us, between a request's planned send time and the moment the "
              "sender put it on the wire, and in brackets the share of requests sent more than 250 us late. "
              "It is inside every latency above (counted from the plan). The sender has a CPU of its own at "
              "real-time priority, so a late send there means the machine itself stalled (this VM's kernel "
              "is not preemptible); a saturated stream server also holds writes back.",
              "- *bl p99 / floor*: the baseline's p99 at that rate over the best baseline p99 of the run; near 1 "
              "means the harness let the bare server run at this machine's floor at that rate.",
              "- *cpu*: cores used on average during the step by the riskgate server, the baseline server, the "
              "sender processes, and everything else on the machine (*other*: not the harness; high values mean "
              "the step shared the machine).",
              "- A step passes when p99 <= the budget, no request failed, and >= 99% were answered. "
              "*: the first attempt failed while the machine was busy with other work or stalled the sender; "
              "the step was measured again and the less disturbed attempt is shown (the other is in "
              "results.json). A server is measured at every rate until it saturates (p50 over the budget, "
              "failures, or falling behind), so both servers have figures wherever either still passes."]
    if result.get("profile", {}).get("top"):
        lines += ["", "## Riskgate profile (py-spy, under load)", "", "```", result["profile"]["top"], "```"]
    return "\n".join(lines) + "\n"


def _late(step: StepResult | None) -> str:
    if step is None:
        return "-"
    return f"{step.lateness_us.max:,} ({step.lateness_us.stalled:.1%})"


def _verdict(step: StepResult | None) -> str:
    if step is None:
        return "-"
    return ("pass" if step.passed else "FAIL") + ("*" if step.attempts > 1 else "")


def write_json(path: Path, result: dict[str, Any]) -> None:
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    public["steps"] = [s.as_dict() for s in result["_steps"]]
    public["pairs"] = [{"style": p.style, "rate": p.rate, "ratio": p.ratios(),
                        RISKGATE: {f: p.figure(RISKGATE, f) for f in FIGURES},
                        BASELINE: {f: p.figure(BASELINE, f) for f in FIGURES}} for p in pairs(result["_steps"])]
    path.write_text(json.dumps(public, indent=2, default=str) + "\n")
