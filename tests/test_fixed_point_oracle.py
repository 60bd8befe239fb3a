"""Property: the check's fixed-point fast path decides and reports exactly what the decimal check does.

The oracle is `tests/decimal_reference.py`: the decimal `check_order` as it was before the
fast path existed, kept verbatim. Random books (balances, positions with entries of up to
fourteen decimals, open orders at every leverage, account caps, marks that move and go stale)
take random orders; each order is checked by the engine (`check_order`, fast path first) and by
the oracle on the same book, and every field of the result must be the same value with the
same exponent. Allowed orders are then reserved, filled or canceled, so later orders meet
averaged entries, realised PnL, open orders and shifted tiers.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtest.workload import load_markets
from riskgate.book.specs import AccountSnapshot, ControlsSpec, MarkSpec, PositionSpec
from riskgate.book.state import Book
from riskgate.engine import fast_check
from riskgate.engine.check import check_order, check_order_decimal
from riskgate.engine.ledger import apply_account_record, apply_execution, reserve
from riskgate.engine.order import Order
from riskgate.engine.records import apply_controls, apply_mark, apply_symbol
from riskgate.engine.result import CheckResult
from riskgate.values.codes import ExecutionKind, OrderType, Side
from riskgate.values.money import fmt
from tests import decimal_reference

D = Decimal
MARKETS = {m.symbol: m for m in load_markets()}
SYMBOLS = sorted(MARKETS)
NOW_MS = 1_700_000_000_000
# Terminating leverages (the fast path) and non-terminating ones (3, 7, 15, 30: the decimal path).
LEVERAGES = [0, 0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 50, 75, 100, 125]

FIELDS = ("allowed_quantity", "available_margin", "decision", "increasing", "initial_margin", "leverage",
          "liquidation_price", "max_leverage", "order_cost", "price", "reducing")


def _describe(result: CheckResult) -> dict[str, object]:
    figures: dict[str, object] = {name: getattr(result, name) for name in FIELDS}
    # The same value with the same exponent: str() tells them apart where == does not. The
    # liquidation price is the one exception: the decimal path's exponent falls out of a 60-digit
    # division (144381442248 or 144381442248.0), so there the wire text (fmt) is what must match.
    figures.update({f"{name} text": str(value) for name, value in list(figures.items())
                    if isinstance(value, D) and name != "liquidation_price"})
    figures["liquidation_price text"] = fmt(result.liquidation_price)
    figures["reasons"] = [(r.code, r.message, r.limit, r.value) for r in result.reasons]
    return figures


def _scaled(units: int, digits: int) -> Decimal:
    return D(units).scaleb(-digits)


positions_strategy = st.dictionaries(
    st.sampled_from(SYMBOLS),
    st.tuples(st.integers(-60_000, 60_000),  # lots
              st.integers(-3000, 3000),  # entry offset from the mark, in ticks
              st.sampled_from([0, 0, 0, 3, 7, 12, 14]),  # extra entry decimals (averaged entries; 14 does not fit)
              st.integers(0, 10**7),
              st.sampled_from([1, 2, 3, 5, 10, 20, 25, 50])),
    max_size=3,
)

orders_strategy = st.lists(
    st.tuples(
        st.sampled_from(SYMBOLS),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.one_of(st.integers(1, 400), st.integers(1, 40_000)),  # lots
        st.one_of(st.none(), st.integers(-600, 600)),  # None: market; else the limit's offset in bps
        st.sampled_from(LEVERAGES),
        st.sampled_from([False, False, False, True]),  # reduce-only
        st.sampled_from(["fill", "fill", "cancel", "keep"]),
        st.integers(-300, 300),  # the mark's move before the order, in ticks x 10
        st.sampled_from([0, 0, 0, 0, 6000]),  # age of the mark (ms): 6000 is past its bound
    ),
    min_size=1, max_size=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(balance=st.one_of(st.integers(0, 10**6), st.integers(10**6, 10**9)),
       balance_digits=st.sampled_from([0, 2, 8, 8, 22]),
       positions=positions_strategy,
       account_cap=st.sampled_from([0, 0, 0, 5, 20, 3]),
       qualified=st.booleans(), kyc=st.sampled_from([0, 5, 5, 5]),
       gross_cap=st.sampled_from([None, None, None, D(200_000), D(10**9)]),
       orders=orders_strategy)
def test_check_when_random_books_and_orders_then_fixed_point_matches_the_decimal_oracle(
    balance: int, balance_digits: int, positions: dict[str, tuple[int, int, int, int, int]], account_cap: int,
    qualified: bool, kyc: int, gross_cap: Decimal | None,
    orders: list[tuple[str, Side, int, int | None, int, bool, str, int, int]],
) -> None:
    book = Book(default_orders_per_second=10**9, duplicate_window_s=60)
    book.fresh_until = float("inf")
    marks: dict[str, Decimal] = {}
    for symbol, market in MARKETS.items():
        apply_symbol(book, market.spec)
        marks[symbol] = market.mark
        apply_mark(book, MarkSpec(symbol=symbol, price=market.mark, timestamp_ms=NOW_MS))
    specs = []
    for symbol, (lots, ticks, digits, extra, leverage) in positions.items():
        spec = MARKETS[symbol].spec
        quantity = lots * spec.lot_size
        entry = max(marks[symbol] + ticks * spec.tick_size, spec.tick_size) + (
            _scaled(extra % 10**digits, digits) if digits else D(0))
        if quantity:
            specs.append(PositionSpec(symbol=symbol, quantity=quantity, entry_price=entry, leverage=leverage))
    apply_account_record(book, AccountSnapshot(account_id="a", balance=_scaled(balance * 10**balance_digits + 7
                                                                                  * (balance_digits > 8),
                                                                                  balance_digits),
                                               positions=tuple(specs)))
    apply_controls(book, ControlsSpec(account_id="a", kyc_level=kyc, qualified_investor=qualified,
                                      max_leverage=account_cap, max_gross_notional=gross_cap))
    for n, (symbol, side, lots, offset, leverage, reduce_only, outcome, move, age) in enumerate(orders):
        spec = MARKETS[symbol].spec
        mark = max(marks[symbol] + move * 10 * spec.tick_size, spec.tick_size)
        marks[symbol] = mark
        apply_mark(book, MarkSpec(symbol=symbol, price=mark, timestamp_ms=NOW_MS - age, version=n + 1))
        price = None if offset is None else max(
            (mark * (10_000 + offset) / 10_000 / spec.tick_size).to_integral_value() * spec.tick_size, spec.tick_size)
        order = Order(f"o{n}", "a", symbol, side, OrderType.MARKET if price is None else OrderType.LIMIT,
                      lots * spec.lot_size, price, leverage, reduce_only)
        expected = decimal_reference.check_order(book, order, NOW_MS, 0.0)
        assert _describe(check_order(book, order, NOW_MS, 0.0)) == _describe(expected)
        assert _describe(check_order_decimal(book, order, NOW_MS, 0.0)) == _describe(expected)
        if not expected.allowed_quantity:
            continue
        reserve(book, order, expected, NOW_MS)
        if outcome == "fill":
            apply_execution(book, "a", order.order_id, ExecutionKind.FILL, expected.allowed_quantity,
                            expected.price, 0.0)
        elif outcome == "cancel":
            apply_execution(book, "a", order.order_id, ExecutionKind.CANCELED, D(0), D(0), 0.0)


def test_fast_path_when_workload_orders_then_most_are_accepted_in_fixed_point() -> None:
    """The property above would pass with a fast path that never answers: this one shows it
    does answer the common order (and agrees with the oracle while doing so)."""
    from loadtest.engine_bench import build_book
    from loadtest.workload import Workload, WorkloadConfig
    from riskgate.engine.order import parse_order

    workload = Workload(WorkloadConfig(accounts=200))
    book = build_book(workload, NOW_MS)
    for account in book.accounts.values():
        account.bucket.set_rate(10**9)
    answered = total = 0
    for planned in workload.orders("w", 2000):
        order = parse_order(planned.order_id, planned.account_id, planned.symbol, planned.side,
                            planned.order_type, planned.quantity, planned.price, planned.leverage,
                            planned.reduce_only)
        assert isinstance(order, Order)
        expected = decimal_reference.check_order(book, order, NOW_MS, 0.0)
        prepared = fast_check.prepare(book, order, 0.0)
        if prepared is not None and fast_check.fast_accept(book, order, *prepared, NOW_MS, 0.0) is not None:
            answered += 1
        total += 1
        assert _describe(check_order(book, order, NOW_MS, 0.0)) == _describe(expected)
        if expected.allowed_quantity:
            reserve(book, order, expected, NOW_MS)
            if planned.fill:
                apply_execution(book, order.account_id, order.order_id, ExecutionKind.FILL,
                                expected.allowed_quantity, D(planned.fill_price), 0.0)
            else:
                apply_execution(book, order.account_id, order.order_id, ExecutionKind.CANCELED, D(0), D(0), 0.0)
    assert answered > total * 0.7



def test_margin_refusal_when_the_fast_path_answers_then_it_is_the_oracles() -> None:
    """An order too large for the margin: the fast path answers it itself, REJECT with nothing
    to reduce, REDUCE_ONLY for the part that reduces (reason text, available margin, the
    liquidation price of what is allowed), exactly as the oracle does."""
    from tests.engine_book import make_book

    # make_book's marks are stamped at 0 with a bound of 10^12 ms: checked at 1000 ms, they are fresh.
    decisions = set()
    for position, side in (("0", Side.BUY), ("-0.5", Side.SELL), ("0.5", Side.BUY), ("-0.5", Side.BUY),
                           ("0.5", Side.SELL)):
        book = make_book(balance="1000", position=position)
        order = Order(f"big-{side.name}", "acct-1", "BTCUSDT", side, OrderType.LIMIT, D("2"), D("50000"), 10,
                      False)
        expected = decimal_reference.check_order(book, order, 1000, 0.0)
        prepared = fast_check.prepare(book, order, 0.0)
        assert prepared is not None
        answered = fast_check.fast_accept(book, order, *prepared, 1000, 0.0)
        assert answered is not None and expected.reasons[0].code.name == "INSUFFICIENT_MARGIN"
        assert _describe(answered) == _describe(expected)
        assert _describe(check_order(book, order, 1000, 0.0)) == _describe(expected)
        decisions.add(expected.decision.name)
    assert decisions == {"REJECT", "REDUCE_ONLY"}
