"""The volatility rule, end to end: a real gate and a monitor over one real Redis."""

from __future__ import annotations

from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.values.codes import BreakerState
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import running_monitor, settled, stored_breaker, until, vol_rule
from tests.support import Client, codes, decision


async def _market(services: Services) -> Client:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.trader()
    return gate


async def test_volatility_rule_when_move_reaches_threshold_then_fires_and_not_below_it(services: Services) -> None:
    gate = await _market(services)
    async with running_monitor(services.redis_url, [vol_rule()]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        below = await gate.set_mark("BTCUSDT", "52499.9")  # 4.9998%
        await settled(monitor, "BTCUSDT", below.version)
        assert await client.alerts() == []
        assert (await stored_breaker(services.redis_url, "BTCUSDT")) is None

        at = await gate.set_mark("BTCUSDT", "52500")  # exactly 5% from 50,000
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        alert = alerts[0]
        assert (alert.rule_id, alert.symbol, alert.metric) == ("vol-test", "BTCUSDT", "mark_move")
        assert (alert.value, alert.threshold, alert.window_ms) == ("0.05", "0.05", 60_000)
        assert alert.evidence["reference_price"] == "50000" and alert.evidence["mark_price"] == "52500"
        breaker = await stored_breaker(services.redis_url, "BTCUSDT")
        assert breaker is not None and breaker.state == BreakerState.REDUCE_ONLY
        assert breaker.set_by == "monitor:vol-test" and breaker.version == alert.action_version
        assert alert.action_taken == f"symbol BTCUSDT REDUCE_ONLY (version {breaker.version})"
        assert at.version < breaker.version

        # The audit entry the alert links to, written with the breaker in one script.
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "trip_breaker",
                                      lambda rows: len(rows) == 1)
        entry = entries[0]
        assert entry["actor"] == "monitor:vol-test" and entry["target"] == "BTCUSDT" and entry["outcome"] == "ok"
        assert (entry["value"], entry["threshold"], entry["window_ms"]) == ("0.05", "0.05", "60000")
        assert entry["version"] == str(breaker.version) and entry["alert_id"] == alert.id


async def test_volatility_trip_when_order_arrives_after_it_then_gate_answers_with_rule_naming_reason(
        services: Services) -> None:
    gate = await _market(services)
    async with running_monitor(services.redis_url, [vol_rule()]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.set_mark("BTCUSDT", "47000")  # 6% down
        await until(client.alerts, lambda a: len(a) == 1)

        async def check() -> object:
            return await gate.check(side="buy", quantity="0.01", price="47000")

        response = await until(check, lambda r: "REASON_SYMBOL_REDUCE_ONLY" in codes(r))
        assert decision(response) == "DECISION_REJECT"
        message = next(r.message for r in response.reasons if r.code == pb.REASON_SYMBOL_REDUCE_ONLY)
        assert "monitor rule vol-test" in message and "6%" in message and "60 s" in message
        assert "50000 -> 47000" in message


async def test_volatility_rule_when_halting_rule_fires_then_gate_rejects_as_halted(services: Services) -> None:
    gate = await _market(services)
    rule = vol_rule("vol-halt", threshold="0.1", window_ms=300_000, action="symbol_halted", severity="critical")
    async with running_monitor(services.redis_url, [rule]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.set_mark("BTCUSDT", "55000", confirmed=True)  # 10%: beyond max_mark_move, confirmed
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert alerts[0].severity == 3  # SEVERITY_CRITICAL

        async def check() -> object:
            return await gate.check(side="buy", quantity="0.01", price="55000")

        response = await until(check, lambda r: "REASON_SYMBOL_HALTED" in codes(r))
        halted = next(r.message for r in response.reasons if r.code == pb.REASON_SYMBOL_HALTED)
        assert halted.startswith("symbol BTCUSDT is halted: monitor rule vol-halt: mark moved 10%")


async def test_volatility_rule_when_confirmation_is_three_then_fires_on_third_consecutive_tick_only(
        services: Services) -> None:
    gate = await _market(services)
    async with running_monitor(services.redis_url, [vol_rule(confirmation=3)]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        for price in ("53000", "53100", "51000", "53200", "53300"):  # the dip below 5% resets the count
            mark = await gate.set_mark("BTCUSDT", price)
            await settled(monitor, "BTCUSDT", mark.version)
            assert await client.alerts() == [], price
        await gate.set_mark("BTCUSDT", "53400")
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert alerts[0].evidence["mark_price"] == "53400"


async def test_volatility_rule_when_market_calm_for_cooldown_then_breaker_returns_to_normal(
        services: Services) -> None:
    gate = await _market(services)
    # The 5% move leaves the 1 s window a second later; then 0.3 s of calm clears it.
    rule = vol_rule(window_ms=1000, cooldown_ms=300)
    async with running_monitor(services.redis_url, [rule]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.set_mark("BTCUSDT", "52600")
        tripped = await until(lambda: stored_breaker(services.redis_url, "BTCUSDT"),
                              lambda b: b is not None and b.state == BreakerState.REDUCE_ONLY)
        assert tripped is not None

        cleared = await until(lambda: stored_breaker(services.redis_url, "BTCUSDT"),
                              lambda b: b is not None and b.state == BreakerState.NORMAL)
        assert cleared is not None and cleared.set_by == "monitor:vol-test" and cleared.version > tripped.version
        alert = (await client.alerts())[0]
        assert alert.cleared_ms > 0 and alert.state == 1  # still OPEN: closing the case is a person's call
        assert [t.action for t in alert.history] == ["fired", "cleared"]
        assert "breaker back to NORMAL" in alert.history[-1].note

        async def check() -> object:
            return await gate.check(side="buy", quantity="0.01", price="52600")

        assert decision(await until(check, lambda r: decision(r) == "DECISION_ACCEPT")) == "DECISION_ACCEPT"
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "clear_breaker",
                                      lambda rows: len(rows) == 1)
        assert entries[0]["outcome"] == "ok" and entries[0]["version"] == str(cleared.version)


async def test_volatility_rule_when_operator_breaker_is_set_then_rule_neither_overrides_nor_clears_it(
        services: Services) -> None:
    gate = await _market(services)
    await gate.set_breaker(admin.BREAKER_HALTED, symbol="BTCUSDT", reason="exchange incident")
    rule = vol_rule(window_ms=1000, cooldown_ms=200)
    async with running_monitor(services.redis_url, [rule]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.set_mark("BTCUSDT", "53000")
        alert = (await until(client.alerts, lambda a: len(a) == 1))[0]
        assert alert.action_taken == "none: breaker already HALTED (set by test-admin)"
        assert alert.action_version == 0
        # The episode ends once calm, and the person's breaker is still theirs.
        await until(client.alerts, lambda a: a[0].cleared_ms > 0)
        breaker = await stored_breaker(services.redis_url, "BTCUSDT")
        assert breaker is not None and breaker.state == BreakerState.HALTED and breaker.set_by == "test-admin"
        refused = await audit_entries(services.redis_url, lambda e: e["action"] == "trip_breaker",
                                      lambda rows: len(rows) == 1)
        assert refused[0]["outcome"] == "refused: breaker is HALTED, set by test-admin"


async def test_volatility_rule_when_operator_changes_a_tripped_breaker_then_rule_leaves_it_at_calm(
        services: Services) -> None:
    gate = await _market(services)
    rule = vol_rule(window_ms=1000, cooldown_ms=1500)
    async with running_monitor(services.redis_url, [rule]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.set_mark("BTCUSDT", "53000")
        await until(lambda: stored_breaker(services.redis_url, "BTCUSDT"),
                    lambda b: b is not None and b.set_by == "monitor:vol-test")
        # A person takes over the breaker while the rule's episode is on.
        await gate.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol="BTCUSDT", reason="desk keeps it")
        await until(client.alerts, lambda a: a[0].cleared_ms > 0)
        breaker = await stored_breaker(services.redis_url, "BTCUSDT")
        assert breaker is not None and breaker.state == BreakerState.REDUCE_ONLY and breaker.set_by == "test-admin"
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "clear_breaker",
                                      lambda rows: len(rows) == 1)
        assert entries[0]["outcome"].startswith("left: the breaker changed since the rule set it")
        assert entries[0]["version"] == "0"


async def test_volatility_rule_when_mode_alert_only_then_alerts_without_acting(services: Services) -> None:
    gate = await _market(services)
    async with running_monitor(services.redis_url, [vol_rule(mode="alert_only")]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        mark = await gate.set_mark("BTCUSDT", "53000")
        alert = (await until(client.alerts, lambda a: len(a) == 1))[0]
        await settled(monitor, "BTCUSDT", mark.version)
        assert alert.action_taken == "none: alert only" and alert.action_version == 0
        assert await stored_breaker(services.redis_url, "BTCUSDT") is None
        response = await gate.check(side="buy", quantity="0.01", price="53000")
        assert decision(response) == "DECISION_ACCEPT"
        # One alert per episode: more ticks beyond the threshold add none.
        again = await gate.set_mark("BTCUSDT", "53500")
        await settled(monitor, "BTCUSDT", again.version)
        assert len(await client.alerts()) == 1


async def test_volatility_rules_when_halting_episode_ends_before_milder_one_then_breaker_steps_down_not_to_normal(
        services: Services) -> None:
    gate = await _market(services)
    mild = vol_rule("mild", threshold="0.05", window_ms=1000, cooldown_ms=600_000)
    hard = vol_rule("hard", threshold="0.10", window_ms=1000, cooldown_ms=300, action="symbol_halted")
    async with running_monitor(services.redis_url, [mild, hard]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.set_mark("BTCUSDT", "55500", confirmed=True)  # 11%: both fire
        await until(client.alerts, lambda a: len(a) == 2)
        halted = await until(lambda: stored_breaker(services.redis_url, "BTCUSDT"),
                             lambda b: b is not None and b.state == BreakerState.HALTED)
        assert halted is not None
        # The move leaves the 1 s window; 0.3 s later the halting episode ends, the milder one holds on.
        stepped = await until(lambda: stored_breaker(services.redis_url, "BTCUSDT"),
                              lambda b: b is not None and b.state != BreakerState.HALTED)
        assert stepped is not None and stepped.state == BreakerState.REDUCE_ONLY
        hard_alert = next(a for a in await client.alerts() if a.rule_id == "hard")
        assert "breaker down to REDUCE_ONLY" in hard_alert.history[-1].note
        assert "still held by 1 other episode(s)" in hard_alert.history[-1].note
