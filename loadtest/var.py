"""Times GetValueAtRisk's computation (riskgate.monitor.var) over a synthetic book and history:

    python -m loadtest.var                          # 100,000 accounts x 3 positions, 1,000 days
    python -m loadtest.var --accounts 10000 --days 250 --threads 1

The book is loadtest.stress's synthetic one; each symbol's history a random walk of daily closes
(1,001 closes for 1,000 scenario days, exact to the cent). Timed: the changes (exact Decimal),
the platform's exact VaR/ES, and every account's VaR (numpy float over chunks of accounts x
scenarios) with the top accounts recomputed exactly; also a backtest of the platform. One core:
BLAS/OpenMP threads are limited to --threads before numpy is imported.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.var", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--days", type=int, default=1_000)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)

    from decimal import Decimal

    from loadtest.stress import synthetic
    from riskgate.monitor import stress, var

    t0 = time.perf_counter()
    columns, markets = synthetic(args.accounts, args.positions, args.symbols, args.seed)
    closes = random_walks(sorted(markets), args.days, args.seed)
    built = time.perf_counter() - t0
    marks = {symbol: market.mark for symbol, market in markets.items()}  # type: ignore[attr-defined]
    confidences = [Decimal("0.99"), Decimal("0.995")]

    t0 = time.perf_counter()
    book = stress.snapshot(columns)  # type: ignore[arg-type]
    found = var.scenarios(closes, args.days, args.days, 1)
    prepared = time.perf_counter() - t0
    t0 = time.perf_counter()
    platform = var.figures(var.exact_losses(var.platform_exposure(book, marks), found), confidences)
    platform_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scan = var.rank_accounts(book, marks, found, confidences, args.top)
    accounts_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tested = var.backtest(var.exact_losses(var.platform_exposure(book, marks), found), Decimal("0.99"),
                          min(250, args.days // 2), args.days // 2)
    backtest_s = time.perf_counter() - t0

    print(f"book: {args.accounts:,} accounts x {args.positions} positions over {args.symbols} symbols, "
          f"{len(found.days):,} scenario days (built in {built:.1f} s, not timed)")
    print(f"copy of the book + changes: {prepared:.3f} s; platform VaR/ES (exact): {platform_s:.3f} s; "
          f"every account's VaR + top {args.top} exact: {accounts_s:.3f} s; "
          f"total {prepared + platform_s + accounts_s:.3f} s")
    print(f"backtest of the platform ({tested.days} days, lookback {tested.lookback}): {backtest_s:.3f} s, "
          f"{tested.exceptions} exceptions, Kupiec LR {tested.kupiec_lr:.3f}, {tested.zone}")
    for figure in platform:
        print(f"platform {figure.confidence}: VaR {figure.var}, ES {figure.expected_shortfall}")
    for account in scan.ranked[:3]:
        print(f"{account.account_id} {account.figures[0].confidence}: VaR {account.figures[0].var}")
    return 0


def random_walks(symbols: Sequence[str], days: int, seed: int) -> dict[str, dict[int, object]]:
    """Daily closes for days 0..days (one more than the scenario days), exact to the cent:
    log-returns normal with a 3% daily volatility and a few jumps."""
    from decimal import Decimal

    import numpy as np

    rng = np.random.default_rng(seed + 1)
    closes: dict[str, dict[int, object]] = {}
    cent = Decimal("0.01")
    for symbol in symbols:
        steps = rng.normal(0, 0.03, days) + np.where(rng.random(days) < 0.01, rng.normal(0, 0.15, days), 0)
        path = 1000 * np.exp(np.concatenate([[0.0], np.cumsum(steps)]))
        closes[symbol] = {day: max(cent, Decimal(repr(float(price))).quantize(cent)) for day, price in enumerate(path)}
    return closes


if __name__ == "__main__":
    raise SystemExit(main())
