"""Instructions per order, counted by valgrind (cachegrind): a measure this shared VM's load cannot move.

`PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no python -m loadtest.engine_ir --orders N --repeat PART`
runs the engine bench's loop (parse, check, reserve, settle) over N orders of its workload;
with --repeat check (or parse) that step runs twice per order, the second result discarded
(the check's only side effect, the order-rate token, never runs dry at the bench's rates, and
parsing has none). The difference between a run with and without the repeat, divided by N,
is what one check (or parse) costs in instructions, independent of timing noise (the README's
Performance section has the figures).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence

from loadtest.engine_bench import VirtualClock, _settle, build_book, drain
from loadtest.workload import Workload, WorkloadConfig
from riskgate.engine.check import check_order
from riskgate.engine.ledger import reserve
from riskgate.engine.order import Order, parse_order


def run(orders: int, repeat: str) -> None:
    workload = Workload(WorkloadConfig())
    wall_ms = 1_700_000_000_000
    book = build_book(workload, wall_ms)
    markets = list(workload.markets.values())
    clock_at = VirtualClock(book, markets, wall_ms, time.monotonic()).at
    planned = list(workload.orders("ir", orders))
    # Collections would land at different points in runs with and without the repeat: none
    # during the loop (run it with PYTHONHASHSEED fixed too, so dict and set orders repeat).
    gc.collect()
    gc.disable()
    for index, order in enumerate(planned):
        now_ms, now_mono = clock_at(index)
        fields = (order.order_id, order.account_id, order.symbol, order.side, order.order_type, order.quantity,
                  order.price, order.leverage, order.reduce_only)
        parsed = parse_order(*fields)
        if repeat == "parse":
            parse_order(*fields)
        assert isinstance(parsed, Order)
        result = check_order(book, parsed, now_ms, now_mono)
        if repeat == "check":
            check_order(book, parsed, now_ms, now_mono)
        if result.allowed_quantity:
            reserve(book, parsed, result, now_ms)
            _settle(book, order, result.decision, now_mono)
        if index % 1000 == 999:
            drain(book)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.engine_ir")
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--repeat", choices=("none", "check", "parse"), default="none")
    args = parser.parse_args(argv)
    run(args.orders, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
