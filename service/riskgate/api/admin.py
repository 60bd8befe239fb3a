"""RiskAdmin: authenticated, authorised, audited operator changes.

Every call is audited, refused ones included. A change is answered only after Redis holds
it (with its audit entry, in the same transaction); then it is already in this process's book.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
import msgspec
from google.protobuf import json_format
from google.protobuf.message import Message
from redis.exceptions import RedisError, ResponseError

from riskgate.api import convert, markfeed
from riskgate.api.auth import Authenticator, AuthError, Principal
from riskgate.api.echo import clip, details, echo
from riskgate.api.lifecycle import Lifecycle
from riskgate.api.marks import MarkMoveRefused, check_mark
from riskgate.book.ratelimit import TokenBucket
from riskgate.book.specs import BreakerSpec
from riskgate.book.state import Account, Book, Reservation
from riskgate.engine.ledger import (
    ExecutionError,
    SnapshotRefused,
    apply_account_record,
    check_snapshot,
    clamp_snapshot,
    release_reservation,
)
from riskgate.engine.records import apply_breaker, apply_controls, apply_mark, apply_symbol
from riskgate.engine.risk_report import account_risk
from riskgate.engine.spec_rules import (
    SpecError,
    validate_account,
    validate_controls,
    validate_symbol,
)
from riskgate.store.keys import order_field
from riskgate.store.mark_batch import MarkBatcher
from riskgate.store.redis_store import (
    RELEASE,
    RedisStore,
    StoreExpired,
    StoreUnavailable,
    StoreUnconfirmed,
    VersionConflict,
)
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc
from riskgate.values.codes import BreakerState
from riskgate.values.money import fmt

log = logging.getLogger(__name__)
Response = TypeVar("Response", bound=Message)

# A change waits for Redis at most the staleness bound (Redis that has not confirmed by then
# counts as unavailable, as it does for orders), or the caller's deadline if that is sooner.
# Redis refuses a change this long before the caller's deadline, so that a change Redis took
# is answered before the caller gives up (unless Redis stalls between doing and answering).
COMMIT_DEADLINE_MARGIN_S = 0.05
# What one audit entry keeps of the request: enough to defend a decision, not a place to park
# megabytes. Callers refused before authenticating get less, and a rate.
AUDIT_REQUEST_MAX = 4096
AUDIT_REQUEST_MAX_DENIED = 256
AUDIT_REQUEST_MAX_READ = 512
READ_METHODS = frozenset({"ListCircuitBreakers", "GetAccountRisk", "ListReservations", "GetSymbol", "ListSymbols",
                          "ListAuditEvents"})
DENIED_AUDITS_PER_S = 20


class RiskAdminServicer(admin_grpc.RiskAdminServicer):
    def __init__(self, book: Book, store: RedisStore | None, auth: Authenticator, lifecycle: Lifecycle) -> None:
        self.book = book
        self.store = store
        self.auth = auth
        self.lifecycle = lifecycle
        self._denied_bucket = TokenBucket(DENIED_AUDITS_PER_S, time.monotonic())
        # One balance adjustment of an account at a time, from its read to its commit: two
        # built from the same balance would each overwrite the other's (a lost credit, or a
        # debit checked against a balance another debit has already spent).
        self._adjusting: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # Audit reads one at a time: each may scan many entries.
        self._audit_reads = asyncio.Semaphore(1)
        self._marks: MarkBatcher | None = None

    async def _guard(self, method: str, request: Message, context: grpc.aio.ServicerContext) -> Principal:
        try:
            principal = self.auth.authenticate(context.invocation_metadata())
            self.auth.authorize(principal, method)
        except AuthError as exc:
            # Refused callers, with or without a valid token, get the small cap and a rate.
            self._audit(exc.actor, method, request, f"denied: {exc}", denied=True)
            await context.abort(exc.status, details(str(exc)))
        if not self.lifecycle.serving or self.store is None:
            self._audit(principal.name, method, request, f"unavailable: {self.lifecycle.why_not}")
            await context.abort(grpc.StatusCode.UNAVAILABLE, self.lifecycle.why_not)
        return principal

    def _audit(self, actor: str, method: str, request: Message, outcome: str, denied: bool = False) -> None:
        """Queues the entry; it reaches Redis with the next write-behind batch, in order, and
        waits in memory while Redis is away. The caller never waits on it."""
        if self.store is None:
            log.warning("not audited (no store yet): %s by %s: %s", method, actor, outcome)
            return
        cap = AUDIT_REQUEST_MAX_READ if method in READ_METHODS else AUDIT_REQUEST_MAX
        if denied:
            cap = AUDIT_REQUEST_MAX_DENIED
            if not self._denied_bucket.try_take(time.monotonic()):
                self.store.audit_suppressed += 1  # its count is audited with the next batch
                self.store.wake()
                return
        entry = {"actor": actor[:200], "action": method, "target": clip(_target(request)), "outcome": outcome[:1000],
                 **_request_fields(request, cap)}
        self.store.enqueue_audit(entry)

    async def _change(self, method: str, request: Message, context: grpc.aio.ServicerContext,
                      build: Callable[[Principal], tuple[str, str, msgspec.Struct | None, Callable[[Any], Any]]],
                      respond: Callable[[Any], Response],
                      audit_note: Callable[[], str] | None = None,
                      expected_version: int | None = None) -> Response:
        principal = await self._guard(method, request, context)
        try:
            kind, field, record, apply = build(principal)
        except SpecError as exc:
            self._audit(principal.name, method, request, f"invalid: {exc}")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, details(str(exc)))
        except _Refused as exc:
            self._audit(principal.name, method, request, f"refused: {exc}")
            await context.abort(exc.status, details(str(exc)))
        budget = self._budget(context)
        if budget <= 0:
            self._audit(principal.name, method, request, "expired: deadline passed before Redis was asked")
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed: not applied")
        margin = min(COMMIT_DEADLINE_MARGIN_S, budget / 4)
        deadline_ms = time.time_ns() // 1_000_000 + int((budget - margin) * 1000)
        audit = {"actor": principal.name, "action": method, "target": clip(field), "outcome": "ok",
                 **_request_fields(request, AUDIT_REQUEST_MAX)}
        note = audit_note() if audit_note is not None else ""
        if note:
            audit["clamped"] = note[:1000]
        assert self.store is not None
        try:
            async with asyncio.timeout(budget):
                stored = await self.store.commit(kind, field, record, audit, apply, deadline_ms,
                                                 expected_version=expected_version)
        except VersionConflict as exc:  # the store has audited it
            await context.abort(grpc.StatusCode.ABORTED, _conflict_details(field, exc.expected, exc.current))
        except _Refused as exc:
            self._audit(principal.name, method, request, f"refused: {exc}")
            await context.abort(exc.status, details(str(exc)))
        except (StoreExpired, StoreUnconfirmed) as exc:  # the writer has audited these
            await context.abort(grpc.StatusCode.UNAVAILABLE, details(str(exc)))
        except StoreUnavailable as exc:
            self._audit(principal.name, method, request, f"unavailable: {exc}")
            await context.abort(grpc.StatusCode.UNAVAILABLE, details(f"not applied: {exc}"))
        except TimeoutError:
            # The writer audits what became of it (abandoned, expired at Redis, or ok).
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"Redis did not confirm within {budget:.1f} s: Redis refuses the change past "
                                "its deadline, and the audit says whether it ran before; read the state back "
                                "before retrying")
        return respond(stored)

    async def UpsertSymbol(self, request: admin.SymbolSpec, context: grpc.aio.ServicerContext) -> admin.SymbolSpec:
        def build(_: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            spec = convert.symbol_spec(request)
            validate_symbol(spec)
            return "symbol", spec.symbol, spec, lambda stored: apply_symbol(self.book, stored)

        return await self._change("UpsertSymbol", request, context, build,
                                  lambda stored: convert.symbol_message(stored, validate_symbol(stored)),
                                  expected_version=_expected(request))

    async def UpsertAccount(self, request: admin.AccountState, context: grpc.aio.ServicerContext
                            ) -> admin.AccountState:
        clamped: list[str] = []

        def build(_: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            snapshot = convert.account_snapshot(request)
            validate_account(snapshot, set(self.book.symbols))
            if not self.book.owns(snapshot.account_id):
                # One writer per account: its owner, which also writes fills to it.
                raise _Refused(grpc.StatusCode.FAILED_PRECONDITION,
                               f"account {snapshot.account_id!r} is owned by another shard; send it there")
            account = self.book.accounts.get(snapshot.account_id)
            self._check_account_version(snapshot.account_id, _expected(request))
            if request.includes_all_fills and account is not None:
                # "As of now": it reflects every fill applied so far (whatever their sequence:
                # they may have arrived out of order); those applied after it go on top.
                snapshot = msgspec.structs.replace(
                    snapshot, cutoff_sequence=max(snapshot.cutoff_sequence, account.cutoff_sequence),
                    applied_through=account.ordinal)
            try:
                check_snapshot(account, snapshot)
            except SnapshotRefused as exc:
                raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
            snapshot, notes = clamp_snapshot(self.book, account, snapshot)
            clamped.extend(notes)
            return "account", snapshot.account_id, snapshot, lambda s: apply_account_record(self.book, s)

        def respond(stored: Any) -> admin.AccountState:
            message = convert.account_message(stored)
            message.clamped.extend(clamped)
            return message

        return await self._change("UpsertAccount", request, context, build, respond,
                                  audit_note=lambda: "; ".join(clamped), expected_version=_expected(request))

    async def SetMarkPrice(self, request: admin.MarkPrice, context: grpc.aio.ServicerContext) -> admin.MarkPrice:
        def build(_: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            try:
                mark = check_mark(self.book, request.symbol, request.price, request.confirmed_move)
            except MarkMoveRefused as exc:
                raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
            return "mark", mark.symbol, mark, lambda stored: apply_mark(self.book, stored)

        return await self._change("SetMarkPrice", request, context, build, convert.mark_message)

    async def PublishMarks(self, requests: AsyncIterator[admin.MarkTicks], context: grpc.aio.ServicerContext
                           ) -> None:
        await markfeed.serve(self, requests, context)

    def mark_batcher(self) -> MarkBatcher:
        """The mark feed's batches, shared by every feed stream of this process."""
        assert self.store is not None
        if self._marks is None or self._marks.store is not self.store:
            self._marks = MarkBatcher(self.store)
        return self._marks

    async def close_feeds(self) -> None:
        """Writes the feed's pending marks (bounded); a stop calls it before the store closes."""
        if self._marks is not None:
            await self._marks.close()

    async def SetCircuitBreaker(self, request: admin.CircuitBreaker, context: grpc.aio.ServicerContext
                                ) -> admin.CircuitBreaker:
        def build(principal: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            state = convert.breaker_state(request.state)
            if request.symbol and request.symbol not in self.book.symbols:
                raise SpecError("symbol", f"unknown symbol {echo(request.symbol)} (empty = the whole platform)")
            if state != BreakerState.NORMAL and not request.reason.strip():
                raise SpecError("reason", "say why the breaker is tripped")
            breaker = BreakerSpec(symbol=request.symbol, state=state, reason=request.reason[:500],
                                  set_by=principal.name, updated_ms=time.time_ns() // 1_000_000)
            return "breaker", breaker.symbol, breaker, lambda stored: apply_breaker(self.book, stored)

        return await self._change("SetCircuitBreaker", request, context, build, convert.breaker_message,
                                  expected_version=_expected(request))

    async def ListCircuitBreakers(self, request: admin.ListCircuitBreakersRequest,
                                  context: grpc.aio.ServicerContext) -> admin.CircuitBreakerList:
        principal = await self._guard("ListCircuitBreakers", request, context)
        self._audit(principal.name, "ListCircuitBreakers", request, "ok")
        return admin.CircuitBreakerList(breakers=[convert.breaker_message(b) for b in self.book.breakers()])

    async def SetAccountControls(self, request: admin.AccountControls, context: grpc.aio.ServicerContext
                                 ) -> admin.AccountControls:
        def build(principal: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            controls = convert.controls_spec(request, principal.name)
            validate_controls(controls)
            return "controls", controls.account_id, controls, lambda stored: apply_controls(self.book, stored)

        return await self._change("SetAccountControls", request, context, build, convert.controls_message,
                                  expected_version=_expected(request))

    async def GetAccountRisk(self, request: admin.GetAccountRiskRequest, context: grpc.aio.ServicerContext
                             ) -> admin.AccountRisk:
        principal = await self._guard("GetAccountRisk", request, context)
        account = self.book.accounts.get(request.account_id)
        self._audit(principal.name, "GetAccountRisk", request, "ok" if account else "not found")
        if account is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, self._unknown_account(request.account_id))
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
            controls=convert.controls_message(account.controls, account.account_id),
            open_orders=len(account.orders),
            version=account.snapshot_version,
        )

    async def AdjustBalance(self, request: admin.BalanceAdjustment, context: grpc.aio.ServicerContext
                            ) -> admin.AccountState:
        """A credit or debit applied by the owner to the balance it holds now: the snapshot is
        the book's own (every fill applied so far), and fills applied while it is on its way to
        Redis are re-applied on top, so none is lost. A debit beyond the available margin is
        refused."""
        def build(_: Principal) -> tuple[str, str, msgspec.Struct, Callable[[Any], bool]]:
            amount = convert.decimal_field("amount", request.amount, signed=True)
            if not amount:
                raise SpecError("amount", "must not be 0 (positive credits, negative debits)")
            if not request.reason.strip():
                raise SpecError("reason", "say why the balance changes (a deposit's reference, a ticket)")
            if not self.book.owns(request.account_id):
                raise _Refused(grpc.StatusCode.FAILED_PRECONDITION,
                               f"account {echo(request.account_id)} is owned by another shard; send it there")
            account = self.book.accounts.get(request.account_id)
            if account is None:
                raise _Refused(grpc.StatusCode.NOT_FOUND, self._unknown_account(request.account_id))
            self._check_account_version(request.account_id, _expected(request))
            if self.store is not None and self.store.unresolved("account", request.account_id):
                raise _Refused(grpc.StatusCode.FAILED_PRECONDITION,
                               f"an earlier change of account {echo(request.account_id)} is not confirmed yet (its "
                               "answer was lost; the audit will say what became of it): read the account back "
                               "once it is resolved, then send this again")
            if amount < 0:
                available = account_risk(self.book, account).available_margin
                if available is None:
                    raise _Refused(grpc.StatusCode.FAILED_PRECONDITION,
                                   f"account {echo(request.account_id)} cannot be valued (a position without a "
                                   "mark): no debit until it can")
                if -amount > available:
                    raise _Refused(grpc.StatusCode.FAILED_PRECONDITION,
                                   f"debit {fmt(-amount)} exceeds the available margin {fmt(available)}: not applied")
            snapshot = account.snapshot()
            snapshot = msgspec.structs.replace(snapshot, balance=snapshot.balance + amount, version=0)
            validate_account(snapshot, set(self.book.symbols))
            return "account", snapshot.account_id, snapshot, lambda s: apply_account_record(self.book, s)

        lock, users = self._adjusting.setdefault(request.account_id, (asyncio.Lock(), [0]))
        users[0] += 1  # the entry goes once nobody holds or waits for it
        try:
            async with lock:
                return await self._change("AdjustBalance", request, context, build, convert.account_message,
                                          expected_version=_expected(request))
        finally:
            users[0] -= 1
            if not users[0]:
                del self._adjusting[request.account_id]

    async def GetSymbol(self, request: admin.GetSymbolRequest, context: grpc.aio.ServicerContext
                        ) -> admin.SymbolDetail:
        principal = await self._guard("GetSymbol", request, context)
        state = self.book.symbols.get(request.symbol)
        self._audit(principal.name, "GetSymbol", request, "ok" if state else "not found")
        if state is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown symbol {echo(request.symbol)}")
        return _symbol_detail(state)

    async def ListSymbols(self, request: admin.ListSymbolsRequest, context: grpc.aio.ServicerContext
                          ) -> admin.SymbolList:
        principal = await self._guard("ListSymbols", request, context)
        self._audit(principal.name, "ListSymbols", request, "ok")
        return admin.SymbolList(symbols=[_symbol_detail(self.book.symbols[name]) for name in sorted(self.book.symbols)])

    async def ListAuditEvents(self, request: admin.ListAuditEventsRequest, context: grpc.aio.ServicerContext
                              ) -> admin.AuditEventList:
        principal = await self._guard("ListAuditEvents", request, context)
        if request.before_id and not _stream_id(request.before_id):
            self._audit(principal.name, "ListAuditEvents", request, "invalid: before_id")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"before_id must be an audit entry id (MS-SEQ), not {echo(request.before_id)}")
        limit = min(request.limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        action = request.action.lower()

        def match(entry: dict[str, str]) -> bool:
            return ((not request.actor or entry.get("actor") == request.actor)
                    and (not request.target or entry.get("target") == request.target)
                    and (not action or entry.get("action", "").lower() == action))

        assert self.store is not None
        try:
            async with asyncio.timeout(max(self._budget(context), 0.1)), self._audit_reads:
                found, scanned, next_id = await self.store.read_audit(match, limit, request.since_ms,
                                                                      request.before_id)
        except ResponseError as exc:  # Redis refused the range: an id it cannot take
            self._audit(principal.name, "ListAuditEvents", request, "invalid: before_id")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, details(f"before_id not usable: {exc}"))
        except (RedisError, OSError, TimeoutError) as exc:
            self._audit(principal.name, "ListAuditEvents", request, f"unavailable: {exc!r}")
            await context.abort(grpc.StatusCode.UNAVAILABLE, details(f"audit stream not read: {exc!r}"))
        # A page stays well inside a client's default 4 MiB message: past AUDIT_PAGE_BYTES it
        # ends early and says where to page on from.
        events = []
        size = 0
        for entry_id, fields in found:
            event = _audit_event(entry_id, fields)
            size += event.ByteSize()
            if events and size > AUDIT_PAGE_BYTES:
                next_id = events[-1].id
                break
            events.append(event)
        self._audit(principal.name, "ListAuditEvents", request, f"ok: {len(events)} listed of {scanned} read")
        return admin.AuditEventList(events=events, scanned=scanned, next_before_id=next_id)


    async def ListReservations(self, request: admin.ListReservationsRequest, context: grpc.aio.ServicerContext
                               ) -> admin.ReservationList:
        principal = await self._guard("ListReservations", request, context)
        if request.account_id:
            account = self.book.accounts.get(request.account_id)
            if account is None:
                self._audit(principal.name, "ListReservations", request, "not found")
                await context.abort(grpc.StatusCode.NOT_FOUND, self._unknown_account(request.account_id))
            accounts: list[Account] = [account]
        else:
            accounts = list(self.book.accounts.values())
        self._audit(principal.name, "ListReservations", request, "ok")
        now_ms = time.time_ns() // 1_000_000
        horizon = now_ms - request.min_age_ms
        limit = min(request.limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        oldest: list[tuple[int, int, str, str]] = []
        total = 0
        for start in range(0, len(accounts), LIST_SCAN_CHUNK):
            # Ties of the same millisecond keep the book's order (reservations in order made).
            found = [(r.created_ms, total + n, a.account_id, r.order_id) for n, (a, r) in enumerate(
                (a, r) for a in accounts[start:start + LIST_SCAN_CHUNK] for r in a.orders.values()
                if r.created_ms <= horizon)]
            total += len(found)
            oldest = heapq.nsmallest(limit, [*oldest, *found])
            # A scan of a large book must not hold up order checks: let them in between chunks.
            await asyncio.sleep(0)
        listed = []
        for _, _, account_id, order_id in oldest:
            reservation = self.book.accounts[account_id].orders.get(order_id) if account_id in self.book.accounts \
                else None
            if reservation is not None:  # not closed while the scan yielded
                listed.append(_reservation_message(account_id, reservation, now_ms))
        return admin.ReservationList(reservations=listed, total=total)

    async def ReleaseReservation(self, request: admin.ReleaseReservationRequest,
                                 context: grpc.aio.ServicerContext) -> admin.OpenReservation:
        def build(_: Principal) -> tuple[str, str, msgspec.Struct | None, Callable[[Any], Any]]:
            if not request.reason.strip():
                raise SpecError("reason", "say why the order is gone from the matching engine")
            account = self.book.accounts.get(request.account_id)
            if account is None or request.order_id not in account.orders:
                raise _Refused(grpc.StatusCode.NOT_FOUND,
                               f"no open order {echo(request.order_id)} for account {echo(request.account_id)}")

            def apply(_: Any) -> admin.OpenReservation:
                # Only once Redis has the release: then it is the book's too.
                try:
                    released = release_reservation(self.book, request.account_id, request.order_id,
                                                   time.monotonic())
                except ExecutionError as exc:
                    raise _Refused(grpc.StatusCode.NOT_FOUND, f"{exc} (it closed meanwhile)") from None
                return _reservation_message(request.account_id, released, time.time_ns() // 1_000_000)

            return RELEASE, order_field(request.account_id, request.order_id), None, apply

        return await self._change("ReleaseReservation", request, context, build, lambda released: released)

    def _budget(self, context: grpc.aio.ServicerContext) -> float:
        assert self.store is not None
        remaining = context.time_remaining()
        bound = self.store.stale_after_s
        return bound if remaining is None else min(remaining, bound)

    def _check_account_version(self, account_id: str, expected: int | None) -> None:
        """Compare-and-set of an account, as far as this process (its one writer) can tell: the
        version it holds, and no fill or order change waiting to be written (which moves the
        version). Redis checks the stored version again when it writes."""
        if expected is None:
            return
        account = self.book.accounts.get(account_id)
        current = account.snapshot_version if account is not None else 0
        if current != expected:
            raise _Refused(grpc.StatusCode.ABORTED, _conflict_details(account_id, expected, current))
        if account_id in self.book.dirty_accounts or any(a == account_id for a, _ in self.book.dirty_orders):
            raise _Refused(grpc.StatusCode.ABORTED, f"account {echo(account_id)} at version {current} has changes "
                                                    "not yet written (fills or orders): its version is about to "
                                                    "move; read it again")

    def _unknown_account(self, account_id: str) -> str:
        owner_hint = "" if self.book.owns(account_id) else f" (not owned by {self.book.shard_label})"
        return f"unknown account {echo(account_id)}{owner_hint}"


DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
AUDIT_PAGE_BYTES = 3 * 1024 * 1024
LIST_SCAN_CHUNK = 2000




def _reservation_message(account_id: str, reservation: Reservation, now_ms: int) -> admin.OpenReservation:
    return admin.OpenReservation(
        account_id=account_id, order_id=reservation.order_id, symbol=reservation.symbol,
        side=int(reservation.side), remaining_quantity=fmt(reservation.remaining),
        reserved_cost=fmt(reservation.cost_left), created_ms=reservation.created_ms,
        age_ms=max(0, now_ms - reservation.created_ms),
        price=fmt(reservation.price) if reservation.price else "", leverage=reservation.leverage,
        reduce_only=reservation.reduce_only,
    )


_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_U64 = 2 ** 64


def _stream_id(text: str) -> bool:
    """A stream id Redis takes as an exclusive upper bound: MS-SEQ, both 64-bit, above 0-0."""
    if not _STREAM_ID.fullmatch(text):
        return False
    ms, seq = (int(part) for part in text.split("-"))
    return ms < _U64 and seq < _U64 and (ms, seq) > (0, 0)
# Audit fields AuditEvent carries by name; the rest go to `extra`.
_AUDIT_FIELDS = frozenset({"ts_ms", "actor", "action", "target", "outcome", "version", "request"})


def _expected(request: Message) -> int | None:
    """The change's compare-and-set version, None when it has none."""
    return int(request.expected_version) if request.HasField("expected_version") else None  # type: ignore[attr-defined]


def _conflict_details(target: str, expected: int, current: int) -> str:
    now = f"now version {current}" if current else "now there is no record"
    return details(f"version conflict on {echo(target)}: expected version {expected}, {now}; "
                   "not applied (read it again and retry)")


def _symbol_detail(state: Any) -> admin.SymbolDetail:
    detail = admin.SymbolDetail(spec=convert.symbol_message(state.spec, state.tiers),
                                open_interest=fmt(state.long_open_interest))
    breaker = convert.breaker_message(state.breaker)
    breaker.symbol = state.spec.symbol
    detail.breaker.CopyFrom(breaker)
    if state.mark is not None:
        detail.mark.CopyFrom(convert.mark_message(state.mark))
    return detail


def _audit_event(entry_id: str, fields: dict[str, str]) -> admin.AuditEvent:
    def number(text: str | None) -> int:
        return int(text) if text and text.isdigit() else 0

    return admin.AuditEvent(
        id=entry_id, time_ms=number(fields.get("ts_ms")) or number(entry_id.partition("-")[0]),
        actor=fields.get("actor", ""), action=fields.get("action", ""), target=fields.get("target", ""),
        outcome=fields.get("outcome", ""), version=number(fields.get("version")), request=fields.get("request", ""),
        extra={k: v for k, v in fields.items() if k not in _AUDIT_FIELDS})


class _Refused(Exception):
    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status


def _target(request: Message) -> str:
    for field in ("symbol", "account_id"):
        if hasattr(request, field):
            return str(getattr(request, field))
    return ""


def _request_fields(request: Message, cap: int) -> dict[str, str]:
    size = request.ByteSize()
    if size > cap * 4:
        # Far too big to keep: do not even render it.
        return {"request": f"<{type(request).__name__} of {size} bytes, not kept>", "request_bytes": str(size)}
    text = json_format.MessageToJson(request, indent=None, preserving_proto_field_name=True)
    if len(text) <= cap:
        return {"request": text}
    return {"request": text[:cap], "request_truncated_from": str(len(text))}

