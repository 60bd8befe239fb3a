"""protobuf <-> engine and record conversions. Enums convert by value (the numbers match)."""

from __future__ import annotations

from decimal import Decimal

from riskgate.book.specs import (
    DEFAULT_MAX_MARK_MOVE,
    AccountSnapshot,
    BreakerSpec,
    ControlsSpec,
    MarkSpec,
    PositionSpec,
    SymbolSpec,
    TierSpec,
)
from riskgate.engine.result import CheckResult, Reason
from riskgate.engine.spec_rules import SpecError
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.values.codes import BreakerState, Restriction
from riskgate.values.money import DecimalFormatError, fmt, parse_non_negative, parse_signed
from riskgate.values.tiers import TierTable


def check_response(order_id: str, result: CheckResult) -> pb.CheckOrderResponse:
    return pb.CheckOrderResponse(
        order_id=order_id,
        decision=result.decision,
        reasons=[pb.Reason(code=r.code, message=r.message, limit=r.limit, value=r.value) for r in result.reasons],
        allowed_quantity=fmt(result.allowed_quantity),
        initial_margin=fmt(result.initial_margin),
        order_cost=fmt(result.order_cost),
        available_margin=fmt(result.available_margin),
        max_leverage=result.max_leverage,
        estimated_liquidation_price=fmt(result.liquidation_price),
    )


def invalid_response(order_id: str, reason: Reason) -> pb.CheckOrderResponse:
    return pb.CheckOrderResponse(
        order_id=order_id,
        decision=pb.DECISION_REJECT,
        reasons=[pb.Reason(code=reason.code, message=reason.message, limit=reason.limit, value=reason.value)],
        allowed_quantity="0",
        initial_margin="0",
        order_cost="0",
    )


def decimal_field(field: str, text: str, *, signed: bool = False, optional: bool = False) -> Decimal | None:
    if optional and text == "":
        return None
    try:
        return parse_signed(text) if signed else parse_non_negative(text)
    except DecimalFormatError as exc:
        raise SpecError(field, str(exc)) from exc


def _required(field: str, text: str, *, signed: bool = False) -> Decimal:
    value = decimal_field(field, text, signed=signed)
    assert value is not None
    return value


def symbol_spec(message: admin.SymbolSpec) -> SymbolSpec:
    tiers = tuple(
        TierSpec(
            notional_cap=_required(f"tiers[{i}].notional_cap", t.notional_cap),
            max_leverage=t.max_leverage,
            maintenance_margin_rate=_required(f"tiers[{i}].maintenance_margin_rate", t.maintenance_margin_rate),
        )
        for i, t in enumerate(message.tiers)
    )
    return SymbolSpec(
        symbol=message.symbol,
        tick_size=_required("tick_size", message.tick_size),
        lot_size=_required("lot_size", message.lot_size),
        min_quantity=_required("min_quantity", message.min_quantity),
        max_quantity=_required("max_quantity", message.max_quantity),
        min_notional=_required("min_notional", message.min_notional),
        max_order_notional=_required("max_order_notional", message.max_order_notional),
        price_band=_required("price_band", message.price_band),
        taker_fee_rate=_required("taker_fee_rate", message.taker_fee_rate),
        tiers=tiers,
        mark_price_max_age_ms=message.mark_price_max_age_ms,
        max_position_notional=decimal_field("max_position_notional", message.max_position_notional, optional=True),
        open_interest_cap=decimal_field("open_interest_cap", message.open_interest_cap, optional=True),
        min_kyc_level=message.min_kyc_level,
        max_leverage_unqualified=message.max_leverage_unqualified,
        qualified_only=message.qualified_only,
        default_leverage=message.default_leverage,
        max_mark_move=(DEFAULT_MAX_MARK_MOVE if not message.max_mark_move
                       else _required("max_mark_move", message.max_mark_move)),
    )


def symbol_message(spec: SymbolSpec, tiers: TierTable) -> admin.SymbolSpec:
    return admin.SymbolSpec(
        symbol=spec.symbol,
        tick_size=fmt(spec.tick_size),
        lot_size=fmt(spec.lot_size),
        min_quantity=fmt(spec.min_quantity),
        max_quantity=fmt(spec.max_quantity),
        min_notional=fmt(spec.min_notional),
        max_order_notional=fmt(spec.max_order_notional),
        price_band=fmt(spec.price_band),
        taker_fee_rate=fmt(spec.taker_fee_rate),
        tiers=[
            admin.Tier(
                notional_cap=fmt(t.cap),
                max_leverage=t.max_leverage,
                maintenance_margin_rate=fmt(t.mmr),
                notional_floor=fmt(t.floor),
                maintenance_amount=fmt(t.maintenance_amount),
            )
            for t in tiers.tiers
        ],
        max_position_notional=fmt(spec.max_position_notional),
        open_interest_cap=fmt(spec.open_interest_cap),
        min_kyc_level=spec.min_kyc_level,
        max_leverage_unqualified=spec.max_leverage_unqualified,
        qualified_only=spec.qualified_only,
        mark_price_max_age_ms=spec.mark_price_max_age_ms,
        default_leverage=spec.default_leverage,
        version=spec.version,
        max_mark_move=fmt(spec.max_mark_move),
    )


def account_snapshot(message: admin.AccountState) -> AccountSnapshot:
    return AccountSnapshot(
        account_id=message.account_id,
        balance=_required("balance", message.balance, signed=True),
        positions=tuple(
            PositionSpec(
                symbol=p.symbol,
                quantity=_required(f"positions[{i}].quantity", p.quantity, signed=True),
                entry_price=_required(f"positions[{i}].entry_price", p.entry_price or "0"),
                leverage=p.leverage,
            )
            for i, p in enumerate(message.positions)
        ),
        cutoff_sequence=message.cutoff_sequence,
        cutoff_ms=message.cutoff_time_ms,
    )


def account_message(snapshot: AccountSnapshot) -> admin.AccountState:
    return admin.AccountState(
        account_id=snapshot.account_id,
        balance=fmt(snapshot.balance),
        positions=[
            admin.Position(symbol=p.symbol, quantity=fmt(p.quantity), entry_price=fmt(p.entry_price),
                           leverage=p.leverage)
            for p in snapshot.positions
        ],
        version=snapshot.version,
        cutoff_sequence=snapshot.cutoff_sequence,
        cutoff_time_ms=snapshot.cutoff_ms,
    )


def mark_message(mark: MarkSpec) -> admin.MarkPrice:
    return admin.MarkPrice(symbol=mark.symbol, price=fmt(mark.price), timestamp_ms=mark.timestamp_ms,
                           version=mark.version)


def breaker_state(value: int) -> BreakerState:
    if value not in BreakerState._value2member_map_:
        raise SpecError("state", "must be BREAKER_NORMAL, BREAKER_REDUCE_ONLY or BREAKER_HALTED")
    return BreakerState(value)


def breaker_message(breaker: BreakerSpec) -> admin.CircuitBreaker:
    return admin.CircuitBreaker(symbol=breaker.symbol, state=breaker.state, reason=breaker.reason,
                                set_by=breaker.set_by, updated_ms=breaker.updated_ms, version=breaker.version)


def controls_spec(message: admin.AccountControls, set_by: str = "") -> ControlsSpec:
    if message.restriction not in Restriction._value2member_map_:
        raise SpecError("restriction", "must be RESTRICTION_NONE, RESTRICTION_REDUCE_ONLY or RESTRICTION_FROZEN")
    return ControlsSpec(
        account_id=message.account_id,
        restriction=Restriction(message.restriction),
        kyc_level=message.kyc_level,
        qualified_investor=message.qualified_investor,
        max_leverage=message.max_leverage,
        max_orders_per_second=message.max_orders_per_second,
        max_gross_notional=decimal_field("max_gross_notional", message.max_gross_notional, optional=True),
        set_by=set_by,
        reason=message.reason[:500],
    )


def controls_message(controls: ControlsSpec, account_id: str = "") -> admin.AccountControls:
    """account_id names the account when controls are the shared defaults (no account id)."""
    return admin.AccountControls(
        account_id=controls.account_id or account_id,
        restriction=controls.restriction,
        kyc_level=controls.kyc_level,
        qualified_investor=controls.qualified_investor,
        max_leverage=controls.max_leverage,
        max_orders_per_second=controls.max_orders_per_second,
        max_gross_notional=fmt(controls.max_gross_notional),
        version=controls.version,
        set_by=controls.set_by,
        reason=controls.reason,
    )
