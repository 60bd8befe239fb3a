"""The check's fixed-point fast path against the decimal oracle, where the two could part: on the edges.

`test_fixed_point_oracle.py` draws books and orders at random; these tests aim at the places a
random draw seldom lands: available margin exactly at the order's cost (and one money unit or
one quantum either side), a liquidation price exactly on a tick or a tier cap, every limit of
the spec and the account exactly at its value and one step beyond, and figures at the API's
bounds (18 integer and 18 fraction digits). Each order is checked by the engine (`check_order`,
fast path first) and by the oracle (`tests/decimal_reference.py`) on the same book; every
result field must be the same value with the same exponent (`_describe`).

The oracle computes in a 60-digit decimal context, the fast path in exact integers. Below the
sizes of any real market the two agree; the two `..._more_than_sixty_digits_...` tests show
books within the API's digit bounds where they do not.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from riskgate.book.specs import AccountSnapshot, ControlsSpec, MarkSpec, PositionSpec, SymbolSpec, TierSpec
from riskgate.book.state import Book
from riskgate.engine import fast_check
from riskgate.engine.check import check_order
from riskgate.engine.ledger import apply_account_record, apply_execution, reserve
from riskgate.engine.margin import value_account
from riskgate.engine.order import Order
from riskgate.engine.records import apply_controls, apply_mark, apply_symbol
from riskgate.engine.result import CheckResult
from riskgate.values.codes import ExecutionKind, OrderType, ReasonCode, Side
from tests import decimal_reference
from tests.test_fixed_point_oracle import MARKETS, NOW_MS, SYMBOLS, _describe, _scaled

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
# Terminating leverages and non-terminating ones (3, 7, 15, 30, 75), 0 for the symbol's own.
LEVERAGES = [0, 0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 50, 75, 100, 125]
PositionRow = tuple[str, str, str, int]  # symbol, quantity, entry, leverage


def _book(balance: Decimal | str = "1000000", positions: tuple[PositionRow, ...] = (),
          marks: dict[str, str] | None = None, mark_age_ms: dict[str, int] | None = None, account_cap: int = 0,
          gross_cap: Decimal | None = None, others: tuple[tuple[str, tuple[PositionRow, ...]], ...] = ()) -> Book:
    """The three workload markets at their marks (or `marks`), account "a" with `balance` and
    `positions`, and other accounts (`others`) that only hold positions (open interest)."""
    book = Book(default_orders_per_second=10**9, duplicate_window_s=60)
    book.fresh_until = float("inf")
    for symbol, market in MARKETS.items():
        apply_symbol(book, market.spec)
        price = D(marks[symbol]) if marks and symbol in marks else market.mark
        age = (mark_age_ms or {}).get(symbol, 0)
        apply_mark(book, MarkSpec(symbol=symbol, price=price, timestamp_ms=NOW_MS - age))
    for account_id, rows in (("a", positions), *others):
        apply_account_record(book, AccountSnapshot(
            account_id=account_id, balance=D(balance) if account_id == "a" else D(10**9),
            positions=tuple(PositionSpec(symbol=s, quantity=D(q), entry_price=D(e), leverage=lev)
                            for s, q, e, lev in rows)))
        apply_controls(book, ControlsSpec(account_id=account_id, kyc_level=5, qualified_investor=True,
                                          max_leverage=account_cap if account_id == "a" else 0,
                                          max_gross_notional=gross_cap if account_id == "a" else None))
    return book


def _order(symbol: str, side: Side, quantity: str, price: str | None = None, leverage: int = 0,
           reduce_only: bool = False, order_id: str = "edge") -> Order:
    return Order(order_id, "a", symbol, side, MARKET if price is None else LIMIT, D(quantity),
                 None if price is None else D(price), leverage, reduce_only)


def _assert_matches_oracle(book: Book, order: Order, now_ms: int = NOW_MS) -> CheckResult:
    expected = decimal_reference.check_order(book, order, now_ms, 0.0)
    assert _describe(check_order(book, order, now_ms, 0.0)) == _describe(expected)
    return expected


def _keep(book: Book, order: Order, outcome: str = "keep") -> None:
    """Checks an order (engine against oracle) and, when allowed, reserves it and fills it,
    cancels it or keeps it open."""
    expected = _assert_matches_oracle(book, order)
    if not expected.allowed_quantity:
        return
    reserve(book, order, expected, NOW_MS)
    if outcome == "fill":
        apply_execution(book, "a", order.order_id, ExecutionKind.FILL, expected.allowed_quantity, expected.price, 0.0)
    elif outcome == "cancel":
        apply_execution(book, "a", order.order_id, ExecutionKind.CANCELED, D(0), D(0), 0.0)


# ---- every limit exactly at its value, and one step beyond -------------------------------------------------------

def _band_edge(side: Side, price: str) -> tuple[Book, Order]:
    return _book(), _order("BTCUSDT", side, "0.5", price, 10)


def _open_interest(quantity: str) -> tuple[Book, Order]:
    # BTCUSDT's open-interest cap is 2e9: 39999 BTC held by another account at a mark of 50000,
    # plus this order's part that adds to the long side.
    book = _book(marks={"BTCUSDT": "50000"}, others=(("b", (("BTCUSDT", "39999", "50000", 1),)),))
    return book, _order("BTCUSDT", BUY, quantity, None, 10)


def _open_orders_both_sides(side: Side, quantity: str, reduce_only: bool = False) -> tuple[Book, Order]:
    book = _book(positions=(("ETHUSDT", "2", "2999.99", 20),))
    _keep(book, _order("ETHUSDT", BUY, "1.5", "2990", 20, order_id="open-buy"))
    _keep(book, _order("ETHUSDT", SELL, "2.7", "3010", 20, order_id="open-sell"))
    return book, _order("ETHUSDT", side, quantity, None, 0, reduce_only)


def _margin_exactly(balance_offset: str) -> tuple[Book, Order]:
    # ETHUSDT at leverage 15 (non-terminating) with the taker fee: 1 ETH sold at 3000 costs
    # 200 + 1.65 + round_up(3000 x (1 + 1/15) x 0.00055). The fee to close is exactly 1.76, on the
    # quantum; the decimal path's 60-digit 1/15 makes it 1.76000001, so 203.41000001 in all.
    book = _book(balance=D("203.41000001") + D(balance_offset))
    return book, _order("ETHUSDT", SELL, "1", "3000", 15)


def _fee_on_the_quantum(leverage: int, quantity: str) -> tuple[Book, Order]:
    # XRPUSDT (fee 0.0005) at 0.5: notional x (1 - 1/leverage) x fee lands on the 1e-8 quantum
    # (0.005, 0.003, 0.0035) for these quantities, where the decimal path's rounded 1/leverage may not.
    return _book(), _order("XRPUSDT", BUY, quantity, "0.5", leverage)


EDGES: list[tuple[str, Callable[[], tuple[Book, Order]], str, ReasonCode | None]] = [
    ("buy-at-band-ceiling", lambda: _band_edge(BUY, "63000"), "ACCEPT", None),
    ("buy-one-tick-above-band", lambda: _band_edge(BUY, "63000.1"), "REJECT", ReasonCode.PRICE_ABOVE_BAND),
    ("sell-at-band-floor", lambda: _band_edge(SELL, "57000"), "ACCEPT", None),
    ("sell-one-tick-below-band", lambda: _band_edge(SELL, "56999.9"), "REJECT", ReasonCode.PRICE_BELOW_BAND),
    ("reduce-only-outside-band", lambda: (_book(positions=(("BTCUSDT", "0.5", "60000", 10),)),
                                          _order("BTCUSDT", SELL, "0.5", "56999.9", 0, True)),
     "REJECT", ReasonCode.PRICE_BELOW_BAND),
    ("min-quantity", lambda: (_book(), _order("BTCUSDT", BUY, "0.001", "60000", 10)), "ACCEPT", None),
    ("max-quantity", lambda: (_book(balance="100000000"), _order("XRPUSDT", BUY, "10000000", None, 5)),
     "REJECT", ReasonCode.ORDER_NOTIONAL_ABOVE_MAX),
    ("max-quantity-plus-a-lot", lambda: (_book(), _order("BTCUSDT", BUY, "1000.001", "60000", 10)),
     "REJECT", ReasonCode.QUANTITY_ABOVE_MAX),
    ("min-notional", lambda: (_book(), _order("XRPUSDT", BUY, "10", "0.5", 10)), "ACCEPT", None),
    ("min-notional-less-a-lot", lambda: (_book(), _order("XRPUSDT", BUY, "9.9", "0.5", 10)),
     "REJECT", ReasonCode.NOTIONAL_BELOW_MIN),
    ("below-min-notional-reducing", lambda: (_book(positions=(("XRPUSDT", "-9.9", "0.5", 10),)),
                                             _order("XRPUSDT", BUY, "9.9", "0.5", 0)), "ACCEPT", None),
    ("max-order-notional", lambda: (_book(balance="10000000"), _order("BTCUSDT", BUY, "160", "62500", 10)),
     "ACCEPT", None),
    ("max-order-notional-plus-a-lot", lambda: (_book(balance="10000000"),
                                               _order("BTCUSDT", BUY, "160.001", "62500", 10)),
     "REJECT", ReasonCode.ORDER_NOTIONAL_ABOVE_MAX),
    ("position-limit", lambda: (_book(balance="20000000", positions=(("BTCUSDT", "900", "50000", 5),),
                                      marks={"BTCUSDT": "50000"}), _order("BTCUSDT", BUY, "100", None, 5)),
     "ACCEPT", None),
    ("position-limit-plus-a-lot", lambda: (_book(balance="20000000", positions=(("BTCUSDT", "900", "50000", 5),),
                                                 marks={"BTCUSDT": "50000"}),
                                           _order("BTCUSDT", BUY, "100.001", None, 5)),
     "REJECT", ReasonCode.POSITION_LIMIT_EXCEEDED),
    ("tier-cap", lambda: (_book(marks={"BTCUSDT": "50000"}), _order("BTCUSDT", BUY, "1", None, 125)),
     "ACCEPT", None),
    ("tier-cap-plus-a-lot", lambda: (_book(marks={"BTCUSDT": "50000"}), _order("BTCUSDT", BUY, "1.001", None, 125)),
     "REJECT", ReasonCode.LEVERAGE_ABOVE_TIER_MAX),
    ("leverage-above-tier-max", lambda: (_book(), _order("BTCUSDT", BUY, "0.5", "60000", 126)),
     "REJECT", ReasonCode.LEVERAGE_ABOVE_TIER_MAX),
    ("leverage-at-account-cap-non-terminating", lambda: (_book(account_cap=3), _order("BTCUSDT", BUY, "0.5", None, 3)),
     "ACCEPT", None),
    ("leverage-above-account-cap", lambda: (_book(account_cap=3), _order("BTCUSDT", BUY, "0.5", None, 5)),
     "REJECT", ReasonCode.LEVERAGE_ABOVE_ACCOUNT_MAX),
    ("gross-cap", lambda: (_book(gross_cap=D(60000)), _order("BTCUSDT", BUY, "1", None, 10)), "ACCEPT", None),
    ("gross-cap-plus-a-lot", lambda: (_book(gross_cap=D(60000)), _order("BTCUSDT", BUY, "1.001", None, 10)),
     "REJECT", ReasonCode.GROSS_NOTIONAL_EXCEEDED),
    ("open-interest-cap", lambda: _open_interest("1"), "ACCEPT", None),
    ("open-interest-cap-plus-a-lot", lambda: _open_interest("1.001"), "REJECT", ReasonCode.OPEN_INTEREST_CAP_EXCEEDED),
    ("margin-exactly-available", lambda: _margin_exactly("0"), "ACCEPT", None),
    ("margin-one-money-unit-short", lambda: _margin_exactly("-1e-20"), "REJECT", ReasonCode.INSUFFICIENT_MARGIN),
    ("margin-one-quantum-short", lambda: _margin_exactly("-1e-8"), "REJECT", ReasonCode.INSUFFICIENT_MARGIN),
    ("margin-one-money-unit-over", lambda: _margin_exactly("1e-20"), "ACCEPT", None),
    ("fee-on-quantum-leverage-3", lambda: _fee_on_the_quantum(3, "30"), "ACCEPT", None),
    ("fee-on-quantum-leverage-7", lambda: _fee_on_the_quantum(7, "14"), "ACCEPT", None),
    ("fee-on-quantum-leverage-15", lambda: _fee_on_the_quantum(15, "15"), "ACCEPT", None),
    ("zero-balance-increasing", lambda: (_book(balance="0"), _order("BTCUSDT", BUY, "0.001", None, 10)),
     "REJECT", ReasonCode.INSUFFICIENT_MARGIN),
    ("zero-balance-flip", lambda: (_book(balance="0", positions=(("BTCUSDT", "-0.5", "60000", 10),)),
                                   _order("BTCUSDT", BUY, "1", None, 0)),
     "REDUCE_ONLY", ReasonCode.INSUFFICIENT_MARGIN),
    ("negative-balance-reducing", lambda: (_book(balance="-1234.56789", positions=(("BTCUSDT", "0.5", "61000", 10),)),
                                           _order("BTCUSDT", SELL, "0.2", None, 0)), "ACCEPT", None),
    ("reduce-only-capped", lambda: (_book(positions=(("BTCUSDT", "0.5", "60000", 10),)),
                                    _order("BTCUSDT", SELL, "1", None, 0, True)),
     "REDUCE_ONLY", ReasonCode.REDUCE_ONLY_QUANTITY_CAPPED),
    ("flip-whole", lambda: (_book(positions=(("BTCUSDT", "0.5", "60000.123456789012", 10),)),
                            _order("BTCUSDT", SELL, "1", "59999.9", 0)), "ACCEPT", None),
    ("flip-at-another-leverage", lambda: (_book(positions=(("BTCUSDT", "0.5", "60000", 10),)),
                                          _order("BTCUSDT", SELL, "1", None, 20)),
     "REDUCE_ONLY", ReasonCode.LEVERAGE_MISMATCH),
    ("open-both-sides-buy-reduces", lambda: _open_orders_both_sides(SELL, "0.5"), "ACCEPT", None),
    ("open-both-sides-sell-nothing-left", lambda: _open_orders_both_sides(SELL, "0.5", True),
     "REJECT", ReasonCode.NOTHING_TO_REDUCE),
    ("open-both-sides-buy", lambda: _open_orders_both_sides(BUY, "1"), "ACCEPT", None),
    ("stale-mark-of-another-position", lambda: (_book(positions=(("ETHUSDT", "1", "3000", 10),),
                                                      mark_age_ms={"ETHUSDT": 5001}),
                                                _order("BTCUSDT", BUY, "0.5", None, 10)),
     "REJECT", ReasonCode.MARK_PRICE_STALE),
    ("mark-exactly-at-its-age-bound", lambda: (_book(positions=(("ETHUSDT", "1", "3000", 10),),
                                                     mark_age_ms={"ETHUSDT": 5000, "BTCUSDT": 5000}),
                                               _order("BTCUSDT", BUY, "0.5", None, 10)), "ACCEPT", None),
    ("stale-mark-reducing", lambda: (_book(positions=(("BTCUSDT", "0.5", "60000", 10),),
                                           mark_age_ms={"BTCUSDT": 6000}),
                                     _order("BTCUSDT", SELL, "0.5", None, 0)), "ACCEPT", None),
]


@pytest.mark.parametrize(("build", "decision", "code"), [pytest.param(b, d, c, id=i) for i, b, d, c in EDGES])
def test_check_when_a_figure_sits_exactly_on_a_limit_then_fixed_point_matches_the_oracle(
    build: Callable[[], tuple[Book, Order]], decision: str, code: ReasonCode | None,
) -> None:
    book, order = build()
    expected = _assert_matches_oracle(book, order)
    # The edge is the one meant: the oracle's own answer.
    assert (expected.decision.name, expected.reasons[0].code if expected.reasons else None) == (decision, code)


# ---- available margin exactly at the order's cost ---------------------------------------------------------------

positions_strategy = st.dictionaries(
    st.sampled_from(SYMBOLS),
    st.tuples(st.integers(-30_000, 30_000),  # lots
              st.integers(-3000, 3000),  # entry offset from the mark, in ticks
              st.sampled_from([0, 0, 3, 12]),  # extra entry decimals (an averaged entry has 12)
              st.integers(0, 10**7),
              st.sampled_from([1, 2, 5, 10, 20, 25, 50])),
    max_size=3,
)
order_strategy = st.tuples(
    st.sampled_from(SYMBOLS), st.sampled_from([BUY, SELL]),
    st.one_of(st.integers(1, 400), st.integers(1, 40_000)),  # lots
    st.one_of(st.none(), st.integers(-500, 500)),  # None: market; else the limit's offset in bps
    st.sampled_from(LEVERAGES),
    st.sampled_from([False, False, False, True]),  # reduce-only
)
# For the final order of the margin edge: mostly the symbol's own leverage, seldom reduce-only,
# so that most orders reach the margin comparison.
margin_order_strategy = st.tuples(
    st.sampled_from(SYMBOLS), st.sampled_from([BUY, SELL]), st.integers(1, 40_000),
    st.one_of(st.none(), st.integers(-500, 500)), st.sampled_from([0, 0, 0, 0, 0, 3, 5, 7, 10, 15, 20]),
    st.sampled_from([False, False, False, False, False, True]),
)
prior_strategy = st.lists(st.tuples(order_strategy, st.sampled_from(["fill", "cancel", "keep", "keep"])), max_size=4)
# Where available margin is put relative to the cost: on it, one money unit (1e-20) or one
# quantum (1e-8) either side, half a quantum short.
DELTAS = [D(0), D(0), D("-1e-20"), D("1e-20"), D("-1e-8"), D("1e-8"), D("-0.5e-8")]


def _positions(positions: dict[str, tuple[int, int, int, int, int]]) -> tuple[PositionRow, ...]:
    rows = []
    for symbol, (lots, ticks, digits, extra, leverage) in positions.items():
        spec = MARKETS[symbol].spec
        entry = max(MARKETS[symbol].mark + ticks * spec.tick_size, spec.tick_size) + (
            _scaled(extra % 10**digits, digits) if digits else D(0))
        if lots:
            rows.append((symbol, str(lots * spec.lot_size), str(entry), leverage))
    return tuple(rows)


def _make_order(drawn: tuple[str, Side, int, int | None, int, bool], order_id: str, book: Book) -> Order:
    symbol, side, lots, offset, leverage, reduce_only = drawn
    spec = MARKETS[symbol].spec
    mark = book.symbols[symbol].mark.price  # type: ignore[union-attr]
    price = None if offset is None else max(
        (mark * (10_000 + offset) / 10_000 / spec.tick_size).to_integral_value() * spec.tick_size, spec.tick_size)
    return Order(order_id, "a", symbol, side, MARKET if price is None else LIMIT, lots * spec.lot_size, price,
                 leverage, reduce_only)


def _cost(result: CheckResult) -> Decimal | None:
    """What the order costs, as the oracle computed it: reserved when accepted, in the reason
    when refused for margin; None when it never got that far."""
    if result.increasing and result.order_cost:
        return result.order_cost
    for reason in result.reasons:
        if reason.code == ReasonCode.INSUFFICIENT_MARGIN:
            return D(reason.value)
    return None


def _books_with_prior_orders(positions: dict[str, tuple[int, int, int, int, int]], account_cap: int,
                             prior: list[tuple[tuple[str, Side, int, int | None, int, bool], str]]) -> Book:
    book = _book(balance=D(10**8), positions=_positions(positions), account_cap=account_cap)
    for n, (drawn, outcome) in enumerate(prior):
        _keep(book, _make_order(drawn, f"p{n}", book), outcome)
    return book


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(positions=positions_strategy, account_cap=st.sampled_from([0, 0, 0, 20, 3]), prior=prior_strategy,
       final=margin_order_strategy, delta=st.sampled_from(DELTAS))
@example(positions={"BTCUSDT": (500, 7, 12, 123456789, 10)}, account_cap=0, prior=[],
         final=("BTCUSDT", SELL, 700, None, 0, False), delta=D("-1e-20"))
@example(positions={}, account_cap=0, prior=[], final=("ETHUSDT", BUY, 1000, 30, 3, False), delta=D(0))
@example(positions={"XRPUSDT": (-3, 0, 0, 0, 5)}, account_cap=3, prior=[], final=("XRPUSDT", BUY, 103, -20, 3, False),
         delta=D("-1e-20"))
def test_check_when_available_margin_lands_on_the_order_cost_then_fixed_point_matches_the_oracle(
    positions: dict[str, tuple[int, int, int, int, int]], account_cap: int,
    prior: list[tuple[tuple[str, Side, int, int | None, int, bool], str]],
    final: tuple[str, Side, int, int | None, int, bool], delta: Decimal,
) -> None:
    book = _books_with_prior_orders(positions, account_cap, prior)
    order = _make_order(final, "edge", book)
    cost = _cost(decimal_reference.check_order(book, order, NOW_MS, 0.0))
    if cost is not None:
        # The balance that leaves exactly `cost + delta` available (the balance is the account's
        # cleared cash: a new snapshot may bring any figure).
        account = book.accounts["a"]
        account.balance = account.balance + cost - value_account(book, account, order.symbol, NOW_MS).available + delta
    _assert_matches_oracle(book, order)


# ---- the liquidation price exactly on a tick, or on a tier's cap -------------------------------------------------

def _liquidation_base(book: Book, order: Order, result: CheckResult) -> tuple[Decimal, Decimal] | None:
    """(resulting position, base) of check._resulting_liquidation_price, exactly: the liquidation
    price in a tier is (base + cum) / (size x (mmr - side)). None for a flat result."""
    account = book.accounts["a"]
    position = account.positions.get(order.symbol)
    held = position.quantity if position is not None else D(0)
    allowed, price = result.allowed_quantity, result.price
    signed = allowed if order.side == BUY else -allowed
    resulting = held + signed
    if not resulting:
        return None
    entry = position.entry_price if position is not None else price
    balance = account.balance
    if held and signed and (held > 0) != (signed > 0):
        balance += min(abs(held), allowed) * (price - entry) * (1 if held > 0 else -1)
    if not held or (held > 0) != (resulting > 0):
        size_entry = abs(resulting) * price
    elif (held > 0) == (signed > 0):
        size_entry = abs(held) * entry + allowed * price
    else:
        size_entry = abs(resulting) * entry
    valuation = value_account(book, account, order.symbol, NOW_MS)
    side = 1 if resulting > 0 else -1
    return resulting, balance - valuation.other_mm + valuation.other_upnl - side * size_entry


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(positions=positions_strategy, prior=prior_strategy, final=order_strategy,
       tier_pick=st.integers(0, 9), target=st.sampled_from(["tick", "tick", "cap", "floor"]),
       place=st.integers(0, 10**6), nudge=st.sampled_from([D(0), D(0), D("1e-20"), D("-1e-20")]))
@example(positions={"BTCUSDT": (300, -40, 12, 987654321, 20)}, prior=[], final=("BTCUSDT", BUY, 200, 10, 0, False),
         tier_pick=0, target="tick", place=500_000, nudge=D(0))
@example(positions={"ETHUSDT": (-4000, 25, 3, 1234, 10)}, prior=[], final=("ETHUSDT", SELL, 1500, None, 0, False),
         tier_pick=1, target="cap", place=0, nudge=D(0))
def test_liquidation_price_when_it_lands_on_a_tick_or_a_tier_cap_then_fixed_point_matches_the_oracle(
    positions: dict[str, tuple[int, int, int, int, int]],
    prior: list[tuple[tuple[str, Side, int, int | None, int, bool], str]],
    final: tuple[str, Side, int, int | None, int, bool], tier_pick: int, target: str, place: int, nudge: Decimal,
) -> None:
    book = _books_with_prior_orders(positions, 0, prior)
    order = _make_order(final, "edge", book)
    account = book.accounts["a"]
    # Twice: the new balance may change what is allowed (a margin refusal), hence the position.
    for _ in range(2):
        solved = _liquidation_base(book, order, decimal_reference.check_order(book, order, NOW_MS, 0.0))
        if solved is None:
            break
        resulting, base = solved
        size, side = abs(resulting), (1 if resulting > 0 else -1)
        symbol = book.symbols[order.symbol]
        tiers = symbol.tiers.tiers
        tier = tiers[tier_pick % len(tiers)]
        tick = symbol.spec.tick_size
        if target == "cap":
            notional = tier.cap
        elif target == "floor":
            notional = tier.floor
        else:  # a tick inside the tier's range
            low = (tier.floor / size / tick).to_integral_value(rounding=decimal.ROUND_FLOOR) + 1
            high = max((tier.cap / size / tick).to_integral_value(rounding=decimal.ROUND_FLOOR), low)
            notional = (low + (high - low) * place // 10**6) * tick * size
        # base' + cum = notional x (mmr - side): the liquidation price's notional in that tier.
        wanted = notional * (tier.mmr - side) - tier.maintenance_amount
        account.balance = account.balance + wanted - base + nudge
    _assert_matches_oracle(book, order)


# ---- the API's bounds: 18 integer and 18 fraction digits ---------------------------------------------------------

def _extreme_spec(name: str, tick: str, lot: str, leverage: int, mmr: str, fee: str = "0",
                  cap: str = "999999999999999999") -> SymbolSpec:
    return SymbolSpec(symbol=name, tick_size=D(tick), lot_size=D(lot), min_quantity=D(lot),
                      max_quantity=D("999999999999999999"), min_notional=D(0),
                      max_order_notional=D("999999999999999999"), price_band=D("0.99999999"), taker_fee_rate=D(fee),
                      tiers=(TierSpec(notional_cap=D(cap), max_leverage=leverage, maintenance_margin_rate=D(mmr)),),
                      mark_price_max_age_ms=10**12)


def _extreme_book(balance: Decimal, specs: list[SymbolSpec], marks: dict[str, Decimal],
                  positions: tuple[tuple[str, Decimal, Decimal, int], ...]) -> Book:
    book = Book(default_orders_per_second=10**9, duplicate_window_s=60)
    book.fresh_until = float("inf")
    for spec in specs:
        apply_symbol(book, spec)
        apply_mark(book, MarkSpec(symbol=spec.symbol, price=marks[spec.symbol], timestamp_ms=0))
    apply_account_record(book, AccountSnapshot(account_id="a", balance=balance, positions=tuple(
        PositionSpec(symbol=s, quantity=q, entry_price=e, leverage=lev) for s, q, e, lev in positions)))
    apply_controls(book, ControlsSpec(account_id="a", kyc_level=5, qualified_investor=True))
    return book


def _bounded(max_integer_digits: int, fraction_digits: int, signed: bool = False) -> st.SearchStrategy[Decimal]:
    units = st.one_of(st.integers(1, 10**6), st.integers(1, 10 ** (max_integer_digits + fraction_digits) - 1))
    value = units.map(lambda n: D(n).scaleb(-fraction_digits))
    return st.tuples(value, st.booleans()).map(lambda v: -v[0] if signed and v[1] else v[0]) if signed else value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(balance=_bounded(18, 18, signed=True), leverage=st.sampled_from([1, 2, 3, 7, 125, 128, 512, 625, 1000]),
       fee=st.sampled_from(["0", "0.00000001", "0.00055", "0.12345678"]),
       marks=st.tuples(_bounded(18, 12), _bounded(18, 12)),
       held=st.tuples(_bounded(18, 8, signed=True), _bounded(18, 12), _bounded(18, 8, signed=True), _bounded(18, 12)),
       order=st.tuples(st.sampled_from(["AAA", "BBB"]), st.sampled_from([BUY, SELL]), _bounded(18, 8),
                       st.one_of(st.none(), st.integers(-9999, 9999)), st.sampled_from([0, 1, 3, 512]),
                       st.booleans()))
def test_check_when_figures_reach_the_api_digit_bounds_then_it_answers_or_raises_as_the_oracle_does(
    balance: Decimal, leverage: int, fee: str, marks: tuple[Decimal, Decimal],
    held: tuple[Decimal, Decimal, Decimal, Decimal], order: tuple[str, Side, Decimal, int | None, int, bool],
) -> None:
    """Compiled code checks every annotation at run time: a figure of an unexpected type or
    size must never turn into an exception the decimal path would not raise. (Random figures at
    these sizes do not land where the 60-digit oracle rounds: see the last two tests.)"""
    mmr = str(min(D("0.00999999"), (D(1) / leverage - D("1e-8")).quantize(D("1e-8"), decimal.ROUND_FLOOR)))
    specs = [_extreme_spec("AAA", "0.000000000001", "0.00000001", leverage, mmr, fee),
             _extreme_spec("BBB", "0.5", "1", min(leverage, 100), "0.00123457", fee, cap="1000000")]
    mark_of = {"AAA": marks[0], "BBB": (marks[1] / 2).to_integral_value() * 2 or D(1)}
    positions = (("AAA", held[0], held[1], leverage), ("BBB", held[2].to_integral_value() or D(1), held[3],
                                                       min(leverage, 100)))
    symbol, side, quantity, offset, order_leverage, reduce_only = order
    spec = specs[0] if symbol == "AAA" else specs[1]
    quantity = max((quantity / spec.lot_size).to_integral_value(decimal.ROUND_FLOOR), D(1)) * spec.lot_size
    price = None if offset is None else max(
        (mark_of[symbol] * (10_000 + offset) / 10_000 / spec.tick_size).to_integral_value() * spec.tick_size,
        spec.tick_size)
    checked = Order("x", "a", symbol, side, MARKET if price is None else LIMIT, quantity, price, order_leverage,
                    reduce_only)
    outcomes: list[object] = []
    for check in (decimal_reference.check_order, check_order):
        book = _extreme_book(balance, specs, mark_of, positions)
        try:
            outcomes.append(_describe(check(book, checked, 1000, 0.0)))
        except Exception as exc:  # what escapes is the finding
            outcomes.append(type(exc).__name__)
    assert outcomes[1] == outcomes[0]


# ---- beyond sixty digits: where the decimal oracle rounds and fixed point does not -------------------------------

_MMR = D("0.12345679")


def _sixty_digit_spec(name: str, leverage: int, mmr: Decimal, tick: str = "0.000000000001", lot: str = "0.00000001",
                      cap: str = "999999999999999999") -> SymbolSpec:
    return SymbolSpec(symbol=name, tick_size=D(tick), lot_size=D(lot), min_quantity=D(lot),
                      max_quantity=D("999999999999999999"), min_notional=D(0),
                      max_order_notional=D("999999999999999999"), price_band=D("0.5"), taker_fee_rate=D(0),
                      tiers=(TierSpec(notional_cap=D(cap), max_leverage=leverage, maintenance_margin_rate=mmr),),
                      mark_price_max_age_ms=10**12)


def test_check_when_initial_margin_needs_more_than_sixty_digits_then_the_decision_is_the_oracles() -> None:
    """Three positions within the API's bounds: 999999999999999999 of AAA (marked at
    999999999999999999, entry 1e-12, leverage 1) and 1e-8 of CCC and of DDD at leverages 512 and
    625. Their initial margin is exactly 999999999999999998000000000000000001.00000000003553125100000003125
    (65 digits); value_account (margin.py) sums it at 60, to ...001.000000000035531251000000. With
    a balance of 1000000.001953130034531251 the oracle leaves 0.00195313 available, exactly the
    order's cost, and accepts; fixed point, exact, leaves 0.00195312999999999999999996875 and
    refuses for margin (available 0.00195312)."""
    m1 = D("999999999999999999")
    m2, m3 = D("1.000000050833"), D("1.000000000448")

    def build() -> Book:
        return _extreme_book(
            D("1000000.001953130034531251"),
            [_sixty_digit_spec("AAA", 1, D("0.5")), _sixty_digit_spec("CCC", 1000, D("0.0005")),
             _sixty_digit_spec("DDD", 1000, D("0.0005"))],
            {"AAA": m1, "CCC": m2, "DDD": m3},
            (("AAA", m1, D("0.000000000001"), 1), ("CCC", D("0.00000001"), m2, 512),
             ("DDD", D("0.00000001"), m3, 625)))

    order = Order("o1", "a", "CCC", BUY, LIMIT, D(1), m2, 0, False)
    expected = decimal_reference.check_order(build(), order, 1000, 0.0)
    assert expected.decision.name == "ACCEPT" and expected.order_cost == D("0.00195313")
    assert _describe(check_order(build(), order, 1000, 0.0)) == _describe(expected)


def test_liquidation_price_when_the_account_base_needs_more_than_sixty_digits_then_it_is_the_oracles() -> None:
    """A long of 100000000000000000.28571417 GGG (mark 900000000000000000.0000000007, entry 1,
    maintenance rate 0.12345679) beside a short of 2 FFF, of which the order buys back 1. The
    remaining short's liquidation base is 78888888900000000125396734204216254.99999999999999999999999999
    (61 digits; its fraction comes from the other position's maintenance margin, notional x 0.12345679).
    The oracle sums it at 60 digits (margin.liquidation_price) to ...255, on FFF's tick of 1, and
    reports that; fixed point rounds the exact value down (a short's) to ...254."""
    quantity, mark = D("100000000000000000.28571417"), D("900000000000000000.0000000007")

    def build() -> Book:
        return _extreme_book(
            D("1000.585714169824691429"),
            [_sixty_digit_spec("GGG", 2, _MMR), _sixty_digit_spec("FFF", 100, D(0), tick="1", lot="1", cap="1000000")],
            {"GGG": mark, "FFF": D(100)},
            (("GGG", quantity, D(1), 2), ("FFF", D(-2), D(100), 10)))

    order = Order("o1", "a", "FFF", BUY, MARKET, D(1), None, 0, False)
    book = build()
    assert fast_check.prepare(book, order, 0.0) is not None  # the fast path does answer it
    expected = decimal_reference.check_order(build(), order, 1000, 0.0)
    assert expected.decision.name == "ACCEPT"
    assert _describe(check_order(book, order, 1000, 0.0)) == _describe(expected)
