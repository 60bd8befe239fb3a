"""An account's risk at current marks, for operators (GetAccountRisk)."""

from __future__ import annotations

from decimal import Decimal

from riskgate.book.state import Account, Book
from riskgate.engine.margin import liquidation_price, margin_leverage, value_account
from riskgate.values.money import round_down, round_up


class PositionRisk:
    __slots__ = ("entry_price", "initial_margin", "leverage", "liquidation_price", "maintenance_margin",
                 "mark_price", "quantity", "symbol", "unrealized_pnl")

    def __init__(self, symbol: str, quantity: Decimal, entry_price: Decimal, leverage: int) -> None:
        self.symbol = symbol
        self.quantity = quantity
        self.entry_price = entry_price
        self.leverage = leverage
        self.mark_price: Decimal | None = None
        self.unrealized_pnl: Decimal | None = None
        self.maintenance_margin: Decimal | None = None
        self.initial_margin: Decimal | None = None
        self.liquidation_price: Decimal | None = None


class AccountRisk:
    __slots__ = ("available_margin", "balance", "positions", "reserved_order_cost")

    def __init__(self, balance: Decimal, reserved: Decimal, available: Decimal | None,
                 positions: list[PositionRisk]) -> None:
        self.balance = balance
        self.reserved_order_cost = reserved
        self.available_margin = available
        self.positions = positions


def account_risk(book: Book, account: Account) -> AccountRisk:
    total = value_account(book, account)
    positions: list[PositionRisk] = []
    for symbol_name, position in sorted(account.positions.items()):
        row = PositionRisk(symbol_name, position.quantity, position.entry_price, position.leverage)
        positions.append(row)
        symbol = book.symbols.get(symbol_name)
        if symbol is None or symbol.mark is None:
            continue
        mark = symbol.mark.price
        notional = abs(position.quantity) * mark
        row.mark_price = mark
        row.unrealized_pnl = position.quantity * (mark - position.entry_price)
        row.maintenance_margin = round_up(symbol.tiers.maintenance_margin(notional))
        row.initial_margin = round_up(notional / margin_leverage(symbol, position.leverage, notional,
                                                                     account.controls.max_leverage))
        row.liquidation_price = liquidation_price(
            symbol.tiers, position.quantity, position.entry_price, account.balance,
            total.other_mm - symbol.tiers.maintenance_margin(notional),
            total.unrealized_pnl - row.unrealized_pnl, symbol.spec.tick_size,
        )
    available = None if total.missing_mark is not None else round_down(total.available)
    return AccountRisk(account.balance, account.reserved_cost, available, positions)
