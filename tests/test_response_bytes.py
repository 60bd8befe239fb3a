"""Lean answers put the same bytes on the wire as the construction they replaced.

`check_response`/`invalid_response` add reasons in place instead of building them twice; the
ExecutionAck of the unary ReportExecution is built by the code the stream shares. Each is held,
byte for byte, to the previous construction over the harness's workload (real engine results of
every decision) and hand-made edge cases."""

from __future__ import annotations

import time
from decimal import Decimal

from loadtest.engine_bench import build_book
from loadtest.response_cost import collect, previous_check_response, previous_invalid_response
from loadtest.workload import Workload, WorkloadConfig
from riskgate.api.convert import check_response, invalid_response
from riskgate.api.lifecycle import Lifecycle
from riskgate.api.pretrade import PreTradeRiskServicer
from riskgate.book.state import Book
from riskgate.engine.check import check_order
from riskgate.engine.ledger import Applied, apply_execution, orders_to_cancel, reserve
from riskgate.engine.margin import value_account
from riskgate.engine.order import parse_order
from riskgate.engine.result import CheckResult, Reason
from riskgate.telemetry import DecisionCounters
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.values.codes import Decision, ExecutionKind, ReasonCode
from riskgate.values.money import ZERO, fmt, round_down


def _bytes(message: pb.CheckOrderResponse | pb.ExecutionAck) -> bytes:
    return message.SerializeToString(deterministic=True)


def test_check_response_when_built_lean_then_bytes_equal_the_previous_construction_for_every_decision() -> None:
    kinds, _, _ = collect(Workload(WorkloadConfig(accounts=300)), 3000)
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}
    for items in kinds.values():
        for order_id, result in items:
            assert _bytes(check_response(order_id, result)) == _bytes(previous_check_response(order_id, result))


def test_check_response_when_results_are_edge_cases_then_bytes_equal_the_previous_construction() -> None:
    two = CheckResult(Decision.REDUCE_ONLY, [
        Reason(ReasonCode.ACCOUNT_REDUCE_ONLY, "account is reduce-only"),
        Reason(ReasonCode.REDUCE_ONLY_QUANTITY_CAPPED, "capped", "0.5", "1"),
    ])
    two.allowed_quantity = Decimal("0.500")
    two.available_margin = Decimal("-12.30")
    two.liquidation_price = Decimal("0")
    bare = CheckResult(Decision.ACCEPT, [])
    for result in (two, bare, CheckResult(Decision.REJECT, [Reason(ReasonCode.INSUFFICIENT_MARGIN, "", "", "")])):
        for order_id in ("", "o-1", "\u00e9" * 64):
            assert _bytes(check_response(order_id, result)) == _bytes(previous_check_response(order_id, result))
    for reason in (Reason(ReasonCode.INVALID_QUANTITY, "quantity must be positive", "", "-1"),
                   Reason(ReasonCode.INVALID_ORDER_ID, "")):
        assert _bytes(invalid_response("x", reason)) == _bytes(previous_invalid_response("x", reason))


def _previous_ack(book: Book, request: pb.ExecutionReport, symbol: str, applied: Applied | None) -> pb.ExecutionAck:
    """The unary acknowledgement as `PreTradeRiskServicer._ack` built it before the stream."""
    account = book.accounts.get(request.account_id)
    ack = pb.ExecutionAck(order_id=request.order_id)
    if applied is not None:
        ack.remaining_quantity = fmt(applied.remaining)
        ack.included_in_snapshot = applied.included
    else:
        reservation = account.orders.get(request.order_id) if account is not None else None
        ack.remaining_quantity = fmt(reservation.remaining if reservation is not None else ZERO)
        symbol = reservation.symbol if reservation is not None else symbol
    if account is None:
        return ack
    position = account.positions.get(symbol)
    valuation = value_account(book, account)
    ack.position_quantity = fmt(position.quantity if position is not None else ZERO)
    ack.balance = fmt(account.balance)
    ack.available_margin = fmt(round_down(valuation.available)) if valuation.missing_mark is None else ""
    ack.cancel_order_ids.extend(orders_to_cancel(account, symbol))
    return ack


def test_execution_ack_when_built_with_state_then_bytes_equal_the_previous_unary_acknowledgement() -> None:
    workload = Workload(WorkloadConfig(accounts=300))
    _, book, fills = collect(workload, 3000)
    servicer = PreTradeRiskServicer(book, DecisionCounters(), Lifecycle())
    assert fills
    for report in fills:  # orders already filled: the acknowledgement of a retry
        assert _bytes(servicer._ack(report, report.symbol, None, with_state=True)) == _bytes(
            _previous_ack(book, report, report.symbol, None))
    unknown = pb.ExecutionReport(order_id="none", account_id="no-such-account", symbol="BTCUSDT")
    assert _bytes(servicer._ack(unknown, "BTCUSDT", None, with_state=True)) == _bytes(
        _previous_ack(book, unknown, "BTCUSDT", None))
    # Fills applied now: the acknowledgement from what apply_execution returns.
    now_ms = time.time_ns() // 1_000_000
    fresh = build_book(workload, now_ms)
    servicer = PreTradeRiskServicer(fresh, DecisionCounters(), Lifecycle())
    compared = 0
    for n, planned in enumerate(workload.orders("bytes", 400)):
        order = parse_order(planned.order_id, planned.account_id, planned.symbol, planned.side, planned.order_type,
                            planned.quantity, planned.price, planned.leverage, planned.reduce_only)
        assert not isinstance(order, Reason)
        result = check_order(fresh, order, now_ms + n, time.monotonic())
        if not result.allowed_quantity:
            continue
        reserve(fresh, order, result, now_ms + n)
        report = pb.ExecutionReport(order_id=order.order_id, account_id=order.account_id)
        half = result.allowed_quantity / 2 if n % 2 else result.allowed_quantity
        applied = apply_execution(fresh, order.account_id, order.order_id, ExecutionKind.FILL, half,
                                  Decimal(planned.fill_price), time.monotonic())
        compared += 1
        assert _bytes(servicer._ack(report, applied.symbol, applied, with_state=True)) == _bytes(
            _previous_ack(fresh, report, applied.symbol, applied))
    assert compared > 100
