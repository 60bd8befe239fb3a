"""The pre-trade check: one order against the book, cheapest rule first.

Pure and synchronous. The only state it touches is the account's order-rate bucket; the
reservation of an allowed order is made afterwards by `reservations.reserve`.
"""

from __future__ import annotations

from decimal import Decimal

from riskgate.book.state import Account, Book, OpenOrders, Position, SymbolState
from riskgate.engine.fast_check import Unfit, fast_accept, prepare
from riskgate.engine.ledger import symbol_leverage
from riskgate.engine.limits import gross_and_open_interest
from riskgate.engine.margin import liquidation_price, order_cost, value_account
from riskgate.engine.order import Order
from riskgate.engine.result import CheckResult, Reason, reject
from riskgate.values.codes import BreakerState, Decision, OrderType, ReasonCode, Restriction, Side
from riskgate.values.money import ZERO, fmt, round_down

_NO_OPEN_ORDERS = OpenOrders()


def check_order(book: Book, order: Order, now_ms: int, now_mono: float) -> CheckResult:
    """The decision on one order. An order accepted whole is decided in scaled integers
    (`fast_check`); every other order, and any figure that does not fit fixed point exactly,
    by the decimal implementation below, which states every reason."""
    prepared = prepare(book, order, now_mono)
    if prepared is None:
        return check_order_decimal(book, order, now_ms, now_mono)
    symbol, account, quantity, price = prepared
    if not account.bucket.try_take(now_mono):
        return check_order_decimal(book, order, now_ms, now_mono, bucket=False)
    try:
        result = fast_accept(book, order, symbol, account, quantity, price, now_ms, now_mono)
    except Unfit:
        result = None
    return result if result is not None else check_order_decimal(book, order, now_ms, now_mono, bucket=True)


def check_order_decimal(book: Book, order: Order, now_ms: int, now_mono: float, bucket: bool | None = None
                        ) -> CheckResult:
    """The whole check in exact decimals. `bucket`: the order-rate token's outcome when the
    caller already tried to take it (never taken twice for one order), None to take it here."""
    symbol = book.symbols.get(order.symbol)
    if symbol is None:
        return reject(Reason(ReasonCode.UNKNOWN_SYMBOL, f"symbol {order.symbol!r} is not listed", "", order.symbol))
    account = book.accounts.get(order.account_id)
    if account is None:
        if not book.owns(order.account_id):
            return reject(Reason(ReasonCode.ACCOUNT_NOT_OWNED, "account belongs to another riskgate shard",
                                 book.shard_label, order.account_id))
        return reject(Reason(ReasonCode.UNKNOWN_ACCOUNT, f"account {order.account_id!r} is not known",
                             "", order.account_id))
    spec = symbol.spec
    quantity = order.quantity
    if quantity % spec.lot_size:
        return reject(Reason(ReasonCode.QUANTITY_NOT_ON_LOT, "quantity must be a multiple of the lot size",
                             fmt(spec.lot_size), fmt(quantity)))
    if order.price is not None and order.price % spec.tick_size:
        return reject(Reason(ReasonCode.PRICE_NOT_ON_TICK, "price must be a multiple of the tick size",
                             fmt(spec.tick_size), fmt(order.price)))

    # 2. duplicates
    if order.order_id in account.orders or _recently_closed(book, account, order.order_id, now_mono):
        return reject(Reason(ReasonCode.DUPLICATE_ORDER_ID, "order_id was already used by this account",
                             "", order.order_id))

    # 3. breakers, 4. account controls
    imposed: Reason | None = None
    if book.platform_breaker.state != BreakerState.NORMAL or symbol.breaker.state != BreakerState.NORMAL:
        for breaker, halted, reducing_code in (
            (book.platform_breaker, ReasonCode.PLATFORM_HALTED, ReasonCode.PLATFORM_REDUCE_ONLY),
            (symbol.breaker, ReasonCode.SYMBOL_HALTED, ReasonCode.SYMBOL_REDUCE_ONLY),
        ):
            if breaker.state == BreakerState.HALTED:
                return reject(Reason(halted, _breaker_message("halted", breaker.symbol, breaker.reason),
                                     "HALTED", breaker.symbol))
            if breaker.state == BreakerState.REDUCE_ONLY and imposed is None:
                imposed = Reason(reducing_code, _breaker_message("reduce-only", breaker.symbol, breaker.reason),
                                 "REDUCE_ONLY", breaker.symbol)
    controls = account.controls
    if controls.restriction == Restriction.FROZEN:
        return reject(Reason(ReasonCode.ACCOUNT_FROZEN, "account is frozen", "FROZEN", account.account_id))
    if controls.restriction == Restriction.REDUCE_ONLY and imposed is None:
        imposed = Reason(ReasonCode.ACCOUNT_REDUCE_ONLY, "account is restricted to reducing orders"
                         + (f" ({controls.reason})" if controls.reason else ""), "REDUCE_ONLY", account.account_id)
    if not (account.bucket.try_take(now_mono) if bucket is None else bucket):
        return reject(Reason(ReasonCode.ORDER_RATE_EXCEEDED, "orders per second above the account's limit",
                             str(account.bucket.rate), "burst exhausted"))

    # The part that shrinks the position, net of same-side orders already open, never flips it.
    position = account.positions.get(order.symbol)
    held = position.quantity if position is not None else ZERO
    open_orders = account.open_by_symbol.get(order.symbol, _NO_OPEN_ORDERS)
    buying = order.side == Side.BUY
    reducible = -held - open_orders.buy if buying else held - open_orders.sell
    reducing = min(quantity, reducible) if reducible > 0 else ZERO
    increasing = quantity - reducing
    reduce_only_mode = order.reduce_only or imposed is not None
    if reduce_only_mode:
        if not reducing:
            reasons = [Reason(ReasonCode.NOTHING_TO_REDUCE, "reduce-only: no position left to reduce on this side",
                              fmt(max(reducible, ZERO)), fmt(quantity))]
            if imposed is not None:
                reasons.append(imposed)
            return CheckResult(Decision.REJECT, reasons)
        increasing = ZERO

    # 5. eligibility of the risk-increasing part
    # One leverage per account and symbol (both sides): the position's, or with none that of
    # the open orders that may add risk; free to choose only when neither exists.
    bound = symbol_leverage(account, order.symbol)
    leverage = order.leverage or bound or symbol.default_leverage
    failure: Reason | None = None
    if increasing:
        failure = _eligibility(symbol, account, leverage)

    # 6. reference price, band and size of the whole order
    mark_spec = symbol.mark
    if mark_spec is None:
        return reject(Reason(ReasonCode.MARK_PRICE_MISSING, "no mark price for the symbol: failing closed",
                             "", order.symbol))
    mark = mark_spec.price
    if order.order_type == OrderType.MARKET:
        # Valued at mark; the matching engine's price protection bounds the fill.
        price = mark
    else:
        price = order.price  # type: ignore[assignment]
        if buying and price > mark * symbol.band_ceiling:
            return reject(Reason(ReasonCode.PRICE_ABOVE_BAND, "buy price above mark x (1 + band)",
                                 fmt(mark * symbol.band_ceiling), fmt(price)))
        if not buying and price < mark * symbol.band_floor:
            return reject(Reason(ReasonCode.PRICE_BELOW_BAND, "sell price below mark x (1 - band)",
                                 fmt(mark * symbol.band_floor), fmt(price)))
    if quantity < spec.min_quantity:
        return reject(Reason(ReasonCode.QUANTITY_BELOW_MIN, "quantity below the symbol minimum",
                             fmt(spec.min_quantity), fmt(quantity)))
    if quantity > spec.max_quantity:
        return reject(Reason(ReasonCode.QUANTITY_ABOVE_MAX, "quantity above the symbol maximum",
                             fmt(spec.max_quantity), fmt(quantity)))
    notional = quantity * price
    # Closing what is left of a position must stay possible, however small (Binance exempts
    # reduce-only orders the same way).
    if notional < spec.min_notional and increasing:
        return reject(Reason(ReasonCode.NOTIONAL_BELOW_MIN, "order notional below the symbol minimum",
                             fmt(spec.min_notional), fmt(notional)))
    if notional > spec.max_order_notional:
        return reject(Reason(ReasonCode.ORDER_NOTIONAL_ABOVE_MAX, "order notional above the symbol maximum",
                             fmt(spec.max_order_notional), fmt(notional)))

    # The worst-case position on the order's side if every open order and this one filled.
    exposure = (held + open_orders.buy if buying else -held + open_orders.sell) + quantity
    exposure_notional = max(exposure, ZERO) * mark
    tier = symbol.tiers.for_notional(exposure_notional)
    if increasing:
        max_leverage = tier.max_leverage if tier is not None else 0
    else:
        # An order that only reduces: the tier of the position it leaves (the last tier
        # beyond its cap).
        left_notional = (abs(held) - reducing) * mark
        max_leverage = (symbol.tiers.for_notional(left_notional) or symbol.tiers.tiers[-1]).max_leverage

    valuation = value_account(book, account, order.symbol, now_ms)
    cost = None
    if increasing and failure is None:
        failure = _freshness(book, symbol, now_ms, now_mono)
    if increasing and failure is None and valuation.missing_mark is not None:
        failure = Reason(ReasonCode.MARK_PRICE_MISSING, "a position of the account has no mark price",
                         "", valuation.missing_mark)
    if increasing and failure is None and valuation.stale_mark is not None:
        failure = Reason(ReasonCode.MARK_PRICE_STALE, "a position of the account is valued at a stale mark",
                         "", valuation.stale_mark)
    if increasing and failure is None:
        # 7. leverage
        account_cap = controls.max_leverage
        if bound and leverage != bound:
            failure = Reason(ReasonCode.LEVERAGE_MISMATCH,
                             "the account's position or open orders on the symbol use another leverage: send 0 "
                             "or that one (it can change once the symbol has no position and no open orders)",
                             str(bound), str(leverage))
        elif tier is None:
            failure = Reason(ReasonCode.POSITION_ABOVE_MAX_TIER, "position with open orders beyond the last tier",
                             fmt(symbol.tiers.max_notional), fmt(exposure_notional))
        elif leverage > tier.max_leverage:
            failure = Reason(ReasonCode.LEVERAGE_ABOVE_TIER_MAX,
                             f"leverage above the max of tier {tier.index} for the resulting position",
                             str(tier.max_leverage), str(leverage))
        elif account_cap and leverage > account_cap:
            failure = Reason(ReasonCode.LEVERAGE_ABOVE_ACCOUNT_MAX, "leverage above the account's cap",
                             str(account_cap), str(leverage))
        # 8. limits
        elif spec.max_position_notional is not None and exposure_notional > spec.max_position_notional:
            failure = Reason(ReasonCode.POSITION_LIMIT_EXCEEDED, "position with open orders above the symbol limit",
                             fmt(spec.max_position_notional), fmt(exposure_notional))
        else:
            failure = gross_and_open_interest(book, account, symbol, order, buying, increasing, mark)
        if failure is None:
            # 9. margin
            cost = order_cost(order.side, increasing, price, mark, leverage, spec.taker_fee_rate)
            if cost.total > valuation.available:
                failure = Reason(ReasonCode.INSUFFICIENT_MARGIN, "order cost above available margin",
                                 fmt(round_down(valuation.available)), fmt(cost.total))

    if failure is not None:
        if reducing:
            result = CheckResult(Decision.REDUCE_ONLY, [failure])
            result.allowed_quantity = reducing
        else:
            result = CheckResult(Decision.REJECT, [failure])
    elif reduce_only_mode and reducing < quantity:
        result = CheckResult(Decision.REDUCE_ONLY, [imposed or Reason(
            ReasonCode.REDUCE_ONLY_QUANTITY_CAPPED, "reduce-only quantity capped at the position left to reduce",
            fmt(reducing), fmt(quantity))])
        result.allowed_quantity = reducing
    elif imposed is not None and not order.reduce_only:
        result = CheckResult(Decision.REDUCE_ONLY, [imposed])
        result.allowed_quantity = reducing
    else:
        result = CheckResult(Decision.ACCEPT, [])
        result.allowed_quantity = quantity

    result.max_leverage = max_leverage
    result.price = price
    allowed = result.allowed_quantity
    result.reducing = min(allowed, reducing)
    result.increasing = allowed - result.reducing
    # An order that adds nothing was never leverage-checked: it keeps the symbol's current one.
    result.leverage = leverage if result.increasing else (bound or symbol.default_leverage)
    if result.increasing and cost is not None:
        # Only what is reserved; a margin reject carries the cost it refused in its reason.
        result.initial_margin = cost.initial_margin
        result.order_cost = cost.total
    reserved = result.order_cost if result.increasing else ZERO
    result.available_margin = round_down(valuation.available - reserved)
    if valuation.missing_mark is None:
        result.liquidation_price = _resulting_liquidation_price(
            symbol, account, held, order.side, allowed, price, valuation.other_mm, valuation.other_upnl, position,
        )
    return result


def _breaker_message(state: str, symbol: str, reason: str) -> str:
    scope = f"symbol {symbol}" if symbol else "platform"
    return f"{scope} is {state}" + (f": {reason}" if reason else "")


def _recently_closed(book: Book, account: Account, order_id: str, now_mono: float) -> bool:
    # The time decides, not whether the sweep has freed the id yet: the window is exact.
    closed_at = account.recent_order_ids.get(order_id)
    return closed_at is not None and now_mono - closed_at <= book.duplicate_window_s


def _eligibility(symbol: SymbolState, account: Account, leverage: int) -> Reason | None:
    spec = symbol.spec
    controls = account.controls
    if controls.kyc_level < spec.min_kyc_level:
        return Reason(ReasonCode.KYC_LEVEL_TOO_LOW, "KYC level below the symbol's minimum",
                      str(spec.min_kyc_level), str(controls.kyc_level))
    if not controls.qualified_investor:
        if spec.qualified_only:
            return Reason(ReasonCode.QUALIFIED_INVESTOR_REQUIRED, "symbol is open to qualified investors only",
                          "qualified", "not qualified")
        if spec.max_leverage_unqualified and leverage > spec.max_leverage_unqualified:
            return Reason(ReasonCode.QUALIFIED_INVESTOR_REQUIRED,
                          "leverage above the unqualified maximum needs a qualified investor",
                          str(spec.max_leverage_unqualified), str(leverage))
    return None


def _freshness(book: Book, symbol: SymbolState, now_ms: int, now_mono: float) -> Reason | None:
    if now_mono > book.fresh_until:
        return Reason(ReasonCode.STATE_UNAVAILABLE, book.unavailable_message(now_mono), "", "")
    mark = symbol.mark
    assert mark is not None
    age = now_ms - mark.timestamp_ms
    if age > symbol.spec.mark_price_max_age_ms:
        return Reason(ReasonCode.MARK_PRICE_STALE, "mark price older than its bound: failing closed",
                      f"{symbol.spec.mark_price_max_age_ms}ms", f"{age}ms")
    return None


def _resulting_liquidation_price(
    symbol: SymbolState, account: Account, held: Decimal, side: Side, allowed: Decimal, price: Decimal,
    other_mm: Decimal, other_upnl: Decimal, position: Position | None,
) -> Decimal | None:
    signed = allowed if side == Side.BUY else -allowed
    resulting = held + signed
    if not resulting:
        return None
    entry = position.entry_price if position is not None else price
    balance = account.balance
    if held and signed and (held > 0) != (signed > 0):
        # The reducing part realises its PnL into the balance as its fill will; a flip closes
        # the whole held position at the order price.
        closed = min(abs(held), allowed)
        direction = 1 if held > 0 else -1
        balance += closed * (price - entry) * direction
    if not held or (held > 0) != (resulting > 0):
        entry = price
    elif (held > 0) == (signed > 0):
        entry = (abs(held) * entry + allowed * price) / abs(resulting)
    return liquidation_price(symbol.tiers, resulting, entry, balance, other_mm, other_upnl,
                             symbol.spec.tick_size)
