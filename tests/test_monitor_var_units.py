"""The arithmetic of VaR, expected shortfall and their backtest against the reference's and
hand-computed figures (pure functions, no server)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from riskgate.monitor import var

D = Decimal


def test_kupiec_when_250_days_4_exceptions_at_1pct_then_lr_077_not_rejected_green() -> None:
    # The reference's worked example: LR ~= 0.77, not rejected; green zone.
    lr = var.kupiec(250, 4, 0.01)
    assert round(lr, 2) == 0.77 and lr < var.KUPIEC_CRITICAL
    assert var.zone(250, 4, 0.01) == "green"


@pytest.mark.parametrize(("exceptions", "zone"), [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"),
                                                  (10, "red"), (25, "red")])
def test_zone_when_250_days_at_99pct_then_basel_traffic_light(exceptions: int, zone: str) -> None:
    assert var.zone(250, exceptions, 0.01) == zone


def test_kupiec_when_no_exception_then_finite_and_when_rate_matches_then_zero() -> None:
    # x = 0: LR = -2 x 250 ln(0.99) = 5.025..: rejected (too few exceptions is a failure too).
    assert round(var.kupiec(250, 0, 0.01), 3) == 5.025
    assert var.kupiec(100, 1, 0.01) == 0.0
    assert var.kupiec(10, 10, 0.01) > 0


def test_figures_when_losses_1_to_100_then_tail_by_floor_rule() -> None:
    losses = [D(i) for i in range(1, 101)]
    # N = 100: at 0.95 k = 5 (96..100): VaR 96, ES 98; at 0.99 k = 1: 100; at 0.999 k = max(1, 0) = 1.
    found = var.figures(losses, [D("0.95"), D("0.99"), D("0.999")])
    assert [(f.var, f.expected_shortfall) for f in found] == [(D(96), D(98)), (D(100), D(100)), (D(100), D(100))]


def test_figures_when_every_scenario_gains_then_var_and_es_are_zero() -> None:
    assert [(f.var, f.expected_shortfall) for f in var.figures([D(-5), D(-1)], [D("0.9")])] == [(D(0), D(0))]


def test_figures_when_loss_has_fractions_of_a_cent_then_rounded_up() -> None:
    [figure] = var.figures([D("10.001"), D("1")], [D("0.5")])
    assert (figure.var, figure.expected_shortfall) == (D("10.01"), D("10.01"))


def test_scenarios_when_a_day_lacks_one_symbols_close_then_that_day_is_left_out() -> None:
    closes = {"A": {1: D(100), 2: D(110), 3: D(99), 4: D(99)},
              "B": {1: D(10), 2: D(10), 4: D(12)},  # no close on day 3: days 3 and 4 have no B change
              "C": {}}
    found = var.scenarios(closes, last_day=4, lookback=3, horizon=1)
    assert found.days == (2,) and found.missing == ("C",) and found.short == ("B",)
    assert found.changes == {"A": (D("0.1"),), "B": (D(0),)}


def test_scenarios_when_horizon_two_then_overlapping_two_day_moves() -> None:
    closes = {"A": {1: D(100), 2: D(110), 3: D(121), 4: D(100)}}
    found = var.scenarios(closes, last_day=4, lookback=2, horizon=2)
    # 121 / 100 - 1 = 0.21; 100 / 110 - 1 = -0.0909.. (34 significant digits).
    assert found.days == (3, 4) and found.changes["A"][0] == D("0.21")
    assert found.changes["A"][1] == D("-0.0909090909090909090909090909090909")


def test_backtest_when_history_shorter_than_lookback_then_error_naming_what_it_has() -> None:
    with pytest.raises(var.VarError, match="needs at least 11"):
        var.backtest([D(1)] * 10, D("0.99"), 5, 10)


def test_config_when_mark_history_setting_not_positive_then_refused_naming_it(tmp_path: Path) -> None:
    from riskgate.config import ConfigError, load_config

    path = tmp_path / "riskgate.toml"
    path.write_text("[monitor]\nmark_bar_flush_ms = 0\n")
    with pytest.raises(ConfigError, match="mark_bar_flush_ms must be > 0"):
        load_config(path)


def test_zone_when_thousands_of_days_and_a_confidence_near_half_then_answers_in_log_space() -> None:
    # Exact fractions of a p with 18 places took seconds here; the log-space sum does not. Mean
    # 1,825 exceptions, sd 30.2: 1,850 (+0.8 sd) green, 1,900 (+2.5 sd) yellow, 1,950 (+4.1 sd) red.
    assert [var.zone(3650, x, 0.499999) for x in (1850, 1900, 1950)] == ["green", "yellow", "red"]


def test_backtest_when_loss_above_var_by_less_than_a_cent_then_no_exception() -> None:
    # Window [1, 10.001]: at 0.5 the tail is the largest, VaR 10.001 reported as 10.01; a loss
    # of 10.005 is above the unrounded figure but not above the VaR as reported.
    result = var.backtest([D(1), D("10.001"), D("10.005")], D("0.5"), 1, 2)
    assert result.exceptions == 0


def test_backtest_when_windows_slide_then_same_as_sorting_each_window() -> None:
    import random

    rng = random.Random(5)
    losses = [D(rng.randint(-500, 500)) / 7 for _ in range(400)]
    result = var.backtest(losses, D("0.95"), 200, 100)
    k = var.tail_size(100, D("0.95"))
    expected = [i for i in range(200, 400)
                if losses[i] > max(D(0), sorted(losses[i - 100:i], reverse=True)[k - 1]).quantize(
                    D("0.01"), rounding="ROUND_CEILING")]
    assert list(result.exception_days) == expected and result.exceptions == len(expected)
