"""Memory of the gate's book per account, in-process: `python -m loadtest.engine_memory [--accounts N]`.

The book is built as `loadtest.scale` stores it and the gate loads it (the same generated
accounts: BTCUSDT for all, ETHUSDT for 30%, so 1-2 positions; one account in ten with an open
order restored from its stored reservation), without Redis or gRPC, so that only the book's
own objects are counted. Then every account is checked once (a small risk-increasing order,
not reserved), as a served book's accounts are. Prints JSON: Python heap bytes per account
(tracemalloc) and the process RSS growth per account, each after a full collection.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
import tracemalloc
from collections.abc import Sequence
from decimal import Decimal

import msgspec

from loadtest.monitor_accounts import PRIMARY, generate
from loadtest.workload import MARK_MAX_AGE_MS, Market, load_markets
from riskgate.book.specs import MarkSpec, ReservationSpec
from riskgate.book.state import Book, Reservation
from riskgate.engine.check import check_order
from riskgate.engine.ledger import apply_account_record, restore
from riskgate.engine.order import Order
from riskgate.engine.records import apply_mark, apply_symbol
from riskgate.values.codes import OrderType, Side

ORDER_SHARE = 10
LEVERAGE = 10


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(size: int) -> dict[str, object]:
    markets = {m.symbol: Market(msgspec.structs.replace(m.spec, mark_price_max_age_ms=MARK_MAX_AGE_MS,
                                                        open_interest_cap=None), m.mark)
               for m in load_markets()}
    generated = generate(size, markets=markets)
    now_ms = time.time_ns() // 1_000_000
    market = markets[PRIMARY]
    price = (market.mark * Decimal("0.9")).quantize(market.spec.tick_size)
    quantity = market.spec.min_quantity
    gc.collect()
    rss0 = _rss()
    tracemalloc.start()
    book = Book(1000, 300.0)
    book.fresh_until = float("inf")
    for m in markets.values():
        apply_symbol(book, m.spec)
        apply_mark(book, MarkSpec(symbol=m.symbol, price=m.mark, timestamp_ms=now_ms))
    # Snapshots are made inside the traced region: their decimals become the accounts' own.
    account_ids = []
    for index, snapshot in enumerate(generated.snapshots(0, size)):
        account_ids.append(snapshot.account_id)
        apply_account_record(book, snapshot, journal=())
        if index % ORDER_SHARE == 0:
            account = book.accounts[snapshot.account_id]
            restore(book, account, Reservation.from_spec(ReservationSpec(
                order_id=f"open-{index}", account_id=snapshot.account_id, symbol=PRIMARY, side=1, price=price,
                leverage=LEVERAGE, remaining=quantity, reducing_left=Decimal(0), increasing_left=quantity,
                cost_left=price * quantity / LEVERAGE, margin_left=price * quantity / LEVERAGE, created_ms=now_ms)))
    book.dirty_accounts.clear()
    book.dirty_orders.clear()
    gc.collect()
    loaded = tracemalloc.get_traced_memory()[0]
    rss_loaded = _rss()
    mono = time.monotonic()
    decisions: dict[str, int] = {}
    for account_id in account_ids:
        order = Order("probe", account_id, PRIMARY, Side.BUY, OrderType.LIMIT, quantity, price,
                      0, False)
        decision = check_order(book, order, now_ms, mono).decision.name
        decisions[decision] = decisions.get(decision, 0) + 1
    gc.collect()
    checked = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss_checked = _rss()
    return {
        "accounts": size,
        "heap_bytes_per_account_loaded": round(loaded / size),
        "heap_bytes_per_account_checked": round(checked / size),
        "rss_bytes_per_account_loaded": round((rss_loaded - rss0) / size),
        "rss_bytes_per_account_checked": round((rss_checked - rss0) / size),
        "decisions": decisions,
        "note": "RSS includes tracemalloc's own bookkeeping; the heap figures do not",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.engine_memory")
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.accounts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
