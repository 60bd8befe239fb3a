"""PreTradeRisk: the hot path. Parse, check, reserve, answer; nothing here awaits I/O.

A check is evaluated only if its caller can still receive the answer (deadline not passed);
a reservation whose answer could not be delivered (deadline passed, call cancelled) is
released when the call ends, so margin is never held for an order the gateway never sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from time import perf_counter

import grpc

from riskgate.api import execstream
from riskgate.api.convert import check_response, invalid_response
from riskgate.api.echo import clip, details, echo
from riskgate.api.execstream import Executed
from riskgate.api.lifecycle import Lifecycle
from riskgate.book.flow import FlowFill
from riskgate.book.state import Book, Reservation
from riskgate.engine.check import check_order
from riskgate.engine.ledger import (
    Applied,
    ExecutionError,
    ExecutionRef,
    apply_execution,
    apply_unreserved_fill,
    orders_to_cancel,
    release_not_sent,
    release_undelivered,
    reserve,
    seen_execution,
)
from riskgate.engine.margin import value_account
from riskgate.engine.order import parse_order
from riskgate.engine.result import Reason
from riskgate.engine.spec_rules import ID_MAX_LEN, SpecError, validate_account_id
from riskgate.logs import DecisionSampler
from riskgate.observability import LatencyHistogram
from riskgate.store.redis_store import RedisStore
from riskgate.telemetry import CheckTracer, DecisionCounters
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc
from riskgate.values.codes import Decision, ExecutionKind
from riskgate.values.money import ZERO, DecimalFormatError, fmt, parse_non_negative, round_down

log = logging.getLogger(__name__)


class PreTradeRiskServicer(pb_grpc.PreTradeRiskServicer):
    def __init__(self, book: Book, counters: DecisionCounters, lifecycle: Lifecycle,
                 require_execution_id: bool = True) -> None:
        self.book = book
        self.require_execution_id = require_execution_id
        self.counters = counters
        self.lifecycle = lifecycle
        # Set by riskgate.telemetry when metrics are exported: per method, check-latency
        # histograms indexed by decision; and the sampled check tracer (None: no spans).
        self.latency: dict[str, list[LatencyHistogram]] | None = None
        self.check_tracer: CheckTracer | None = None
        # Set once the store is started; executions are acknowledged after it has them.
        self.store: RedisStore | None = None
        # Per-order decision lines, sampled (off unless configured).
        self.decisions: DecisionSampler | None = None

    def check(self, request: pb.CheckOrderRequest) -> tuple[pb.CheckOrderResponse, Reservation | None]:
        order = parse_order(request.order_id, request.account_id, request.symbol, request.side, request.order_type,
                            request.quantity, request.price, request.leverage, request.reduce_only)
        if isinstance(order, Reason):
            self.counters.count(request.symbol, pb.DECISION_REJECT, order.code)
            self.book.flow.decision(request.account_id, request.symbol, Decision.REJECT, order.code)
            invalid = invalid_response(request.order_id, order)
            if self.decisions is not None and self.decisions.ratio:
                self.decisions.maybe(request, invalid)
            return invalid, None
        now_ms = time.time_ns() // 1_000_000
        book = self.book
        result = check_order(book, order, now_ms, time.monotonic())
        reservation = reserve(book, order, result, now_ms) if result.allowed_quantity else None
        code = result.reasons[0].code if result.reasons else 0
        self.counters.count(order.symbol, result.decision, code)
        book.flow.decision(order.account_id, order.symbol, result.decision, code)
        response = check_response(order.order_id, result)
        if self.decisions is not None and self.decisions.ratio:
            self.decisions.maybe(request, response)
        return response, reservation

    async def _admit(self, context: grpc.aio.ServicerContext) -> None:
        if not self.lifecycle.serving:
            # UNAVAILABLE, not a REJECT: the gateway may retry on another instance.
            await context.abort(grpc.StatusCode.UNAVAILABLE, self.lifecycle.why_not)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the check: not evaluated")

    async def CheckOrder(self, request: pb.CheckOrderRequest, context: grpc.aio.ServicerContext
                         ) -> pb.CheckOrderResponse:
        started = perf_counter()
        tracer = self.check_tracer
        start_ns = time.time_ns() if tracer is not None and tracer.sampled() else 0
        await self._admit(context)
        response, reservation = self.check(request)
        if reservation is not None:
            book = self.book
            account_id = request.account_id

            def release_if_undelivered(call: grpc.aio.ServicerContext) -> None:
                if call.cancelled():
                    release_undelivered(book, account_id, reservation)

            context.add_done_callback(release_if_undelivered)
        latency = self.latency
        if latency is not None:
            latency["CheckOrder"][response.decision].record(perf_counter() - started)
        if start_ns:
            tracer.record("CheckOrder", context, request, response, start_ns)  # type: ignore[union-attr]
        return response

    async def CheckOrders(self, request_iterator: AsyncIterator[pb.CheckOrderRequest],
                          context: grpc.aio.ServicerContext) -> None:
        # One at a time, in order: each reservation is in the book before the next check.
        await self._admit(context)
        latency = self.latency["CheckOrders"] if self.latency is not None else None
        tracer = self.check_tracer
        async for request in request_iterator:
            started = perf_counter()
            start_ns = time.time_ns() if tracer is not None and tracer.sampled() else 0
            if not self.lifecycle.serving:
                await context.abort(grpc.StatusCode.UNAVAILABLE, self.lifecycle.why_not)
            response, reservation = self.check(request)
            if latency is not None:
                latency[response.decision].record(perf_counter() - started)
            if start_ns:
                tracer.record("CheckOrders", context, request, response, start_ns)  # type: ignore[union-attr]
            try:
                await context.write(response)
            except BaseException:
                # The stream broke before this answer went out: the gateway never saw it.
                if reservation is not None:
                    release_undelivered(self.book, request.account_id, reservation)
                raise

    async def ReportExecution(self, request: pb.ExecutionReport, context: grpc.aio.ServicerContext
                              ) -> pb.ExecutionAck:
        if not self.lifecycle.serving:
            # Loading: the book is incomplete. Stopping: what is acknowledged must reach Redis
            # before the process ends, so nothing new is; the sender retries elsewhere.
            await context.abort(grpc.StatusCode.UNAVAILABLE, self.lifecycle.why_not)
        outcome = self.execute(request, with_state=True)
        if outcome.refused is not None:
            await context.abort(outcome.refused, outcome.message)
        await self._durable(context, exactly_once=outcome.exactly_once)
        assert outcome.ack is not None  # with_state: always an acknowledgement
        return outcome.ack

    async def ReportExecutions(self, request_iterator: AsyncIterator[pb.ExecutionFeedMessage],
                               context: grpc.aio.ServicerContext) -> None:
        await execstream.serve(self, request_iterator, context)

    def execute(self, request: pb.ExecutionReport, with_state: bool) -> Executed:
        """Validates and applies one execution report: what ReportExecution and ReportExecutions
        both do, so the two cannot differ. Never awaits: nothing else runs between the checks,
        the change and the state read back for the acknowledgement.

        with_state: the acknowledgement carries remaining_quantity, position_quantity, balance
        and available_margin (a valuation of the account). Without it the acknowledgement is
        None when it has nothing the sender must act on (not a duplicate, not included in a
        snapshot, no reduce-only order to cancel)."""
        if request.kind not in ExecutionKind._value2member_map_:
            return Executed.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                                   "kind must be FILL, CANCELED, EXPIRED, REJECTED or NOT_SENT")
        kind = ExecutionKind(request.kind)
        if request.counterparty_account_id:
            try:
                validate_account_id("counterparty_account_id", request.counterparty_account_id)
            except SpecError as exc:
                return Executed.refuse(grpc.StatusCode.INVALID_ARGUMENT, details(str(exc)))
        if kind == ExecutionKind.NOT_SENT:
            return self._not_sent(request, with_state)
        if request.execution_id and (len(request.execution_id) > ID_MAX_LEN or not request.execution_id.isprintable()):
            return Executed.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"execution_id must be 1-{ID_MAX_LEN} printable characters")
        if kind == ExecutionKind.FILL and self.require_execution_id and not (request.execution_id
                                                                            and request.sequence):
            return Executed.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                                   "a fill needs its execution_id (the matching engine's trade id) and sequence: "
                                   "without the id a retried report cannot be told from a new fill, without the "
                                   "sequence clearing's snapshot cannot be told to include it or not")
        quantity = price = ZERO
        if kind == ExecutionKind.FILL:
            try:
                quantity = parse_non_negative(request.quantity)
                price = parse_non_negative(request.price)
            except DecimalFormatError as exc:
                return Executed.refuse(grpc.StatusCode.INVALID_ARGUMENT, details(f"fill quantity and price: {exc}"))
            if not quantity or not price:
                return Executed.refuse(grpc.StatusCode.INVALID_ARGUMENT, "fill quantity and price must be positive")
        ref = ExecutionRef(request.execution_id, request.sequence) if request.execution_id or request.sequence \
            else None
        now_ms = time.time_ns() // 1_000_000
        book = self.book
        if seen_execution(book, request.account_id, request.order_id, ref):
            # A retry of a report already applied: the same answer, nothing applied again.
            # Exactly-once: acknowledged only once Redis has the first application.
            ack = self._ack(request, request.symbol, None, with_state, duplicate=True)
            return Executed(ack, exactly_once=True)
        try:
            applied = apply_execution(book, request.account_id, request.order_id, kind, quantity, price,
                                      time.monotonic(), ref, now_ms)
        except ExecutionError as exc:
            if kind != ExecutionKind.FILL or not request.symbol:
                return Executed.refuse(grpc.StatusCode.NOT_FOUND, details(str(exc)))
            try:
                applied = apply_unreserved_fill(book, request.account_id, request.order_id, request.symbol,
                                                request.side, request.leverage, quantity, price, ref, now_ms)
            except ExecutionError as unknown:
                status = (grpc.StatusCode.INVALID_ARGUMENT if unknown.code == "INVALID_ARGUMENT"
                          else grpc.StatusCode.NOT_FOUND)
                return Executed.refuse(status, details(str(unknown)))
            log.warning("fill of %s/%s with no reservation applied to the position", echo(request.account_id),
                        echo(request.order_id))
            if applied.clamped and self.store is not None:
                self.store.enqueue_audit({"actor": "riskgate", "action": "clamp_leverage",
                                          "target": clip(request.account_id),
                                          "outcome": f"fill of unknown order {clip(request.order_id)}: "
                                                     f"{applied.clamped}"})
        if kind == ExecutionKind.FILL:
            book.flow.fill(FlowFill(
                account_id=request.account_id, order_id=request.order_id, symbol=applied.symbol,
                quantity=applied.quantity, price=price, realised_pnl=applied.realised,
                counterparty_account_id=request.counterparty_account_id, execution_id=request.execution_id,
                sequence=request.sequence, in_snapshot=applied.included, at_ms=now_ms))
        elif applied.cancelled:
            book.flow.cancel(request.account_id)
        # The state as this execution left it, before anything else can move it.
        ack = self._ack(request, applied.symbol, applied, with_state)
        return Executed(ack, exactly_once=ref is not None and bool(ref.execution_id))

    def _ack(self, request: pb.ExecutionReport, symbol: str, applied: Applied | None, with_state: bool,
             duplicate: bool = False) -> pb.ExecutionAck | None:
        account = self.book.accounts.get(request.account_id)
        remaining = ZERO
        included = False
        if applied is not None:
            remaining = applied.remaining
            included = applied.included
        else:
            reservation = account.orders.get(request.order_id) if account is not None else None
            if reservation is not None:
                remaining = reservation.remaining
                symbol = reservation.symbol
        cancel = orders_to_cancel(account, symbol) if account is not None else None
        if not with_state:
            if not (duplicate or included or cancel):
                return None  # nothing the sender must act on: no message built at all
            ack = pb.ExecutionAck(order_id=request.order_id, duplicate=duplicate, included_in_snapshot=included)
            if cancel:
                ack.cancel_order_ids.extend(cancel)
            return ack
        ack = pb.ExecutionAck(order_id=request.order_id, remaining_quantity=fmt(remaining), duplicate=duplicate,
                              included_in_snapshot=included)
        if account is None:
            return ack
        position = account.positions.get(symbol)
        valuation = value_account(self.book, account)
        ack.position_quantity = fmt(position.quantity if position is not None else ZERO)
        ack.balance = fmt(account.balance)
        ack.available_margin = fmt(round_down(valuation.available)) if valuation.missing_mark is None else ""
        if cancel:
            ack.cancel_order_ids.extend(cancel)
        return ack

    def _not_sent(self, request: pb.ExecutionReport, with_state: bool) -> Executed:
        try:
            release_not_sent(self.book, request.account_id, request.order_id)
        except ExecutionError as exc:
            return Executed.refuse(grpc.StatusCode.FAILED_PRECONDITION, details(str(exc)))
        if not with_state:
            return Executed(None, exactly_once=False)
        account = self.book.accounts.get(request.account_id)
        ack = pb.ExecutionAck(order_id=request.order_id, remaining_quantity="0")
        if account is not None:
            valuation = value_account(self.book, account)
            ack.balance = fmt(account.balance)
            ack.available_margin = fmt(round_down(valuation.available)) if valuation.missing_mark is None else ""
        return Executed(ack, exactly_once=False)

    async def _durable(self, context: grpc.aio.ServicerContext, exactly_once: bool) -> None:
        """Acknowledges an execution once Redis has it, so that a crash right after the ack
        cannot lose a fill (and keep its order's reservation) that the sender will not resend.

        When Redis does not confirm in time (the staleness bound, or 90% of the caller's
        deadline) or a stop cuts the wait short: a report with an execution id gets
        UNAVAILABLE, and its retry is acknowledged (as a duplicate) once Redis has it, or
        applied by whichever process holds the account after a crash. A report without one
        (compatibility) is acknowledged anyway, since its retry could not be told apart and
        would count a partial fill twice."""
        store = self.store
        if store is None:
            return
        remaining = context.time_remaining()
        bound = store.stale_after_s if remaining is None else min(store.stale_after_s, remaining * 0.9)
        try:
            async with asyncio.timeout(max(bound, 0.0)):
                durable = await store.barrier()
        except TimeoutError:
            durable = False
        if durable:
            return
        if exactly_once:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                "applied, but Redis has not confirmed it yet: report it again with the same "
                                "execution_id (it is acknowledged once Redis has it, never applied twice)")
        log.warning("execution without an execution_id acknowledged before Redis confirmed it")
