"""Execution ids are remembered for the window, and longer while a snapshot may need the fill."""

from __future__ import annotations

from decimal import Decimal

from riskgate.book.specs import AccountSnapshot, PositionSpec
from riskgate.engine.check import check_order
from riskgate.engine.ledger import (
    ExecutionRef,
    apply_account_record,
    apply_execution,
    execution_key,
    expire_executions,
    reserve,
    seen_execution,
)
from riskgate.engine.order import Order
from riskgate.values.codes import ExecutionKind, OrderType, Side
from tests.engine_book import make_book

D = Decimal
WINDOW_MS = 3_600_000


def _filled_book(sequence: int) -> tuple:
    book = make_book()
    order = Order("o-1", "acct-1", "BTCUSDT", Side.BUY, OrderType.LIMIT, D(1), D(50000), 10, False)
    reserve(book, order, check_order(book, order, 0, 0.0), 0)
    apply_execution(book, "acct-1", "o-1", ExecutionKind.FILL, D(1), D(50000), 0.0, ExecutionRef("t-1", sequence),
                    now_ms=1_000)
    book.dirty_executions.clear()
    return book, execution_key("acct-1", "o-1", "t-1")


def test_expire_when_id_older_than_the_window_then_forgotten_and_deleted_from_redis() -> None:
    book, key = _filled_book(sequence=0)
    assert expire_executions(book, 1_000 + WINDOW_MS) == 0
    assert seen_execution(book, "acct-1", "o-1", ExecutionRef("t-1", 0))
    assert expire_executions(book, 1_001 + WINDOW_MS) == 1
    assert not seen_execution(book, "acct-1", "o-1", ExecutionRef("t-1", 0))
    assert key in book.expired_executions


def test_expire_when_fill_is_above_clearing_cutoff_then_kept_until_a_snapshot_includes_it() -> None:
    book, key = _filled_book(sequence=7)
    assert expire_executions(book, 2 * WINDOW_MS) == 0
    assert key in book.executions and key not in book.expired_executions
    # Clearing's snapshot includes it: it may now go once a window has passed.
    apply_account_record(book, AccountSnapshot(account_id="acct-1", balance=D(100000), version=50, cutoff_sequence=7,
                                               positions=(PositionSpec("BTCUSDT", D(1), D(50000), 10),)))
    assert expire_executions(book, 3 * WINDOW_MS + 1) == 1
    assert key in book.expired_executions
