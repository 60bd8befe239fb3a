from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_NORMAL: _ClassVar[BreakerState]
    BREAKER_REDUCE_ONLY: _ClassVar[BreakerState]
    BREAKER_HALTED: _ClassVar[BreakerState]

class Restriction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESTRICTION_UNSPECIFIED: _ClassVar[Restriction]
    RESTRICTION_NONE: _ClassVar[Restriction]
    RESTRICTION_REDUCE_ONLY: _ClassVar[Restriction]
    RESTRICTION_FROZEN: _ClassVar[Restriction]

class MarkRejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MARK_REJECT_UNSPECIFIED: _ClassVar[MarkRejectReason]
    MARK_REJECT_INVALID: _ClassVar[MarkRejectReason]
    MARK_REJECT_UNKNOWN_SYMBOL: _ClassVar[MarkRejectReason]
    MARK_REJECT_BEYOND_BOUND: _ClassVar[MarkRejectReason]
    MARK_REJECT_OUT_OF_ORDER: _ClassVar[MarkRejectReason]
    MARK_REJECT_UNAVAILABLE: _ClassVar[MarkRejectReason]
    MARK_REJECT_NOT_CONFIRMED: _ClassVar[MarkRejectReason]
BREAKER_UNSPECIFIED: BreakerState
BREAKER_NORMAL: BreakerState
BREAKER_REDUCE_ONLY: BreakerState
BREAKER_HALTED: BreakerState
RESTRICTION_UNSPECIFIED: Restriction
RESTRICTION_NONE: Restriction
RESTRICTION_REDUCE_ONLY: Restriction
RESTRICTION_FROZEN: Restriction
MARK_REJECT_UNSPECIFIED: MarkRejectReason
MARK_REJECT_INVALID: MarkRejectReason
MARK_REJECT_UNKNOWN_SYMBOL: MarkRejectReason
MARK_REJECT_BEYOND_BOUND: MarkRejectReason
MARK_REJECT_OUT_OF_ORDER: MarkRejectReason
MARK_REJECT_UNAVAILABLE: MarkRejectReason
MARK_REJECT_NOT_CONFIRMED: MarkRejectReason

class Tier(_message.Message):
    __slots__ = ("notional_cap", "max_leverage", "maintenance_margin_rate", "notional_floor", "maintenance_amount")
    NOTIONAL_CAP_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_MARGIN_RATE_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FLOOR_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    notional_cap: str
    max_leverage: int
    maintenance_margin_rate: str
    notional_floor: str
    maintenance_amount: str
    def __init__(self, notional_cap: _Optional[str] = ..., max_leverage: _Optional[int] = ..., maintenance_margin_rate: _Optional[str] = ..., notional_floor: _Optional[str] = ..., maintenance_amount: _Optional[str] = ...) -> None: ...

class SymbolSpec(_message.Message):
    __slots__ = ("symbol", "tick_size", "lot_size", "min_quantity", "max_quantity", "min_notional", "max_order_notional", "price_band", "taker_fee_rate", "tiers", "max_position_notional", "open_interest_cap", "min_kyc_level", "max_leverage_unqualified", "qualified_only", "mark_price_max_age_ms", "default_leverage", "version", "max_mark_move", "expected_version")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TICK_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOT_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MAX_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MIN_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDER_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    PRICE_BAND_FIELD_NUMBER: _ClassVar[int]
    TAKER_FEE_RATE_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    MAX_POSITION_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    OPEN_INTEREST_CAP_FIELD_NUMBER: _ClassVar[int]
    MIN_KYC_LEVEL_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVERAGE_UNQUALIFIED_FIELD_NUMBER: _ClassVar[int]
    QUALIFIED_ONLY_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_MAX_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_MARK_MOVE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    tick_size: str
    lot_size: str
    min_quantity: str
    max_quantity: str
    min_notional: str
    max_order_notional: str
    price_band: str
    taker_fee_rate: str
    tiers: _containers.RepeatedCompositeFieldContainer[Tier]
    max_position_notional: str
    open_interest_cap: str
    min_kyc_level: int
    max_leverage_unqualified: int
    qualified_only: bool
    mark_price_max_age_ms: int
    default_leverage: int
    version: int
    max_mark_move: str
    expected_version: int
    def __init__(self, symbol: _Optional[str] = ..., tick_size: _Optional[str] = ..., lot_size: _Optional[str] = ..., min_quantity: _Optional[str] = ..., max_quantity: _Optional[str] = ..., min_notional: _Optional[str] = ..., max_order_notional: _Optional[str] = ..., price_band: _Optional[str] = ..., taker_fee_rate: _Optional[str] = ..., tiers: _Optional[_Iterable[_Union[Tier, _Mapping]]] = ..., max_position_notional: _Optional[str] = ..., open_interest_cap: _Optional[str] = ..., min_kyc_level: _Optional[int] = ..., max_leverage_unqualified: _Optional[int] = ..., qualified_only: _Optional[bool] = ..., mark_price_max_age_ms: _Optional[int] = ..., default_leverage: _Optional[int] = ..., version: _Optional[int] = ..., max_mark_move: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("symbol", "quantity", "entry_price", "leverage")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    quantity: str
    entry_price: str
    leverage: int
    def __init__(self, symbol: _Optional[str] = ..., quantity: _Optional[str] = ..., entry_price: _Optional[str] = ..., leverage: _Optional[int] = ...) -> None: ...

class AccountState(_message.Message):
    __slots__ = ("account_id", "balance", "positions", "version", "cutoff_sequence", "cutoff_time_ms", "includes_all_fills", "clamped", "expected_version")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    INCLUDES_ALL_FILLS_FIELD_NUMBER: _ClassVar[int]
    CLAMPED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    balance: str
    positions: _containers.RepeatedCompositeFieldContainer[Position]
    version: int
    cutoff_sequence: int
    cutoff_time_ms: int
    includes_all_fills: bool
    clamped: _containers.RepeatedScalarFieldContainer[str]
    expected_version: int
    def __init__(self, account_id: _Optional[str] = ..., balance: _Optional[str] = ..., positions: _Optional[_Iterable[_Union[Position, _Mapping]]] = ..., version: _Optional[int] = ..., cutoff_sequence: _Optional[int] = ..., cutoff_time_ms: _Optional[int] = ..., includes_all_fills: _Optional[bool] = ..., clamped: _Optional[_Iterable[str]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class MarkPrice(_message.Message):
    __slots__ = ("symbol", "price", "timestamp_ms", "version", "confirmed_move")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_MOVE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    price: str
    timestamp_ms: int
    version: int
    confirmed_move: bool
    def __init__(self, symbol: _Optional[str] = ..., price: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., version: _Optional[int] = ..., confirmed_move: _Optional[bool] = ...) -> None: ...

class CircuitBreaker(_message.Message):
    __slots__ = ("symbol", "state", "reason", "set_by", "updated_ms", "version", "expected_version")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    state: BreakerState
    reason: str
    set_by: str
    updated_ms: int
    version: int
    expected_version: int
    def __init__(self, symbol: _Optional[str] = ..., state: _Optional[_Union[BreakerState, str]] = ..., reason: _Optional[str] = ..., set_by: _Optional[str] = ..., updated_ms: _Optional[int] = ..., version: _Optional[int] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ListCircuitBreakersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CircuitBreakerList(_message.Message):
    __slots__ = ("breakers",)
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    breakers: _containers.RepeatedCompositeFieldContainer[CircuitBreaker]
    def __init__(self, breakers: _Optional[_Iterable[_Union[CircuitBreaker, _Mapping]]] = ...) -> None: ...

class AccountControls(_message.Message):
    __slots__ = ("account_id", "restriction", "kyc_level", "qualified_investor", "max_leverage", "max_orders_per_second", "max_gross_notional", "version", "set_by", "reason", "expected_version")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    RESTRICTION_FIELD_NUMBER: _ClassVar[int]
    KYC_LEVEL_FIELD_NUMBER: _ClassVar[int]
    QUALIFIED_INVESTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDERS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MAX_GROSS_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    restriction: Restriction
    kyc_level: int
    qualified_investor: bool
    max_leverage: int
    max_orders_per_second: int
    max_gross_notional: str
    version: int
    set_by: str
    reason: str
    expected_version: int
    def __init__(self, account_id: _Optional[str] = ..., restriction: _Optional[_Union[Restriction, str]] = ..., kyc_level: _Optional[int] = ..., qualified_investor: _Optional[bool] = ..., max_leverage: _Optional[int] = ..., max_orders_per_second: _Optional[int] = ..., max_gross_notional: _Optional[str] = ..., version: _Optional[int] = ..., set_by: _Optional[str] = ..., reason: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class GetAccountRiskRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class PositionRisk(_message.Message):
    __slots__ = ("symbol", "quantity", "entry_price", "mark_price", "unrealized_pnl", "maintenance_margin", "estimated_liquidation_price", "leverage", "initial_margin")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    UNREALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_LIQUIDATION_PRICE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    INITIAL_MARGIN_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    quantity: str
    entry_price: str
    mark_price: str
    unrealized_pnl: str
    maintenance_margin: str
    estimated_liquidation_price: str
    leverage: int
    initial_margin: str
    def __init__(self, symbol: _Optional[str] = ..., quantity: _Optional[str] = ..., entry_price: _Optional[str] = ..., mark_price: _Optional[str] = ..., unrealized_pnl: _Optional[str] = ..., maintenance_margin: _Optional[str] = ..., estimated_liquidation_price: _Optional[str] = ..., leverage: _Optional[int] = ..., initial_margin: _Optional[str] = ...) -> None: ...

class AccountRisk(_message.Message):
    __slots__ = ("account_id", "balance", "positions", "reserved_order_cost", "available_margin", "controls", "open_orders", "version")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_ORDER_COST_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    balance: str
    positions: _containers.RepeatedCompositeFieldContainer[PositionRisk]
    reserved_order_cost: str
    available_margin: str
    controls: AccountControls
    open_orders: int
    version: int
    def __init__(self, account_id: _Optional[str] = ..., balance: _Optional[str] = ..., positions: _Optional[_Iterable[_Union[PositionRisk, _Mapping]]] = ..., reserved_order_cost: _Optional[str] = ..., available_margin: _Optional[str] = ..., controls: _Optional[_Union[AccountControls, _Mapping]] = ..., open_orders: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class OpenReservation(_message.Message):
    __slots__ = ("account_id", "order_id", "symbol", "side", "remaining_quantity", "reserved_cost", "created_ms", "age_ms", "price", "leverage", "reduce_only")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    REMAINING_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RESERVED_COST_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    AGE_MS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    REDUCE_ONLY_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    order_id: str
    symbol: str
    side: int
    remaining_quantity: str
    reserved_cost: str
    created_ms: int
    age_ms: int
    price: str
    leverage: int
    reduce_only: bool
    def __init__(self, account_id: _Optional[str] = ..., order_id: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[int] = ..., remaining_quantity: _Optional[str] = ..., reserved_cost: _Optional[str] = ..., created_ms: _Optional[int] = ..., age_ms: _Optional[int] = ..., price: _Optional[str] = ..., leverage: _Optional[int] = ..., reduce_only: _Optional[bool] = ...) -> None: ...

class ListReservationsRequest(_message.Message):
    __slots__ = ("account_id", "min_age_ms", "limit")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    min_age_ms: int
    limit: int
    def __init__(self, account_id: _Optional[str] = ..., min_age_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ReservationList(_message.Message):
    __slots__ = ("reservations", "total")
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    reservations: _containers.RepeatedCompositeFieldContainer[OpenReservation]
    total: int
    def __init__(self, reservations: _Optional[_Iterable[_Union[OpenReservation, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class ReleaseReservationRequest(_message.Message):
    __slots__ = ("account_id", "order_id", "reason")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    order_id: str
    reason: str
    def __init__(self, account_id: _Optional[str] = ..., order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetSymbolRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class ListSymbolsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SymbolDetail(_message.Message):
    __slots__ = ("spec", "mark", "breaker", "open_interest")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    OPEN_INTEREST_FIELD_NUMBER: _ClassVar[int]
    spec: SymbolSpec
    mark: MarkPrice
    breaker: CircuitBreaker
    open_interest: str
    def __init__(self, spec: _Optional[_Union[SymbolSpec, _Mapping]] = ..., mark: _Optional[_Union[MarkPrice, _Mapping]] = ..., breaker: _Optional[_Union[CircuitBreaker, _Mapping]] = ..., open_interest: _Optional[str] = ...) -> None: ...

class SymbolList(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolDetail]
    def __init__(self, symbols: _Optional[_Iterable[_Union[SymbolDetail, _Mapping]]] = ...) -> None: ...

class BalanceAdjustment(_message.Message):
    __slots__ = ("account_id", "amount", "reason", "expected_version")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    amount: str
    reason: str
    expected_version: int
    def __init__(self, account_id: _Optional[str] = ..., amount: _Optional[str] = ..., reason: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("since_ms", "actor", "target", "action", "limit", "before_id")
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    since_ms: int
    actor: str
    target: str
    action: str
    limit: int
    before_id: str
    def __init__(self, since_ms: _Optional[int] = ..., actor: _Optional[str] = ..., target: _Optional[str] = ..., action: _Optional[str] = ..., limit: _Optional[int] = ..., before_id: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "time_ms", "actor", "action", "target", "outcome", "version", "request", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    id: str
    time_ms: int
    actor: str
    action: str
    target: str
    outcome: str
    version: int
    request: str
    extra: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., time_ms: _Optional[int] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., outcome: _Optional[str] = ..., version: _Optional[int] = ..., request: _Optional[str] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AuditEventList(_message.Message):
    __slots__ = ("events", "scanned", "next_before_id")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SCANNED_FIELD_NUMBER: _ClassVar[int]
    NEXT_BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    scanned: int
    next_before_id: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., scanned: _Optional[int] = ..., next_before_id: _Optional[str] = ...) -> None: ...

class MarkTick(_message.Message):
    __slots__ = ("symbol", "price", "confirmed_move", "sequence")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_MOVE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    price: str
    confirmed_move: bool
    sequence: int
    def __init__(self, symbol: _Optional[str] = ..., price: _Optional[str] = ..., confirmed_move: _Optional[bool] = ..., sequence: _Optional[int] = ...) -> None: ...

class MarkTicks(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[MarkTick]
    def __init__(self, ticks: _Optional[_Iterable[_Union[MarkTick, _Mapping]]] = ...) -> None: ...

class MarkRejection(_message.Message):
    __slots__ = ("sequence", "symbol", "reason", "message")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    symbol: str
    reason: MarkRejectReason
    message: str
    def __init__(self, sequence: _Optional[int] = ..., symbol: _Optional[str] = ..., reason: _Optional[_Union[MarkRejectReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class MarkFeedAck(_message.Message):
    __slots__ = ("rejections", "received", "written", "conflated", "rejected", "written_through", "final")
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CONFLATED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_THROUGH_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    rejections: _containers.RepeatedCompositeFieldContainer[MarkRejection]
    received: int
    written: int
    conflated: int
    rejected: int
    written_through: int
    final: bool
    def __init__(self, rejections: _Optional[_Iterable[_Union[MarkRejection, _Mapping]]] = ..., received: _Optional[int] = ..., written: _Optional[int] = ..., conflated: _Optional[int] = ..., rejected: _Optional[int] = ..., written_through: _Optional[int] = ..., final: _Optional[bool] = ...) -> None: ...
