"""What a check returns: a typed decision, its reasons, and the numbers behind it."""

from __future__ import annotations

from decimal import Decimal

from riskgate.values.codes import Decision, ReasonCode
from riskgate.values.money import ZERO


class Reason:
    __slots__ = ("code", "limit", "message", "value")

    def __init__(self, code: ReasonCode, message: str, limit: str = "", value: str = "") -> None:
        self.code = code
        self.message = message
        self.limit = limit
        self.value = value

    def __repr__(self) -> str:
        return f"Reason({self.code.name}, {self.message!r}, limit={self.limit!r}, value={self.value!r})"


class CheckResult:
    __slots__ = (
        "allowed_quantity",
        "available_margin",
        "decision",
        "increasing",
        "initial_margin",
        "leverage",
        "liquidation_price",
        "max_leverage",
        "order_cost",
        "price",
        "reasons",
        "reducing",
    )

    def __init__(self, decision: Decision, reasons: list[Reason]) -> None:
        self.decision = decision
        self.reasons = reasons
        self.allowed_quantity = ZERO
        self.initial_margin = ZERO
        self.order_cost = ZERO
        self.available_margin: Decimal | None = None
        self.max_leverage = 0
        self.liquidation_price: Decimal | None = None
        # For the reservation: the split of allowed_quantity, the price and leverage it used.
        self.reducing = ZERO
        self.increasing = ZERO
        self.price = ZERO
        self.leverage = 0

    @property
    def codes(self) -> list[ReasonCode]:
        return [r.code for r in self.reasons]


def reject(reason: Reason) -> CheckResult:
    return CheckResult(Decision.REJECT, [reason])
