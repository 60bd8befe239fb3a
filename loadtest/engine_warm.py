"""The check with warm caches against the check over many accounts, without fills in between.

`python -m loadtest.engine_warm [--orders N]`: the engine bench's book and orders, each order
checked (not reserved) by the decimal reference (tests/decimal_reference.py) and by
`check_order`: (1) each order once, in workload order (accounts cycle, nothing else runs in
between), (2) one order repeated (everything warm). Set beside engine_bench (where parsing,
reservations and fills run between checks) it shows how much of a check's time is the
interpreter's own work and how much is caches refilled after the rest of the order's path.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from loadtest.engine_bench import build_book
from loadtest.workload import Workload, WorkloadConfig
from riskgate.engine.check import check_order
from riskgate.engine.order import Order, parse_order


def run(count: int) -> dict[str, float]:
    from tests.decimal_reference import check_order as reference  # the oracle lives with the tests

    workload = Workload(WorkloadConfig())
    now_ms = time.time_ns() // 1_000_000
    book = build_book(workload, now_ms)
    for account in book.accounts.values():
        account.bucket.set_rate(10**9)  # the same order may be checked many times
    orders = []
    for planned in workload.orders("warm", count):
        parsed = parse_order(planned.order_id, planned.account_id, planned.symbol, planned.side,
                             planned.order_type, planned.quantity, planned.price, planned.leverage,
                             planned.reduce_only)
        assert isinstance(parsed, Order)
        orders.append(parsed)
    now_mono = time.monotonic()
    figures: dict[str, float] = {}
    for _ in range(2):  # the second round is reported: the first warms the interpreter
        for name, check in (("reference", reference), ("engine", check_order)):
            began = time.perf_counter_ns()
            for order in orders:
                check(book, order, now_ms, now_mono)
            figures[f"{name}_accounts_cycling_us"] = round((time.perf_counter_ns() - began) / len(orders) / 1000, 2)
            began = time.perf_counter_ns()
            for _ in range(len(orders)):
                check(book, orders[0], now_ms, now_mono)
            figures[f"{name}_one_order_warm_us"] = round((time.perf_counter_ns() - began) / len(orders) / 1000, 2)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.engine_warm")
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.orders)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
