"""RiskAdmin: authenticated, authorised, audited operator changes.

Every call is audited, refused ones included. A change is answered only after Redis holds
it (with its audit entry, in the same transaction); then it is already in this process's book.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import msgspec
from google.protobuf import json_format
from google.protobuf.message import Message

from riskgate.api import convert
from riskgate.api.auth import Authenticator, AuthError, Principal
from riskgate.book.apply import apply_account_snapshot, apply_breaker, apply_controls, apply_mark, apply_symbol
from riskgate.book.specs import BreakerSpec, MarkSpec
from riskgate.book.state import Book
from riskgate.engine.codes import BreakerState
from riskgate.engine.money import fmt
from riskgate.engine.risk_report import account_risk
from riskgate.engine.spec_rules import SpecError, validate_account, validate_controls, validate_symbol
from riskgate.store.redis_store import RedisStore, StoreConflict, StoreUnavailable
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc

log = logging.getLogger(__name__)
Response = TypeVar("Response", bound=Message)


class RiskAdminServicer(admin_grpc.RiskAdminServicer):
    def __init__(self, book: Book, store: RedisStore, auth: Authenticator) -> None:
        self.book = book
        self.store = store
        self.auth = auth

    async def _guard(self, method: str, request: Message, context: grpc.aio.ServicerContext) -> Principal:
        try:
            principal = self.auth.authenticate(context.invocation_metadata())
            self.auth.authorize(principal, method)
        except AuthError as exc:
            await self._audit_event(exc.actor, method, request, f"denied: {exc}")
            await context.abort(exc.status, str(exc))
        return principal

    async def _audit_event(self, actor: str, method: str, request: Message, outcome: str) -> None:
        try:
            await self.store.audit({"actor": actor, "action": method, "target": _target(request),
                                    "outcome": outcome, "request": _request_json(request)})
        except Exception as exc:  # the answer stands even if the audit log is unreachable
            log.error("could not audit %s by %s (%s): %s", method, actor, outcome, exc)

    async def _change(self, method: str, request: Message, context: grpc.aio.ServicerContext,
                      build: Callable[[Principal], tuple[str, str, msgspec.Struct, Callable[[Any], bool]]],
                      respond: Callable[[Any], Response]) -> Response:
        principal = await self._guard(method, request, context)
        try:
            kind, field, record, apply = build(principal)
        except SpecError as exc:
            await self._audit_event(principal.name, method, request, f"invalid: {exc}")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except _Refused as exc:
            await self._audit_event(principal.name, method, request, f"refused: {exc}")
            await context.abort(exc.status, str(exc))
        audit = {"actor": principal.name, "action": method, "target": field, "outcome": "ok",
                 "request": _request_json(request)}
        try:
            stored = await self.store.commit(kind, field, record, audit, apply)
        except StoreUnavailable as exc:
            await self._audit_event(principal.name, method, request, f"unavailable: {exc}")
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"not confirmed: {exc}")
        except StoreConflict as exc:
            # Redis holds an "ok" entry from the same transaction; this one says it did not take.
            await self._audit_event(principal.name, method, request, f"aborted: {exc}")
            await context.abort(grpc.StatusCode.ABORTED, str(exc))
        return respond(stored)

    async def UpsertSymbol(self, request: admin.SymbolSpec, context: grpc.aio.ServicerContext) -> admin.SymbolSpec:
        def build(_: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            spec = convert.symbol_spec(request)
            validate_symbol(spec)
            return "symbol", spec.symbol, spec, lambda stored: apply_symbol(self.book, stored)

        return await self._change("UpsertSymbol", request, context, build,
                                  lambda stored: convert.symbol_message(stored, validate_symbol(stored)))

    async def UpsertAccount(self, request: admin.AccountState, context: grpc.aio.ServicerContext
                            ) -> admin.AccountState:
        def build(_: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            snapshot = convert.account_snapshot(request)
            validate_account(snapshot, set(self.book.symbols))
            if not self.book.owns(snapshot.account_id):
                # One writer per account: its owner, which also writes fills to it.
                raise _Refused(grpc.StatusCode.FAILED_PRECONDITION,
                               f"account {snapshot.account_id!r} is owned by another shard; send it there")
            return "account", snapshot.account_id, snapshot, lambda s: apply_account_snapshot(self.book, s)

        return await self._change("UpsertAccount", request, context, build, convert.account_message)

    async def SetMarkPrice(self, request: admin.MarkPrice, context: grpc.aio.ServicerContext) -> admin.MarkPrice:
        def build(_: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            price = convert.decimal_field("price", request.price)
            if not price:
                raise SpecError("price", "must be positive")
            if request.symbol not in self.book.symbols:
                raise SpecError("symbol", f"unknown symbol {request.symbol!r}")
            mark = MarkSpec(symbol=request.symbol, price=price, timestamp_ms=time.time_ns() // 1_000_000)
            return "mark", mark.symbol, mark, lambda stored: apply_mark(self.book, stored)

        return await self._change("SetMarkPrice", request, context, build, convert.mark_message)

    async def SetCircuitBreaker(self, request: admin.CircuitBreaker, context: grpc.aio.ServicerContext
                                ) -> admin.CircuitBreaker:
        def build(principal: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            state = convert.breaker_state(request.state)
            if request.symbol and request.symbol not in self.book.symbols:
                raise SpecError("symbol", f"unknown symbol {request.symbol!r} (empty = the whole platform)")
            if state != BreakerState.NORMAL and not request.reason.strip():
                raise SpecError("reason", "say why the breaker is tripped")
            breaker = BreakerSpec(symbol=request.symbol, state=state, reason=request.reason[:500],
                                  set_by=principal.name, updated_ms=time.time_ns() // 1_000_000)
            return "breaker", breaker.symbol, breaker, lambda stored: apply_breaker(self.book, stored)

        return await self._change("SetCircuitBreaker", request, context, build, convert.breaker_message)

    async def ListCircuitBreakers(self, request: admin.ListCircuitBreakersRequest,
                                  context: grpc.aio.ServicerContext) -> admin.CircuitBreakerList:
        principal = await self._guard("ListCircuitBreakers", request, context)
        await self._audit_event(principal.name, "ListCircuitBreakers", request, "ok")
        return admin.CircuitBreakerList(breakers=[convert.breaker_message(b) for b in self.book.breakers()])

    async def SetAccountControls(self, request: admin.AccountControls, context: grpc.aio.ServicerContext
                                 ) -> admin.AccountControls:
        def build(_: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            controls = convert.controls_spec(request)
            validate_controls(controls)
            return "controls", controls.account_id, controls, lambda stored: apply_controls(self.book, stored)

        return await self._change("SetAccountControls", request, context, build, convert.controls_message)

    async def GetAccountRisk(self, request: admin.GetAccountRiskRequest, context: grpc.aio.ServicerContext
                             ) -> admin.AccountRisk:
        principal = await self._guard("GetAccountRisk", request, context)
        account = self.book.accounts.get(request.account_id)
        await self._audit_event(principal.name, "GetAccountRisk", request, "ok" if account else "not found")
        if account is None:
            owner_hint = "" if self.book.owns(request.account_id) else f" (not owned by {self.book.shard_label})"
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown account {request.account_id!r}{owner_hint}")
        risk = account_risk(self.book, account)
        return admin.AccountRisk(
            account_id=account.account_id,
            balance=fmt(risk.balance),
            positions=[
                admin.PositionRisk(
                    symbol=p.symbol, quantity=fmt(p.quantity), entry_price=fmt(p.entry_price),
                    mark_price=fmt(p.mark_price), unrealized_pnl=fmt(p.unrealized_pnl),
                    maintenance_margin=fmt(p.maintenance_margin),
                    estimated_liquidation_price=fmt(p.liquidation_price), leverage=p.leverage,
                    initial_margin=fmt(p.initial_margin),
                )
                for p in risk.positions
            ],
            reserved_order_cost=fmt(risk.reserved_order_cost),
            available_margin=fmt(risk.available_margin),
            controls=convert.controls_message(account.controls),
            open_orders=len(account.orders),
        )


class _Refused(Exception):
    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status


def _target(request: Message) -> str:
    for field in ("symbol", "account_id"):
        if hasattr(request, field):
            return str(getattr(request, field))
    return ""


def _request_json(request: Message) -> str:
    return json_format.MessageToJson(request, indent=None, preserving_proto_field_name=True)

