"""Times RunStressTest's computation (riskgate.monitor.stress) over a synthetic book:

    python -m loadtest.stress                       # 1,000,000 accounts x 3 positions, a 21-scenario grid
    python -m loadtest.stress --accounts 100000 --symbols 10 --grid -0.5:0.5:0.05 --threads 1

The book is an AccountColumns filled directly (column arrays and exact records; building it is
not timed). Timed: the copy of the book (what the RPC takes on the event loop) and the scan of
every scenario (float screen, exact Decimal for the accounts at or below zero equity up to
stress.EXACT_LIMIT, the listed ones, the liquidations near the line). One core: BLAS/OpenMP
threads are limited to --threads before numpy is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.stress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--positions", type=int, default=3, help="per account (distinct symbols)")
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--grid", default="-0.5:0.5:0.05")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser._negative_number_matcher = __import__("re").compile(r"^-\d*\.?\d+(:-?\d*\.?\d+)*$")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)

    from decimal import Decimal

    from riskgate.monitor import stress

    start, stop, step = (Decimal(x) for x in args.grid.split(":"))
    shocks = stress.grid(start, stop, step)
    t0 = time.perf_counter()
    columns, markets = synthetic(args.accounts, args.positions, args.symbols, args.seed)
    built = time.perf_counter() - t0
    symbols = sorted(markets)
    scenarios = [stress.uniform(shock, symbols) for shock in shocks]

    t0 = time.perf_counter()
    book = stress.snapshot(columns)
    copied = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = stress.run(book, markets, scenarios, top=args.top, fund=Decimal(10_000_000))
    scanned = time.perf_counter() - t0

    print(f"book: {args.accounts:,} accounts x {args.positions} positions over {args.symbols} symbols "
          f"(built in {built:.1f} s, not timed)")
    print(f"copy of the book: {copied:.3f} s; {len(scenarios)} scenarios: {scanned:.3f} s "
          f"({scanned / len(scenarios) * 1000:.0f} ms each); total {copied + scanned:.3f} s")
    print(f"{'shock':>7} {'short':>8} {'exact':>5} {'shortfall':>18} {'liquidations':>12} {'cover-1':>14}")
    for shock, result in zip(shocks, results, strict=True):
        print(f"{stress.percent(shock):>7} {result.accounts_short:>8} {'yes' if result.shortfall_exact else 'no':>5} "
              f"{result.total_shortfall:>18} {result.liquidations:>12} {result.cover_1.amount:>14}")
    return 0


def synthetic(accounts: int, positions: int, symbols: int, seed: int) -> tuple[object, dict[str, object]]:
    """Accounts with `positions` positions each in distinct symbols, random side, notional
    1,000..100,000 at mark, entry within 10% of the mark, balance = gross notional / leverage with
    leverage 1 + an exponential of mean 3 (capped at 50)."""
    from decimal import Decimal

    import numpy as np

    from riskgate.book.specs import PositionSpec
    from riskgate.monitor.columns import AccountColumns, Holders
    from riskgate.monitor.exact import Market
    from riskgate.values.tiers import TierTable

    rng = np.random.default_rng(seed)
    tiers = TierTable.derive([(Decimal(c), lev, Decimal(m)) for c, lev, m in (
        ("50000", 125, "0.004"), ("250000", 100, "0.005"), ("1000000", 50, "0.01"), ("7500000", 20, "0.025"),
        ("40000000", 10, "0.05"), ("100000000", 5, "0.10"))])
    names = [f"SYM{i:02d}USDT" for i in range(symbols)]
    marks = {name: Decimal(int(rng.integers(10, 100_000))) for name in names}
    markets = {name: Market(tiers=tiers, tick=Decimal("0.1"), lot=Decimal("0.001"), mark=marks[name], mark_ms=0,
                            max_age_ms=60_000) for name in names}
    # Each account's symbols: distinct, random.
    held = np.argsort(rng.random((accounts, symbols)), axis=1)[:, :positions]
    mark_of = np.array([float(marks[n]) for n in names])
    notional = rng.uniform(1_000, 100_000, (accounts, positions))
    lots = np.maximum(np.round(notional / mark_of[held] * 1000), 1).astype(np.int64)  # quantity in 0.001s
    sign = np.where(rng.random((accounts, positions)) < 0.5, -1, 1)
    lots *= sign
    entry_tenths = np.round(mark_of[held] * rng.uniform(0.9, 1.1, (accounts, positions)) * 10).astype(np.int64)
    leverage = np.minimum(1 + rng.exponential(3, accounts), 50)
    gross = (np.abs(lots) / 1000 * mark_of[held]).sum(axis=1)
    balance_cents = np.round(gross / leverage * 100).astype(np.int64)

    columns = AccountColumns()
    columns.ids = [f"acct-{i}" for i in range(accounts)]
    columns.index = {account: i for i, account in enumerate(columns.ids)}
    columns.balance = balance_cents / 100
    columns.version = np.ones(accounts, dtype=np.int64)
    columns.upnl = np.zeros(accounts)
    columns.mm = np.zeros(accounts)
    columns.ratio = np.zeros(accounts)
    quantity = lots / 1000
    entry = entry_tenths / 10
    records = []
    milli, tenth, cent = Decimal("0.001"), Decimal("0.1"), Decimal("0.01")
    lots_list, entries_list, held_list = lots.tolist(), entry_tenths.tolist(), held.tolist()
    for i, cents in enumerate(balance_cents.tolist()):
        records.append((cents * cent, tuple(
            PositionSpec(names[s], q * milli, e * tenth, 10)
            for s, q, e in zip(held_list[i], lots_list[i], entries_list[i], strict=True))))
    columns.records = records
    columns.held = [tuple(names[s] for s in row) for row in held_list]
    for s, name in enumerate(names):
        rows, cols = np.nonzero(held == s)
        holders = Holders()
        holders.n = len(rows)
        holders.account = rows.astype(np.int64)
        holders.quantity = quantity[rows, cols]
        holders.entry = entry[rows, cols]
        holders.upnl = np.zeros(len(rows))
        holders.mm = np.zeros(len(rows))
        columns.holders[name] = holders
        q = lots[rows, cols]
        columns.open_interest[name] = (Decimal(int(q[q > 0].sum())) * milli, Decimal(int(-q[q < 0].sum())) * milli)
    return columns, markets  # type: ignore[return-value]


if __name__ == "__main__":
    sys.exit(main())
