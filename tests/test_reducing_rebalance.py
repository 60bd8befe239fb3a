"""A reducing part that the position can no longer absorb is re-margined, never left free."""

from decimal import Decimal

from riskgate.book.specs import AccountSnapshot
from riskgate.engine.check import check_order
from riskgate.engine.ledger import apply_account_record, apply_execution, reserve
from riskgate.engine.margin import value_account
from riskgate.engine.order import Order
from riskgate.values.codes import Decision, ExecutionKind, OrderType, Side
from tests.engine_book import make_book

D = Decimal


def _sell(book, order_id: str, quantity: str = "1"):
    order = Order(order_id, "acct-1", "BTCUSDT", Side.SELL, OrderType.LIMIT, D(quantity), D(50000), 10, False)
    result = check_order(book, order, 0, 0.0)
    if result.allowed_quantity:
        reserve(book, order, result, 0)
    return result


def test_fill_when_a_later_order_closes_the_position_first_then_the_earlier_reducing_order_is_margined() -> None:
    book = make_book(balance="10000", position="1")
    assert _sell(book, "a").order_cost == 0  # reduces the long: nothing reserved
    assert _sell(book, "b").order_cost == D(5000)  # opens a short
    apply_execution(book, "acct-1", "b", ExecutionKind.FILL, D(1), D(50000), 0.0)  # b closes the long
    account = book.accounts["acct-1"]
    assert account.orders["a"].reducing_left == 0
    assert account.orders["a"].cost_left == D(5000)  # a would now open a short: margined
    assert value_account(book, account).available == D(5000)  # 10,000 balance, flat, a holds 5,000
    assert _sell(book, "c").decision == Decision.ACCEPT
    assert _sell(book, "d").decision == Decision.REJECT  # a and c already hold all 10,000


def test_snapshot_when_clearing_cuts_the_position_then_open_reducing_orders_are_margined() -> None:
    book = make_book(balance="10000", position="1")
    _sell(book, "a")
    apply_account_record(book, AccountSnapshot(account_id="acct-1", balance=D(10000), version=99))
    reservation = book.accounts["acct-1"].orders["a"]
    assert (reservation.reducing_left, reservation.increasing_left, reservation.cost_left) == (0, 1, D(5000))
    assert book.accounts["acct-1"].reserved_cost == D(5000)


def test_rebalance_when_reducing_order_was_sent_with_an_unchecked_leverage_then_priced_at_the_symbols() -> None:
    book = make_book(balance="100000", position="10")
    order = Order("a", "acct-1", "BTCUSDT", Side.SELL, OrderType.LIMIT, D(10), D(50000), 125, False)
    result = check_order(book, order, 0, 0.0)
    assert result.increasing == 0 and result.leverage == 10  # the position's, not the 125 sent
    reserve(book, order, result, 0)
    apply_account_record(book, AccountSnapshot(account_id="acct-1", balance=D(100000), version=99))
    assert book.accounts["acct-1"].orders["a"].cost_left == D(50000)  # 500,000 / 10, not / 125
