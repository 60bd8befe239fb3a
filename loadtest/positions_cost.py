"""`python -m loadtest.positions_cost`: what a check costs per position the account holds.

The incremental-aggregates lever (a running sum of position IM and unrealised PnL per account,
updated on mark ticks and fills) would make the check O(1) in the account's positions. Its
gain per check is at most the valuation loop's cost per position. Its price is that every
mark tick of a symbol must revalue each account holding it, which costs about the same per
position. This measures that one figure: one account holds 0..N positions in copies of
BTCUSDT (its real tiers) at their marks, and the same limit order is checked again and again
(warm, never reserved), timed on the thread's CPU clock. The slope over the position count
is the cost per position. In process, no gRPC or Redis. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from decimal import Decimal

import msgspec

from loadtest.workload import load_markets
from riskgate.book.specs import AccountSnapshot, ControlsSpec, MarkSpec, PositionSpec
from riskgate.book.state import Book
from riskgate.compiled import compiled_modules
from riskgate.engine.check import check_order
from riskgate.engine.ledger import apply_account_record
from riskgate.engine.order import Order, parse_order
from riskgate.engine.records import apply_controls, apply_mark, apply_symbol
from riskgate.values.codes import Decision


def book_with_positions(count: int, now_ms: int) -> Book:
    btc = next(market for market in load_markets() if market.symbol == "BTCUSDT")
    book = Book(default_orders_per_second=10**9, duplicate_window_s=60)
    book.fresh_until = float("inf")
    names = ["BTCUSDT", *(f"BTC{index}USDT" for index in range(1, max(count, 1)))]
    for name in names:
        apply_symbol(book, msgspec.structs.replace(btc.spec, symbol=name))
        apply_mark(book, MarkSpec(symbol=name, price=btc.mark, timestamp_ms=now_ms))
    # Entries off the mark, with an averaged entry's decimals, as after a few fills.
    entry = (btc.mark * Decimal("0.99")).quantize(Decimal("0.0001"))
    positions = tuple(PositionSpec(symbol=name, quantity=Decimal("0.5"), entry_price=entry, leverage=10)
                      for name in names[:count])
    apply_account_record(book, AccountSnapshot(account_id="a1", balance=Decimal(10**7), positions=positions))
    apply_controls(book, ControlsSpec(account_id="a1", kyc_level=5, qualified_investor=True))
    return book


def us_per_check(count: int, checks: int, rounds: int) -> float:
    now_ms = time.time_ns() // 1_000_000
    book = book_with_positions(count, now_ms)
    mark = book.symbols["BTCUSDT"].mark
    assert mark is not None
    order = parse_order("o1", "a1", "BTCUSDT", 1, 1, "0.01", str(mark.price), 10, False)
    assert isinstance(order, Order)
    now_mono = time.monotonic()
    assert check_order(book, order, now_ms, now_mono).decision == Decision.ACCEPT
    medians = []
    for _ in range(rounds):
        started = time.thread_time_ns()
        for _ in range(checks):
            check_order(book, order, now_ms, now_mono)
        medians.append((time.thread_time_ns() - started) / checks / 1000)
    return statistics.median(medians)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.positions_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="0,1,2,4,8,16", help="position counts, comma-separated")
    parser.add_argument("--checks", type=int, default=20_000, help="checks per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    counts = [int(text) for text in args.counts.split(",") if text]
    figures = {count: round(us_per_check(count, args.checks, args.rounds), 3) for count in counts}
    xs, ys = list(figures), list(figures.values())
    slope = statistics.linear_regression(xs, ys).slope if len(xs) > 1 else 0.0
    print(json.dumps({"compiled_modules": len(compiled_modules()), "us_per_check_by_positions": figures,
                      "us_per_position": round(slope, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
