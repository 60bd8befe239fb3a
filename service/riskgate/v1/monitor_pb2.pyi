from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AlertState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_STATE_UNSPECIFIED: _ClassVar[AlertState]
    ALERT_OPEN: _ClassVar[AlertState]
    ALERT_ACKNOWLEDGED: _ClassVar[AlertState]
    ALERT_ESCALATED: _ClassVar[AlertState]
    ALERT_RESOLVED: _ClassVar[AlertState]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]
ALERT_STATE_UNSPECIFIED: AlertState
ALERT_OPEN: AlertState
ALERT_ACKNOWLEDGED: AlertState
ALERT_ESCALATED: AlertState
ALERT_RESOLVED: AlertState
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity

class AlertTransition(_message.Message):
    __slots__ = ("actor", "action", "note", "at_ms")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    actor: str
    action: str
    note: str
    at_ms: int
    def __init__(self, actor: _Optional[str] = ..., action: _Optional[str] = ..., note: _Optional[str] = ..., at_ms: _Optional[int] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "rule_id", "rule_version", "severity", "state", "symbol", "account_id", "metric", "value", "threshold", "window_ms", "action_taken", "action_version", "audit_id", "created_ms", "updated_ms", "history", "evidence", "cleared_ms")
    class EvidenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    ACTION_TAKEN_FIELD_NUMBER: _ClassVar[int]
    ACTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    CLEARED_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    rule_id: str
    rule_version: int
    severity: Severity
    state: AlertState
    symbol: str
    account_id: str
    metric: str
    value: str
    threshold: str
    window_ms: int
    action_taken: str
    action_version: int
    audit_id: str
    created_ms: int
    updated_ms: int
    history: _containers.RepeatedCompositeFieldContainer[AlertTransition]
    evidence: _containers.ScalarMap[str, str]
    cleared_ms: int
    def __init__(self, id: _Optional[str] = ..., rule_id: _Optional[str] = ..., rule_version: _Optional[int] = ..., severity: _Optional[_Union[Severity, str]] = ..., state: _Optional[_Union[AlertState, str]] = ..., symbol: _Optional[str] = ..., account_id: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[str] = ..., threshold: _Optional[str] = ..., window_ms: _Optional[int] = ..., action_taken: _Optional[str] = ..., action_version: _Optional[int] = ..., audit_id: _Optional[str] = ..., created_ms: _Optional[int] = ..., updated_ms: _Optional[int] = ..., history: _Optional[_Iterable[_Union[AlertTransition, _Mapping]]] = ..., evidence: _Optional[_Mapping[str, str]] = ..., cleared_ms: _Optional[int] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("state", "severity", "rule_id", "symbol", "account_id", "since_ms", "limit")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    state: AlertState
    severity: Severity
    rule_id: str
    symbol: str
    account_id: str
    since_ms: int
    limit: int
    def __init__(self, state: _Optional[_Union[AlertState, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., rule_id: _Optional[str] = ..., symbol: _Optional[str] = ..., account_id: _Optional[str] = ..., since_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class AlertList(_message.Message):
    __slots__ = ("alerts", "total")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    total: int
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class AlertActionRequest(_message.Message):
    __slots__ = ("id", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    note: str
    def __init__(self, id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("id", "scope", "symbol", "metric", "threshold", "release", "window_ms", "confirmation", "action", "cooldown_ms", "severity", "mode", "disabled", "overrides", "version", "updated_by", "updated_ms", "account_id", "min_value")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_MS_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    scope: str
    symbol: str
    metric: str
    threshold: str
    release: str
    window_ms: int
    confirmation: int
    action: str
    cooldown_ms: int
    severity: Severity
    mode: str
    disabled: bool
    overrides: str
    version: int
    updated_by: str
    updated_ms: int
    account_id: str
    min_value: str
    def __init__(self, id: _Optional[str] = ..., scope: _Optional[str] = ..., symbol: _Optional[str] = ..., metric: _Optional[str] = ..., threshold: _Optional[str] = ..., release: _Optional[str] = ..., window_ms: _Optional[int] = ..., confirmation: _Optional[int] = ..., action: _Optional[str] = ..., cooldown_ms: _Optional[int] = ..., severity: _Optional[_Union[Severity, str]] = ..., mode: _Optional[str] = ..., disabled: _Optional[bool] = ..., overrides: _Optional[str] = ..., version: _Optional[int] = ..., updated_by: _Optional[str] = ..., updated_ms: _Optional[int] = ..., account_id: _Optional[str] = ..., min_value: _Optional[str] = ...) -> None: ...

class FundingRate(_message.Message):
    __slots__ = ("symbol", "rate", "interval_ms", "version", "updated_by", "updated_ms")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    rate: str
    interval_ms: int
    version: int
    updated_by: str
    updated_ms: int
    def __init__(self, symbol: _Optional[str] = ..., rate: _Optional[str] = ..., interval_ms: _Optional[int] = ..., version: _Optional[int] = ..., updated_by: _Optional[str] = ..., updated_ms: _Optional[int] = ...) -> None: ...

class ListFundingRatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FundingRateList(_message.Message):
    __slots__ = ("rates",)
    RATES_FIELD_NUMBER: _ClassVar[int]
    rates: _containers.RepeatedCompositeFieldContainer[FundingRate]
    def __init__(self, rates: _Optional[_Iterable[_Union[FundingRate, _Mapping]]] = ...) -> None: ...

class AccountGroup(_message.Message):
    __slots__ = ("account_id", "group", "version", "updated_by", "updated_ms")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    group: str
    version: int
    updated_by: str
    updated_ms: int
    def __init__(self, account_id: _Optional[str] = ..., group: _Optional[str] = ..., version: _Optional[int] = ..., updated_by: _Optional[str] = ..., updated_ms: _Optional[int] = ...) -> None: ...

class ListAccountGroupsRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class AccountGroupList(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[AccountGroup]
    def __init__(self, accounts: _Optional[_Iterable[_Union[AccountGroup, _Mapping]]] = ...) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RuleList(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    def __init__(self, rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ...) -> None: ...

class MonitorStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MonitorStatus(_message.Message):
    __slots__ = ("role", "feed_live", "symbols", "rules", "open_episodes", "accounts", "account_events", "account_cursor", "lag_ms")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    FEED_LIVE_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    OPEN_EPISODES_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_FIELD_NUMBER: _ClassVar[int]
    role: str
    feed_live: bool
    symbols: int
    rules: int
    open_episodes: int
    accounts: int
    account_events: int
    account_cursor: str
    lag_ms: int
    def __init__(self, role: _Optional[str] = ..., feed_live: _Optional[bool] = ..., symbols: _Optional[int] = ..., rules: _Optional[int] = ..., open_episodes: _Optional[int] = ..., accounts: _Optional[int] = ..., account_events: _Optional[int] = ..., account_cursor: _Optional[str] = ..., lag_ms: _Optional[int] = ...) -> None: ...

class AdlRequest(_message.Message):
    __slots__ = ("symbol", "side", "limit")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    side: str
    limit: int
    def __init__(self, symbol: _Optional[str] = ..., side: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class AdlEntry(_message.Message):
    __slots__ = ("account_id", "quantity", "entry_price", "mark", "pnl_fraction", "effective_leverage", "score", "rank", "lights", "margin_balance", "bankruptcy_price")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    PNL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    LIGHTS_FIELD_NUMBER: _ClassVar[int]
    MARGIN_BALANCE_FIELD_NUMBER: _ClassVar[int]
    BANKRUPTCY_PRICE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    quantity: str
    entry_price: str
    mark: str
    pnl_fraction: str
    effective_leverage: str
    score: str
    rank: int
    lights: int
    margin_balance: str
    bankruptcy_price: str
    def __init__(self, account_id: _Optional[str] = ..., quantity: _Optional[str] = ..., entry_price: _Optional[str] = ..., mark: _Optional[str] = ..., pnl_fraction: _Optional[str] = ..., effective_leverage: _Optional[str] = ..., score: _Optional[str] = ..., rank: _Optional[int] = ..., lights: _Optional[int] = ..., margin_balance: _Optional[str] = ..., bankruptcy_price: _Optional[str] = ...) -> None: ...

class AdlRanking(_message.Message):
    __slots__ = ("symbol", "side", "mark", "population", "entries")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    POPULATION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    side: str
    mark: str
    population: int
    entries: _containers.RepeatedCompositeFieldContainer[AdlEntry]
    def __init__(self, symbol: _Optional[str] = ..., side: _Optional[str] = ..., mark: _Optional[str] = ..., population: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[AdlEntry, _Mapping]]] = ...) -> None: ...

class LiquidationRiskRequest(_message.Message):
    __slots__ = ("symbol", "limit")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    limit: int
    def __init__(self, symbol: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class LiquidationRiskEntry(_message.Message):
    __slots__ = ("account_id", "symbol", "quantity", "mark", "liquidation_price", "distance", "margin_ratio")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    LIQUIDATION_PRICE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_RATIO_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    symbol: str
    quantity: str
    mark: str
    liquidation_price: str
    distance: str
    margin_ratio: str
    def __init__(self, account_id: _Optional[str] = ..., symbol: _Optional[str] = ..., quantity: _Optional[str] = ..., mark: _Optional[str] = ..., liquidation_price: _Optional[str] = ..., distance: _Optional[str] = ..., margin_ratio: _Optional[str] = ...) -> None: ...

class LiquidationRiskList(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LiquidationRiskEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[LiquidationRiskEntry, _Mapping]]] = ...) -> None: ...

class InsuranceFund(_message.Message):
    __slots__ = ("balance", "version", "updated_by", "updated_ms")
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    balance: str
    version: int
    updated_by: str
    updated_ms: int
    def __init__(self, balance: _Optional[str] = ..., version: _Optional[int] = ..., updated_by: _Optional[str] = ..., updated_ms: _Optional[int] = ...) -> None: ...

class GetInsuranceFundRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SymbolShock(_message.Message):
    __slots__ = ("symbol", "shock")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SHOCK_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    shock: str
    def __init__(self, symbol: _Optional[str] = ..., shock: _Optional[str] = ...) -> None: ...

class StressRequest(_message.Message):
    __slots__ = ("shock", "symbol_shocks", "grid_from", "grid_to", "grid_step", "group", "top", "historical_lookback_days")
    SHOCK_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_SHOCKS_FIELD_NUMBER: _ClassVar[int]
    GRID_FROM_FIELD_NUMBER: _ClassVar[int]
    GRID_TO_FIELD_NUMBER: _ClassVar[int]
    GRID_STEP_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    HISTORICAL_LOOKBACK_DAYS_FIELD_NUMBER: _ClassVar[int]
    shock: str
    symbol_shocks: _containers.RepeatedCompositeFieldContainer[SymbolShock]
    grid_from: str
    grid_to: str
    grid_step: str
    group: _containers.RepeatedScalarFieldContainer[str]
    top: int
    historical_lookback_days: int
    def __init__(self, shock: _Optional[str] = ..., symbol_shocks: _Optional[_Iterable[_Union[SymbolShock, _Mapping]]] = ..., grid_from: _Optional[str] = ..., grid_to: _Optional[str] = ..., grid_step: _Optional[str] = ..., group: _Optional[_Iterable[str]] = ..., top: _Optional[int] = ..., historical_lookback_days: _Optional[int] = ...) -> None: ...

class StressAccount(_message.Message):
    __slots__ = ("account_id", "balance", "equity", "maintenance", "margin_ratio", "liquidated", "shortfall")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_RATIO_FIELD_NUMBER: _ClassVar[int]
    LIQUIDATED_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    balance: str
    equity: str
    maintenance: str
    margin_ratio: str
    liquidated: bool
    shortfall: str
    def __init__(self, account_id: _Optional[str] = ..., balance: _Optional[str] = ..., equity: _Optional[str] = ..., maintenance: _Optional[str] = ..., margin_ratio: _Optional[str] = ..., liquidated: _Optional[bool] = ..., shortfall: _Optional[str] = ...) -> None: ...

class StressExposure(_message.Message):
    __slots__ = ("account_id", "symbol", "quantity", "shocked_mark", "notional", "share")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SHOCKED_MARK_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    symbol: str
    quantity: str
    shocked_mark: str
    notional: str
    share: str
    def __init__(self, account_id: _Optional[str] = ..., symbol: _Optional[str] = ..., quantity: _Optional[str] = ..., shocked_mark: _Optional[str] = ..., notional: _Optional[str] = ..., share: _Optional[str] = ...) -> None: ...

class StressCover(_message.Message):
    __slots__ = ("amount", "accounts", "fund", "covered", "margin")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    FUND_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    amount: str
    accounts: _containers.RepeatedScalarFieldContainer[str]
    fund: str
    covered: bool
    margin: str
    def __init__(self, amount: _Optional[str] = ..., accounts: _Optional[_Iterable[str]] = ..., fund: _Optional[str] = ..., covered: _Optional[bool] = ..., margin: _Optional[str] = ...) -> None: ...

class StressScenario(_message.Message):
    __slots__ = ("label", "shocks", "shocked_marks", "accounts", "accounts_unvalued", "missing_marks", "total_equity_approx", "total_maintenance_approx", "total_shortfall", "total_shortfall_exact", "accounts_short", "liquidations", "top_shortfalls", "top_exposures", "cover_1", "cover_2")
    class ShockedMarksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SHOCKS_FIELD_NUMBER: _ClassVar[int]
    SHOCKED_MARKS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_UNVALUED_FIELD_NUMBER: _ClassVar[int]
    MISSING_MARKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EQUITY_APPROX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MAINTENANCE_APPROX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SHORTFALL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SHORTFALL_EXACT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_SHORT_FIELD_NUMBER: _ClassVar[int]
    LIQUIDATIONS_FIELD_NUMBER: _ClassVar[int]
    TOP_SHORTFALLS_FIELD_NUMBER: _ClassVar[int]
    TOP_EXPOSURES_FIELD_NUMBER: _ClassVar[int]
    COVER_1_FIELD_NUMBER: _ClassVar[int]
    COVER_2_FIELD_NUMBER: _ClassVar[int]
    label: str
    shocks: _containers.RepeatedCompositeFieldContainer[SymbolShock]
    shocked_marks: _containers.ScalarMap[str, str]
    accounts: int
    accounts_unvalued: int
    missing_marks: _containers.RepeatedScalarFieldContainer[str]
    total_equity_approx: str
    total_maintenance_approx: str
    total_shortfall: str
    total_shortfall_exact: bool
    accounts_short: int
    liquidations: int
    top_shortfalls: _containers.RepeatedCompositeFieldContainer[StressAccount]
    top_exposures: _containers.RepeatedCompositeFieldContainer[StressExposure]
    cover_1: StressCover
    cover_2: StressCover
    def __init__(self, label: _Optional[str] = ..., shocks: _Optional[_Iterable[_Union[SymbolShock, _Mapping]]] = ..., shocked_marks: _Optional[_Mapping[str, str]] = ..., accounts: _Optional[int] = ..., accounts_unvalued: _Optional[int] = ..., missing_marks: _Optional[_Iterable[str]] = ..., total_equity_approx: _Optional[str] = ..., total_maintenance_approx: _Optional[str] = ..., total_shortfall: _Optional[str] = ..., total_shortfall_exact: _Optional[bool] = ..., accounts_short: _Optional[int] = ..., liquidations: _Optional[int] = ..., top_shortfalls: _Optional[_Iterable[_Union[StressAccount, _Mapping]]] = ..., top_exposures: _Optional[_Iterable[_Union[StressExposure, _Mapping]]] = ..., cover_1: _Optional[_Union[StressCover, _Mapping]] = ..., cover_2: _Optional[_Union[StressCover, _Mapping]] = ...) -> None: ...

class StressReport(_message.Message):
    __slots__ = ("scenarios", "insurance_fund", "accounts", "computed_ms")
    SCENARIOS_FIELD_NUMBER: _ClassVar[int]
    INSURANCE_FUND_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_MS_FIELD_NUMBER: _ClassVar[int]
    scenarios: _containers.RepeatedCompositeFieldContainer[StressScenario]
    insurance_fund: InsuranceFund
    accounts: int
    computed_ms: int
    def __init__(self, scenarios: _Optional[_Iterable[_Union[StressScenario, _Mapping]]] = ..., insurance_fund: _Optional[_Union[InsuranceFund, _Mapping]] = ..., accounts: _Optional[int] = ..., computed_ms: _Optional[int] = ...) -> None: ...

class MarkBar(_message.Message):
    __slots__ = ("symbol", "time_ms", "open", "high", "low", "close")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    time_ms: int
    open: str
    high: str
    low: str
    close: str
    def __init__(self, symbol: _Optional[str] = ..., time_ms: _Optional[int] = ..., open: _Optional[str] = ..., high: _Optional[str] = ..., low: _Optional[str] = ..., close: _Optional[str] = ...) -> None: ...

class MarkHistoryImport(_message.Message):
    __slots__ = ("bars",)
    BARS_FIELD_NUMBER: _ClassVar[int]
    bars: _containers.RepeatedCompositeFieldContainer[MarkBar]
    def __init__(self, bars: _Optional[_Iterable[_Union[MarkBar, _Mapping]]] = ...) -> None: ...

class MarkHistoryImportResult(_message.Message):
    __slots__ = ("bars", "minute_bars", "symbols", "first_ms", "last_ms")
    BARS_FIELD_NUMBER: _ClassVar[int]
    MINUTE_BARS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    FIRST_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_MS_FIELD_NUMBER: _ClassVar[int]
    bars: int
    minute_bars: int
    symbols: _containers.RepeatedScalarFieldContainer[str]
    first_ms: int
    last_ms: int
    def __init__(self, bars: _Optional[int] = ..., minute_bars: _Optional[int] = ..., symbols: _Optional[_Iterable[str]] = ..., first_ms: _Optional[int] = ..., last_ms: _Optional[int] = ...) -> None: ...

class MarkHistoryRequest(_message.Message):
    __slots__ = ("symbol", "interval", "from_ms", "to_ms", "limit")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    FROM_MS_FIELD_NUMBER: _ClassVar[int]
    TO_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: str
    from_ms: int
    to_ms: int
    limit: int
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[str] = ..., from_ms: _Optional[int] = ..., to_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class MarkHistory(_message.Message):
    __slots__ = ("symbol", "interval", "bars")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    BARS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: str
    bars: _containers.RepeatedCompositeFieldContainer[MarkBar]
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[str] = ..., bars: _Optional[_Iterable[_Union[MarkBar, _Mapping]]] = ...) -> None: ...

class VarRequest(_message.Message):
    __slots__ = ("confidences", "lookback_days", "horizon_days", "account_id", "top")
    CONFIDENCES_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_DAYS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    confidences: _containers.RepeatedScalarFieldContainer[str]
    lookback_days: int
    horizon_days: int
    account_id: str
    top: int
    def __init__(self, confidences: _Optional[_Iterable[str]] = ..., lookback_days: _Optional[int] = ..., horizon_days: _Optional[int] = ..., account_id: _Optional[str] = ..., top: _Optional[int] = ...) -> None: ...

class VarFigure(_message.Message):
    __slots__ = ("confidence", "var", "expected_shortfall")
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    VAR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHORTFALL_FIELD_NUMBER: _ClassVar[int]
    confidence: str
    var: str
    expected_shortfall: str
    def __init__(self, confidence: _Optional[str] = ..., var: _Optional[str] = ..., expected_shortfall: _Optional[str] = ...) -> None: ...

class VarSubject(_message.Message):
    __slots__ = ("subject", "figures")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    subject: str
    figures: _containers.RepeatedCompositeFieldContainer[VarFigure]
    def __init__(self, subject: _Optional[str] = ..., figures: _Optional[_Iterable[_Union[VarFigure, _Mapping]]] = ...) -> None: ...

class VarReport(_message.Message):
    __slots__ = ("platform", "accounts", "scenarios", "lookback_days", "horizon_days", "first_day", "last_day", "missing_history", "short_history", "accounts_valued", "accounts_left_out", "computed_ms", "net_exposure")
    class NetExposureEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    SCENARIOS_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_DAYS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    FIRST_DAY_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    MISSING_HISTORY_FIELD_NUMBER: _ClassVar[int]
    SHORT_HISTORY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_VALUED_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_MS_FIELD_NUMBER: _ClassVar[int]
    NET_EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    platform: VarSubject
    accounts: _containers.RepeatedCompositeFieldContainer[VarSubject]
    scenarios: int
    lookback_days: int
    horizon_days: int
    first_day: str
    last_day: str
    missing_history: _containers.RepeatedScalarFieldContainer[str]
    short_history: _containers.RepeatedScalarFieldContainer[str]
    accounts_valued: int
    accounts_left_out: int
    computed_ms: int
    net_exposure: _containers.ScalarMap[str, str]
    def __init__(self, platform: _Optional[_Union[VarSubject, _Mapping]] = ..., accounts: _Optional[_Iterable[_Union[VarSubject, _Mapping]]] = ..., scenarios: _Optional[int] = ..., lookback_days: _Optional[int] = ..., horizon_days: _Optional[int] = ..., first_day: _Optional[str] = ..., last_day: _Optional[str] = ..., missing_history: _Optional[_Iterable[str]] = ..., short_history: _Optional[_Iterable[str]] = ..., accounts_valued: _Optional[int] = ..., accounts_left_out: _Optional[int] = ..., computed_ms: _Optional[int] = ..., net_exposure: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BacktestRequest(_message.Message):
    __slots__ = ("account_id", "confidence", "days", "lookback_days", "horizon_days")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_DAYS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    confidence: str
    days: int
    lookback_days: int
    horizon_days: int
    def __init__(self, account_id: _Optional[str] = ..., confidence: _Optional[str] = ..., days: _Optional[int] = ..., lookback_days: _Optional[int] = ..., horizon_days: _Optional[int] = ...) -> None: ...

class BacktestReport(_message.Message):
    __slots__ = ("subject", "confidence", "days", "lookback_days", "exceptions", "exception_days", "kupiec_lr", "rejected", "zone", "first_day", "last_day", "symbols_without_mark")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_DAYS_FIELD_NUMBER: _ClassVar[int]
    EXCEPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXCEPTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    KUPIEC_LR_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    FIRST_DAY_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_WITHOUT_MARK_FIELD_NUMBER: _ClassVar[int]
    subject: str
    confidence: str
    days: int
    lookback_days: int
    exceptions: int
    exception_days: _containers.RepeatedScalarFieldContainer[str]
    kupiec_lr: str
    rejected: bool
    zone: str
    first_day: str
    last_day: str
    symbols_without_mark: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, subject: _Optional[str] = ..., confidence: _Optional[str] = ..., days: _Optional[int] = ..., lookback_days: _Optional[int] = ..., exceptions: _Optional[int] = ..., exception_days: _Optional[_Iterable[str]] = ..., kupiec_lr: _Optional[str] = ..., rejected: _Optional[bool] = ..., zone: _Optional[str] = ..., first_day: _Optional[str] = ..., last_day: _Optional[str] = ..., symbols_without_mark: _Optional[_Iterable[str]] = ...) -> None: ...

class DailyReportRequest(_message.Message):
    __slots__ = ("date",)
    DATE_FIELD_NUMBER: _ClassVar[int]
    date: str
    def __init__(self, date: _Optional[str] = ...) -> None: ...

class DailyReportDocument(_message.Message):
    __slots__ = ("date", "json")
    DATE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    date: str
    json: bytes
    def __init__(self, date: _Optional[str] = ..., json: _Optional[bytes] = ...) -> None: ...
