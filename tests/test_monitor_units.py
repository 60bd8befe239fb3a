"""The monitor's pure parts: the windowed move and the rule's decision."""

from __future__ import annotations

from decimal import Decimal

from riskgate.monitor.marks import MarkHistory
from riskgate.monitor.volatility import Tracker, Verdict
from tests.monitor_support import vol_rule


def _history(*marks: tuple[int, str]) -> MarkHistory:
    history = MarkHistory()
    for version, (at_ms, price) in enumerate(marks, start=1):
        history.add(at_ms, Decimal(price), version)
    return history


def test_move_when_marks_leave_the_window_then_only_those_inside_count() -> None:
    history = _history((0, "100"), (30_000, "104"), (61_000, "106"))
    move = history.move(61_000, 60_000)
    assert move is not None and (move.reference, move.latest) == (Decimal("104"), Decimal("106"))
    assert not move.at_least(Decimal("0.02")) and move.below(Decimal("0.02"))
    assert history.move(61_000, 61_000).at_least(Decimal("0.06"))  # type: ignore[union-attr]


def test_move_when_mark_falls_from_a_high_then_measured_from_the_high_exactly() -> None:
    move = _history((0, "100"), (1, "110"), (2, "104.5")).move(2, 60_000)
    assert move is not None and move.reference == Decimal("110") and move.at_least(Decimal("0.05"))
    assert move.shown == Decimal("0.05")


def test_history_when_an_older_version_arrives_then_ignored() -> None:
    history = _history((0, "100"), (1, "101"))
    assert not history.add(2, Decimal("150"), 1)
    assert history.latest == (1, Decimal("101"))


def test_tracker_when_calm_shorter_than_cooldown_then_no_clear_and_after_it_clear() -> None:
    rule = vol_rule(confirmation=2, cooldown_ms=1000)
    hot = _history((0, "100"), (1, "106")).move(1, 60_000)
    calm = _history((0, "100"), (1, "101")).move(1, 60_000)
    assert hot is not None and calm is not None
    tracker = Tracker()
    assert tracker.evaluate(rule, hot, 1, tick=True, episode_open=False) is Verdict.NONE
    # A timer evaluation re-reads the same mark: it is not a second confirmation.
    assert tracker.evaluate(rule, hot, 2, tick=False, episode_open=False) is Verdict.NONE
    assert tracker.evaluate(rule, hot, 3, tick=True, episode_open=False) is Verdict.FIRE
    assert tracker.evaluate(rule, calm, 10, tick=True, episode_open=True) is Verdict.NONE
    assert tracker.evaluate(rule, calm, 1009, tick=False, episode_open=True) is Verdict.NONE
    assert tracker.evaluate(rule, calm, 1010, tick=False, episode_open=True) is Verdict.CLEAR
