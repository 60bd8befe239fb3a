"""The one home of money movement: every change of a balance, a position or a reservation.

Reservations are made in memory the moment a check allows an order, so the very next check
of the account sees them. A fill consumes the reducing part first (the position shrinks
before it can grow), releases the matching share of the reserved cost, and moves the
position: average entry on increase, realised PnL into the balance on reduction.

Invariants, checked after every change (`verify`):
- one leverage per account and symbol: every order that may add risk (not reduce-only)
  carries the position's leverage, or, with no position, that of the other such orders;
- an order's risk-increasing part is reserved at no more than the max leverage of the tier
  its side's worst-case position falls in, nor above the account's cap (positions are held
  to the same bound where they are valued, `margin.margin_leverage`);
- a reduce-only order reserves nothing and holds only what it can still reduce;
- the aggregates (open quantity per side, reserved cost, open interest) equal the sum of
  what they aggregate.

Executions are applied exactly once: each id is remembered (durably, with the state it
moved) for a window. Fills carry the matching engine's sequence; clearing's snapshots carry
the last sequence they include, and the fills after it are re-applied on top (`apply_account_record`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal

import msgspec

from riskgate.book.specs import AccountSnapshot, ExecutionSpec
from riskgate.book.state import Account, Book, Fill, OpenOrders, Position, Reservation, SymbolState, ensure_account
from riskgate.engine.margin import OrderCost, margin_leverage, order_cost
from riskgate.engine.order import Order
from riskgate.engine.result import CheckResult
from riskgate.engine.spec_rules import MAX_LEVERAGE
from riskgate.values.codes import ExecutionKind, Side
from riskgate.values.money import MONEY_QUANTUM, ZERO, round_down

log = logging.getLogger(__name__)

# Average entry prices are not posted money; twelve decimals keep them exact in practice.
ENTRY_QUANTUM = Decimal("1e-12")
# Fills after clearing's last cut-off kept per account; beyond it the oldest are forgotten
# and a snapshot cut before them is refused (it could not be merged without losing them).
MAX_JOURNAL = 100_000


class ExecutionError(ValueError):
    """An execution report that does not match an open order."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InvariantBroken(Exception):
    """The book holds margin the rules do not allow: a defect, never an input error."""


class SnapshotRefused(ValueError):
    """A clearing snapshot that cannot be merged without losing or double-counting fills."""


# Marks the stored id of a journal entry from a report without an execution id.
JOURNAL_ONLY = "\x1e"


def execution_key(account_id: str, order_id: str, execution_id: str) -> str:
    # Unit separator: cannot appear in the printable ids the API accepts.
    return f"{account_id}\x1f{order_id}\x1f{execution_id}"


class ExecutionRef:
    """What identifies one execution report: the matching engine's id and sequence."""

    __slots__ = ("execution_id", "sequence")

    def __init__(self, execution_id: str, sequence: int) -> None:
        self.execution_id = execution_id
        self.sequence = sequence


class Applied:
    """What an execution did: the order as it now stands (None for a fill of an order
    riskgate held no reservation for), the symbol, and any leverage it had to clamp."""

    __slots__ = ("cancelled", "clamped", "duplicate", "included", "quantity", "realised", "remaining", "symbol")

    def __init__(self, symbol: str, remaining: Decimal, duplicate: bool = False) -> None:
        self.symbol = symbol
        self.remaining = remaining
        self.duplicate = duplicate
        # The fill was already in clearing's snapshot: the reservation moved, the position not.
        self.included = False
        self.clamped = ""
        # A fill: its signed quantity, and what it credited to the balance (realised PnL).
        self.quantity = ZERO
        self.realised = ZERO
        # A closing report that closed the order with quantity still open.
        self.cancelled = False


# ---- leverage -------------------------------------------------------------------------


def symbol_leverage(account: Account, symbol_name: str) -> int:
    """The account's one leverage on the symbol: its position's, or with none that of its
    open orders that may add risk; 0 while neither exists (the next order chooses)."""
    position = account.positions.get(symbol_name)
    if position is not None:
        return position.leverage
    open_orders = account.open_by_symbol.get(symbol_name)
    return open_orders.leverage if open_orders is not None and open_orders.binding_orders else 0


def clamp_leverage(book: Book, account: Account | None, symbol_name: str, leverage: int, notional: Decimal
                   ) -> int:
    """A leverage from outside (clearing's snapshot, a fill of an unknown order) held to the
    tier of the position's notional and the account's cap."""
    symbol = book.symbols.get(symbol_name)
    if symbol is None:
        return leverage
    cap = account.controls.max_leverage if account is not None else 0
    return margin_leverage(symbol, leverage, notional, cap)


def _side_exposure(account: Account, symbol_name: str, side: Side) -> Decimal:
    """The worst-case position on one side if every open order on it filled (base units)."""
    position = account.positions.get(symbol_name)
    held = position.quantity if position is not None else ZERO
    open_orders = account.open_by_symbol.get(symbol_name)
    if side == Side.BUY:
        return max(held + (open_orders.buy if open_orders is not None else ZERO), ZERO)
    return max(-held + (open_orders.sell if open_orders is not None else ZERO), ZERO)


# ---- reservations -----------------------------------------------------------------------


def reserve(book: Book, order: Order, result: CheckResult, now_ms: int) -> Reservation:
    account = book.accounts[order.account_id]
    reservation = Reservation(
        order.order_id, order.symbol, order.side, result.price, result.leverage,
        result.reducing, result.increasing, result.order_cost if result.increasing else ZERO, now_ms,
        reduce_only=order.reduce_only, margin=result.initial_margin if result.increasing else ZERO,
    )
    open_orders = symbol_open_orders(account, order.symbol)
    leverage_before = open_orders.leverage
    _hold(account, open_orders, reservation, book, +1)
    try:
        verify(book, account, order.symbol)
    except InvariantBroken:
        # Never leave behind a reservation whose order the caller will not send.
        _hold(account, open_orders, reservation, book, -1)
        open_orders.leverage = leverage_before if open_orders.binding_orders else 0
        del account.orders[order.order_id]
        raise
    book.mark_order_dirty(account.account_id, order.order_id)
    return reservation


def symbol_open_orders(account: Account, symbol: str) -> OpenOrders:
    open_orders = account.open_by_symbol.get(symbol)
    if open_orders is None:
        open_orders = account.open_by_symbol[symbol] = OpenOrders()
    return open_orders


def restore(book: Book, account: Account, reservation: Reservation) -> None:
    """Puts a reservation recovered from Redis back into the book."""
    _hold(account, symbol_open_orders(account, reservation.symbol), reservation, book, +1)


def _hold(account: Account, open_orders: OpenOrders, reservation: Reservation, book: Book, sign: int) -> None:
    """Adds (sign +1) or removes (sign -1) a reservation's quantities and cost from the aggregates."""
    symbol = book.symbols.get(reservation.symbol)
    if sign > 0:
        account.orders[reservation.order_id] = reservation
    held = reservation.held
    notional = reservation.increasing_left * reservation.price
    if reservation.side == Side.BUY:
        open_orders.buy += sign * held
        open_orders.buy_notional += sign * notional
        open_orders.buy_margin += sign * reservation.margin_left
        if symbol is not None:
            symbol.pending_long_increase += sign * reservation.increasing_left
    else:
        open_orders.sell += sign * held
        open_orders.sell_notional += sign * notional
        open_orders.sell_margin += sign * reservation.margin_left
        if symbol is not None:
            symbol.pending_short_increase += sign * reservation.increasing_left
    account.reserved_cost += sign * reservation.cost_left
    if not reservation.reduce_only:
        open_orders.binding_orders += sign
        if sign > 0:
            open_orders.leverage = reservation.leverage
        elif not open_orders.binding_orders:
            open_orders.leverage = 0


def _close(book: Book, account: Account, reservation: Reservation) -> None:
    """Takes a reservation out of the book (its aggregates already released)."""
    del account.orders[reservation.order_id]
    if reservation.persisted:
        book.mark_order_dirty(account.account_id, reservation.order_id)
    else:
        # Opened and closed between two batches: Redis never needs to hear of it.
        book.dirty_orders.discard((account.account_id, reservation.order_id))


def release_undelivered(book: Book, account_id: str, reservation: Reservation) -> bool:
    """Drops the reservation of an accepted check whose answer never reached the gateway
    (deadline passed, call cancelled): the order was never sent, so the id stays usable."""
    account = book.accounts.get(account_id)
    if account is None or account.orders.get(reservation.order_id) is not reservation:
        return False  # already filled or closed: the order did reach the matching engine
    _drop(book, account, reservation)
    return True


def release_not_sent(book: Book, account_id: str, order_id: str) -> bool:
    """The gateway's word that it never sent an order whose check answer it did not get:
    whatever the check reserved is released and the id stays usable. False when nothing was
    reserved (the check was refused, never evaluated, or already released)."""
    account = book.accounts.get(account_id)
    reservation = account.orders.get(order_id) if account is not None else None
    if account is None or reservation is None:
        return False
    if reservation.filled:
        raise ExecutionError("FAILED_PRECONDITION", f"order {order_id[:64]!r} has fills, so it was sent: "
                                                    "report CANCELED, EXPIRED or REJECTED")
    _drop(book, account, reservation)
    return True


def release_reservation(book: Book, account_id: str, order_id: str, now_mono: float) -> Reservation:
    """An operator's release of an order the matching engine no longer holds (its closing
    report was lost). The id then counts as closed for the duplicate window."""
    account = book.accounts.get(account_id)
    reservation = account.orders.get(order_id) if account is not None else None
    if account is None or reservation is None:
        raise ExecutionError("NOT_FOUND", "no open order with that id for that account")
    _drop(book, account, reservation)
    book.record_closed(account, order_id, now_mono)
    return reservation


def _drop(book: Book, account: Account, reservation: Reservation) -> None:
    _hold(account, symbol_open_orders(account, reservation.symbol), reservation, book, -1)
    _close(book, account, reservation)
    verify(book, account, reservation.symbol)


# ---- executions --------------------------------------------------------------------------


def seen_execution(book: Book, account_id: str, order_id: str, ref: ExecutionRef | None) -> bool:
    return ref is not None and bool(ref.execution_id) and \
        execution_key(account_id, order_id, ref.execution_id) in book.executions


def apply_execution(book: Book, account_id: str, order_id: str, kind: ExecutionKind, quantity: Decimal,
                    price: Decimal, now_mono: float, ref: ExecutionRef | None = None, now_ms: int = 0) -> Applied:
    """Applies a fill or a closing report of an open order, once per execution id."""
    account = book.accounts.get(account_id)
    reservation = account.orders.get(order_id) if account is not None else None
    if account is None or reservation is None:
        raise ExecutionError("NOT_FOUND", f"no open order {order_id[:64]!r} for account {account_id[:64]!r}")
    symbol_name = reservation.symbol
    # A position this fill opens takes the symbol's one leverage (this order's own unless it is
    # reduce-only: such an order's label may predate the symbol's current leverage).
    leverage = symbol_leverage(account, symbol_name)
    if not leverage:
        leverage = clamp_leverage(book, account, symbol_name, reservation.leverage, quantity * price)
    open_orders = symbol_open_orders(account, symbol_name)
    _hold(account, open_orders, reservation, book, -1)
    moved: Fill | None = None
    included = cancelled = False
    signed = realised = ZERO
    if kind == ExecutionKind.FILL:
        _consume(reservation, quantity)
        signed = quantity if reservation.side == Side.BUY else -quantity
        included = _included(account, ref)
        if not included:
            moved, realised = _move_position(book, account, symbol_name, signed, price, leverage,
                                             ref.sequence if ref is not None else 0)
    else:
        cancelled = reservation.remaining > 0
        reservation.remaining = reservation.reducing_left = reservation.increasing_left = ZERO
        reservation.cost_left = reservation.margin_left = ZERO
    if reservation.remaining > 0:
        _hold(account, open_orders, reservation, book, +1)
        book.mark_order_dirty(account_id, order_id)
    else:
        _close(book, account, reservation)
        book.record_closed(account, order_id, now_mono)
    _remember(book, account, order_id, ref, moved, now_ms)
    if kind == ExecutionKind.FILL:
        # Only now are the aggregates whole again, this order included.
        rebalance(book, account, symbol_name)
    verify(book, account, symbol_name)
    applied = Applied(symbol_name, reservation.remaining)
    applied.included = included
    applied.cancelled = cancelled
    applied.quantity = signed
    applied.realised = realised
    return applied


def apply_unreserved_fill(book: Book, account_id: str, order_id: str, symbol_name: str, side: int,
                          leverage: int, quantity: Decimal, price: Decimal, ref: ExecutionRef | None = None,
                          now_ms: int = 0) -> Applied:
    """Moves the position for a fill of an order riskgate holds no reservation for (lost in a
    crash, or reported after the order closed): what traded has traded."""
    account = book.accounts.get(account_id)
    symbol = book.symbols.get(symbol_name)
    if account is None or symbol is None or side not in (Side.BUY, Side.SELL):
        raise ExecutionError("NOT_FOUND", f"no open order, and no known account, symbol and side to apply "
                                          f"the fill to ({account_id[:64]!r}, {symbol_name[:64]!r})")
    if order_id in account.recent_order_ids and (ref is None or not ref.execution_id):
        # Without an execution id a retry of a report already applied cannot be told from a
        # late over-fill, and counting a fill twice is the worse mistake.
        raise ExecutionError("NOT_FOUND", f"order {order_id[:64]!r} is closed: its fills were applied "
                                          "(send execution_id to have a late fill applied)")
    if not 0 <= leverage <= MAX_LEVERAGE:
        raise ExecutionError("INVALID_ARGUMENT", f"leverage must be in [0, {MAX_LEVERAGE}]")
    applied = Applied(symbol_name, ZERO)
    signed = quantity if side == Side.BUY else -quantity
    bound = symbol_leverage(account, symbol_name)
    if bound:
        chosen = bound  # the symbol's one leverage, whatever the report says
    else:
        wanted = leverage or symbol.default_leverage
        mark = symbol.mark.price if symbol.mark is not None else price
        chosen = clamp_leverage(book, account, symbol_name, wanted, abs(signed) * mark)
        if chosen != wanted:
            applied.clamped = f"{symbol_name} leverage {wanted} -> {chosen} (tier max or account cap)"
    moved: Fill | None = None
    applied.quantity = signed
    applied.included = _included(account, ref)
    if not applied.included:
        moved, applied.realised = _move_position(book, account, symbol_name, signed, price, chosen,
                                                 ref.sequence if ref is not None else 0)
    _remember(book, account, order_id, ref, moved, now_ms)
    rebalance(book, account, symbol_name)
    verify(book, account, symbol_name)
    return applied


def _included(account: Account, ref: ExecutionRef | None) -> bool:
    """Whether clearing's snapshot already holds this fill (its sequence is at or below the
    cut-off): then it moves the reservation only, never the position a second time."""
    return ref is not None and 0 < ref.sequence <= account.cutoff_sequence


def _consume(reservation: Reservation, quantity: Decimal) -> None:
    # The matching engine is the authority on what traded: an over-fill still moves the
    # position in full, and the reservation is simply used up.
    used = min(quantity, reservation.held)
    reducing_used = min(used, reservation.reducing_left)
    increasing_used = used - reducing_used
    if increasing_used >= reservation.increasing_left:
        released = reservation.cost_left
        margin_released = reservation.margin_left
    else:
        released = round_down(reservation.cost_left * increasing_used / reservation.increasing_left)
        margin_released = round_down(reservation.margin_left * increasing_used / reservation.increasing_left)
    reservation.reducing_left -= reducing_used
    reservation.increasing_left -= increasing_used
    reservation.remaining = max(reservation.remaining - quantity, ZERO)
    if not reservation.reduce_only:
        reservation.remaining = reservation.held
    reservation.cost_left -= released
    reservation.margin_left -= margin_released
    reservation.filled = True


def _remember(book: Book, account: Account, order_id: str, ref: ExecutionRef | None, moved: Fill | None,
              now_ms: int) -> None:
    account.ordinal += 1
    if moved is not None:
        moved.ordinal = account.ordinal
        if moved.sequence:
            _journal(account, moved)
    if ref is not None and ref.execution_id:
        key = execution_key(account.account_id, order_id, ref.execution_id)
    elif moved is not None and moved.sequence:
        # No id (compatibility), but a journal entry a restart must find: stored under an id
        # no report can carry (not printable), so it never counts as a duplicate.
        key = execution_key(account.account_id, order_id, f"{JOURNAL_ONLY}{account.ordinal}")
    else:
        return
    sequence = ref.sequence if ref is not None else 0
    book.executions[key] = (now_ms, sequence, account.ordinal)
    book.execution_queue.append((now_ms, key, account.account_id, sequence))
    book.expired_executions.discard(key)
    book.dirty_executions[key] = execution_spec(key, now_ms, sequence, account.ordinal, moved)
    book.on_dirty()


def execution_spec(key: str, at_ms: int, sequence: int, ordinal: int, moved: Fill | None) -> ExecutionSpec:
    """The stored form of an applied execution (the key holds account, order and id)."""
    account_id, order_id, execution_id = key.split("\x1f", 2)
    return ExecutionSpec(
        account_id=account_id, order_id=order_id, execution_id=execution_id, at_ms=at_ms,
        sequence=sequence, ordinal=ordinal,
        symbol=moved.symbol if moved is not None else "",
        quantity=moved.quantity if moved is not None else None,
        price=moved.price if moved is not None else ZERO,
        leverage=moved.leverage if moved is not None else 0,
    )


def _journal(account: Account, fill: Fill) -> None:
    account.journal.append(fill)
    if len(account.journal) > MAX_JOURNAL:
        forgotten = account.journal.pop(0)
        account.journal_floor = max(account.journal_floor, forgotten.sequence)


def expire_executions(book: Book, now_ms: int) -> int:
    """Forgets execution ids older than the window, except those whose fill a later snapshot
    may still have to re-apply (in a journal). Returns how many were forgotten."""
    queue = book.execution_queue
    horizon = now_ms - book.execution_window_ms
    freed = 0
    while queue and queue[0][0] < horizon:
        at_ms, key, account_id, sequence = queue.popleft()
        entry = book.executions.get(key)
        if entry is None or entry[0] != at_ms:
            continue
        account = book.accounts.get(account_id)
        if account is not None and sequence > account.cutoff_sequence and sequence > account.journal_floor:
            # Above the cut-off: a fill in the journal (anything else has no sequence there),
            # needed to merge a snapshot cut before it. Looked at again a window later.
            queue.append((now_ms, key, account_id, sequence))
            book.executions[key] = (now_ms, entry[1], entry[2])
            continue
        del book.executions[key]
        book.dirty_executions.pop(key, None)
        book.expired_executions.add(key)
        freed += 1
    if freed:
        book.on_dirty()
    return freed


# ---- positions ---------------------------------------------------------------------------


def _move_position(book: Book, account: Account, symbol_name: str, signed_quantity: Decimal, price: Decimal,
                   leverage: int, sequence: int = 0) -> tuple[Fill, Decimal]:
    """Moves the position by a fill; returns its journal entry and the PnL it realised (what it
    credited to the balance: 0 when it only opened or increased the position)."""
    position = account.positions.get(symbol_name)
    realised = ZERO
    if position is None:
        position = account.positions[symbol_name] = Position(ZERO, price, leverage)
    held = position.quantity
    resulting = held + signed_quantity
    if held and (held > 0) != (signed_quantity > 0):
        closed = min(abs(held), abs(signed_quantity))
        direction = 1 if held > 0 else -1
        realised = closed * (price - position.entry_price) * direction
        account.balance += realised
        if resulting and (resulting > 0) != (held > 0):
            position.entry_price = price
    elif held:
        position.entry_price = (
            (abs(held) * position.entry_price + abs(signed_quantity) * price) / abs(resulting)
        ).quantize(ENTRY_QUANTUM, rounding=ROUND_HALF_EVEN)
    else:
        position.entry_price = price
        position.leverage = leverage
    position.quantity = resulting
    adjust_open_interest(book, symbol_name, held, resulting)
    if not resulting:
        del account.positions[symbol_name]
    book.mark_account_dirty(account.account_id)
    return Fill(sequence, 0, symbol_name, signed_quantity, price, leverage), realised


def rebalance(book: Book, account: Account, symbol_name: str) -> None:
    """Keeps the reducing parts of open orders within what the position can still absorb.

    An order accepted as reducing reserved nothing; if the position has since shrunk (another
    order filled first, or clearing's snapshot cut it), the excess would open risk unmargined.
    A reduce-only order just holds less (it can never add risk; when nothing is left to
    reduce the gateway is told to cancel it). Any other order's excess becomes risk-increasing
    at the symbol's one leverage and its cost is reserved now, held to the tier of its side's
    worst case, even if that leaves the account short of margin: the order is already at the
    matching engine, and the shortfall blocks every further risk-increasing order.
    """
    position = account.positions.get(symbol_name)
    held = position.quantity if position is not None else ZERO
    reducing_side = Side.SELL if held > 0 else Side.BUY
    capacity = abs(held)
    # Reduce-only orders first, in the order they came: they are what the trader meant to
    # close with, and they can only ever reduce.
    orders = [r for r in account.orders.values() if r.symbol == symbol_name]
    if not orders:
        return  # nothing to rebalance, and no aggregate created for it (memory per account)
    symbol = book.symbols.get(symbol_name)
    open_orders = symbol_open_orders(account, symbol_name)
    orders.sort(key=lambda r: not r.reduce_only)
    for reservation in orders:
        if reservation.reduce_only:
            can = min(reservation.remaining, capacity) if reservation.side == reducing_side else ZERO
            capacity -= can
            if can != reservation.reducing_left:
                _hold(account, open_orders, reservation, book, -1)
                reservation.reducing_left = can
                _hold(account, open_orders, reservation, book, +1)
                book.mark_order_dirty(account.account_id, reservation.order_id)
            continue
        if not reservation.reducing_left:
            continue
        keep = min(reservation.reducing_left, capacity) if reservation.side == reducing_side else ZERO
        capacity -= keep
        excess = reservation.reducing_left - keep
        if not excess:
            continue
        cost = _cost_of(book, account, symbol, reservation, excess)
        _hold(account, open_orders, reservation, book, -1)
        reservation.reducing_left = keep
        reservation.increasing_left += excess
        reservation.cost_left += cost.total
        reservation.margin_left += cost.initial_margin
        _hold(account, open_orders, reservation, book, +1)
        book.mark_order_dirty(account.account_id, reservation.order_id)


def _cost_of(book: Book, account: Account, symbol: SymbolState | None, reservation: Reservation,
             quantity: Decimal, leverage: int = 0) -> OrderCost:
    """The cost of `quantity` more risk on the order's side, at the order's leverage held to
    the tier of that side's worst case now and the account's cap."""
    if symbol is None:
        return OrderCost(ZERO, ZERO, ZERO, ZERO)
    mark = symbol.mark.price if symbol.mark is not None else reservation.price
    exposure = _side_exposure(account, reservation.symbol, reservation.side)
    leverage = margin_leverage(symbol, leverage or reservation.leverage, exposure * mark,
                               account.controls.max_leverage)
    return order_cost(reservation.side, quantity, reservation.price, mark, leverage, symbol.spec.taker_fee_rate)


def orders_to_cancel(account: Account, symbol_name: str) -> list[str]:
    """Reduce-only orders left with nothing to reduce: venues cancel them."""
    return sorted(r.order_id for r in account.orders.values()
                  if r.symbol == symbol_name and r.reduce_only and not r.reducing_left)


def adjust_open_interest(book: Book, symbol_name: str, before: Decimal, after: Decimal) -> None:
    symbol = book.symbols.get(symbol_name)
    if symbol is None:
        return
    symbol.long_open_interest += max(after, ZERO) - max(before, ZERO)
    symbol.short_open_interest += max(-after, ZERO) - max(-before, ZERO)


# ---- snapshots ---------------------------------------------------------------------------


def check_snapshot(account: Account | None, snapshot: AccountSnapshot) -> None:
    """Refuses a clearing snapshot that cannot be merged exactly."""
    if account is None:
        return
    if snapshot.cutoff_sequence and snapshot.cutoff_sequence < account.cutoff_sequence:
        raise SnapshotRefused(f"cut at sequence {snapshot.cutoff_sequence}, before the snapshot already applied "
                              f"(cut at {account.cutoff_sequence}): a newer one is in")
    if snapshot.cutoff_sequence and snapshot.cutoff_sequence < account.journal_floor:
        raise SnapshotRefused(f"cut at sequence {snapshot.cutoff_sequence}, before fills riskgate no longer "
                              f"remembers (through {account.journal_floor}): send a newer snapshot")
    if not snapshot.cutoff_sequence and not snapshot.applied_through and (account.journal
                                                                          or account.cutoff_sequence):
        # Without a cut-off it cannot say which fills it holds: it would erase or double them.
        raise SnapshotRefused("the account has fills with a sequence (since, or up to, its last snapshot's "
                              "cut-off): say which this one includes (cutoff_sequence), or that it includes "
                              "every fill applied so far (includes_all_fills)")


def clamp_snapshot(book: Book, account: Account | None, snapshot: AccountSnapshot
                   ) -> tuple[AccountSnapshot, list[str]]:
    """Holds each position's leverage to the tier of its notional (at mark, else entry) and
    the account's cap; returns the snapshot to store and a note per leverage it changed."""
    notes: list[str] = []
    positions = []
    for spec in snapshot.positions:
        symbol = book.symbols.get(spec.symbol)
        if spec.quantity and symbol is not None:
            price = symbol.mark.price if symbol.mark is not None else spec.entry_price
            chosen = clamp_leverage(book, account, spec.symbol, spec.leverage, abs(spec.quantity) * price)
            if chosen != spec.leverage:
                notes.append(f"{spec.symbol} leverage {spec.leverage} -> {chosen} (tier max or account cap)")
                spec = msgspec.structs.replace(spec, leverage=chosen)
        positions.append(spec)
    if not notes:
        return snapshot, notes
    return msgspec.structs.replace(snapshot, positions=tuple(positions)), notes


def apply_account_record(book: Book, snapshot: AccountSnapshot, journal: Iterable[Fill] | None = None) -> bool:
    """Puts a stored or clearing record of an account into the book.

    The record's positions reflect its base (clearing's cut-off) and the account's fills up
    to its `applied_through`. The fills this process applied after those and above the
    cut-off are re-applied on top, in the order they were applied; the rest are included.
    `journal` (first load only) is the account's journal as Redis holds it.
    """
    if not book.owns(snapshot.account_id):
        return False
    account = ensure_account(book, snapshot.account_id)
    if snapshot.version <= account.snapshot_version and account.snapshot_version:
        return False
    known = list(account.journal) if journal is None else sorted(journal, key=lambda f: f.ordinal)
    cutoff = max(snapshot.cutoff_sequence, account.cutoff_sequence if journal is None else 0)
    previous = set(account.positions)
    for symbol, position in account.positions.items():
        adjust_open_interest(book, symbol, position.quantity, ZERO)
    account.balance = snapshot.balance
    account.positions = {}
    for spec in snapshot.positions:
        if spec.quantity:
            # Interned: every account holding the symbol shares one key, not a decoded copy each.
            account.positions[sys.intern(spec.symbol)] = Position(spec.quantity, spec.entry_price, spec.leverage)
            adjust_open_interest(book, spec.symbol, ZERO, spec.quantity)
    account.snapshot_version = account.record_version = snapshot.version
    account.cutoff_sequence = cutoff
    account.cutoff_ms = max(snapshot.cutoff_ms, account.cutoff_ms)
    account.journal_floor = max(snapshot.journal_floor, account.journal_floor)
    account.ordinal = max(account.ordinal, snapshot.applied_through, *(f.ordinal for f in known))
    account.journal = []
    touched = {*previous, *account.positions}
    for fill in known:
        if fill.sequence <= cutoff:
            continue  # clearing's snapshot includes it
        if fill.ordinal > snapshot.applied_through:
            _move_position(book, account, fill.symbol, fill.quantity, fill.price,
                           account.positions[fill.symbol].leverage if fill.symbol in account.positions
                           else fill.leverage)
            touched.add(fill.symbol)
        account.journal.append(fill)
    if journal is None:
        # Written again by this process (fills re-applied on top, a new event for the monitor).
        book.mark_account_dirty(account.account_id)
    for symbol in touched:
        align_leverage(book, account, symbol)
        rebalance(book, account, symbol)
        verify(book, account, symbol)
    return True


def align_leverage(book: Book, account: Account, symbol_name: str) -> None:
    """After a snapshot (or a load that restores orders beside it): open orders that may add
    risk take the position's leverage (one per account and symbol), their cost re-reserved at
    it, held to the tier of their side."""
    position = account.positions.get(symbol_name)
    if position is None:
        return
    relabel = [r for r in account.orders.values()
               if r.symbol == symbol_name and not r.reduce_only and r.leverage != position.leverage]
    if not relabel:
        # Most accounts: no aggregate created for a symbol without open orders (memory per account).
        return
    symbol = book.symbols.get(symbol_name)
    open_orders = symbol_open_orders(account, symbol_name)
    for reservation in relabel:
        # Costed while the order still counts in its side's worst case.
        relabelled = _cost_of(book, account, symbol, reservation, reservation.increasing_left, position.leverage)
        _hold(account, open_orders, reservation, book, -1)
        reservation.leverage = position.leverage
        reservation.cost_left = relabelled.total if reservation.increasing_left else ZERO
        reservation.margin_left = relabelled.initial_margin if reservation.increasing_left else ZERO
        _hold(account, open_orders, reservation, book, +1)
        book.mark_order_dirty(account.account_id, reservation.order_id)


def journal_from(specs: Iterable[ExecutionSpec]) -> list[Fill]:
    return [Fill(s.sequence, s.ordinal, s.symbol, s.quantity, s.price, s.leverage)
            for s in specs if s.quantity is not None and s.sequence]


# ---- the invariant ---------------------------------------------------------------------------


def verify(book: Book, account: Account, symbol_name: str) -> None:
    """Checks the ledger's invariants for one account and symbol after a change.

    O(orders of the account): cheap beside the check itself. A failure is a defect; it is
    raised so that the change's caller fails (an order is not accepted on a broken book).
    """
    position = account.positions.get(symbol_name)
    open_orders = account.open_by_symbol.get(symbol_name)
    buy = sell = buy_notional = sell_notional = buy_margin = sell_margin = ZERO
    binding = 0
    leverages: set[int] = set()
    for reservation in account.orders.values():
        if reservation.symbol != symbol_name:
            continue
        if min(reservation.reducing_left, reservation.increasing_left, reservation.cost_left) < 0:
            raise InvariantBroken(f"negative reservation {reservation.order_id!r}")
        if reservation.reduce_only:
            if reservation.increasing_left or reservation.cost_left:
                raise InvariantBroken(f"reduce-only order {reservation.order_id!r} reserves risk")
        else:
            binding += 1
            leverages.add(reservation.leverage)
        if reservation.side == Side.BUY:
            buy += reservation.held
            buy_notional += reservation.increasing_left * reservation.price
            buy_margin += reservation.margin_left
        else:
            sell += reservation.held
            sell_notional += reservation.increasing_left * reservation.price
            sell_margin += reservation.margin_left
        if reservation.margin_left * reservation.leverage < reservation.increasing_left * reservation.price \
                or reservation.margin_left > reservation.cost_left + MONEY_QUANTUM:
            # Below its own leverage's margin: it was relabelled, or its cost lost.
            raise InvariantBroken(f"order {reservation.order_id!r} reserves less than its leverage's margin")
    if position is not None and leverages - {position.leverage}:
        raise InvariantBroken(f"{symbol_name}: open orders at {sorted(leverages)} beside a position at "
                              f"{position.leverage}")
    if len(leverages) > 1:
        raise InvariantBroken(f"{symbol_name}: open orders at two leverages {sorted(leverages)}")
    if open_orders is not None and (
            (open_orders.buy, open_orders.sell, open_orders.binding_orders) != (buy, sell, binding)
            or (open_orders.buy_notional, open_orders.sell_notional) != (buy_notional, sell_notional)
            or (open_orders.buy_margin, open_orders.sell_margin) != (buy_margin, sell_margin)):
        raise InvariantBroken(f"{symbol_name}: open-order aggregates out of step")
