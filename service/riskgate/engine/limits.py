"""Limits across accounts and symbols: the account's gross notional cap and the symbol's open-interest cap.

Shared by the decimal check and its fixed-point fast path (both compare in decimals: the
figures move with every order of every account, so converting them would cost more).
"""

from __future__ import annotations

from decimal import Decimal

from riskgate.book.state import Account, Book, OpenOrders, SymbolState
from riskgate.engine.order import Order
from riskgate.engine.result import Reason
from riskgate.values.codes import ReasonCode, Side
from riskgate.values.money import ZERO, fmt

_NO_OPEN_ORDERS = OpenOrders()


def gross_and_open_interest(book: Book, account: Account, symbol: SymbolState, order: Order, buying: bool,
                             increasing: Decimal, mark: Decimal) -> Reason | None:
    gross_cap = account.controls.max_gross_notional
    if gross_cap is not None:
        gross = _gross_notional(book, account, order, mark)
        if gross > gross_cap:
            return Reason(ReasonCode.GROSS_NOTIONAL_EXCEEDED,
                          "gross notional across symbols, open orders included, above the account's cap",
                          fmt(gross_cap), fmt(gross))
    cap = symbol.spec.open_interest_cap
    if cap is not None:
        if buying:
            side_interest = symbol.long_open_interest + symbol.pending_long_increase + increasing
        else:
            side_interest = symbol.short_open_interest + symbol.pending_short_increase + increasing
        interest_notional = side_interest * mark
        if interest_notional > cap:
            return Reason(ReasonCode.OPEN_INTEREST_CAP_EXCEEDED, "open interest of the symbol would exceed its cap",
                          fmt(cap), fmt(interest_notional))
    return None


def _gross_notional(book: Book, account: Account, order: Order, order_mark: Decimal) -> Decimal:
    symbols = set(account.positions) | set(account.open_by_symbol)
    symbols.add(order.symbol)
    gross = ZERO
    for name in symbols:
        position = account.positions.get(name)
        held = position.quantity if position is not None else ZERO
        open_orders = account.open_by_symbol.get(name, _NO_OPEN_ORDERS)
        long_side = held + open_orders.buy
        short_side = -held + open_orders.sell
        if name == order.symbol:
            if order.side == Side.BUY:
                long_side += order.quantity
            else:
                short_side += order.quantity
            mark = order_mark
        else:
            state = book.symbols.get(name)
            if state is None or state.mark is None:
                continue
            mark = state.mark.price
        gross += max(long_side, short_side, ZERO) * mark
    return gross
