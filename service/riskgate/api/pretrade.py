"""PreTradeRisk: the hot path. Parse, check, reserve, answer; nothing here awaits I/O."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import grpc

from riskgate.api.convert import check_response, invalid_response
from riskgate.book.state import Book
from riskgate.engine.check import check_order
from riskgate.engine.codes import ExecutionKind
from riskgate.engine.margin import value_account
from riskgate.engine.money import ZERO, DecimalFormatError, fmt, parse_non_negative, round_down
from riskgate.engine.order import parse_order
from riskgate.engine.reservations import ExecutionError, apply_execution, apply_unreserved_fill, reserve
from riskgate.engine.result import Reason
from riskgate.telemetry import DecisionCounters
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class PreTradeRiskServicer(pb_grpc.PreTradeRiskServicer):
    def __init__(self, book: Book, counters: DecisionCounters) -> None:
        self.book = book
        self.counters = counters

    def check(self, request: pb.CheckOrderRequest) -> pb.CheckOrderResponse:
        order = parse_order(request.order_id, request.account_id, request.symbol, request.side, request.order_type,
                            request.quantity, request.price, request.leverage, request.reduce_only)
        if isinstance(order, Reason):
            self.counters.count(pb.DECISION_REJECT, order.code)
            return invalid_response(request.order_id, order)
        now_ms = time.time_ns() // 1_000_000
        result = check_order(self.book, order, now_ms, time.monotonic())
        if result.allowed_quantity:
            reserve(self.book, order, result, now_ms)
        self.counters.count(result.decision, result.reasons[0].code if result.reasons else 0)
        return check_response(order.order_id, result)

    async def CheckOrder(self, request: pb.CheckOrderRequest, context: grpc.aio.ServicerContext
                         ) -> pb.CheckOrderResponse:
        return self.check(request)

    async def CheckOrders(self, request_iterator: AsyncIterator[pb.CheckOrderRequest],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.CheckOrderResponse]:
        # One at a time, in order: each reservation is in the book before the next check.
        async for request in request_iterator:
            yield self.check(request)

    async def ReportExecution(self, request: pb.ExecutionReport, context: grpc.aio.ServicerContext
                              ) -> pb.ExecutionAck:
        if request.kind not in ExecutionKind._value2member_map_:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "kind must be FILL, CANCELED, EXPIRED or REJECTED")
        kind = ExecutionKind(request.kind)
        quantity = price = ZERO
        if kind == ExecutionKind.FILL:
            try:
                quantity = parse_non_negative(request.quantity)
                price = parse_non_negative(request.price)
            except DecimalFormatError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"fill quantity and price: {exc}")
            if not quantity or not price:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "fill quantity and price must be positive")
        try:
            reservation = apply_execution(self.book, request.account_id, request.order_id, kind, quantity, price,
                                          time.monotonic())
            symbol, remaining = reservation.symbol, reservation.remaining
        except ExecutionError as exc:
            if kind != ExecutionKind.FILL or not request.symbol:
                await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            try:
                apply_unreserved_fill(self.book, request.account_id, request.order_id, request.symbol,
                                      request.side, request.leverage, quantity, price)
            except ExecutionError as unknown:
                status = (grpc.StatusCode.INVALID_ARGUMENT if unknown.code == "INVALID_ARGUMENT"
                          else grpc.StatusCode.NOT_FOUND)
                await context.abort(status, str(unknown))
            log.warning("fill of %s/%s with no reservation applied to the position", request.account_id,
                        request.order_id)
            symbol, remaining = request.symbol, ZERO
        account = self.book.accounts[request.account_id]
        position = account.positions.get(symbol)
        valuation = value_account(self.book, account)
        return pb.ExecutionAck(
            order_id=request.order_id,
            remaining_quantity=fmt(remaining),
            position_quantity=fmt(position.quantity if position is not None else ZERO),
            balance=fmt(account.balance),
            available_margin=fmt(round_down(valuation.available)) if valuation.missing_mark is None else "",
        )
