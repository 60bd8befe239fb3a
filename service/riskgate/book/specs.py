"""Declarative state records shared by the config file, Redis and the admin API.

msgspec decodes them from TOML (config) and JSON (Redis); decimals travel as strings.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from riskgate.values.codes import BreakerState, Restriction


class TierSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    notional_cap: Decimal
    max_leverage: int
    maintenance_margin_rate: Decimal


# A mark that moves more than this from the last one in one update is not applied without
# confirmation (as venues bound order prices around the mark; see the reference's bands).
DEFAULT_MAX_MARK_MOVE = Decimal("0.1")


class SymbolSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    max_quantity: Decimal
    min_notional: Decimal
    max_order_notional: Decimal
    price_band: Decimal
    taker_fee_rate: Decimal
    tiers: tuple[TierSpec, ...]
    mark_price_max_age_ms: int
    max_position_notional: Decimal | None = None
    open_interest_cap: Decimal | None = None
    min_kyc_level: int = 0
    max_leverage_unqualified: int = 0
    qualified_only: bool = False
    default_leverage: int = 0
    version: int = 0
    # Largest move of the mark (fraction of the last) applied without confirmation; 0 = none.
    max_mark_move: Decimal = DEFAULT_MAX_MARK_MOVE


class PositionSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    symbol: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int


class AccountSnapshot(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Balance and positions as last reported by clearing, plus the fills applied since.

    cutoff_sequence: clearing's cut-off (the last execution sequence its snapshot includes);
    the positions also reflect this account's fills with ordinals up to applied_through (the
    journal of executions, stored beside). A record from clearing reflects none of them
    (applied_through 0): whatever fills came after its cut-off are applied on top of it.
    """

    account_id: str
    balance: Decimal
    positions: tuple[PositionSpec, ...] = ()
    version: int = 0
    cutoff_sequence: int = 0
    cutoff_ms: int = 0
    applied_through: int = 0
    # Fills above the cut-off no longer remembered (journal over its cap): a snapshot cut
    # below this cannot be merged and is refused.
    journal_floor: int = 0


class ControlsSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    account_id: str
    restriction: Restriction = Restriction.NONE
    kyc_level: int = 0
    qualified_investor: bool = False
    max_leverage: int = 0
    max_orders_per_second: int = 0
    max_gross_notional: Decimal | None = None
    version: int = 0
    # Who wrote the record (an operator's name, or "monitor:<rule>") and why: a monitor rule
    # lifts only a restriction it set itself, and the gate names the reason in its decisions.
    set_by: str = ""
    reason: str = ""


class BreakerSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """symbol "" is the platform-wide breaker."""

    symbol: str
    state: BreakerState
    reason: str = ""
    set_by: str = ""
    updated_ms: int = 0
    version: int = 0


class MarkSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    symbol: str
    price: Decimal
    timestamp_ms: int = 0
    version: int = 0


class ReservationSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An accepted order's open reservation, as persisted."""

    order_id: str
    account_id: str
    symbol: str
    side: int
    price: Decimal
    leverage: int
    remaining: Decimal
    reducing_left: Decimal
    increasing_left: Decimal
    cost_left: Decimal
    created_ms: int
    # Whether any fill was reported: the order then certainly reached the matching engine.
    filled: bool = False
    reduce_only: bool = False
    # The initial-margin part of cost_left (None in records written before it was kept).
    margin_left: Decimal | None = None


class ExecutionSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One execution report riskgate applied, remembered for exactly-once (its id) and, for a
    fill that moved the position, for re-applying it over a later clearing snapshot."""

    account_id: str
    order_id: str
    execution_id: str
    at_ms: int
    sequence: int = 0
    # The account's running count of applied executions: a stored account record reflects
    # those up to its applied_through.
    ordinal: int = 0
    symbol: str = ""
    # Signed quantity the fill moved the position by; None when it moved nothing (a closing
    # report, or a fill clearing's snapshot already included).
    quantity: Decimal | None = None
    price: Decimal = Decimal(0)
    leverage: int = 0


class OpenExposure(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An account's open orders on one symbol: quantities per side, and for the parts that add
    risk their notional and the initial margin they reserved, at the symbol's one leverage."""

    symbol: str
    buy: Decimal
    sell: Decimal
    buy_notional: Decimal
    sell_notional: Decimal
    buy_margin: Decimal
    sell_margin: Decimal
    leverage: int


class AccountEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An account's whole state after a write-behind batch moved it: what the monitor follows
    (appended to the account-event stream in the same Lua call as the account record)."""

    account_id: str
    balance: Decimal
    positions: tuple[PositionSpec, ...]
    open_orders: tuple[OpenExposure, ...]
    reserved_cost: Decimal
    at_ms: int
