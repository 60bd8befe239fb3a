"""An in-process book for engine-level tests (no Redis, no gRPC)."""

from __future__ import annotations

from decimal import Decimal

from riskgate.book.specs import AccountSnapshot, ControlsSpec, MarkSpec, PositionSpec, SymbolSpec, TierSpec
from riskgate.book.state import Book
from riskgate.engine.ledger import apply_account_record
from riskgate.engine.records import apply_controls, apply_mark, apply_symbol
from tests.support import BTC_TIERS

D = Decimal


def btc_spec() -> SymbolSpec:
    return SymbolSpec(
        symbol="BTCUSDT", tick_size=D("0.1"), lot_size=D("0.001"), min_quantity=D("0.001"), max_quantity=D(1000),
        min_notional=D(5), max_order_notional=D(100_000_000), price_band=D("0.05"), taker_fee_rate=D(0),
        tiers=tuple(TierSpec(notional_cap=D(c), max_leverage=lev, maintenance_margin_rate=D(m))
                    for c, lev, m in BTC_TIERS),
        mark_price_max_age_ms=10**12,
    )


def make_book(balance: str = "100000", position: str = "0", mark: str = "50000", account: str = "acct-1") -> Book:
    book = Book(default_orders_per_second=10**9, duplicate_window_s=60)
    book.fresh_until = float("inf")  # no Redis link to prove here
    apply_symbol(book, btc_spec())
    apply_mark(book, MarkSpec(symbol="BTCUSDT", price=D(mark), timestamp_ms=0))
    positions = (PositionSpec(symbol="BTCUSDT", quantity=D(position), entry_price=D(mark), leverage=10),)
    apply_account_record(book, AccountSnapshot(account_id=account, balance=D(balance),
                                                 positions=positions if D(position) else ()))
    apply_controls(book, ControlsSpec(account_id=account, kyc_level=5, qualified_investor=True))
    return book
