"""The duplicate window is exact and its memory is bounded by time, not by a count."""

from __future__ import annotations

from decimal import Decimal

from riskgate.engine.check import check_order
from riskgate.engine.ledger import apply_execution, reserve
from riskgate.engine.order import Order
from riskgate.values.codes import ExecutionKind, OrderType, ReasonCode, Side
from tests.engine_book import make_book

CHURN = 150_000  # more than the old silent cap of 100,000 closed ids per account


def _order(order_id: str) -> Order:
    return Order(order_id=order_id, account_id="acct-1", symbol="BTCUSDT", side=Side.BUY,
                 order_type=OrderType.LIMIT, quantity=Decimal("0.001"), price=Decimal("50000"), leverage=10,
                 reduce_only=False)


def test_closed_ids_when_churn_is_high_then_each_refused_for_the_whole_window_and_freed_after() -> None:
    book = make_book(balance="1000000000")
    window = book.duplicate_window_s
    now = 1000.0
    for n in range(CHURN):
        order = _order(f"id-{n}")
        result = check_order(book, order, 0, now)
        assert result.allowed_quantity
        reserve(book, order, result, 0)
        apply_execution(book, "acct-1", order.order_id, ExecutionKind.CANCELED, Decimal(0), Decimal(0), now)
        now += window / (2 * CHURN)  # every id closes within the first half of the window
    first_closed = 1000.0
    for probe in ("id-0", f"id-{CHURN // 2}", f"id-{CHURN - 1}"):
        late = check_order(book, _order(probe), 0, first_closed + window)
        assert late.reasons[0].code == ReasonCode.DUPLICATE_ORDER_ID, probe
    # Just past the window of the first id: it is free again, the last one still refused.
    after = check_order(book, _order("id-0"), 0, first_closed + window + 0.001)
    assert after.allowed_quantity
    assert check_order(book, _order(f"id-{CHURN - 1}"), 0, first_closed + window + 0.001).reasons[0].code == (
        ReasonCode.DUPLICATE_ORDER_ID)
    # Memory: once the window has passed for all of them, nothing of them is kept.
    book.expire_closed(now + window + 1)
    assert not book.closed_queue
    assert not book.accounts["acct-1"].recent_order_ids
