"""The monitor's account book, column-wise: every account's balance, unrealised PnL and
maintenance margin, and every symbol's holders, in numpy arrays, so that one mark tick
re-values every holder of that symbol in one vectorised pass.

float64 here only screens: which accounts are near a rule's level. What is reported or acted
on is recomputed exactly (exact.py) from the account's record, kept as it came.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from riskgate.book.specs import PositionSpec
from riskgate.values.tiers import TierTable

Indices = npt.NDArray[np.int64]
_START = 64


def _grown(array: npt.NDArray, size: int, fill: float = 0.0) -> npt.NDArray:
    if size <= len(array):
        return array
    grown = np.full(max(size, 2 * len(array)), fill, dtype=array.dtype)
    grown[:len(array)] = array
    return grown


class TierColumns:
    """A symbol's tier table as arrays: maintenance = notional x mmr[k] - cum[k] for the first
    tier k whose cap is at or above the notional (the last one beyond every cap)."""

    def __init__(self, tiers: TierTable) -> None:
        self.caps = np.array([float(t.cap) for t in tiers.tiers])
        self.mmr = np.array([float(t.mmr) for t in tiers.tiers])
        self.cum = np.array([float(t.maintenance_amount) for t in tiers.tiers])
        self.last = len(tiers.tiers) - 1
        self._caps = self.caps.tolist()
        self._mmr = self.mmr.tolist()
        self._cum = self.cum.tolist()

    def maintenance(self, notional: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        k = np.minimum(np.searchsorted(self.caps, notional, side="left"), self.last)
        return notional * self.mmr[k] - self.cum[k]

    def maintenance_of(self, notional: float) -> float:
        """One position's (an account event): no numpy call for a single value."""
        k = min(bisect_left(self._caps, notional), self.last)
        return notional * self._mmr[k] - self._cum[k]


class Holders:
    """One symbol's positions: holder account index, signed quantity, entry price, and the
    unrealised PnL and maintenance each contributed at the last valuation."""

    def __init__(self) -> None:
        self.n = 0
        self.account = np.zeros(_START, dtype=np.int64)
        self.quantity = np.zeros(_START)
        self.entry = np.zeros(_START)
        self.upnl = np.zeros(_START)
        self.mm = np.zeros(_START)
        self.slot: dict[int, int] = {}

    def put(self, account: int, quantity: float, entry: float) -> int:
        slot = self.slot.get(account)
        if slot is None:
            slot = self.n
            self.n += 1
            if self.n > len(self.account):
                self.account = _grown(self.account, self.n)
                self.quantity = _grown(self.quantity, self.n)
                self.entry = _grown(self.entry, self.n)
                self.upnl = _grown(self.upnl, self.n)
                self.mm = _grown(self.mm, self.n)
            self.slot[account] = slot
            self.account[slot] = account
            self.upnl[slot] = self.mm[slot] = 0.0
        self.quantity[slot] = quantity
        self.entry[slot] = entry
        return slot

    def remove(self, account: int) -> tuple[float, float]:
        """Drops the account's position; returns what it contributed (upnl, mm)."""
        slot = self.slot.pop(account)
        contributed = (float(self.upnl[slot]), float(self.mm[slot]))
        last = self.n - 1
        if slot != last:
            moved = int(self.account[last])
            for column in (self.account, self.quantity, self.entry, self.upnl, self.mm):
                column[slot] = column[last]
            self.slot[moved] = slot
        self.n = last
        return contributed

    @property
    def accounts(self) -> Indices:
        return self.account[:self.n]


class AccountColumns:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.version = np.zeros(_START, dtype=np.int64)
        self.balance = np.zeros(_START)
        self.upnl = np.zeros(_START)
        self.mm = np.zeros(_START)
        # The margin ratio at the last valuation (inf: nothing backs what is at risk).
        self.ratio = np.zeros(_START)
        # The account's record as it came (balance and positions, exact), and what it holds.
        self.records: list[tuple[Decimal, tuple[PositionSpec, ...]]] = []
        self.held: list[tuple[str, ...]] = []
        self.holders: dict[str, Holders] = {}
        self.tiers: dict[str, TierColumns] = {}
        self.marks: dict[str, float] = {}
        # Exact open interest per symbol (long, short), from the records.
        self.open_interest: dict[str, tuple[Decimal, Decimal]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _account(self, account_id: str) -> int:
        index = self.index.get(account_id)
        if index is None:
            index = len(self.ids)
            self.ids.append(account_id)
            self.index[account_id] = index
            self.records.append((Decimal(0), ()))
            self.held.append(())
            size = index + 1
            self.version = _grown(self.version, size)
            self.balance = _grown(self.balance, size)
            self.upnl = _grown(self.upnl, size)
            self.mm = _grown(self.mm, size)
            self.ratio = _grown(self.ratio, size)
        return index

    def put(self, account_id: str, version: int, balance: Decimal, positions: Sequence[PositionSpec]) -> int | None:
        """Applies an account's state; None when an equal or newer version is held already."""
        index = self._account(account_id)
        if version <= self.version[index] and self.version[index]:
            return None
        self.version[index] = version
        kept = tuple(p for p in positions if p.quantity)
        for sign, held in ((-1, self.records[index][1]), (1, kept)):
            for position in held:
                long, short = self.open_interest.get(position.symbol, (Decimal(0), Decimal(0)))
                if position.quantity > 0:
                    long += sign * position.quantity
                else:
                    short -= sign * position.quantity
                self.open_interest[position.symbol] = (long, short)
        self.records[index] = (balance, kept)
        self.balance[index] = float(balance)
        now_held = tuple(p.symbol for p in kept)
        for symbol in self.held[index]:
            if symbol not in now_held:
                self.holders[symbol].remove(index)
        self.held[index] = now_held
        upnl = mm = 0.0
        for position in kept:
            holders = self.holders.get(position.symbol)
            if holders is None:
                holders = self.holders[position.symbol] = Holders()
            quantity = float(position.quantity)
            entry = float(position.entry_price)
            slot = holders.put(index, quantity, entry)
            mark = self.marks.get(position.symbol)
            tiers = self.tiers.get(position.symbol)
            position_upnl = position_mm = 0.0
            if mark is not None and tiers is not None:
                position_upnl = quantity * (mark - entry)
                position_mm = tiers.maintenance_of(abs(quantity) * mark)
            holders.upnl[slot] = position_upnl
            holders.mm[slot] = position_mm
            upnl += position_upnl
            mm += position_mm
        # Re-summed from the positions (not by deltas): what drifted in floats is reset here.
        self.upnl[index] = upnl
        self.mm[index] = mm
        margin_balance = float(balance) + upnl
        self.ratio[index] = 0.0 if mm <= 0 else (mm / margin_balance if margin_balance > 0 else np.inf)
        return index

    def set_tiers(self, symbol: str, tiers: TierTable) -> None:
        self.tiers[symbol] = TierColumns(tiers)

    def tick(self, symbol: str, mark: float) -> Indices:
        """Re-values every holder of symbol at mark; returns their account indices."""
        self.marks[symbol] = mark
        holders = self.holders.get(symbol)
        tiers = self.tiers.get(symbol)
        if holders is None or tiers is None or not holders.n:
            return np.zeros(0, dtype=np.int64)
        n = holders.n
        quantity = holders.quantity[:n]
        upnl = quantity * (mark - holders.entry[:n])
        mm = tiers.maintenance(np.abs(quantity) * mark)
        accounts = holders.account[:n]
        # Each account holds a symbol once: plain fancy-indexed updates are exact per index.
        self.upnl[accounts] += upnl - holders.upnl[:n]
        self.mm[accounts] += mm - holders.mm[:n]
        holders.upnl[:n] = upnl
        holders.mm[:n] = mm
        self._ratio(accounts)
        return accounts

    def _ratio(self, accounts: Indices) -> None:
        margin_balance = self.balance[accounts] + self.upnl[accounts]
        mm = self.mm[accounts]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(margin_balance > 0, mm / margin_balance, np.inf)
        self.ratio[accounts] = np.where(mm > 0, ratio, 0.0)

    def share_of(self, symbol: str, accounts: Indices
                 ) -> tuple[Indices, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """As `share`, for these accounts only (those holding the symbol), against the exact
        open interest kept: what an account event needs, without a pass over every holder."""
        holders = self.holders.get(symbol)
        if holders is None:
            empty = np.zeros(0)
            return np.zeros(0, dtype=np.int64), empty, empty
        slots = [slot for slot in map(holders.slot.get, accounts.tolist()) if slot is not None]
        if not slots:
            empty = np.zeros(0)
            return np.zeros(0, dtype=np.int64), empty, empty
        at = np.array(slots, dtype=np.int64)
        long, short = self.open_interest.get(symbol, (Decimal(0), Decimal(0)))
        open_interest = float(max(long, short))
        size = np.abs(holders.quantity[at])
        shares = size / open_interest if open_interest > 0 else np.zeros(len(at))
        return holders.account[at], shares, size * self.marks.get(symbol, 0.0)

    def share(self, symbol: str) -> tuple[Indices, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Each holder's position over the symbol's open interest (the larger side), and its
        notional at the mark: (account indices, shares, notionals)."""
        holders = self.holders.get(symbol)
        if holders is None or not holders.n:
            empty = np.zeros(0)
            return np.zeros(0, dtype=np.int64), empty, empty
        quantity = holders.quantity[:holders.n]
        open_interest = max(float(quantity[quantity > 0].sum()), float(-quantity[quantity < 0].sum()))
        size = np.abs(quantity)
        shares = size / open_interest if open_interest > 0 else np.zeros(holders.n)
        return holders.accounts, shares, size * self.marks.get(symbol, 0.0)
