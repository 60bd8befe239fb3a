"""What building each kind of answer costs: protobuf construction and serialisation, per response.

Runs the harness's workload through the engine (as `engine_bench` does, no gRPC, no Redis) to
collect real results, then times, per kind, with the other kinds' objects out of the way:

- `CheckOrderResponse` ACCEPT, REJECT (a check's reject), REJECT (a malformed order, its
  `invalid_response`) and REDUCE_ONLY: `check_response`/`invalid_response`, then
  `SerializeToString` (what grpc's serializer does with it); each also as built before the
  lean change (`previous_*`, kept here as the reference), in the same process;
- `ExecutionAck` as the unary ReportExecution builds it (with the account's valuation) and as
  the ReportExecutions stream builds it without `with_account_state` (None for a plain
  success: nothing built), after a fill; and the stream's `ExecutionFeedAck` per message, for
  batches of 1 and of 20 plain successes.

`python -m loadtest.response_cost [--accounts N] [--repeat R] [--cpu C]` prints a table (us per
response, best of R rounds: the least disturbed) and, with --json, JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from loadtest.engine_bench import build_book
from loadtest.workload import Workload, WorkloadConfig
from riskgate.api.convert import check_response, invalid_response
from riskgate.api.lifecycle import Lifecycle
from riskgate.api.pretrade import PreTradeRiskServicer
from riskgate.engine.check import check_order
from riskgate.engine.ledger import apply_execution, reserve
from riskgate.engine.order import parse_order
from riskgate.engine.result import CheckResult, Reason
from riskgate.telemetry import DecisionCounters
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.values.codes import Decision, ExecutionKind, ReasonCode
from riskgate.values.money import fmt

SAMPLES = 400


def previous_check_response(order_id: str, result: CheckResult) -> pb.CheckOrderResponse:
    """`check_response` as it was built before the lean change: the reference for cost and bytes."""
    return pb.CheckOrderResponse(
        order_id=order_id,
        decision=result.decision,
        reasons=[pb.Reason(code=r.code, message=r.message, limit=r.limit, value=r.value) for r in result.reasons],
        allowed_quantity=fmt(result.allowed_quantity),
        initial_margin=fmt(result.initial_margin),
        order_cost=fmt(result.order_cost),
        available_margin=fmt(result.available_margin),
        max_leverage=result.max_leverage,
        estimated_liquidation_price=fmt(result.liquidation_price),
    )


def previous_invalid_response(order_id: str, reason: Reason) -> pb.CheckOrderResponse:
    return pb.CheckOrderResponse(
        order_id=order_id,
        decision=pb.DECISION_REJECT,
        reasons=[pb.Reason(code=reason.code, message=reason.message, limit=reason.limit, value=reason.value)],
        allowed_quantity="0",
        initial_margin="0",
        order_cost="0",
    )


def collect(workload: Workload, orders: int) -> tuple[dict[str, list[tuple[str, CheckResult]]], Any, list[Any]]:
    """Real check results by kind, the book they left, and fills (with their reports) to acknowledge."""
    now_ms = time.time_ns() // 1_000_000
    book = build_book(workload, now_ms)
    kinds: dict[str, list[tuple[str, CheckResult]]] = {"accept": [], "reject": [], "reduce_only": []}
    fills = []
    mono = time.monotonic()
    for n, order in enumerate(workload.orders("rc", orders)):
        parsed = parse_order(order.order_id, order.account_id, order.symbol, order.side, order.order_type,
                             order.quantity, order.price, order.leverage, order.reduce_only)
        assert not isinstance(parsed, Reason)
        result = check_order(book, parsed, now_ms + n, mono + n / 5000)
        name = {Decision.ACCEPT: "accept", Decision.REJECT: "reject", Decision.REDUCE_ONLY: "reduce_only"}[
            result.decision]
        kinds[name].append((order.order_id, result))
        if result.allowed_quantity:
            reserve(book, parsed, result, now_ms + n)
            if result.decision == Decision.ACCEPT and order.fill:
                # Applied here; acknowledged (timed) below against the book as it ends up.
                apply_execution(book, order.account_id, order.order_id, ExecutionKind.FILL, Decimal(order.quantity),
                                Decimal(order.fill_price), mono + n / 5000)
                fills.append(pb.ExecutionReport(order_id=order.order_id, account_id=order.account_id,
                                                kind=pb.EXECUTION_KIND_FILL, quantity=order.quantity,
                                                price=order.fill_price, symbol=order.symbol))
            else:
                apply_execution(book, order.account_id, order.order_id, ExecutionKind.CANCELED, Decimal(0),
                                Decimal(0), mono + n / 5000)
    return {k: v[:SAMPLES] for k, v in kinds.items()}, book, fills[:SAMPLES]


def per_call_us(build: Callable[[Any], Any], items: Sequence[Any], repeat: int) -> float:
    """Best of `repeat` rounds over every item: microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for item in items:
            build(item)
        best = min(best, (time.perf_counter_ns() - started) / len(items) / 1000)
    return round(best, 3)


def measure(accounts: int, repeat: int) -> dict[str, dict[str, float]]:
    workload = Workload(WorkloadConfig(accounts=accounts))
    kinds, book, fills = collect(workload, 6000)
    invalid = [(f"bad-{n}", Reason(ReasonCode.INVALID_QUANTITY, "quantity must be a positive decimal", "", "-1"))
               for n in range(SAMPLES)]
    figures: dict[str, dict[str, float]] = {}

    def both(name: str, build: Callable[[Any], Any], items: Sequence[Any]) -> None:
        if not items:
            return
        figures[name] = {"build_us": per_call_us(build, items, repeat),
                         "build_and_serialize_us": per_call_us(lambda i: build(i).SerializeToString(), items, repeat),
                         "bytes": round(sum(len(build(i).SerializeToString()) for i in items) / len(items), 1),
                         "samples": len(items)}

    for name, items in kinds.items():
        both(f"CheckOrderResponse {name.upper()}, before", lambda item: previous_check_response(*item), items)
        both(f"CheckOrderResponse {name.upper()}", lambda item: check_response(*item), items)
    both("CheckOrderResponse REJECT (malformed order), before", lambda item: previous_invalid_response(*item),
         invalid)
    both("CheckOrderResponse REJECT (malformed order)", lambda item: invalid_response(*item), invalid)
    servicer = PreTradeRiskServicer(book, DecisionCounters(), Lifecycle())
    both("ExecutionAck, unary (valuation)", lambda r: servicer._ack(r, r.symbol, None, with_state=True), fills)
    figures["ExecutionAck, stream lean (plain fill)"] = {
        "build_us": per_call_us(lambda r: servicer._ack(r, r.symbol, None, with_state=False), fills, repeat),
        "build_and_serialize_us": per_call_us(lambda r: servicer._ack(r, r.symbol, None, with_state=False), fills,
                                              repeat),
        "bytes": 0.0, "samples": len(fills)}
    figures.update(execute_cost(workload, repeat))
    for size in (1, 20):
        batches = [list(range(n, n + size)) for n in range(0, SAMPLES * size, size)]

        def feed_ack(batch: list[int]) -> pb.ExecutionFeedAck:
            return pb.ExecutionFeedAck(acked_through=batch[-1], outcomes=[])

        both(f"ExecutionFeedAck, batch of {size} (per batch)", feed_ack, batches)
        figures[f"ExecutionFeedAck, batch of {size} (per batch)"]["per_message_us"] = round(
            figures[f"ExecutionFeedAck, batch of {size} (per batch)"]["build_and_serialize_us"] / size, 3)
    return figures


def execute_cost(workload: Workload, repeat: int) -> dict[str, dict[str, float]]:
    """`PreTradeRiskServicer.execute` on fills of reserved orders (apply, flow, acknowledgement),
    as the stream runs it without `with_account_state` and as the unary call runs it (with the
    valuation). Each round reserves fresh orders on a fresh book; the two ways alternate."""
    best = {True: float("inf"), False: float("inf")}
    for round_ in range(max(3, repeat // 5)):
        now_ms = time.time_ns() // 1_000_000
        book = build_book(workload, now_ms)
        servicer = PreTradeRiskServicer(book, DecisionCounters(), Lifecycle(), require_execution_id=False)
        reports = []
        for n, planned in enumerate(workload.orders(f"ex{round_}", 3000)):
            order = parse_order(planned.order_id, planned.account_id, planned.symbol, planned.side,
                                planned.order_type, planned.quantity, planned.price, planned.leverage,
                                planned.reduce_only)
            assert not isinstance(order, Reason)
            result = check_order(book, order, now_ms + n, time.monotonic())
            if result.decision == Decision.ACCEPT:
                reserve(book, order, result, now_ms + n)
                reports.append(pb.ExecutionReport(order_id=order.order_id, account_id=order.account_id,
                                                  kind=pb.EXECUTION_KIND_FILL, quantity=planned.quantity,
                                                  price=planned.fill_price, execution_id=f"t-{order.order_id}",
                                                  sequence=n + 1))
        half = len(reports) // 2
        for with_state, part in ((round_ % 2 == 0, reports[:half]), (round_ % 2 == 1, reports[half:])):
            started = time.perf_counter_ns()
            for report in part:
                servicer.execute(report, with_state)
            best[with_state] = min(best[with_state], (time.perf_counter_ns() - started) / len(part) / 1000)
    return {f"execute() of a fill, {'with_account_state (as unary)' if state else 'lean (stream default)'}": {
        "build_us": round(best[state], 3), "build_and_serialize_us": round(best[state], 3), "bytes": 0.0,
        "samples": 0} for state in (True, False)}


def render(figures: dict[str, dict[str, float]]) -> str:
    lines = ["| response | build us | build + serialize us | bytes |", "|---|---|---|---|"]
    for name, row in figures.items():
        lines.append(f"| {name} | {row['build_us']:.2f} | {row['build_and_serialize_us']:.2f} | {row['bytes']:g} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.response_cost")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    figures = measure(args.accounts, args.repeat)
    print(json.dumps(figures, indent=1) if args.json else render(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
