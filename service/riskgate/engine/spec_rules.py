"""Validation of operator-supplied state at the door: a bad spec never reaches the book."""

from __future__ import annotations

from decimal import Decimal

from riskgate.book.specs import AccountSnapshot, ControlsSpec, SymbolSpec
from riskgate.values.money import ONE, ZERO
from riskgate.values.tiers import TierTable

MAX_LEVERAGE = 1000
SYMBOL_MAX_LEN = 32
ID_MAX_LEN = 64


class SpecError(ValueError):
    """An invalid field of an operator-supplied record."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _positive(field: str, value: Decimal) -> None:
    if not value > ZERO:
        raise SpecError(field, f"must be positive, got {value}")


def _rate(field: str, value: Decimal) -> None:
    if not ZERO <= value < ONE:
        raise SpecError(field, f"must be in [0, 1), got {value}")


def _identifier(field: str, value: str, max_len: int) -> None:
    if not value or len(value) > max_len or not value.isprintable() or value != value.strip():
        raise SpecError(field, f"must be 1-{max_len} printable characters without surrounding spaces")


def validate_account_id(field: str, value: str) -> None:
    """An account id, wherever it comes in (`field` names where): the limits every account id
    is held to."""
    _identifier(field, value, ID_MAX_LEN)


def validate_symbol(spec: SymbolSpec) -> TierTable:
    """Checks every field and returns the derived tier table."""
    _identifier("symbol", spec.symbol, SYMBOL_MAX_LEN)
    for field in ("tick_size", "lot_size", "min_quantity", "max_quantity", "max_order_notional"):
        _positive(field, getattr(spec, field))
    if spec.min_notional < ZERO:
        raise SpecError("min_notional", "must not be negative")
    if spec.max_quantity < spec.min_quantity:
        raise SpecError("max_quantity", "must be at least min_quantity")
    for field in ("min_quantity", "max_quantity"):
        if getattr(spec, field) % spec.lot_size != 0:
            raise SpecError(field, "must be a multiple of lot_size")
    if not ZERO < spec.price_band < ONE:
        raise SpecError("price_band", f"must be in (0, 1), got {spec.price_band}")
    _rate("taker_fee_rate", spec.taker_fee_rate)
    if not ZERO <= spec.max_mark_move < ONE:
        raise SpecError("max_mark_move", f"must be in [0, 1) (0 = no bound), got {spec.max_mark_move}")
    if spec.mark_price_max_age_ms <= 0:
        raise SpecError("mark_price_max_age_ms", "must be positive: a mark is never trusted forever")
    for field in ("max_position_notional", "open_interest_cap"):
        value = getattr(spec, field)
        if value is not None:
            _positive(field, value)
    if not spec.tiers:
        raise SpecError("tiers", "must not be empty")
    previous_cap = ZERO
    previous_leverage = MAX_LEVERAGE + 1
    previous_mmr = ZERO
    for i, tier in enumerate(spec.tiers):
        where = f"tiers[{i}]"
        if not tier.notional_cap > previous_cap:
            raise SpecError(f"{where}.notional_cap", "caps must be positive and strictly increasing")
        if not 1 <= tier.max_leverage <= MAX_LEVERAGE:
            raise SpecError(f"{where}.max_leverage", f"must be in [1, {MAX_LEVERAGE}]")
        if tier.max_leverage > previous_leverage:
            raise SpecError(f"{where}.max_leverage", "must not increase with notional")
        _rate(f"{where}.maintenance_margin_rate", tier.maintenance_margin_rate)
        if tier.maintenance_margin_rate < previous_mmr:
            raise SpecError(f"{where}.maintenance_margin_rate", "must not decrease with notional")
        if tier.maintenance_margin_rate >= ONE / tier.max_leverage:
            # Otherwise a position opened at full leverage would be liquidatable at once.
            raise SpecError(f"{where}.maintenance_margin_rate", "must be below 1 / max_leverage")
        previous_cap, previous_leverage, previous_mmr = (
            tier.notional_cap,
            tier.max_leverage,
            tier.maintenance_margin_rate,
        )
    top_leverage = spec.tiers[0].max_leverage
    if spec.max_leverage_unqualified < 0 or spec.max_leverage_unqualified > top_leverage:
        raise SpecError("max_leverage_unqualified", f"must be in [0, {top_leverage}]")
    if spec.default_leverage < 0 or spec.default_leverage > top_leverage:
        raise SpecError("default_leverage", f"must be in [0, {top_leverage}] (0 = min(20, tier 1 max))")
    if spec.min_kyc_level < 0:
        raise SpecError("min_kyc_level", "must not be negative")
    return TierTable.derive(
        [(t.notional_cap, t.max_leverage, t.maintenance_margin_rate) for t in spec.tiers]
    )


def validate_account(snapshot: AccountSnapshot, known_symbols: set[str] | None = None) -> None:
    validate_account_id("account_id", snapshot.account_id)
    seen: set[str] = set()
    for i, position in enumerate(snapshot.positions):
        where = f"positions[{i}]"
        _identifier(f"{where}.symbol", position.symbol, SYMBOL_MAX_LEN)
        if known_symbols is not None and position.symbol not in known_symbols:
            raise SpecError(f"{where}.symbol", f"unknown symbol {position.symbol!r}")
        if position.symbol in seen:
            raise SpecError(f"{where}.symbol", "appears twice")
        seen.add(position.symbol)
        if position.quantity != ZERO:
            _positive(f"{where}.entry_price", position.entry_price)
            if not 1 <= position.leverage <= MAX_LEVERAGE:
                raise SpecError(f"{where}.leverage", f"must be in [1, {MAX_LEVERAGE}]")


def validate_controls(controls: ControlsSpec) -> None:
    validate_account_id("account_id", controls.account_id)
    if controls.kyc_level < 0:
        raise SpecError("kyc_level", "must not be negative")
    if not 0 <= controls.max_leverage <= MAX_LEVERAGE:
        raise SpecError("max_leverage", f"must be in [0, {MAX_LEVERAGE}]")
    if controls.max_orders_per_second < 0:
        raise SpecError("max_orders_per_second", "must not be negative")
    if controls.max_gross_notional is not None:
        _positive("max_gross_notional", controls.max_gross_notional)


def mark_move_beyond_bound(last: Decimal, new: Decimal, bound: Decimal) -> Decimal | None:
    """The relative move from the last mark when it exceeds the bound (0 = no bound), else None.
    A mark off by orders of magnitude (a feed's unit error, a fat finger) would otherwise turn
    into unrealised profit that funds new risk at once."""
    if not bound or not last:
        return None
    move = abs(new - last) / last
    return move if move > bound else None
