"""What makes a mark acceptable, for SetMarkPrice and the mark feed (PublishMarks) alike: a
positive decimal price of a listed symbol, and no move of more than the symbol's
max_mark_move from the last mark unless the move is confirmed."""

from __future__ import annotations

import time
from decimal import Decimal

from riskgate.api import convert
from riskgate.api.echo import echo
from riskgate.book.specs import MarkSpec
from riskgate.book.state import Book
from riskgate.engine.spec_rules import SpecError, mark_move_beyond_bound
from riskgate.values.money import fmt


class UnknownSymbol(SpecError):
    def __init__(self, symbol: str) -> None:
        super().__init__("symbol", f"unknown symbol {echo(symbol)}")


class MarkMoveRefused(Exception):
    """A move beyond the symbol's bound, not confirmed: not applied."""


def check_mark(book: Book, symbol: str, price_text: str, confirmed: bool, last: Decimal | None = None,
               now_ms: int | None = None) -> MarkSpec:
    """The mark to store, received now; SpecError (UnknownSymbol for a symbol not listed) when
    it is not a usable mark, MarkMoveRefused when it moves too far. `last`: the mark the move is
    measured from when it is newer than the book's (a feed's tick not yet written); None = the
    book's."""
    price = convert.decimal_field("price", price_text)
    if not price:
        raise SpecError("price", "must be positive")
    state = book.symbols.get(symbol)
    if state is None:
        raise UnknownSymbol(symbol)
    if last is None and state.mark is not None:
        last = state.mark.price
    if not confirmed and last is not None:
        move = mark_move_beyond_bound(last, price, state.spec.max_mark_move)
        if move is not None:
            raise MarkMoveRefused(f"mark {fmt(price)} moves {move:.2%} from {fmt(last)}, more than the symbol's "
                                  f"max_mark_move {state.spec.max_mark_move:%}: not applied; send it again with "
                                  "confirmed_move if the move is real")
    return MarkSpec(symbol=symbol, price=price, timestamp_ms=time.time_ns() // 1_000_000 if now_ms is None else now_ms)
