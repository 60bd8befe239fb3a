"""stress.py on its own: a tiny column-wise book, hand-computed figures, no Redis."""

from __future__ import annotations

from decimal import Decimal

import pytest

from riskgate.book.specs import PositionSpec
from riskgate.monitor import stress
from riskgate.monitor.columns import AccountColumns
from riskgate.monitor.exact import Market
from riskgate.values.tiers import TierTable
from tests.support import BTC_TIERS

D = Decimal
BTC = TierTable.derive([(D(c), lev, D(m)) for c, lev, m in BTC_TIERS])
# BTC tiers: 1 up to 50,000 at 0.4% (cum 0); 2 up to 250,000 at 0.5% (cum 50); 3 up to 1,000,000
# at 1% (cum 1,300).


def market(mark: str | None) -> Market:
    return Market(tiers=BTC, tick=D("0.1"), lot=D("0.001"), mark=D(mark) if mark else None, mark_ms=0,
                  max_age_ms=60_000)


def book() -> AccountColumns:
    columns = AccountColumns()
    columns.put("thin", 1, D("600"), [PositionSpec("BTCUSDT", D("1"), D("50000"), 10)])
    columns.put("safe", 1, D("1000"), [PositionSpec("BTCUSDT", D("1"), D("50000"), 10)])
    columns.put("short", 1, D("5000"), [PositionSpec("BTCUSDT", D("-2"), D("50000"), 10)])
    columns.put("blind", 1, D("100"), [PositionSpec("BTCUSDT", D("1"), D("50000"), 10),
                                       PositionSpec("NOMARK", D("1"), D("10"), 10)])
    columns.put("cash", 1, D("7"), [])
    return columns


def test_stress_when_one_percent_down_then_exact_figures_and_the_live_columns_untouched() -> None:
    columns = book()
    before = (columns.upnl.copy(), columns.mm.copy(), columns.holders["BTCUSDT"].quantity.copy())
    markets = {"BTCUSDT": market("50000"), "NOMARK": market(None)}
    scenario = stress.uniform(D("-0.01"), ["BTCUSDT"])
    [result] = stress.run(stress.snapshot(columns), markets, [scenario], top=10, fund=D("1"))
    # Mark 50,000 x 0.99 = 49,500.
    # thin:  600 + 1 x (49,500 - 50,000) = 100; maintenance 49,500 x 0.004 = 198 >= 100: liquidated, no shortfall.
    # safe:  1,000 - 500 = 500; 198 < 500: not liquidated.
    # short: 5,000 + (-2) x (49,500 - 50,000) = 6,000; notional 99,000: tier 2, 99,000 x 0.005 - 50 = 445.
    # blind: holds NOMARK (no mark): left out. cash: 7, nothing at risk.
    assert result.marks == {"BTCUSDT": D("49500")}
    assert (result.accounts, result.unvalued, result.missing_marks) == (4, 1, ("NOMARK",))
    assert result.liquidations == 1
    assert (result.total_shortfall, result.shortfall_exact, result.accounts_short) == (D(0), True, 0)
    assert result.total_equity == D("6607.00")  # 100 + 500 + 6,000 + 7
    assert result.total_maintenance == D("841.00")  # 198 + 198 + 445
    assert result.top_shortfalls == ()
    assert (result.cover_1.amount, result.cover_1.covered, result.cover_1.margin) == (D(0), True, D(1))
    thin = stress.account_stress("thin", *columns.records[columns.index["thin"]], markets, result.marks)
    assert (thin.equity, thin.maintenance, thin.liquidated, thin.shortfall, thin.ratio_shown) == (
        D(100), D(198), True, D(0), "1.98")
    # Exposures at 49,500: short 2 x 49,500 = 99,000 (2 of the longest side, 3: share 0.666...), then the
    # three 1 BTC positions (49,500 each; ids in order).
    assert [(e.account_id, e.notional) for e in result.top_exposures] == [
        ("short", D("99000")), ("blind", D("49500")), ("safe", D("49500")), ("thin", D("49500"))]
    assert result.top_exposures[0].share == D(2) / D(3)
    for live, copied in zip((columns.upnl, columns.mm, columns.holders["BTCUSDT"].quantity), before, strict=True):
        assert (live == copied).all()


def test_stress_when_forty_percent_down_then_shortfalls_sorted_and_covers_against_the_fund() -> None:
    columns = book()
    markets = {"BTCUSDT": market("50000"), "NOMARK": market(None)}
    [result] = stress.run(stress.snapshot(columns), markets, [stress.uniform(D("-0.4"), ["BTCUSDT"])], top=1,
                          fund=D("19500"))
    # Mark 30,000. thin: 600 - 20,000 = -19,400 (shortfall 19,400); safe: 1,000 - 20,000 = -19,000
    # (19,000); short: 5,000 + 40,000 = 45,000 (notional 60,000: 60,000 x 0.005 - 50 = 250).
    assert (result.total_shortfall, result.accounts_short, result.liquidations) == (D("38400"), 2, 2)
    assert [(a.account_id, a.shortfall, a.ratio_shown) for a in result.top_shortfalls] == [
        ("thin", D("19400"), "inf")]
    assert (result.cover_1.amount, result.cover_1.accounts, result.cover_1.covered, result.cover_1.margin) == (
        D("19400"), ("thin",), True, D("100"))
    assert (result.cover_2.amount, result.cover_2.accounts, result.cover_2.covered, result.cover_2.margin) == (
        D("38400"), ("thin", "safe"), False, D("-18900"))


def test_grid_when_minus_half_to_half_by_five_percent_then_21_shocks_in_order() -> None:
    shocks = stress.grid(D("-0.5"), D("0.5"), D("0.05"))
    assert len(shocks) == 21 and shocks[0] == D("-0.5") and shocks[10] == 0 and shocks[-1] == D("0.5")


@pytest.mark.parametrize("text", ["-1", "-1.5", "11", "abc", ""])
def test_parse_shock_when_out_of_range_or_malformed_then_error_names_the_field(text: str) -> None:
    with pytest.raises(stress.StressError) as caught:
        stress.parse_shock("shock", text)
    assert caught.value.field == "shock"


def test_stress_benchmark_when_run_small_then_it_prints_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    from loadtest.stress import main

    assert main(["--accounts", "2000", "--symbols", "5", "--grid", "-0.1:0.1:0.05"]) == 0
    out = capsys.readouterr().out
    assert "2,000 accounts x 3 positions over 5 symbols" in out and "5 scenarios" in out
    assert len(out.splitlines()) == 3 + 5


def test_stress_when_a_random_book_then_totals_and_counts_match_every_account_computed_exactly() -> None:
    from loadtest.stress import synthetic

    columns, markets = synthetic(3000, 3, 6, seed=11)
    book = stress.snapshot(columns)
    scenarios = [stress.uniform(shock, sorted(markets)) for shock in stress.grid(D("-0.3"), D("0.3"), D("0.1"))]
    scenarios.append(stress.Scenario(label="mixed", shocks={"SYM00USDT": D("-0.5"), "SYM03USDT": D("0.25")}))
    for scenario, result in zip(scenarios, stress.run(book, markets, scenarios, top=5), strict=True):
        marks = stress.shocked_marks(markets, scenario)
        every = [stress.account_stress(book.ids[i], *book.records[i], markets, marks) for i in range(len(book.ids))]
        assert result.total_shortfall == sum((a.shortfall for a in every), D(0)) and result.shortfall_exact
        assert result.liquidations == sum(a.liquidated for a in every)
        assert result.accounts_short == sum(a.shortfall > 0 for a in every)
        assert abs(result.total_equity - sum(a.equity for a in every)) <= D("0.01")
        assert abs(result.total_maintenance - sum(a.maintenance for a in every)) <= D("0.01")
        ranked = sorted(every, key=lambda a: (-a.shortfall, a.account_id))
        assert list(result.top_shortfalls) == [a for a in ranked[:5] if a.shortfall > 0]
        notionals = sorted((abs(p.quantity) * marks[p.symbol] for _, ps in book.records for p in ps), reverse=True)
        assert [e.notional for e in result.top_exposures] == notionals[:5]
