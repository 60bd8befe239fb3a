"""Runtime state mirrored in memory: symbols, marks, breakers, accounts, reservations."""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from riskgate.book.flow import OrderFlow
from riskgate.book.ratelimit import TokenBucket
from riskgate.book.specs import (
    AccountEvent,
    AccountSnapshot,
    BreakerSpec,
    ControlsSpec,
    ExecutionSpec,
    MarkSpec,
    OpenExposure,
    PositionSpec,
    ReservationSpec,
    SymbolSpec,
)
from riskgate.values.codes import BreakerState, Side
from riskgate.values.fixed import fixed_symbol, money_units, price_units, quantity_units
from riskgate.values.money import ONE, ZERO
from riskgate.values.tiers import TierTable

NORMAL_BREAKER = BreakerSpec(symbol="", state=BreakerState.NORMAL)
# The controls of every account that has none of its own (its account_id is empty: readers that
# report controls name the account themselves).
DEFAULT_CONTROLS = ControlsSpec(account_id="")
DEFAULT_LEVERAGE_CEILING = 20


def shard_of(account_id: str, shard_count: int) -> int:
    """The shard that owns account_id among shard_count: crc32 of its UTF-8 bytes modulo the
    count, the same in every process and release. The gate (Book.owns) and the gateway's
    client (riskgate.client) both use this one function."""
    if shard_count < 1:
        raise ValueError(f"shard_count must be at least 1, got {shard_count}")
    return zlib.crc32(account_id.encode()) % shard_count


class SymbolState:
    __slots__ = (
        "band_ceiling",
        "band_floor",
        "breaker",
        "default_leverage",
        "fixed",
        "fixed_mark",
        "long_open_interest",
        "mark",
        "pending_long_increase",
        "pending_short_increase",
        "short_open_interest",
        "spec",
        "tiers",
    )

    def __init__(self, spec: SymbolSpec, tiers: TierTable) -> None:
        self.replace_spec(spec, tiers)
        self.mark: MarkSpec | None = None
        # The mark in price units, with the MarkSpec it was taken from (the check's cache,
        # valid while that very object is the mark).
        self.fixed_mark: tuple[MarkSpec, int | None] | None = None
        self.breaker = NORMAL_BREAKER
        # Open interest as seen by the accounts this process owns, in base quantity.
        self.long_open_interest = ZERO
        self.short_open_interest = ZERO
        # Risk-increasing quantity of open orders, which counts towards the cap at once.
        self.pending_long_increase = ZERO
        self.pending_short_increase = ZERO

    def replace_spec(self, spec: SymbolSpec, tiers: TierTable) -> None:
        self.spec = spec
        self.tiers = tiers
        # Multipliers of the mark that bound buy and sell prices.
        self.band_ceiling = ONE + spec.price_band
        self.band_floor = ONE - spec.price_band
        self.default_leverage = spec.default_leverage or min(
            DEFAULT_LEVERAGE_CEILING, tiers.tiers[0].max_leverage
        )
        # The spec in scaled integers for the check's fast path (None: decimal only).
        self.fixed = fixed_symbol(spec, tiers, self.band_ceiling, self.band_floor)


class Position:
    """A position. Quantity and entry price are also held in fixed-point units (values.fixed),
    converted once whenever they change, so the check's fast path never converts them; a
    value that does not fit its scale has units None (the check then decides in decimals)."""

    __slots__ = ("_entry_price", "_quantity", "entry_units", "leverage", "quantity_units")

    def __init__(self, quantity: Decimal, entry_price: Decimal, leverage: int) -> None:
        self.quantity = quantity
        self.entry_price = entry_price
        self.leverage = leverage

    @property
    def quantity(self) -> Decimal:
        return self._quantity

    @quantity.setter
    def quantity(self, value: Decimal) -> None:
        self._quantity = value
        self.quantity_units = quantity_units(value)

    @property
    def entry_price(self) -> Decimal:
        return self._entry_price

    @entry_price.setter
    def entry_price(self, value: Decimal) -> None:
        self._entry_price = value
        self.entry_units = price_units(value)


class Reservation:
    """What an accepted order holds until it fills, is canceled, expires or is rejected."""

    __slots__ = (
        "cost_left",
        "created_ms",
        "filled",
        "increasing_left",
        "leverage",
        "margin_left",
        "order_id",
        "persisted",
        "price",
        "reduce_only",
        "reducing_left",
        "remaining",
        "side",
        "symbol",
    )

    def __init__(
        self,
        order_id: str,
        symbol: str,
        side: Side,
        price: Decimal,
        leverage: int,
        reducing: Decimal,
        increasing: Decimal,
        cost: Decimal,
        created_ms: int,
        reduce_only: bool = False,
        margin: Decimal = ZERO,
    ) -> None:
        self.order_id = order_id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.leverage = leverage
        self.reducing_left = reducing
        self.increasing_left = increasing
        self.remaining = reducing + increasing
        self.cost_left = cost
        # The initial-margin part of cost_left: what a tier change re-measures.
        self.margin_left = margin
        self.created_ms = created_ms
        self.filled = False
        # A reduce-only order never adds risk (the matching engine enforces it): it reserves
        # nothing, ever, and does not bind the symbol's leverage.
        self.reduce_only = reduce_only
        # Whether Redis may hold it: one opened and closed between two write-behind batches
        # never needs to be written at all.
        self.persisted = False

    def to_spec(self, account_id: str) -> ReservationSpec:
        return ReservationSpec(
            order_id=self.order_id,
            account_id=account_id,
            symbol=self.symbol,
            side=int(self.side),
            price=self.price,
            leverage=self.leverage,
            remaining=self.remaining,
            reducing_left=self.reducing_left,
            increasing_left=self.increasing_left,
            cost_left=self.cost_left,
            created_ms=self.created_ms,
            filled=self.filled,
            reduce_only=self.reduce_only,
            margin_left=self.margin_left,
        )

    @classmethod
    def from_spec(cls, spec: ReservationSpec) -> Reservation:
        reservation = cls(
            spec.order_id,
            spec.symbol,
            Side(spec.side),
            spec.price,
            spec.leverage,
            spec.reducing_left,
            spec.increasing_left,
            spec.cost_left,
            spec.created_ms,
            spec.reduce_only,
            spec.margin_left if spec.margin_left is not None else min(
                spec.cost_left, spec.increasing_left * spec.price / spec.leverage),
        )
        reservation.remaining = spec.remaining
        reservation.filled = spec.filled
        reservation.persisted = True
        return reservation


    @property
    def held(self) -> Decimal:
        """What the order can still move the position by, as far as riskgate knows: a
        reduce-only order counts only what it can still reduce."""
        return self.reducing_left + self.increasing_left


class OpenOrders:
    """Per account and symbol: quantity of open orders on each side, and the one leverage of
    the account and symbol while orders that may add risk (not reduce-only) are open. Per
    side also the notional of their risk-increasing parts and the initial margin reserved
    for it, so valuation can hold them to the tier their side's worst case falls in now."""

    __slots__ = ("binding_orders", "buy", "buy_margin", "buy_notional", "fixed", "leverage", "sell", "sell_margin",
                 "sell_notional")

    def __init__(self) -> None:
        self.buy = ZERO
        self.sell = ZERO
        self.buy_notional = ZERO
        self.sell_notional = ZERO
        self.buy_margin = ZERO
        self.sell_margin = ZERO
        self.binding_orders = 0
        self.leverage = 0
        # The six figures above as last converted by the check, with their units (see Position).
        self.fixed: tuple[tuple[Decimal, ...], tuple[int | None, ...]] | None = None


class Fill:
    """A fill that moved a position after clearing's cut-off: re-applied over the next
    snapshot unless that snapshot includes it (sequence <= its cut-off)."""

    __slots__ = ("leverage", "ordinal", "price", "quantity", "sequence", "symbol")

    def __init__(self, sequence: int, ordinal: int, symbol: str, quantity: Decimal, price: Decimal,
                 leverage: int) -> None:
        self.sequence = sequence
        self.ordinal = ordinal
        self.symbol = symbol
        self.quantity = quantity
        self.price = price
        self.leverage = leverage


class Account:
    __slots__ = (
        "_balance",
        "account_id",
        "balance_units",
        "bucket",
        "controls",
        "cutoff_ms",
        "cutoff_sequence",
        "journal",
        "journal_floor",
        "open_by_symbol",
        "orders",
        "ordinal",
        "positions",
        "recent_order_ids",
        "record_version",
        "reserved_cost",
        "reserved_fixed",
        "snapshot_version",
    )

    def __init__(self, account_id: str, controls: ControlsSpec, rate: int, now_mono: float) -> None:
        self.account_id = account_id
        self.balance = ZERO
        self.positions: dict[str, Position] = {}
        self.snapshot_version = 0
        # The version of the last stored record (an operator's or clearing's snapshot) the book
        # applied; snapshot_version moves on with this process's own writes of the account too.
        self.record_version = 0
        self.controls = controls
        self.bucket = TokenBucket(rate, now_mono)
        self.orders: dict[str, Reservation] = {}
        self.open_by_symbol: dict[str, OpenOrders] = {}
        self.reserved_cost = ZERO
        # (reserved_cost, its money units) as the check last converted it: it changes with every
        # order and fill, more often than the account is checked, so it is converted lazily.
        self.reserved_fixed: tuple[Decimal, int | None] | None = None
        # Closed order id -> when it closed (monotonic s), for the duplicate window. The book's
        # closed_queue frees entries once they are older than the window.
        self.recent_order_ids: dict[str, float] = {}
        # Clearing's cut-off of the balance and positions, and the fills since (sequence order
        # of application), which a later snapshot re-applies unless it includes them.
        self.cutoff_sequence = 0
        self.cutoff_ms = 0
        self.journal: list[Fill] = []
        self.journal_floor = 0
        # Executions applied to this account so far (each gets the next number).
        self.ordinal = 0

    # The balance is also held in money units, converted once per change (see Position).
    @property
    def balance(self) -> Decimal:
        return self._balance

    @balance.setter
    def balance(self, value: Decimal) -> None:
        self._balance = value
        self.balance_units = money_units(value)

    def snapshot(self) -> AccountSnapshot:
        return AccountSnapshot(
            account_id=self.account_id,
            balance=self.balance,
            positions=tuple(
                PositionSpec(symbol=s, quantity=p.quantity, entry_price=p.entry_price, leverage=p.leverage)
                for s, p in sorted(self.positions.items())
            ),
            version=self.snapshot_version,
            cutoff_sequence=self.cutoff_sequence,
            cutoff_ms=self.cutoff_ms,
            applied_through=self.ordinal,
            journal_floor=self.journal_floor,
        )

    def event(self, at_ms: int) -> AccountEvent:
        snapshot = self.snapshot()
        return AccountEvent(
            account_id=self.account_id,
            balance=self.balance,
            positions=snapshot.positions,
            open_orders=tuple(
                OpenExposure(symbol=symbol, buy=o.buy, sell=o.sell, buy_notional=o.buy_notional,
                             sell_notional=o.sell_notional, buy_margin=o.buy_margin, sell_margin=o.sell_margin,
                             leverage=o.leverage)
                for symbol, o in sorted(self.open_by_symbol.items()) if o.buy or o.sell
            ),
            reserved_cost=self.reserved_cost,
            at_ms=at_ms,
        )


def _nothing() -> None:
    return None


class Book:
    """Everything one process knows, keyed for O(1) access per order."""

    def __init__(
        self,
        default_orders_per_second: int,
        duplicate_window_s: float,
        shard_index: int = 0,
        shard_count: int = 1,
        execution_window_s: float = 3600.0,
    ) -> None:
        self.symbols: dict[str, SymbolState] = {}
        self.accounts: dict[str, Account] = {}
        self.platform_breaker = NORMAL_BREAKER
        self.default_orders_per_second = default_orders_per_second
        self.duplicate_window_s = duplicate_window_s
        # Monotonic time until which the Redis link is proven: the store moves it forward on
        # every answered round trip (ping, change-feed pong, write). Past it, risk-increasing
        # orders are refused; the check compares it with its own clock, so the bound holds
        # however late the store's tasks run. 0 until the book is loaded.
        self.fresh_until = 0.0
        self.unavailable_cause = "state not loaded yet"
        # Every closed order id, oldest first: (closed at, account, order id). Bounded by time,
        # not by count: entries leave once older than the duplicate window.
        self.closed_queue: deque[tuple[float, str, str]] = deque()
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.shard_label = f"shard {shard_index} of {shard_count}"
        # Accounts and orders whose Redis copy is behind memory; the store drains them.
        self.dirty_accounts: set[str] = set()
        self.dirty_orders: set[tuple[str, str]] = set()
        # Exactly-once: every execution id applied (account, order, id) -> when (wall ms), kept
        # for the window and longer while its fill is in an account's journal.
        self.execution_window_ms = int(execution_window_s * 1000)
        # key -> (applied at ms, sequence, the account's ordinal for it)
        self.executions: dict[str, tuple[int, int, int]] = {}
        self.execution_queue: deque[tuple[int, str, str, int]] = deque()
        # Written with the next batch (in the same MULTI as the state they moved), or deleted.
        self.dirty_executions: dict[str, ExecutionSpec] = {}
        self.expired_executions: set[str] = set()
        self.on_dirty: Callable[[], None] = _nothing
        # Each account's order flow since the last batch (for the monitor): the store writes it
        # with the next batch; the first decision or report after a batch wakes the writer.
        self.flow = OrderFlow(self.accounts, self._flow_started, self.symbols)

    def _flow_started(self) -> None:
        self.on_dirty()  # looked up at call time: the store sets on_dirty after the book is made

    def unavailable_message(self, now_mono: float) -> str:
        if not self.fresh_until:
            return f"{self.unavailable_cause}: failing closed"
        late_ms = int((now_mono - self.fresh_until) * 1000)
        return f"{self.unavailable_cause} (state unproven for {late_ms} ms past its bound): failing closed"

    def record_closed(self, account: Account, order_id: str, now_mono: float) -> None:
        account.recent_order_ids[order_id] = now_mono
        self.closed_queue.append((now_mono, account.account_id, order_id))
        self.expire_closed(now_mono)

    def expire_closed(self, now_mono: float) -> int:
        """Frees closed ids older than the duplicate window; returns how many."""
        queue = self.closed_queue
        horizon = now_mono - self.duplicate_window_s
        freed = 0
        while queue and queue[0][0] < horizon:
            closed_at, account_id, order_id = queue.popleft()
            account = self.accounts.get(account_id)
            # An id reused after its window has a newer entry further back: keep that one.
            if account is not None and account.recent_order_ids.get(order_id) == closed_at:
                del account.recent_order_ids[order_id]
            freed += 1
        return freed

    def owns(self, account_id: str) -> bool:
        """Stable account-to-shard assignment: crc32 is the same in every process and release."""
        return self.shard_count == 1 or shard_of(account_id, self.shard_count) == self.shard_index

    def mark_account_dirty(self, account_id: str) -> None:
        self.dirty_accounts.add(account_id)
        self.on_dirty()

    def mark_order_dirty(self, account_id: str, order_id: str) -> None:
        self.dirty_orders.add((account_id, order_id))
        self.on_dirty()

    def breakers(self) -> list[BreakerSpec]:
        symbol_breakers = [s.breaker for s in self.symbols.values() if s.breaker.state != BreakerState.NORMAL]
        return [self.platform_breaker, *sorted(symbol_breakers, key=lambda b: b.symbol)]


def ensure_account(book: Book, account_id: str) -> Account:
    account = book.accounts.get(account_id)
    if account is None:
        # Most accounts never get controls of their own: they share one default record (a
        # record per account was 112 bytes of each account's memory).
        account = Account(account_id, DEFAULT_CONTROLS, book.default_orders_per_second, time.monotonic())
        book.accounts[account_id] = account
    return account
