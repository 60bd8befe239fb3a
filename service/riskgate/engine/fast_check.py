"""The check's fixed-point fast path: an order that is accepted whole, decided in scaled integers.

`check.check_order` tries this first. It mirrors `check.check_order_decimal` rule for rule,
but only ever returns an ACCEPT, the INSUFFICIENT_MARGIN answer (REJECT, or REDUCE_ONLY for
the part that reduces: the common refusal reached only after all the arithmetic) or a
price-band refusal. Whenever the order would be refused otherwise or capped, whenever a
figure does not fit its fixed-point scale, or whenever exact integer arithmetic could differ
from the decimal implementation's, it returns None (or raises Unfit) and the decimal
implementation decides the order from the start. Exact arithmetic can differ in two ways: a
non-terminating division landing exactly on a rounding boundary, and an account whose figures
reach 1e30, where the decimal implementation's 60 significant digits no longer hold its sums
exactly.
So the fast path changes how fast an order is accepted, never what any order is told.

Rounding is the decimal path's, done on integers: what the trader must post rounds up
(ceiling division to the 1e-8 quantum), what is available rounds down, the liquidation
price rounds to the tick against the trader.
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal

from riskgate.book.state import Account, Book, OpenOrders, Position, SymbolState
from riskgate.engine.limits import gross_and_open_interest
from riskgate.engine.order import Order
from riskgate.engine.result import CheckResult, Reason, reject
from riskgate.values.codes import BreakerState, Decision, OrderType, ReasonCode, Restriction, Side
from riskgate.values.fixed import (
    EXACT_MONEY_UNITS,
    LEVERAGE_FACTORS,
    QUANTUM_UNITS,
    RATE_SCALE,
    FixedSymbol,
    FixedTier,
    money_units,
    price_units,
    quantity_units,
)
from riskgate.values.money import ZERO, fmt

_NORMAL = BreakerState.NORMAL
_UNRESTRICTED = Restriction.NONE
_BUY = Side.BUY
_MARKET = OrderType.MARKET
_ACCEPT = Decision.ACCEPT
_REJECT = Decision.REJECT
_REDUCE_ONLY = Decision.REDUCE_ONLY
# The quantum in the units available margin is summed in (money x DIVISION_SCALE).
_QUANTUM_E = QUANTUM_UNITS * 10**9
# Quanta back to money: n x 1E-8 is exact with exponent -8, the exponent round_up and
# round_down give (scaleb would too, at the cost of parsing its keyword arguments).
_QUANTUM = Decimal("1E-8")
# The decimal implementation computes at 60 significant digits (values.money). Its figures carry
# up to 29 fraction digits (a notional's 20 over a leverage of 2^9; 28 in a maintenance margin),
# so its sums are exact, and its 60-digit quotients round on the same side as the exact ones,
# while every term stays below 1e30: beyond, the decimal path decides, and rounds as it does.
# A fee to close carries up to 37 (20 + 8 of the rate + 9 of 1/leverage): exact below 1e23.
# Symbols whose limits reach 1e23 are never fixed (values.fixed), so an order's own notional,
# fees and cost stay below both bounds.
_EXACT_MONEY = EXACT_MONEY_UNITS


class Unfit(Exception):
    """A figure the fast path cannot take exactly: the decimal implementation decides."""


def prepare(book: Book, order: Order, now_mono: float) -> tuple[SymbolState, Account, int, int] | None:
    """The rules before the order-rate limit (listing, lot and tick, duplicate id, breakers,
    account restriction) on the fast path's terms: the symbol, the account and the order's
    quantity and price units when all pass as they do for an order accepted whole, else
    None (the decimal implementation then decides, the rate limit untouched)."""
    symbol = book.symbols.get(order.symbol)
    account = book.accounts.get(order.account_id)
    if symbol is None or account is None:
        return None
    fixed = symbol.fixed
    if fixed is None:
        return None
    quantity = order.quantity_units
    if quantity is None:
        quantity = quantity_units(order.quantity)
        if quantity is None:
            return None
    if quantity % fixed.lot:
        return None
    price = 0
    if order.price is not None:
        limit = order.price_units
        if limit is None:
            limit = price_units(order.price)
            if limit is None:
                return None
        if limit % fixed.tick:
            return None
        price = limit
    if order.order_id in account.orders:
        return None
    closed_at = account.recent_order_ids.get(order.order_id)
    if closed_at is not None and now_mono - closed_at <= book.duplicate_window_s:
        return None
    if book.platform_breaker.state != _NORMAL or symbol.breaker.state != _NORMAL:
        return None
    if account.controls.restriction != _UNRESTRICTED:
        return None
    if order.leverage < 0:
        return None  # never on the wire (uint32); the decimal path decides whatever it means
    return symbol, account, quantity, price


def mark_units(symbol: SymbolState) -> int:
    """The symbol's mark in price units (cached per MarkSpec object); Unfit without one."""
    mark = symbol.mark
    if mark is None:
        raise Unfit
    cached = symbol.fixed_mark
    if cached is None or cached[0] is not mark:
        cached = symbol.fixed_mark = (mark, price_units(mark.price))
    units = cached[1]
    if units is None:
        raise Unfit
    return units


_ZERO_ORDERS = (0, 0, 0, 0, 0, 0)


def open_units(open_orders: OpenOrders) -> tuple[int, ...]:
    """(buy, sell, buy notional, sell notional, buy margin, sell margin) in units; cached (on the
    OpenOrders, while it holds the same objects) only when not all zero, so an account with no
    open orders left carries no cache."""
    if not (open_orders.buy or open_orders.sell or open_orders.buy_notional or open_orders.sell_notional
            or open_orders.buy_margin or open_orders.sell_margin):
        return _ZERO_ORDERS
    figures = (open_orders.buy, open_orders.sell, open_orders.buy_notional, open_orders.sell_notional,
               open_orders.buy_margin, open_orders.sell_margin)
    cached = open_orders.fixed
    if cached is not None:
        source = cached[0]
        if (source[0] is figures[0] and source[1] is figures[1] and source[2] is figures[2]
                and source[3] is figures[3] and source[4] is figures[4] and source[5] is figures[5]):
            return cached[1]  # type: ignore[return-value]
    units: tuple[int | None, ...] = (
        quantity_units(figures[0]), quantity_units(figures[1]), money_units(figures[2]), money_units(figures[3]),
        money_units(figures[4]), money_units(figures[5]))
    if None in units or any(unit >= _EXACT_MONEY for unit in units[2:]):  # type: ignore[operator]
        raise Unfit  # not cached: a cached figure is always one the fast path can take
    open_orders.fixed = (figures, units)
    return units  # type: ignore[return-value]


def _tier(fixed: FixedSymbol, notional: int) -> FixedTier | None:
    index = bisect_left(fixed.caps, notional)
    return fixed.tiers[index] if index < len(fixed.tiers) else None


def _margin_factor(fixed: FixedSymbol, leverage: int, notional: int, account_cap: int) -> tuple[int, FixedTier]:
    """margin.margin_leverage's bound, as DIVISION_SCALE / leverage, and the tier it used."""
    tier = _tier(fixed, notional) or fixed.tiers[-1]
    bounded = min(leverage, tier.max_leverage)
    if account_cap:
        bounded = min(bounded, account_cap)
    factor = LEVERAGE_FACTORS[max(bounded, 1)]
    if factor is None:
        raise Unfit  # a non-terminating quotient: the decimal path's 60 digits decide
    return factor, tier


def fast_accept(book: Book, order: Order, symbol: SymbolState, account: Account, quantity: int, limit: int,
                now_ms: int, now_mono: float) -> CheckResult | None:
    """An ACCEPT, a margin answer or a price-band refusal, with every figure the decimal
    implementation would report; None when that implementation must decide.

    Called after `prepare` passed and the order-rate token was taken. Raises Unfit for a
    figure it cannot take exactly (the caller hands the order to the decimal path, whose
    rate limit is then already passed)."""
    name = order.symbol
    fixed: FixedSymbol = symbol.fixed  # type: ignore[assignment]
    positions = account.positions
    position = positions.get(name)
    held = entry = 0
    if position is not None:
        held_units, entry_units = position.quantity_units, position.entry_units
        if held_units is None or entry_units is None:
            raise Unfit
        held, entry = held_units, entry_units
    open_orders = account.open_by_symbol.get(name)
    open_buy = open_sell = 0
    if open_orders is not None:
        open_buy, open_sell = open_units(open_orders)[:2]
    buying = order.side == _BUY
    reducible = -held - open_buy if buying else held - open_sell
    reducing = min(quantity, reducible) if reducible > 0 else 0
    increasing = quantity - reducing
    if order.reduce_only:
        if reducing < quantity:
            return None  # nothing to reduce, or capped: the decimal path says which
        increasing = 0

    if position is not None:
        bound = position.leverage
    else:
        bound = open_orders.leverage if open_orders is not None and open_orders.binding_orders else 0
    leverage = order.leverage or bound or symbol.default_leverage
    spec = symbol.spec
    controls = account.controls
    if increasing:
        if controls.kyc_level < spec.min_kyc_level:
            return None
        if not controls.qualified_investor and (spec.qualified_only or (
                spec.max_leverage_unqualified and leverage > spec.max_leverage_unqualified)):
            return None

    mark = mark_units(symbol)
    if order.order_type == _MARKET:
        price = mark
        price_decimal: Decimal = symbol.mark.price  # type: ignore[union-attr]
    else:
        price = limit
        price_decimal = order.price  # type: ignore[assignment]
        # Outside the band: the decimal path's refusal, word for word (it refuses here whatever
        # else it found, so the fast path may too).
        if buying and price * RATE_SCALE > mark * fixed.band_ceiling:
            mark_decimal = symbol.mark.price  # type: ignore[union-attr]
            return reject(Reason(ReasonCode.PRICE_ABOVE_BAND, "buy price above mark x (1 + band)",
                                 fmt(mark_decimal * symbol.band_ceiling), fmt(price_decimal)))
        if not buying and price * RATE_SCALE < mark * fixed.band_floor:
            mark_decimal = symbol.mark.price  # type: ignore[union-attr]
            return reject(Reason(ReasonCode.PRICE_BELOW_BAND, "sell price below mark x (1 - band)",
                                 fmt(mark_decimal * symbol.band_floor), fmt(price_decimal)))
    if quantity < fixed.min_quantity or quantity > fixed.max_quantity:
        return None
    notional = quantity * price
    if increasing and notional < fixed.min_notional:
        return None
    if notional > fixed.max_order_notional:
        return None

    exposure = (held + open_buy if buying else -held + open_sell) + quantity
    exposure_notional = (exposure if exposure > 0 else 0) * mark
    tier = _tier(fixed, exposure_notional)
    if increasing:
        if tier is None:
            return None
        max_leverage = tier.max_leverage
    else:
        left = _tier(fixed, (abs(held) - reducing) * mark) or fixed.tiers[-1]
        max_leverage = left.max_leverage

    # The account's valuation (margin.value_account), summed exactly in money x DIVISION_SCALE.
    account_cap = controls.max_leverage
    symbols = book.symbols
    upnl_total = initial_margin = other_mm = other_upnl = 0
    magnitude = 0  # the sum of every term's size, in money units
    for other_name, other in positions.items():
        other_quantity, other_entry = other.quantity_units, other.entry_units
        if other_quantity is None or other_entry is None:
            raise Unfit
        if not other_quantity:
            continue
        state = symbols.get(other_name)
        if state is None:
            raise Unfit  # a missing mark: the decimal path fails closed and says why
        other_fixed = state.fixed
        mark_spec = state.mark
        if mark_spec is None or other_fixed is None:
            raise Unfit
        if now_ms - mark_spec.timestamp_ms > state.spec.mark_price_max_age_ms:
            raise Unfit  # a stale mark, likewise
        cached_mark = state.fixed_mark
        if cached_mark is None or cached_mark[0] is not mark_spec:
            mark_units(state)
            cached_mark = state.fixed_mark
        other_mark = cached_mark[1]  # type: ignore[index]
        if other_mark is None:
            raise Unfit
        upnl = other_quantity * (other_mark - other_entry)
        position_notional = (other_quantity if other_quantity > 0 else -other_quantity) * other_mark
        upnl_total += upnl
        magnitude += position_notional + (upnl if upnl > 0 else -upnl)
        # margin.margin_leverage: the position's leverage held to its tier's max and the account's cap.
        other_tier = other_fixed.lookup[bisect_left(other_fixed.caps, position_notional)]
        bounded = other.leverage if other.leverage < other_tier.max_leverage else other_tier.max_leverage
        if account_cap and account_cap < bounded:
            bounded = account_cap
        factor = LEVERAGE_FACTORS[bounded if bounded > 1 else 1]
        if factor is None:
            raise Unfit  # a non-terminating quotient: the decimal path's 60 digits decide
        initial_margin += position_notional * factor
        if other_name != name:
            # tiers.maintenance_margin: the same tier lookup (the last beyond its cap).
            other_mm += position_notional * other_tier.mmr - other_tier.cum
            other_upnl += upnl
    shortfall = 0
    for other_name, other_orders in account.open_by_symbol.items():
        if not (other_orders.buy_notional or other_orders.sell_notional):
            continue
        state = symbols.get(other_name)
        if state is None or state.mark is None:
            continue  # every order on it is refused while it has no mark
        if state.fixed is None:
            raise Unfit
        other_mark = mark_units(state)
        other_position = positions.get(other_name)
        other_held = other_position.quantity_units if other_position is not None else 0
        if other_held is None:
            raise Unfit
        order_leverage = min(other_orders.leverage, other_position.leverage) if other_position is not None \
            else other_orders.leverage
        buy, sell, buy_notional, sell_notional, buy_margin, sell_margin = open_units(other_orders)
        for side_notional, reserved, side_exposure in (
            (buy_notional, buy_margin, other_held + buy),
            (sell_notional, sell_margin, sell - other_held),
        ):
            if side_notional:
                factor = _margin_factor(state.fixed, order_leverage,
                                        (side_exposure if side_exposure > 0 else 0) * other_mark, account_cap)[0]
                needed = side_notional * factor
                reserved_e = reserved * 10**9
                if needed > reserved_e:
                    shortfall += needed - reserved_e
    balance = account.balance_units
    reserved_decimal = account.reserved_cost
    if not reserved_decimal:
        reserved_cost: int | None = 0
    else:
        cached_reserved = account.reserved_fixed
        if cached_reserved is None or cached_reserved[0] is not reserved_decimal:
            cached_reserved = account.reserved_fixed = (reserved_decimal, money_units(reserved_decimal))
        reserved_cost = cached_reserved[1]
    if balance is None or reserved_cost is None:
        raise Unfit
    if magnitude + abs(balance) + abs(reserved_cost) >= _EXACT_MONEY:
        raise Unfit
    available = (balance + upnl_total - reserved_cost) * 10**9 - initial_margin - shortfall

    cost_quanta = margin_quanta = 0
    if increasing:
        if now_mono > book.fresh_until:
            return None
        if now_ms - symbol.mark.timestamp_ms > spec.mark_price_max_age_ms:  # type: ignore[union-attr]
            return None
        account_cap = controls.max_leverage
        if bound and leverage != bound:
            return None
        if leverage > tier.max_leverage:  # type: ignore[union-attr]
            return None
        if account_cap and leverage > account_cap:
            return None
        if fixed.max_position_notional is not None and exposure_notional > fixed.max_position_notional:
            return None
        # Open interest and gross notional move with every order of every account: converting
        # them would cost more than the one decimal comparison, which is the decimal path's own.
        if (controls.max_gross_notional is not None or spec.open_interest_cap is not None) and \
                gross_and_open_interest(book, account, symbol, order, buying, _increasing_decimal(
                    order, open_orders, position, buying, reducing), symbol.mark.price) is not None:  # type: ignore[union-attr]
            return None
        # margin.order_cost, each term rounded up to the quantum on its own.
        increasing_notional = increasing * price
        margin_quanta = -(-increasing_notional // (leverage * QUANTUM_UNITS))
        adverse = price - mark if buying else mark - price
        cost_quanta = margin_quanta
        if adverse > 0:
            cost_quanta += -(-(increasing * adverse) // QUANTUM_UNITS)
        fee = fixed.fee
        if fee:
            cost_quanta += -(-(increasing_notional * fee) // (QUANTUM_UNITS * RATE_SCALE))
            # notional x (1 -/+ 1/leverage) x fee, as one exact fraction
            numerator = increasing_notional * fee * (leverage - 1 if buying else leverage + 1)
            close_quanta, remainder = divmod(-numerator, QUANTUM_UNITS * RATE_SCALE * leverage)
            if not remainder and LEVERAGE_FACTORS[leverage] is None:
                # Exactly on the quantum, where the decimal path's rounded 1/leverage may not be.
                raise Unfit
            cost_quanta -= close_quanta
        if cost_quanta * _QUANTUM_E > available:
            # The most frequent refusal (6% of the harness's orders): answered here rather than
            # by a second, decimal, pass over the same figures. With a part that reduces, that
            # part is still allowed (REDUCE_ONLY).
            reducing_decimal = _reducing_decimal(order, position, open_orders, buying) if reducing else ZERO
            return _margin_reject(symbol, fixed, order, bound, max_leverage, price_decimal, available, cost_quanta,
                                  reducing, reducing_decimal, held, entry if position is not None else None, buying,
                                  price, balance, other_mm, other_upnl)

    # All fields set here (not through __init__'s defaults): the result is built once.
    result = CheckResult(_ACCEPT, [])
    result.decision = _ACCEPT
    result.reasons = []
    allowed = order.quantity
    result.allowed_quantity = allowed
    result.max_leverage = max_leverage
    result.price = price_decimal
    # The split in decimals, by the decimal path's own expressions (so each is the same value
    # with the same exponent that path would give).
    if reducing:
        result.reducing = min(allowed, _reducing_decimal(order, position, open_orders, buying))
    else:
        result.reducing = ZERO  # min(allowed, ZERO) for a positive allowed
    result.increasing = allowed - result.reducing
    if increasing:
        result.leverage = leverage
        result.initial_margin = Decimal(margin_quanta) * _QUANTUM
        result.order_cost = Decimal(cost_quanta) * _QUANTUM
    else:
        result.leverage = bound or symbol.default_leverage
        result.initial_margin = result.order_cost = ZERO
    result.available_margin = Decimal((available - cost_quanta * _QUANTUM_E) // _QUANTUM_E) * _QUANTUM
    result.liquidation_price = _liquidation_price(
        fixed, symbol, held, entry if position is not None else None, buying, quantity, price, balance,
        other_mm, other_upnl)
    return result



def _margin_reject(symbol: SymbolState, fixed: FixedSymbol, order: Order, bound: int, max_leverage: int,
                   price_decimal: Decimal, available: int, cost_quanta: int, reducing: int, reducing_decimal: Decimal,
                   held: int, entry: int | None, buying: bool, price: int, balance: int, other_mm: int,
                   other_upnl: int) -> CheckResult:
    """The decimal path's INSUFFICIENT_MARGIN result: REJECT, or REDUCE_ONLY with the reducing
    part allowed; the same reason text, and the figures of what is allowed."""
    available_quanta = available // _QUANTUM_E
    result = CheckResult(_ACCEPT, [])
    result.decision = _REDUCE_ONLY if reducing else _REJECT
    result.reasons = [Reason(ReasonCode.INSUFFICIENT_MARGIN, "order cost above available margin",
                             fmt(Decimal(available_quanta) * _QUANTUM), fmt(Decimal(cost_quanta) * _QUANTUM))]
    # As the decimal path writes it: allowed = reducing (ZERO when none), reducing = min(allowed,
    # reducing) (the same object), increasing = allowed - reducing (a new Decimal 0).
    result.allowed_quantity = reducing_decimal
    result.reducing = reducing_decimal
    result.increasing = reducing_decimal - reducing_decimal
    result.max_leverage = max_leverage
    result.price = price_decimal
    result.leverage = bound or symbol.default_leverage
    result.initial_margin = result.order_cost = ZERO
    result.available_margin = Decimal(available_quanta) * _QUANTUM
    result.liquidation_price = _liquidation_price(fixed, symbol, held, entry, buying, reducing, price, balance,
                                                  other_mm, other_upnl)
    return result


def _reducing_decimal(order: Order, position: Position | None, open_orders: OpenOrders | None,
                      buying: bool) -> Decimal:
    held = position.quantity if position is not None else ZERO
    open_buy = open_orders.buy if open_orders is not None else ZERO
    open_sell = open_orders.sell if open_orders is not None else ZERO
    reducible = -held - open_buy if buying else held - open_sell
    return min(order.quantity, reducible) if reducible > 0 else ZERO


def _increasing_decimal(order: Order, open_orders: OpenOrders | None, position: Position | None,
                        buying: bool, reducing: int) -> Decimal:
    if order.reduce_only:
        return ZERO
    if not reducing:
        return order.quantity - ZERO
    return order.quantity - _reducing_decimal(order, position, open_orders, buying)


def _liquidation_price(fixed: FixedSymbol, symbol: SymbolState, held: int, entry: int | None, buying: bool,
                       allowed: int, price: int, balance: int, other_mm: int, other_upnl: int) -> Decimal | None:
    """check._resulting_liquidation_price and margin.liquidation_price in exact fractions.

    The decimal path divides at 60 digits (the averaged entry, the price in each tier); the
    exact answer is the same unless a comparison or the tick rounding lands exactly on its
    boundary, where the decimal path's rounded quotient may fall either side: Unfit there.
    """
    signed = allowed if buying else -allowed
    resulting = held + signed
    if not resulting:
        return None
    if entry is None:
        entry = price
    if held and (held > 0) != (signed > 0):
        closed = min(abs(held), allowed)
        balance += closed * (price - entry) * (1 if held > 0 else -1)
    size = abs(resulting)
    averaged = False
    if not held or (held > 0) != (resulting > 0):
        size_entry = size * price
    elif (held > 0) == (signed > 0):
        # size x the averaged entry, exactly; the decimal path's average is rounded at 60 digits.
        size_entry = abs(held) * entry + allowed * price
        averaged = True
    else:
        size_entry = size * entry
    side = 1 if resulting > 0 else -1
    if ((abs(balance) + abs(other_upnl) + size_entry) * RATE_SCALE + abs(other_mm)) >= _EXACT_MONEY * RATE_SCALE:
        raise Unfit
    base = (balance + other_upnl - side * size_entry) * RATE_SCALE - other_mm
    if averaged and not base:
        raise Unfit
    if side > 0 and base >= 0:
        return None
    tiers = fixed.tiers
    last = tiers[-1]
    start_index = bisect_left(fixed.caps, size_entry)
    if averaged and start_index < len(tiers) and fixed.caps[start_index] == size_entry:
        raise Unfit
    no_price_from = len(tiers) + 1
    for tier in fixed.tier_orders[start_index]:
        if tier.number >= no_price_from:
            continue
        numerator = base + tier.cum
        denominator = size * (tier.mmr - side * RATE_SCALE)
        if denominator < 0:
            numerator, denominator = -numerator, -denominator
        if numerator <= 0:
            if averaged and not numerator:
                raise Unfit
            if side > 0:
                no_price_from = tier.number
            continue
        # The price's notional against the tier's range: floor < numerator x size / denominator <= cap.
        scaled = numerator * size
        low, high = tier.floor * denominator, tier.cap * denominator
        if scaled in (low, high):
            raise Unfit
        if low < scaled and (scaled < high or tier is last):
            units, remainder = divmod(numerator, denominator * fixed.tick)
            if not remainder and averaged:
                raise Unfit
            if side > 0 and remainder:
                units += 1
            return Decimal(units) * symbol.spec.tick_size
    return None
