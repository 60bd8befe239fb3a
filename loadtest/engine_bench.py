"""In-process engine benchmark: riskgate's check on the harness's workload, without gRPC or Redis.

The book is built as the server builds it, orders come from the same generator, fills and
cancels are applied after each allowed order, and marks move, all on a virtual clock running at
a nominal order rate, so rate limits and mark freshness decide as they would in a served run.
Only `check_order` is inside the timed region (and, separately, the whole parse-check-reserve
path, with the order-flow count the server makes per decision); its latencies go to an HDR
histogram.
`python -m loadtest.engine_bench [--seconds S] [--accounts N] [--cpu C] [--clock wall|cpu]` prints JSON.
With `--clock cpu` every reading is this thread's CPU time: on a VM shared with other busy
processes, a check preempted half-way is then not charged for the time it waited (the
default, wall, is what a served order sees).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal

from loadtest.latency import Percentiles, encode, histogram_of
from loadtest.workload import Market, PlannedOrder, Workload, WorkloadConfig
from riskgate.book.specs import AccountSnapshot, ControlsSpec, MarkSpec, PositionSpec
from riskgate.book.state import Book
from riskgate.engine.check import check_order
from riskgate.engine.ledger import apply_account_record, apply_execution, reserve
from riskgate.engine.order import parse_order
from riskgate.engine.records import apply_controls, apply_mark, apply_symbol
from riskgate.engine.result import Reason
from riskgate.values.codes import Decision, ExecutionKind, Restriction

NOMINAL_RATE = 5000.0
BATCH = 20_000
DUPLICATE_WINDOW_S = 300.0


@dataclass
class EngineResult:
    checks: int
    seconds_in_check: float
    checks_per_second: float
    check_us: dict[str, float]
    path_checks_per_second: float
    path_us: dict[str, float]
    decisions: dict[str, int]
    reasons: dict[str, int]
    cpu: int | None
    histogram: str = field(repr=False)


def build_book(workload: Workload, now_ms: int) -> Book:
    book = Book(workload.config.default_orders_per_second, DUPLICATE_WINDOW_S)
    book.fresh_until = float("inf")  # no Redis link to prove here
    for market in workload.markets.values():
        apply_symbol(book, market.spec)
        apply_mark(book, MarkSpec(symbol=market.symbol, price=market.mark, timestamp_ms=now_ms))
    for seed in workload.accounts:
        apply_account_record(book, AccountSnapshot(
            account_id=seed.account_id, balance=seed.balance,
            positions=tuple(PositionSpec(symbol=p.symbol, quantity=p.quantity, entry_price=p.entry_price,
                                         leverage=p.leverage) for p in seed.positions)))
        apply_controls(book, ControlsSpec(account_id=seed.account_id, restriction=Restriction.NONE,
                                          kyc_level=seed.kyc_level, qualified_investor=seed.qualified,
                                          max_orders_per_second=seed.max_orders_per_second))
    return book


class VirtualClock:
    """The bench's time at order number `index` of a run at NOMINAL_RATE, with a mark move six
    times a virtual second, so rate limits and mark freshness decide as in a served run."""

    def __init__(self, book: Book, markets: list[Market], wall_ms: int, mono0: float) -> None:
        self.book = book
        self.markets = markets
        self.wall_ms = wall_ms
        self.mono0 = mono0
        self.mark_every = int(NOMINAL_RATE / 6)

    def at(self, index: int) -> tuple[int, float]:
        virtual_s = index / NOMINAL_RATE
        now_ms = self.wall_ms + int(virtual_s * 1000)
        if index % self.mark_every == 0:
            market = self.markets[(index // self.mark_every) % len(self.markets)]
            apply_mark(self.book, MarkSpec(symbol=market.symbol, price=market.mark, timestamp_ms=now_ms))
        return now_ms, self.mono0 + virtual_s


def drain(book: Book) -> None:
    """What the server's write-behind task empties; nothing else does in process."""
    book.dirty_accounts.clear()
    book.dirty_orders.clear()
    book.flow.take()


def _settle(book: Book, order: PlannedOrder, decision: Decision, now_mono: float) -> None:
    """What the matching engine reports for an allowed order; outside the timed region."""
    if decision == Decision.ACCEPT and order.fill:
        apply_execution(book, order.account_id, order.order_id, ExecutionKind.FILL, Decimal(order.quantity),
                        Decimal(order.fill_price), now_mono)
    else:
        apply_execution(book, order.account_id, order.order_id, ExecutionKind.CANCELED, Decimal(0), Decimal(0),
                        now_mono)


def run(workload: Workload, seconds: float, clock: str = "wall") -> EngineResult:
    wall_ms = time.time_ns() // 1_000_000
    book = build_book(workload, wall_ms)
    markets = list(workload.markets.values())
    # Start-up state lives for the whole run, as in the server.
    gc.collect()
    gc.freeze()
    perf = time.thread_time_ns if clock == "cpu" else time.perf_counter_ns
    check_ns: list[int] = []
    path_ns: list[int] = []
    decisions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    index = 0
    clock_at = VirtualClock(book, markets, wall_ms, time.monotonic()).at
    deadline = perf() + int(seconds * 1e9)
    while perf() < deadline:
        for order in workload.orders(f"e{index // BATCH}", BATCH):
            now_ms, now_mono = clock_at(index)
            t0 = perf()
            parsed = parse_order(order.order_id, order.account_id, order.symbol, order.side, order.order_type,
                                 order.quantity, order.price, order.leverage, order.reduce_only)
            if isinstance(parsed, Reason):
                raise ValueError(f"workload made a malformed order: {parsed!r}")
            t1 = perf()
            result = check_order(book, parsed, now_ms, now_mono)
            t2 = perf()
            if result.allowed_quantity:
                reserve(book, parsed, result, now_ms)
            book.flow.decision(parsed.account_id, parsed.symbol, result.decision,
                               result.reasons[0].code if result.reasons else 0)
            t3 = perf()
            check_ns.append(t2 - t1)
            path_ns.append(t3 - t0)
            decisions[result.decision.name] += 1
            reasons[result.reasons[0].code.name if result.reasons else "NONE"] += 1
            if result.allowed_quantity:
                _settle(book, order, result.decision, now_mono)
            index += 1
            if index % 1000 == 0:
                drain(book)
            if index % 1000 == 0 and perf() >= deadline:
                break
    gc.unfreeze()
    check_hist = histogram_of([(ns + 999) // 1000 for ns in check_ns])
    path_hist = histogram_of([(ns + 999) // 1000 for ns in path_ns])
    in_check = sum(check_ns) / 1e9
    in_path = sum(path_ns) / 1e9
    affinity = os.sched_getaffinity(0)
    return EngineResult(
        checks=len(check_ns),
        seconds_in_check=round(in_check, 3),
        checks_per_second=round(len(check_ns) / in_check),
        check_us=_fine_percentiles(check_ns, check_hist),
        path_checks_per_second=round(len(path_ns) / in_path),
        path_us=_fine_percentiles(path_ns, path_hist),
        decisions=dict(decisions),
        reasons=dict(reasons.most_common()),
        cpu=next(iter(affinity)) if len(affinity) == 1 else None,
        histogram=encode(check_hist),
    )


def _fine_percentiles(samples_ns: list[int], histogram: object) -> dict[str, float]:
    """The HDR percentiles, whole microseconds; the mean to 0.1 us from the raw sum."""
    summary = Percentiles.of(histogram)  # type: ignore[arg-type]
    figures = {k: float(v) for k, v in summary.as_dict().items() if k != "count"}
    figures["mean"] = round(sum(samples_ns) / len(samples_ns) / 1000, 2)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.engine_bench")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--accounts", type=int, default=WorkloadConfig.accounts)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU (one core)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time checks by the wall clock (default) or by this thread's CPU time")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = run(Workload(WorkloadConfig(accounts=args.accounts)), args.seconds, args.clock)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
