"""The column-wise book against an independent exact recomputation, after every step of a
random sequence of account changes and mark ticks: the float screen never misses an account
the exact figures put at or above a level, and the exact open interest it keeps is the sum
of the records."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskgate.book.specs import PositionSpec
from riskgate.monitor.account_watch import SCREEN_SLACK
from riskgate.monitor.columns import AccountColumns
from riskgate.monitor.exact import Market, account_figures
from riskgate.values.tiers import TierTable
from tests.support import BTC_TIERS

D = Decimal
NOW = 1_000_000
ETH_TIERS = (("10000", 100, "0.005"), ("100000", 75, "0.0065"), ("500000", 50, "0.01"), ("1000000", 40, "0.02"),
             ("2000000", 25, "0.05"), ("10000000", 20, "0.1"))
TIERS = {"BTCUSDT": TierTable.derive([(D(c), lev, D(m)) for c, lev, m in BTC_TIERS]),
         "ETHUSDT": TierTable.derive([(D(c), lev, D(m)) for c, lev, m in ETH_TIERS])}
LEVELS = (D("0.8"), D("0.9"), D(1))

accounts = st.sampled_from([f"a{i}" for i in range(6)])
symbols = st.sampled_from(sorted(TIERS))
quantity = st.decimals(min_value=-50, max_value=50, places=3, allow_nan=False, allow_infinity=False)
price = st.decimals(min_value=100, max_value=90_000, places=1, allow_nan=False, allow_infinity=False)
balance = st.decimals(min_value=0, max_value=2_000_000, places=2, allow_nan=False, allow_infinity=False)
position = st.tuples(symbols, quantity, price)
put = st.tuples(st.just("put"), accounts, balance, st.lists(position, max_size=2, unique_by=lambda p: p[0]))
tick = st.tuples(st.just("tick"), symbols, price)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.one_of(put, tick), min_size=1, max_size=40))
def test_columns_when_random_changes_and_ticks_then_screen_never_misses_an_exact_crossing(steps: list) -> None:
    columns = AccountColumns()
    for symbol, tiers in TIERS.items():
        columns.set_tiers(symbol, tiers)
    marks: dict[str, Decimal] = {}
    records: dict[str, tuple[Decimal, tuple[PositionSpec, ...]]] = {}
    version = 0
    for step in steps:
        if step[0] == "tick":
            _, symbol, mark = step
            marks[symbol] = mark
            columns.tick(symbol, float(mark))
        else:
            _, account, cash, held = step
            version += 1
            positions = tuple(PositionSpec(s, q, p, 10) for s, q, p in held)
            records[account] = (cash, positions)
            columns.put(account, version, cash, positions)
        markets = {s: Market(tiers=TIERS[s], tick=D("0.1"), lot=D("0.001"), mark=m, mark_ms=NOW, max_age_ms=60_000)
                   for s, m in marks.items()}
        for account, (cash, positions) in records.items():
            index = columns.index[account]
            exact = account_figures(account, cash, positions, markets, NOW)
            if exact.missing_mark:
                continue  # not judged (the watcher skips it too)
            for level in LEVELS:
                if exact.ratio_at_least(level):
                    assert columns.ratio[index] >= float(level) * (1 - SCREEN_SLACK), (account, level, exact)
            assert np.isclose(columns.mm[index], float(exact.maintenance), rtol=1e-9, atol=1e-6)
        for symbol in TIERS:
            held = [p.quantity for _, ps in records.values() for p in ps if p.symbol == symbol]
            long = sum((q for q in held if q > 0), D(0))
            short = -sum((q for q in held if q < 0), D(0))
            assert columns.open_interest.get(symbol, (D(0), D(0))) == (long, short)
