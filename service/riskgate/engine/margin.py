"""Margin formulas (Binance USD-M / Bybit linear) and cross-margin account valuation."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from riskgate.book.state import Account, Book, SymbolState
from riskgate.values.codes import Side
from riskgate.values.money import ONE, ZERO, round_up
from riskgate.values.tiers import TierTable


class OrderCost:
    __slots__ = ("fee_to_close", "fee_to_open", "initial_margin", "open_loss", "total")

    def __init__(self, initial_margin: Decimal, open_loss: Decimal, fee_to_open: Decimal,
                 fee_to_close: Decimal) -> None:
        self.initial_margin = initial_margin
        self.open_loss = open_loss
        self.fee_to_open = fee_to_open
        self.fee_to_close = fee_to_close
        self.total = initial_margin + open_loss + fee_to_open + fee_to_close


def order_cost(side: Side, quantity: Decimal, price: Decimal, mark: Decimal, leverage: int,
               taker_fee_rate: Decimal) -> OrderCost:
    """Binance cost to open (IM + open loss) plus Bybit's fees to open and close.

    Each term is rounded up to the money quantum on its own, so the total never understates
    what the trader must post.
    """
    notional = quantity * price
    initial_margin = round_up(notional / leverage)
    adverse = price - mark if side == Side.BUY else mark - price
    open_loss = round_up(quantity * adverse) if adverse > 0 else ZERO
    if taker_fee_rate:
        fee_to_open = round_up(notional * taker_fee_rate)
        close_factor = ONE - ONE / leverage if side == Side.BUY else ONE + ONE / leverage
        fee_to_close = round_up(notional * close_factor * taker_fee_rate)
    else:
        fee_to_open = fee_to_close = ZERO
    return OrderCost(initial_margin, open_loss, fee_to_open, fee_to_close)


def margin_leverage(symbol: SymbolState, leverage: int, notional: Decimal, account_cap: int = 0) -> int:
    """The leverage margin is computed at: the position's or order's own, never above the max
    of the tier its notional falls in (the last tier beyond the last cap) nor the account's
    cap. Every initial margin riskgate computes goes through this bound."""
    tier = symbol.tiers.for_notional(notional) or symbol.tiers.tiers[-1]
    bounded = min(leverage, tier.max_leverage)
    if account_cap:
        bounded = min(bounded, account_cap)
    return max(bounded, 1)


class Valuation:
    """Cross-margin figures of one account at current marks. `other_*` leave out the focus
    symbol's position: the liquidation estimate of that symbol needs exactly those."""

    __slots__ = ("available", "initial_margin", "missing_mark", "order_margin_shortfall", "other_mm", "other_upnl",
                 "stale_mark", "unrealized_pnl")

    def __init__(self) -> None:
        self.unrealized_pnl = ZERO
        self.initial_margin = ZERO
        self.other_mm = ZERO
        self.other_upnl = ZERO
        self.available = ZERO
        # Initial margin open orders need beyond what they reserved, their side's tier having
        # moved since (see OpenOrders).
        self.order_margin_shortfall = ZERO
        self.missing_mark: str | None = None
        self.stale_mark: str | None = None


def value_account(book: Book, account: Account, focus_symbol: str = "", now_ms: int | None = None) -> Valuation:
    """available = balance + unrealised PnL - initial margin of positions - reserved order cost
    - what open orders' margin falls short of their side's tier now.

    A position whose symbol has no mark cannot be valued: `missing_mark` names it. With now_ms,
    a position valued at a mark older than its bound is named in `stale_mark`: its unrealised
    profit is not to be trusted as collateral. The caller fails closed on either.
    """
    valuation = Valuation()
    symbols = book.symbols
    upnl_total = initial_margin = other_mm = other_upnl = ZERO
    cap = account.controls.max_leverage
    for symbol, position in account.positions.items():
        quantity = position.quantity
        if not quantity:
            continue
        state = symbols.get(symbol)
        mark_spec = state.mark if state is not None else None
        if mark_spec is None or state is None:
            valuation.missing_mark = symbol
            continue
        if now_ms is not None and now_ms - mark_spec.timestamp_ms > state.spec.mark_price_max_age_ms:
            valuation.stale_mark = symbol
        mark = mark_spec.price
        upnl = quantity * (mark - position.entry_price)
        notional = (quantity if quantity > 0 else -quantity) * mark
        upnl_total += upnl
        # Summed exactly; the published available margin is rounded down once, at the end.
        initial_margin += notional / margin_leverage(state, position.leverage, notional, cap)
        if symbol != focus_symbol:
            other_mm += state.tiers.maintenance_margin(notional)
            other_upnl += upnl
    shortfall = ZERO
    for symbol, open_orders in account.open_by_symbol.items():
        if not (open_orders.buy_notional or open_orders.sell_notional):
            continue
        state = symbols.get(symbol)
        if state is None or state.mark is None:
            continue  # every order on it is refused while it has no mark
        mark = state.mark.price
        held_position = account.positions.get(symbol)
        held = held_position.quantity if held_position is not None else ZERO
        # One leverage per account and symbol; should a position and its orders ever disagree,
        # the lower one counts.
        order_leverage = min(open_orders.leverage, held_position.leverage) if held_position is not None \
            else open_orders.leverage
        for notional, reserved, exposure in (
            (open_orders.buy_notional, open_orders.buy_margin, held + open_orders.buy),
            (open_orders.sell_notional, open_orders.sell_margin, open_orders.sell - held),
        ):
            if notional:
                # Open orders are held, like positions, to the tier their side's worst case
                # falls in now (a mark move, an over-fill or a lower cap may have moved it).
                leverage = margin_leverage(state, order_leverage, max(exposure, ZERO) * mark, cap)
                if notional / leverage > reserved:
                    shortfall += notional / leverage - reserved
    valuation.order_margin_shortfall = shortfall
    valuation.unrealized_pnl = upnl_total
    valuation.initial_margin = initial_margin
    valuation.other_mm = other_mm
    valuation.other_upnl = other_upnl
    valuation.available = account.balance + upnl_total - initial_margin - account.reserved_cost - shortfall
    return valuation


def liquidation_price(tiers: TierTable, quantity: Decimal, entry_price: Decimal, wallet_balance: Decimal,
                      other_maintenance: Decimal, other_upnl: Decimal, tick: Decimal) -> Decimal | None:
    """Binance one-way cross estimate:
    LP = (WB - TMM1 + UPNL1 + cum - side x Q x EP) / (Q x MMR - side x Q),
    solved in the tier whose range holds the LP's notional. The last tier has no upper bound
    here: beyond its cap its rate still applies (as in `TierTable.maintenance_margin`). None
    when there is no liquidation price: flat, a long that cannot be liquidated, or no tier
    holds its own solution. Rounded to the tick against the trader: a long's up, a short's down.
    """
    if not quantity:
        return None
    side = 1 if quantity > 0 else -1
    size = abs(quantity)
    base = wallet_balance - other_maintenance + other_upnl - side * size * entry_price
    if side > 0 and base >= 0:
        # Collateral covers the whole long even at a price of zero: no tier can liquidate it.
        return None
    last = tiers.tiers[-1]
    # The tier at the entry notional is nearly always the answer, so try it first.
    start = tiers.for_notional(size * entry_price) or last
    no_price_from = len(tiers.tiers) + 1
    for tier in (start, *tiers.tiers):
        if tier.index >= no_price_from:
            continue
        price = (base + tier.maintenance_amount) / (size * tier.mmr - side * size)
        if price <= 0:
            if side > 0:
                # Higher tiers carry larger maintenance amounts: a long's price only falls.
                no_price_from = tier.index
            continue
        notional = price * size
        if tier.floor < notional and (notional <= tier.cap or tier is last):
            return to_tick(price, tick, side)
    # No tier holds its own solution (a short whose collateral is gone even at a price of
    # zero): there is no liquidation price, not the entry tier's inconsistent one.
    return None


def to_tick(price: Decimal, tick: Decimal, side: int) -> Decimal:
    """Rounded to the tick against the trader: up for a long (side 1), down for a short."""
    units = (price / tick).to_integral_value(rounding=ROUND_CEILING if side > 0 else ROUND_FLOOR)
    return units * tick
