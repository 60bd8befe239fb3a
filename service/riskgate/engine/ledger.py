"""Reservations: what an allowed order holds, and how fills, cancels and expiries move it.

A reservation is made in memory the moment a check allows an order, so the very next check
of the account sees it. A fill consumes the reducing part first (the position shrinks before
it can grow), releases the matching share of the reserved cost, and moves the position:
average entry on increase, realised PnL into the balance on reduction.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from riskgate.book.state import Account, Book, OpenOrders, Position, Reservation
from riskgate.engine.margin import order_cost
from riskgate.engine.order import Order
from riskgate.engine.result import CheckResult
from riskgate.engine.spec_rules import MAX_LEVERAGE
from riskgate.values.codes import ExecutionKind, Side
from riskgate.values.money import ZERO, round_down

# Average entry prices are not posted money; twelve decimals keep them exact in practice.
ENTRY_QUANTUM = Decimal("1e-12")


class ExecutionError(ValueError):
    """An execution report that does not match an open order."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def reserve(book: Book, order: Order, result: CheckResult, now_ms: int) -> Reservation:
    account = book.accounts[order.account_id]
    reservation = Reservation(
        order.order_id, order.symbol, order.side, result.price, result.leverage,
        result.reducing, result.increasing, result.order_cost if result.increasing else ZERO, now_ms,
    )
    _hold(account, symbol_open_orders(account, order.symbol), reservation, book, +1)
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
    if reservation.side == Side.BUY:
        open_orders.buy += sign * reservation.remaining
        if symbol is not None:
            symbol.pending_long_increase += sign * reservation.increasing_left
    else:
        open_orders.sell += sign * reservation.remaining
        if symbol is not None:
            symbol.pending_short_increase += sign * reservation.increasing_left
    account.reserved_cost += sign * reservation.cost_left
    if reservation.increasing_left:
        open_orders.increasing_orders += sign
        if sign > 0:
            open_orders.leverage = reservation.leverage
        elif not open_orders.increasing_orders:
            open_orders.leverage = 0


def apply_execution(book: Book, account_id: str, order_id: str, kind: ExecutionKind,
                    quantity: Decimal, price: Decimal, now_mono: float) -> Reservation:
    """Applies a fill or a closing report; returns the reservation as it now stands."""
    account = book.accounts.get(account_id)
    reservation = account.orders.get(order_id) if account is not None else None
    if account is None or reservation is None:
        raise ExecutionError("NOT_FOUND", f"no open order {order_id[:64]!r} for account {account_id[:64]!r}")
    open_orders = symbol_open_orders(account, reservation.symbol)
    _hold(account, open_orders, reservation, book, -1)
    if kind == ExecutionKind.FILL:
        _fill(book, account, reservation, quantity, price)
    else:
        reservation.remaining = reservation.reducing_left = reservation.increasing_left = ZERO
        reservation.cost_left = ZERO
    if reservation.remaining > 0:
        _hold(account, open_orders, reservation, book, +1)
        book.mark_order_dirty(account_id, order_id)
    else:
        del account.orders[order_id]
        book.record_closed(account, order_id, now_mono)
        if reservation.persisted:
            book.mark_order_dirty(account_id, order_id)
        else:
            book.dirty_orders.discard((account_id, order_id))
    if kind == ExecutionKind.FILL:
        # Only now are the aggregates whole again, this order included.
        rebalance_reducing(book, account, reservation.symbol)
    return reservation


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
    del account.orders[reservation.order_id]
    if reservation.persisted:
        book.mark_order_dirty(account.account_id, reservation.order_id)
    else:
        book.dirty_orders.discard((account.account_id, reservation.order_id))


def apply_unreserved_fill(book: Book, account_id: str, order_id: str, symbol_name: str, side: int,
                          leverage: int, quantity: Decimal, price: Decimal) -> Decimal:
    """Moves the position for a fill of an order riskgate holds no reservation for (lost in a
    crash, or reported after the order closed): what traded has traded. Returns the position."""
    account = book.accounts.get(account_id)
    symbol = book.symbols.get(symbol_name)
    if account is None or symbol is None or side not in (Side.BUY, Side.SELL):
        raise ExecutionError("NOT_FOUND", f"no open order, and no known account, symbol and side to apply "
                                          f"the fill to ({account_id[:64]!r}, {symbol_name[:64]!r})")
    if order_id in account.recent_order_ids:
        # Most likely a retry of a report already applied; without an execution id it cannot be
        # told from a late over-fill, and counting a fill twice is the worse mistake.
        raise ExecutionError("NOT_FOUND", f"order {order_id[:64]!r} is closed: its fills were applied")
    if not 0 <= leverage <= MAX_LEVERAGE:
        raise ExecutionError("INVALID_ARGUMENT", f"leverage must be in [0, {MAX_LEVERAGE}]")
    position = account.positions.get(symbol_name)
    open_orders = account.open_by_symbol.get(symbol_name)
    leverage = leverage or (
        position.leverage if position is not None
        else open_orders.leverage if open_orders is not None and open_orders.increasing_orders
        else symbol.default_leverage
    )
    signed = quantity if side == Side.BUY else -quantity
    move_position(book, account, symbol_name, signed, price, leverage)
    rebalance_reducing(book, account, symbol_name)
    position = account.positions.get(symbol_name)
    return position.quantity if position is not None else ZERO


def _fill(book: Book, account: Account, reservation: Reservation, quantity: Decimal, price: Decimal) -> None:
    # The matching engine is the authority on what traded: an over-fill still moves the
    # position in full, and the reservation is simply used up.
    used = min(quantity, reservation.remaining)
    reducing_used = min(used, reservation.reducing_left)
    increasing_used = used - reducing_used
    if increasing_used >= reservation.increasing_left:
        released = reservation.cost_left
    else:
        released = round_down(reservation.cost_left * increasing_used / reservation.increasing_left)
    reservation.reducing_left -= reducing_used
    reservation.increasing_left -= increasing_used
    reservation.remaining -= used
    reservation.cost_left -= released
    reservation.filled = True
    signed = quantity if reservation.side == Side.BUY else -quantity
    move_position(book, account, reservation.symbol, signed, price, reservation.leverage)


def move_position(book: Book, account: Account, symbol_name: str, signed_quantity: Decimal, price: Decimal,
                  leverage: int) -> None:
    position = account.positions.get(symbol_name)
    if position is None:
        position = account.positions[symbol_name] = Position(ZERO, price, leverage)
    held = position.quantity
    resulting = held + signed_quantity
    if held and (held > 0) != (signed_quantity > 0):
        closed = min(abs(held), abs(signed_quantity))
        direction = 1 if held > 0 else -1
        account.balance += closed * (price - position.entry_price) * direction
        if resulting and (resulting > 0) != (held > 0):
            position.entry_price = price
            position.leverage = leverage
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


def rebalance_reducing(book: Book, account: Account, symbol_name: str) -> None:
    """Keeps the reducing parts of open orders within what the position can still absorb.

    An order accepted as reducing reserved nothing; if the position has since shrunk (another
    order filled first, or clearing's snapshot cut it), the excess would open risk unmargined.
    It becomes risk-increasing and its cost is reserved now, even if that leaves the account
    short of margin: the order is already at the matching engine, and the shortfall blocks
    every further risk-increasing order until it is covered.
    """
    position = account.positions.get(symbol_name)
    held = position.quantity if position is not None else ZERO
    reducing_side = Side.SELL if held > 0 else Side.BUY
    capacity = abs(held)
    symbol = book.symbols.get(symbol_name)
    for reservation in list(account.orders.values()):
        if reservation.symbol != symbol_name or not reservation.reducing_left:
            continue
        keep = min(reservation.reducing_left, capacity) if reservation.side == reducing_side else ZERO
        capacity -= keep
        excess = reservation.reducing_left - keep
        if not excess:
            continue
        open_orders = symbol_open_orders(account, symbol_name)
        _hold(account, open_orders, reservation, book, -1)
        mark = symbol.mark.price if symbol is not None and symbol.mark is not None else reservation.price
        fee = symbol.spec.taker_fee_rate if symbol is not None else ZERO
        # The excess joins whatever else adds risk on the symbol, at that one leverage.
        if open_orders.increasing_orders:
            reservation.leverage = open_orders.leverage
        reservation.reducing_left = keep
        reservation.increasing_left += excess
        reservation.cost_left += order_cost(reservation.side, excess, reservation.price, mark,
                                            reservation.leverage, fee).total
        _hold(account, open_orders, reservation, book, +1)
        book.mark_order_dirty(account.account_id, reservation.order_id)


def adjust_open_interest(book: Book, symbol_name: str, before: Decimal, after: Decimal) -> None:
    symbol = book.symbols.get(symbol_name)
    if symbol is None:
        return
    symbol.long_open_interest += max(after, ZERO) - max(before, ZERO)
    symbol.short_open_interest += max(-after, ZERO) - max(-before, ZERO)
