from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_BUY: _ClassVar[Side]
    SIDE_SELL: _ClassVar[Side]

class OrderType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_TYPE_UNSPECIFIED: _ClassVar[OrderType]
    ORDER_TYPE_LIMIT: _ClassVar[OrderType]
    ORDER_TYPE_MARKET: _ClassVar[OrderType]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ACCEPT: _ClassVar[Decision]
    DECISION_REJECT: _ClassVar[Decision]
    DECISION_REDUCE_ONLY: _ClassVar[Decision]

class ReasonCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[ReasonCode]
    REASON_INVALID_ORDER_ID: _ClassVar[ReasonCode]
    REASON_INVALID_ACCOUNT_ID: _ClassVar[ReasonCode]
    REASON_INVALID_SYMBOL: _ClassVar[ReasonCode]
    REASON_INVALID_SIDE: _ClassVar[ReasonCode]
    REASON_INVALID_ORDER_TYPE: _ClassVar[ReasonCode]
    REASON_INVALID_QUANTITY: _ClassVar[ReasonCode]
    REASON_INVALID_PRICE: _ClassVar[ReasonCode]
    REASON_INVALID_LEVERAGE: _ClassVar[ReasonCode]
    REASON_QUANTITY_NOT_ON_LOT: _ClassVar[ReasonCode]
    REASON_PRICE_NOT_ON_TICK: _ClassVar[ReasonCode]
    REASON_UNKNOWN_SYMBOL: _ClassVar[ReasonCode]
    REASON_UNKNOWN_ACCOUNT: _ClassVar[ReasonCode]
    REASON_ACCOUNT_NOT_OWNED: _ClassVar[ReasonCode]
    REASON_DUPLICATE_ORDER_ID: _ClassVar[ReasonCode]
    REASON_PLATFORM_HALTED: _ClassVar[ReasonCode]
    REASON_SYMBOL_HALTED: _ClassVar[ReasonCode]
    REASON_PLATFORM_REDUCE_ONLY: _ClassVar[ReasonCode]
    REASON_SYMBOL_REDUCE_ONLY: _ClassVar[ReasonCode]
    REASON_ACCOUNT_FROZEN: _ClassVar[ReasonCode]
    REASON_ACCOUNT_REDUCE_ONLY: _ClassVar[ReasonCode]
    REASON_ORDER_RATE_EXCEEDED: _ClassVar[ReasonCode]
    REASON_KYC_LEVEL_TOO_LOW: _ClassVar[ReasonCode]
    REASON_QUALIFIED_INVESTOR_REQUIRED: _ClassVar[ReasonCode]
    REASON_MARK_PRICE_MISSING: _ClassVar[ReasonCode]
    REASON_MARK_PRICE_STALE: _ClassVar[ReasonCode]
    REASON_STATE_UNAVAILABLE: _ClassVar[ReasonCode]
    REASON_PRICE_ABOVE_BAND: _ClassVar[ReasonCode]
    REASON_PRICE_BELOW_BAND: _ClassVar[ReasonCode]
    REASON_QUANTITY_BELOW_MIN: _ClassVar[ReasonCode]
    REASON_QUANTITY_ABOVE_MAX: _ClassVar[ReasonCode]
    REASON_NOTIONAL_BELOW_MIN: _ClassVar[ReasonCode]
    REASON_ORDER_NOTIONAL_ABOVE_MAX: _ClassVar[ReasonCode]
    REASON_LEVERAGE_ABOVE_TIER_MAX: _ClassVar[ReasonCode]
    REASON_LEVERAGE_ABOVE_ACCOUNT_MAX: _ClassVar[ReasonCode]
    REASON_POSITION_ABOVE_MAX_TIER: _ClassVar[ReasonCode]
    REASON_LEVERAGE_MISMATCH: _ClassVar[ReasonCode]
    REASON_POSITION_LIMIT_EXCEEDED: _ClassVar[ReasonCode]
    REASON_GROSS_NOTIONAL_EXCEEDED: _ClassVar[ReasonCode]
    REASON_OPEN_INTEREST_CAP_EXCEEDED: _ClassVar[ReasonCode]
    REASON_INSUFFICIENT_MARGIN: _ClassVar[ReasonCode]
    REASON_NOTHING_TO_REDUCE: _ClassVar[ReasonCode]
    REASON_REDUCE_ONLY_QUANTITY_CAPPED: _ClassVar[ReasonCode]

class ExecutionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_KIND_UNSPECIFIED: _ClassVar[ExecutionKind]
    EXECUTION_KIND_FILL: _ClassVar[ExecutionKind]
    EXECUTION_KIND_CANCELED: _ClassVar[ExecutionKind]
    EXECUTION_KIND_EXPIRED: _ClassVar[ExecutionKind]
    EXECUTION_KIND_REJECTED: _ClassVar[ExecutionKind]
    EXECUTION_KIND_NOT_SENT: _ClassVar[ExecutionKind]
SIDE_UNSPECIFIED: Side
SIDE_BUY: Side
SIDE_SELL: Side
ORDER_TYPE_UNSPECIFIED: OrderType
ORDER_TYPE_LIMIT: OrderType
ORDER_TYPE_MARKET: OrderType
DECISION_UNSPECIFIED: Decision
DECISION_ACCEPT: Decision
DECISION_REJECT: Decision
DECISION_REDUCE_ONLY: Decision
REASON_UNSPECIFIED: ReasonCode
REASON_INVALID_ORDER_ID: ReasonCode
REASON_INVALID_ACCOUNT_ID: ReasonCode
REASON_INVALID_SYMBOL: ReasonCode
REASON_INVALID_SIDE: ReasonCode
REASON_INVALID_ORDER_TYPE: ReasonCode
REASON_INVALID_QUANTITY: ReasonCode
REASON_INVALID_PRICE: ReasonCode
REASON_INVALID_LEVERAGE: ReasonCode
REASON_QUANTITY_NOT_ON_LOT: ReasonCode
REASON_PRICE_NOT_ON_TICK: ReasonCode
REASON_UNKNOWN_SYMBOL: ReasonCode
REASON_UNKNOWN_ACCOUNT: ReasonCode
REASON_ACCOUNT_NOT_OWNED: ReasonCode
REASON_DUPLICATE_ORDER_ID: ReasonCode
REASON_PLATFORM_HALTED: ReasonCode
REASON_SYMBOL_HALTED: ReasonCode
REASON_PLATFORM_REDUCE_ONLY: ReasonCode
REASON_SYMBOL_REDUCE_ONLY: ReasonCode
REASON_ACCOUNT_FROZEN: ReasonCode
REASON_ACCOUNT_REDUCE_ONLY: ReasonCode
REASON_ORDER_RATE_EXCEEDED: ReasonCode
REASON_KYC_LEVEL_TOO_LOW: ReasonCode
REASON_QUALIFIED_INVESTOR_REQUIRED: ReasonCode
REASON_MARK_PRICE_MISSING: ReasonCode
REASON_MARK_PRICE_STALE: ReasonCode
REASON_STATE_UNAVAILABLE: ReasonCode
REASON_PRICE_ABOVE_BAND: ReasonCode
REASON_PRICE_BELOW_BAND: ReasonCode
REASON_QUANTITY_BELOW_MIN: ReasonCode
REASON_QUANTITY_ABOVE_MAX: ReasonCode
REASON_NOTIONAL_BELOW_MIN: ReasonCode
REASON_ORDER_NOTIONAL_ABOVE_MAX: ReasonCode
REASON_LEVERAGE_ABOVE_TIER_MAX: ReasonCode
REASON_LEVERAGE_ABOVE_ACCOUNT_MAX: ReasonCode
REASON_POSITION_ABOVE_MAX_TIER: ReasonCode
REASON_LEVERAGE_MISMATCH: ReasonCode
REASON_POSITION_LIMIT_EXCEEDED: ReasonCode
REASON_GROSS_NOTIONAL_EXCEEDED: ReasonCode
REASON_OPEN_INTEREST_CAP_EXCEEDED: ReasonCode
REASON_INSUFFICIENT_MARGIN: ReasonCode
REASON_NOTHING_TO_REDUCE: ReasonCode
REASON_REDUCE_ONLY_QUANTITY_CAPPED: ReasonCode
EXECUTION_KIND_UNSPECIFIED: ExecutionKind
EXECUTION_KIND_FILL: ExecutionKind
EXECUTION_KIND_CANCELED: ExecutionKind
EXECUTION_KIND_EXPIRED: ExecutionKind
EXECUTION_KIND_REJECTED: ExecutionKind
EXECUTION_KIND_NOT_SENT: ExecutionKind

class Reason(_message.Message):
    __slots__ = ("code", "message", "limit", "value")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    code: ReasonCode
    message: str
    limit: str
    value: str
    def __init__(self, code: _Optional[_Union[ReasonCode, str]] = ..., message: _Optional[str] = ..., limit: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class CheckOrderRequest(_message.Message):
    __slots__ = ("order_id", "account_id", "symbol", "side", "order_type", "quantity", "price", "leverage", "reduce_only")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    ORDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    REDUCE_ONLY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: str
    price: str
    leverage: int
    reduce_only: bool
    def __init__(self, order_id: _Optional[str] = ..., account_id: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., order_type: _Optional[_Union[OrderType, str]] = ..., quantity: _Optional[str] = ..., price: _Optional[str] = ..., leverage: _Optional[int] = ..., reduce_only: _Optional[bool] = ...) -> None: ...

class CheckOrderResponse(_message.Message):
    __slots__ = ("order_id", "decision", "reasons", "allowed_quantity", "initial_margin", "order_cost", "available_margin", "max_leverage", "estimated_liquidation_price")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    INITIAL_MARGIN_FIELD_NUMBER: _ClassVar[int]
    ORDER_COST_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_LIQUIDATION_PRICE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    decision: Decision
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    allowed_quantity: str
    initial_margin: str
    order_cost: str
    available_margin: str
    max_leverage: int
    estimated_liquidation_price: str
    def __init__(self, order_id: _Optional[str] = ..., decision: _Optional[_Union[Decision, str]] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., allowed_quantity: _Optional[str] = ..., initial_margin: _Optional[str] = ..., order_cost: _Optional[str] = ..., available_margin: _Optional[str] = ..., max_leverage: _Optional[int] = ..., estimated_liquidation_price: _Optional[str] = ...) -> None: ...

class ExecutionReport(_message.Message):
    __slots__ = ("order_id", "account_id", "kind", "quantity", "price", "symbol", "side", "leverage", "execution_id", "sequence", "counterparty_account_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    account_id: str
    kind: ExecutionKind
    quantity: str
    price: str
    symbol: str
    side: Side
    leverage: int
    execution_id: str
    sequence: int
    counterparty_account_id: str
    def __init__(self, order_id: _Optional[str] = ..., account_id: _Optional[str] = ..., kind: _Optional[_Union[ExecutionKind, str]] = ..., quantity: _Optional[str] = ..., price: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., leverage: _Optional[int] = ..., execution_id: _Optional[str] = ..., sequence: _Optional[int] = ..., counterparty_account_id: _Optional[str] = ...) -> None: ...

class ExecutionAck(_message.Message):
    __slots__ = ("order_id", "remaining_quantity", "position_quantity", "balance", "available_margin", "duplicate", "cancel_order_ids", "included_in_snapshot")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REMAINING_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    POSITION_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_IN_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    remaining_quantity: str
    position_quantity: str
    balance: str
    available_margin: str
    duplicate: bool
    cancel_order_ids: _containers.RepeatedScalarFieldContainer[str]
    included_in_snapshot: bool
    def __init__(self, order_id: _Optional[str] = ..., remaining_quantity: _Optional[str] = ..., position_quantity: _Optional[str] = ..., balance: _Optional[str] = ..., available_margin: _Optional[str] = ..., duplicate: _Optional[bool] = ..., cancel_order_ids: _Optional[_Iterable[str]] = ..., included_in_snapshot: _Optional[bool] = ...) -> None: ...

class ExecutionFeedMessage(_message.Message):
    __slots__ = ("offset", "report", "with_account_state")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    WITH_ACCOUNT_STATE_FIELD_NUMBER: _ClassVar[int]
    offset: int
    report: ExecutionReport
    with_account_state: bool
    def __init__(self, offset: _Optional[int] = ..., report: _Optional[_Union[ExecutionReport, _Mapping]] = ..., with_account_state: _Optional[bool] = ...) -> None: ...

class ExecutionOutcome(_message.Message):
    __slots__ = ("offset", "code", "message", "ack")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    offset: int
    code: int
    message: str
    ack: ExecutionAck
    def __init__(self, offset: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., ack: _Optional[_Union[ExecutionAck, _Mapping]] = ...) -> None: ...

class ExecutionFeedAck(_message.Message):
    __slots__ = ("acked_through", "outcomes")
    ACKED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    acked_through: int
    outcomes: _containers.RepeatedCompositeFieldContainer[ExecutionOutcome]
    def __init__(self, acked_through: _Optional[int] = ..., outcomes: _Optional[_Iterable[_Union[ExecutionOutcome, _Mapping]]] = ...) -> None: ...
