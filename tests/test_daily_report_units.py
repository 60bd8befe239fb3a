"""The daily report's classification of the day's records (pure functions, no server)."""

from __future__ import annotations

import numpy as np
import pytest

from riskgate.monitor import daily, var
from riskgate.monitor.alerts import Alert, Transition

DAY = 1_764_979_200_000  # 2025-12-06 00:00 UTC
HOUR = 3_600_000


def _alert(alert_id: str, created_ms: int, *transitions: tuple[str, int, str]) -> Alert:
    history = [Transition(actor="monitor:r", action="fired", note="", at_ms=created_ms)]
    history += [Transition(actor="op", action=action, note=note, at_ms=at) for action, at, note in transitions]
    state = {"acknowledge": "ACKNOWLEDGED", "escalate": "ESCALATED", "resolve": "RESOLVED"}.get(
        transitions[-1][0], "OPEN") if transitions else "OPEN"
    return Alert(id=alert_id, rule_id="r", rule_version=1, severity="warning", state=state, metric="m", value="1",
                 threshold="1", window_ms=0, created_ms=created_ms, updated_ms=created_ms, history=history)


def test_cases_when_resolved_the_next_day_then_open_in_that_days_report_in_its_state_then() -> None:
    alert = _alert("1", DAY + HOUR, ("acknowledge", DAY + 2 * HOUR, ""), ("resolve", DAY + 25 * HOUR, "done"))
    day = daily.cases([alert], DAY, DAY + 24 * HOUR)
    assert [(c.alert_id, c.state, len(c.history)) for c in day.open] == [("1", "ACKNOWLEDGED", 2)]
    assert day.resolved == []
    next_day = daily.cases([alert], DAY + 24 * HOUR, DAY + 48 * HOUR)
    assert next_day.open == [] and [(c.alert_id, c.rationale) for c in next_day.resolved] == [("1", "done")]


def test_cases_when_resolved_before_the_day_or_raised_after_it_then_not_listed() -> None:
    earlier = _alert("1", DAY - 5 * HOUR, ("resolve", DAY - HOUR, "old"))
    later = _alert("2", DAY + 24 * HOUR + 1)
    assert daily.cases([earlier, later], DAY, DAY + 24 * HOUR) == daily.cases([], DAY, DAY + 24 * HOUR)


@pytest.mark.parametrize(("entry", "listed"), [
    ({"action": "SetAccountControls", "outcome": "ok"}, True),
    ({"action": "trip_breaker", "outcome": "ok: held"}, True),
    ({"action": "SetMarkPrice", "outcome": "resolved: applied (version 9)"}, True),
    ({"action": "SetAccountControls", "outcome": "expired: deadline passed before Redis was asked"}, False),
    ({"action": "SetAccountControls", "outcome": "unconfirmed: TimeoutError()"}, False),
    ({"action": "SetAccountControls", "outcome": "resolved: not applied"}, False),
    ({"action": "SetAccountControls", "outcome": "denied: no token"}, False),
    ({"action": "restrict_account", "outcome": "left: still held by 1 other episode(s)"}, False),
    ({"action": "audit_backlog_overflow", "outcome": "dropped"}, False),
    ({"action": "GetAccountRisk", "outcome": "ok"}, False),
    ({"action": "RunStressTest", "outcome": "ok: 21 scenario(s)"}, False),
])
def test_is_action_when_outcome_says_whether_it_happened_then_listed_only_if_it_did(
        entry: dict[str, str], listed: bool) -> None:
    assert daily.is_action(entry) is listed


def test_parse_date_when_before_2009_or_malformed_then_refused() -> None:
    for text in ("1969-12-31", "2008-12-31", "2026-13-01", "yesterday"):
        with pytest.raises(daily.ReportError, match="date"):
            daily.parse_date(text, DAY)
    assert daily.parse_date("2009-01-01", DAY).isoformat() == "2009-01-01"


def test_screen_when_every_var_is_zero_then_only_top_plus_slack_accounts_go_to_decimal() -> None:
    values = np.zeros(100_000)
    chosen = var._largest(values, 10)
    assert len(chosen) == 10 + var.SCREEN_SLACK and list(chosen[:3]) == [0, 1, 2]
    values[77] = 5.0
    assert var._largest(values, 1).tolist() == [77]
