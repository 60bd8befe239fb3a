"""Property: reduce-only never increases or flips a position, however orders and fills interleave."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from riskgate.book.specs import BreakerSpec
from riskgate.engine.check import check_order
from riskgate.engine.ledger import apply_execution, reserve
from riskgate.engine.order import Order
from riskgate.values.codes import BreakerState, Decision, ExecutionKind, OrderType, Side
from tests.engine_book import make_book

LOT = Decimal("0.001")

steps = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 3000),
                  st.booleans()),
        st.tuples(st.just("fill"), st.integers(0, 20), st.integers(1, 100), st.booleans()),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(position_lots=st.integers(-2000, 2000), plan=steps, imposed=st.booleans(), market=st.booleans())
def test_reduce_only_orders_when_any_interleaving_of_checks_and_fills_then_position_never_grows_or_flips(
        position_lots: int, plan: list[tuple], imposed: bool, market: bool) -> None:
    initial = position_lots * LOT
    book = make_book(position=str(initial))
    if imposed:
        book.platform_breaker = BreakerSpec(symbol="", state=BreakerState.REDUCE_ONLY, version=1)
    account = book.accounts["acct-1"]
    open_ids: list[str] = []

    def held() -> Decimal:
        position = account.positions.get("BTCUSDT")
        return position.quantity if position is not None else Decimal(0)

    def assert_within_initial() -> None:
        now = held()
        assert abs(now) <= abs(initial)
        assert now == 0 or (now > 0) == (initial > 0)

    for n, step in enumerate(plan):
        if step[0] == "order":
            _, side, lots, flagged = step
            order = Order(f"o{n}", "acct-1", "BTCUSDT", side, OrderType.MARKET if market else OrderType.LIMIT,
                          lots * LOT, None if market else Decimal(50000), 10, flagged or not imposed)
            result = check_order(book, order, 0, float(n))
            if result.decision != Decision.REJECT:
                assert result.increasing == 0
                reserve(book, order, result, 0)
                open_ids.append(order.order_id)
        elif open_ids:
            _, pick, percent, cancel = step
            order_id = open_ids[pick % len(open_ids)]
            reservation = account.orders[order_id]
            if cancel:
                apply_execution(book, "acct-1", order_id, ExecutionKind.CANCELED, Decimal(0), Decimal(0), 0.0)
            else:
                quantity = max(LOT, (reservation.remaining * percent / 100).quantize(LOT))
                quantity = min(quantity, reservation.remaining)
                apply_execution(book, "acct-1", order_id, ExecutionKind.FILL, quantity, Decimal(50000), 0.0)
            if order_id not in account.orders:
                open_ids.remove(order_id)
        assert_within_initial()

    # Worst case: everything still open fills in full.
    for order_id in list(account.orders):
        remaining = account.orders[order_id].remaining
        apply_execution(book, "acct-1", order_id, ExecutionKind.FILL, remaining, Decimal(50000), 0.0)
        assert_within_initial()
