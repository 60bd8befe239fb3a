"""A/B of two check implementations on the engine bench's workload, in one process.

`python -m loadtest.engine_ab [--seconds S] [--chunk N]`: two identical books, one checked by
the decimal reference (tests/decimal_reference.py, the check before the fixed-point fast
path), one by `riskgate.engine.check.check_order`; the same orders in alternating chunks, each
book settled as engine_bench settles it. On a shared VM the machine's load moves between
runs; alternating chunks in one process exposes both implementations to the same load, so
their ratio is trustworthy where two separate runs are not. Prints JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable, Sequence

from loadtest.engine_bench import BATCH, VirtualClock, _settle, build_book, drain
from loadtest.workload import Workload, WorkloadConfig
from riskgate.book.state import Book
from riskgate.engine.check import check_order
from riskgate.engine.ledger import reserve
from riskgate.engine.order import Order, parse_order
from riskgate.engine.result import CheckResult

Check = Callable[[Book, Order, int, float], CheckResult]


def _reference() -> Check:
    from tests.decimal_reference import check_order as reference  # the tests hold the oracle: imported only when asked

    return reference


def run(seconds: float, chunk: int) -> dict[str, object]:
    workload = Workload(WorkloadConfig())
    wall_ms = time.time_ns() // 1_000_000
    sides: list[tuple[str, Check, Book]] = [
        ("reference", _reference(), build_book(workload, wall_ms)),
        ("engine", check_order, build_book(workload, wall_ms)),
    ]
    markets = list(workload.markets.values())
    samples: dict[str, list[int]] = {name: [] for name, _, _ in sides}
    cpu: dict[str, int] = dict.fromkeys(samples, 0)
    gc.collect()
    gc.freeze()
    perf = time.perf_counter_ns
    mono0 = time.monotonic()
    clocks = {name: VirtualClock(book, markets, wall_ms, mono0).at for name, _, book in sides}
    index = 0
    deadline = perf() + int(seconds * 1e9)
    while perf() < deadline:
        planned = list(workload.orders(f"e{index // BATCH}", chunk))
        for name, check, book in sides:
            cpu0 = time.thread_time_ns()
            for offset, order in enumerate(planned):
                at = index + offset
                now_ms, now_mono = clocks[name](at)
                parsed = parse_order(order.order_id, order.account_id, order.symbol, order.side, order.order_type,
                                     order.quantity, order.price, order.leverage, order.reduce_only)
                assert isinstance(parsed, Order)
                t0 = perf()
                result = check(book, parsed, now_ms, now_mono)
                samples[name].append(perf() - t0)
                if result.allowed_quantity:
                    reserve(book, parsed, result, now_ms)
                    _settle(book, order, result.decision, now_mono)
                if at % 1000 == 999:
                    drain(book)
            cpu[name] += time.thread_time_ns() - cpu0
        index += chunk
    gc.unfreeze()
    report: dict[str, object] = {"checks": index}
    for name, values in samples.items():
        ordered = sorted(values)
        report[name] = {
            "mean_us": round(sum(values) / len(values) / 1000, 2),
            "p50_us": round(ordered[len(ordered) // 2] / 1000, 1),
            "p99_us": round(ordered[int(len(ordered) * 0.99)] / 1000, 1),
            "checks_per_second": round(len(values) / (sum(values) / 1e9)),
            "chunk_cpu_s": round(cpu[name] / 1e9, 3),
        }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.engine_ab")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.seconds, args.chunk)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
