"""Applies versioned records to the book. An older version never overwrites a newer one."""

from __future__ import annotations

from riskgate.book.specs import BreakerSpec, ControlsSpec, MarkSpec, SymbolSpec
from riskgate.book.state import Book, SymbolState, ensure_account
from riskgate.engine.spec_rules import validate_symbol


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


def apply_controls(book: Book, controls: ControlsSpec) -> bool:
    if not book.owns(controls.account_id):
        return False
    account = ensure_account(book, controls.account_id)
    if controls.version <= account.controls.version and account.controls.version:
        return False
    account.controls = controls
    account.bucket.set_rate(controls.max_orders_per_second or book.default_orders_per_second)
    return True
