"""Check 1, the shape of an order: ids, enums, and decimal fields parsed from wire strings."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from riskgate.engine.result import Reason
from riskgate.engine.spec_rules import ID_MAX_LEN, MAX_LEVERAGE, SYMBOL_MAX_LEN
from riskgate.values.codes import OrderType, ReasonCode, Side
from riskgate.values.fixed import price_units, quantity_units
from riskgate.values.money import ZERO, DecimalFormatError, parse_non_negative


class Order:
    __slots__ = (
        "account_id",
        "leverage",
        "order_id",
        "order_type",
        "price",
        "price_units",
        "quantity",
        "quantity_units",
        "reduce_only",
        "side",
        "symbol",
    )

    def __init__(
        self,
        order_id: str,
        account_id: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal | None,
        leverage: int,
        reduce_only: bool,
        quantity_units: int | None = None,
        price_units: int | None = None,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.quantity = quantity
        self.price = price
        self.leverage = leverage
        self.reduce_only = reduce_only
        # The same quantity and price in fixed-point units (values.fixed), when the parser had
        # them at hand; None: the check converts them itself (or they do not fit).
        self.quantity_units = quantity_units
        self.price_units = price_units


# Wire amount -> (its Decimal, its fixed-point units), one table for quantities and one for
# prices. Order flow repeats a small set of quantities (and, less, prices); a hit skips the
# regex, the Decimal parse and the conversion. Decimals are immutable, so one object may serve
# every order. Bounded: a table is emptied when full.
_QUANTITIES: dict[str, tuple[Decimal, int | None]] = {}
_PRICES: dict[str, tuple[Decimal, int | None]] = {}
_AMOUNTS_MAX = 8192


def _amount(text: str, table: dict[str, tuple[Decimal, int | None]], units: Callable[[Decimal], int | None]
            ) -> tuple[Decimal, int | None]:
    """parse_non_negative(text) with its units; raises DecimalFormatError as it does."""
    known = table.get(text)
    if known is None:
        value = parse_non_negative(text)
        known = (value, units(value))
        if len(table) >= _AMOUNTS_MAX:
            table.clear()
        table[text] = known
    return known


def _bad_identifier(value: str, max_len: int) -> bool:
    return not value or len(value) > max_len or not value.isprintable() or value != value.strip()


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def parse_order(
    order_id: str,
    account_id: str,
    symbol: str,
    side: int,
    order_type: int,
    quantity: str,
    price: str,
    leverage: int,
    reduce_only: bool,
) -> Order | Reason:
    """Returns the typed order, or the first reason it is malformed."""
    if _bad_identifier(order_id, ID_MAX_LEN):
        return Reason(ReasonCode.INVALID_ORDER_ID, f"order_id must be 1-{ID_MAX_LEN} printable characters",
                      str(ID_MAX_LEN), _shown(order_id))
    if _bad_identifier(account_id, ID_MAX_LEN):
        return Reason(ReasonCode.INVALID_ACCOUNT_ID, f"account_id must be 1-{ID_MAX_LEN} printable characters",
                      str(ID_MAX_LEN), _shown(account_id))
    if _bad_identifier(symbol, SYMBOL_MAX_LEN):
        return Reason(ReasonCode.INVALID_SYMBOL, f"symbol must be 1-{SYMBOL_MAX_LEN} printable characters",
                      str(SYMBOL_MAX_LEN), _shown(symbol))
    if side not in (1, 2):
        return Reason(ReasonCode.INVALID_SIDE, "side must be SIDE_BUY or SIDE_SELL", "", str(side))
    if order_type not in (1, 2):
        return Reason(ReasonCode.INVALID_ORDER_TYPE, "order_type must be ORDER_TYPE_LIMIT or ORDER_TYPE_MARKET",
                      "", str(order_type))
    try:
        qty, qty_units = _amount(quantity, _QUANTITIES, quantity_units)
    except DecimalFormatError as exc:
        return Reason(ReasonCode.INVALID_QUANTITY, f"quantity: {exc}", "", _shown(quantity))
    if qty == ZERO:
        return Reason(ReasonCode.INVALID_QUANTITY, "quantity must be positive", "0", quantity)
    parsed_price: Decimal | None = None
    limit_units: int | None = None
    if order_type == OrderType.LIMIT:
        try:
            parsed_price, limit_units = _amount(price, _PRICES, price_units)
        except DecimalFormatError as exc:
            return Reason(ReasonCode.INVALID_PRICE, f"price of a limit order: {exc}", "", _shown(price))
        if parsed_price == ZERO:
            return Reason(ReasonCode.INVALID_PRICE, "price must be positive", "0", price)
    elif price:
        return Reason(ReasonCode.INVALID_PRICE, "a market order must not carry a price", "", _shown(price))
    if leverage > MAX_LEVERAGE:
        return Reason(ReasonCode.INVALID_LEVERAGE, f"leverage must be 0 (current) or 1-{MAX_LEVERAGE}",
                      str(MAX_LEVERAGE), str(leverage))
    return Order(order_id, account_id, symbol, Side(side), OrderType(order_type), qty, parsed_price,
                 leverage, reduce_only, qty_units, limit_units)
