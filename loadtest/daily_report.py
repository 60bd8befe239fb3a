"""Times the daily risk report (GetDailyReport's builder and the three files written) for a busy
day, against an embedded Redis on 127.0.0.1:

    python -m loadtest.daily_report                 # 10M decisions, 10,000 alerts, 100,000 accounts
    python -m loadtest.daily_report --decisions 1000000 --alerts 1000 --accounts 10000

What a day leaves in Redis is written first (not timed): the gate's per-minute decision
counters of `--decisions` decisions spread over 1,440 minutes, the symbols and a mix of
outcomes and reasons (what the gate's write-behind adds with HINCRBY: the counters, not the
orders); `--alerts` alerts, half of them resolved with a rationale; an audit stream with one
action per alert and four reads per action; a year of daily closes per symbol. The book is
loadtest.stress's synthetic one. Timed: the builder (counters, alerts, audit, exposures, margin
ratios, an 11-scenario stress grid plus the historical worst moves, VaR/ES, two backtests, ADL
heads) and writing report.json, report.md and report.html.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

PREFIX = "rg-report-bench"
OUTCOMES = (("ACCEPT", "", 0.86), ("REJECT", "INSUFFICIENT_MARGIN", 0.06), ("REJECT", "LEVERAGE_ABOVE_TIER_MAX", 0.02),
            ("REJECT", "ORDER_RATE_EXCEEDED", 0.02), ("REJECT", "POSITION_LIMIT_EXCEEDED", 0.01),
            ("REDUCE_ONLY", "SYMBOL_REDUCE_ONLY", 0.02), ("REJECT", "UNKNOWN_ACCOUNT", 0.01))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.daily_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000_000)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    from riskgate.store.embedded import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="riskgate-report-bench-") as workdir:
        embedded = EmbeddedRedis(Path(workdir) / "redis").start()
        try:
            return asyncio.run(_run(args, embedded.url, Path(workdir)))
        finally:
            embedded.stop()


async def _run(args: argparse.Namespace, url: str, workdir: Path) -> int:
    import datetime as dt

    import redis.asyncio as aioredis

    from loadtest.stress import synthetic
    from riskgate.monitor.daily import DailyReportBuilder
    from riskgate.monitor.keys import MonitorKeys
    from riskgate.report import render

    client = aioredis.Redis.from_url(url)
    keys = MonitorKeys(PREFIX)
    now_ms = time.time_ns() // 1_000_000
    day = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    t0 = time.perf_counter()
    columns, markets = synthetic(args.accounts, 3, args.symbols, args.seed)
    view = _View(markets)
    fields = await _counters(client, keys, day.isoformat(), sorted(markets), args.decisions, args.seed)
    await _alerts_and_audit(client, keys, sorted(markets), args.alerts, now_ms)
    await _history(client, keys, markets, now_ms, args.seed)
    seeded = time.perf_counter() - t0
    print(f"seeded in {seeded:.1f} s (not timed): {args.decisions:,} decisions as {fields:,} counters, "
          f"{args.alerts:,} alerts, {args.alerts * 5:,} audit entries, {args.accounts:,} accounts")

    t0 = time.perf_counter()
    builder = DailyReportBuilder(client, keys, view, columns, asyncio.Lock())  # type: ignore[arg-type]
    report = await builder.build(day, now_ms)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    paths = render.write(report, workdir / "report")
    written = time.perf_counter() - t0
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KiB" for p in paths)
    print(f"report built in {built:.2f} s, written in {written:.2f} s: total {built + written:.2f} s ({sizes})")
    print(f"decisions {report.decisions.total:,}; rules fired {len(report.rules_fired)}; actions "
          f"{report.actions_total:,}; open cases {len(report.cases.open):,}, resolved {len(report.cases.resolved):,}; "
          f"stress scenarios {len(report.stress.scenarios)}; VaR scenarios {report.value_at_risk.scenarios}; "
          f"notes {report.notes}")
    await client.aclose()
    return 0


class _View:
    """What the builder reads of a MarketView, over the synthetic markets."""

    def __init__(self, markets: dict[str, object]) -> None:
        self._markets = markets
        self.symbols = dict.fromkeys(markets)
        self.rules: dict[str, object] = {}
        self.insurance = None

    def market(self, symbol: str) -> object | None:
        return self._markets.get(symbol)


async def _counters(client: object, keys: object, day: str, symbols: list[str], decisions: int, seed: int) -> int:
    import numpy as np

    from riskgate.store.decision_counts import format_field

    rng = np.random.default_rng(seed)
    cells = [(minute, symbol, decision, reason) for minute in range(1440) for symbol in symbols
             for decision, reason, _ in OUTCOMES]
    weights = np.array([w for _ in range(1440) for _ in symbols for _, _, w in OUTCOMES])
    counts = rng.multinomial(decisions, weights / weights.sum())
    key = keys.decision_counts(day)  # type: ignore[attr-defined]
    mapping = {format_field(*cell): int(n) for cell, n in zip(cells, counts.tolist(), strict=True) if n}
    items = list(mapping.items())
    for start in range(0, len(items), 10_000):
        await client.hset(key, mapping=dict(items[start:start + 10_000]))  # type: ignore[attr-defined]
    return len(mapping)


async def _alerts_and_audit(client: object, keys: object, symbols: list[str], alerts: int, now_ms: int) -> None:
    from riskgate.monitor.alerts import Alert, Transition, encode_alert

    start = now_ms - now_ms % 86_400_000
    span = max(1, now_ms - start)
    rules = ("margin-ratio-warning", "margin-ratio-close-only", "concentration", "order-to-trade", "vol-5pct")
    pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
    for i in range(alerts):
        created = start + span * i // alerts
        resolved = i % 2 == 0
        history = [Transition(actor=f"monitor:{rules[i % 5]}", action="fired", note="", at_ms=created)]
        if resolved:
            history.append(Transition(actor="operator-1", action="resolve", note=f"checked case {i}; client called",
                                      at_ms=created + 1))
        alert = Alert(id=str(i + 1), rule_id=rules[i % 5], rule_version=1, severity="warning",
                      state="RESOLVED" if resolved else "OPEN", metric="margin_ratio", value="0.85", threshold="0.8",
                      window_ms=0, created_ms=created, updated_ms=created + 1, history=history,
                      symbol=symbols[i % len(symbols)], account_id=f"acct-{i}", action="alert")
        pipe.hset(keys.alerts, alert.id, encode_alert(alert))  # type: ignore[attr-defined]
        pipe.xadd(keys.audit, {"ts_ms": str(created), "actor": f"monitor:{rules[i % 5]}",  # type: ignore[attr-defined]
                               "action": "account_reduce_only", "target": f"acct-{i}", "outcome": "ok"})
        for _ in range(4):
            pipe.xadd(keys.audit, {"ts_ms": str(created), "actor": "viewer-1",  # type: ignore[attr-defined]
                                   "action": "GetAccountRisk", "target": f"acct-{i}", "outcome": "ok"})
        if i % 2000 == 1999:
            await pipe.execute()
    await pipe.execute()


async def _history(client: object, keys: object, markets: dict[str, object], now_ms: int, seed: int) -> None:
    from loadtest.var import random_walks
    from riskgate.monitor.history import DAY_MS, Bar, MarkBars

    today = now_ms // DAY_MS
    walks = random_walks(sorted(markets), 400, seed)
    writer = MarkBars(client, keys, 10_080, 3_650)  # type: ignore[arg-type]
    bars = {symbol: [Bar.of((today - 401 + day) * DAY_MS + DAY_MS // 2, close)  # type: ignore[arg-type]
                     for day, close in closes.items()] for symbol, closes in walks.items()}
    await writer.merge(bars, now_ms)


if __name__ == "__main__":
    raise SystemExit(main())
