"""Exact decimal money: parsing wire strings, explicit rounding, canonical formatting.

No binary float ever touches a price, quantity or amount. Amounts are carried exactly and
rounded only where a figure is published: what a trader must post rounds up, what is
available to them rounds down, always to ``MONEY_QUANTUM``.
"""

from __future__ import annotations

import decimal
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

# USDT-margined venues settle in 8 decimal places; exact results with fewer digits (every
# published example) are unaffected by this rounding.
MONEY_QUANTUM = Decimal("1e-8")
MAX_INTEGER_DIGITS = 18
MAX_FRACTION_DIGITS = 18

ZERO = Decimal(0)
ONE = Decimal(1)

_CONTEXT = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
# Every thread (and the asyncio loop's thread) computes with the same wide, trapping context.
decimal.DefaultContext.prec = _CONTEXT.prec
# Read untyped: typeshed calls `traps` a dict, and compiled code (mypyc) would check that it
# is one; it is a decimal.SignalDict.
_default_traps: Any = getattr(decimal.DefaultContext, "traps")  # noqa: B009
for _trap in (decimal.InvalidOperation, decimal.DivisionByZero):
    _default_traps[_trap] = True
decimal.setcontext(_CONTEXT.copy())

# ASCII digits only: `\d` and Decimal() would also take fullwidth or Arabic-Indic digits.
_DIGITS = rf"([0-9]{{1,{MAX_INTEGER_DIGITS}}})(?:\.([0-9]{{1,{MAX_FRACTION_DIGITS}}}))?"
_DECIMAL_RE = re.compile(rf"\A{_DIGITS}\Z")
_SIGNED_DECIMAL_RE = re.compile(rf"\A-?{_DIGITS}\Z")


class DecimalFormatError(ValueError):
    """A wire string that is not a plain, bounded decimal number."""


def parse_non_negative(text: str) -> Decimal:
    """Parses a plain decimal string ("123.45"): no sign, exponent, NaN, inf or padding."""
    if not _DECIMAL_RE.match(text):
        raise DecimalFormatError(_describe(text))
    return Decimal(text)


def parse_signed(text: str) -> Decimal:
    """As parse_non_negative, with an optional leading minus (positions, PnL)."""
    if not _SIGNED_DECIMAL_RE.match(text):
        raise DecimalFormatError(_describe(text))
    return Decimal(text)


def _describe(text: str) -> str:
    if text == "":
        return "empty"
    shown = text if len(text) <= 40 else text[:37] + "..."
    return (
        f"{shown!r} is not a plain decimal with at most {MAX_INTEGER_DIGITS} integer and "
        f"{MAX_FRACTION_DIGITS} fraction digits"
    )


def round_up(amount: Decimal) -> Decimal:
    """What the trader must post: rounded towards +infinity."""
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_CEILING)


def round_down(amount: Decimal) -> Decimal:
    """What the trader may use: rounded towards -infinity."""
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_FLOOR)


def to_grid(value: Decimal, step: Decimal, *, up: bool) -> Decimal:
    """Snaps value onto a multiple of step, rounding up or down."""
    units = (value / step).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return units * step


def on_grid(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def fmt(value: Decimal | None) -> str:
    """Canonical wire form: no exponent, no trailing zeros, "" for None."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
