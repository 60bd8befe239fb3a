"""Applies versioned records to the book. An older version never overwrites a newer one."""

from __future__ import annotations

import time

from riskgate.book.specs import AccountSnapshot, BreakerSpec, ControlsSpec, MarkSpec, SymbolSpec
from riskgate.book.state import Account, Book, Position, SymbolState
from riskgate.engine.ledger import adjust_open_interest, rebalance_reducing
from riskgate.engine.spec_rules import validate_symbol
from riskgate.values.money import ZERO


def apply_symbol(book: Book, spec: SymbolSpec) -> bool:
    tiers = validate_symbol(spec)
    state = book.symbols.get(spec.symbol)
    if state is None:
        book.symbols[spec.symbol] = SymbolState(spec, tiers)
        return True
    if spec.version <= state.spec.version and state.spec.version:
        return False
    state.replace_spec(spec, tiers)
    return True


def apply_mark(book: Book, mark: MarkSpec) -> bool:
    state = book.symbols.get(mark.symbol)
    if state is None:
        return False
    if state.mark is not None and mark.version <= state.mark.version and state.mark.version:
        return False
    state.mark = mark
    return True


def apply_breaker(book: Book, breaker: BreakerSpec) -> bool:
    if not breaker.symbol:
        if breaker.version <= book.platform_breaker.version and book.platform_breaker.version:
            return False
        book.platform_breaker = breaker
        return True
    state = book.symbols.get(breaker.symbol)
    if state is None:
        return False
    if breaker.version <= state.breaker.version and state.breaker.version:
        return False
    state.breaker = breaker
    return True


def ensure_account(book: Book, account_id: str) -> Account:
    account = book.accounts.get(account_id)
    if account is None:
        controls = ControlsSpec(account_id=account_id)
        account = Account(account_id, controls, book.default_orders_per_second, time.monotonic())
        book.accounts[account_id] = account
    return account


def apply_controls(book: Book, controls: ControlsSpec) -> bool:
    if not book.owns(controls.account_id):
        return False
    account = ensure_account(book, controls.account_id)
    if controls.version <= account.controls.version and account.controls.version:
        return False
    account.controls = controls
    account.bucket.set_rate(controls.max_orders_per_second or book.default_orders_per_second)
    return True


def apply_account_snapshot(book: Book, snapshot: AccountSnapshot) -> bool:
    """Replaces balance and positions with clearing's snapshot; open reservations stay."""
    if not book.owns(snapshot.account_id):
        return False
    account = ensure_account(book, snapshot.account_id)
    if snapshot.version <= account.snapshot_version and account.snapshot_version:
        return False
    previous = set(account.positions)
    for symbol, position in account.positions.items():
        adjust_open_interest(book, symbol, position.quantity, ZERO)
    account.balance = snapshot.balance
    account.positions = {}
    for spec in snapshot.positions:
        if spec.quantity:
            account.positions[spec.symbol] = Position(spec.quantity, spec.entry_price, spec.leverage)
            adjust_open_interest(book, spec.symbol, ZERO, spec.quantity)
    account.snapshot_version = snapshot.version
    for symbol in {*previous, *account.positions}:
        rebalance_reducing(book, account, symbol)
    return True

