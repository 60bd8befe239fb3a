"""Account rules end to end: a real gate, a real monitor, one real Redis. Margin ratio ladder
(warning, close-only with hysteresis, liquidation candidate) and concentration."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis

from riskgate.book.specs import ControlsSpec
from riskgate.monitor.rules import Rule
from riskgate.monitor.service import MonitorService
from riskgate.store.codec import decode_stored
from riskgate.store.keys import Keys
from riskgate.v1 import admin_pb2 as admin
from riskgate.values.codes import ReasonCode
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import actor_of, running_monitor, until
from tests.support import BTC_TIERS, Client, codes, decision, symbol_spec

D = Decimal
LONG_10 = [("BTCUSDT", "10", "50000", 10)]


def margin_rule(rule_id: str, threshold: str, release: str, action: str, **fields: Any) -> Rule:
    return Rule(id=rule_id, metric="margin_ratio", threshold=D(threshold), release=D(release), window_ms=0,
                action=action, cooldown_ms=0, severity="critical", **fields)


LADDER = [margin_rule("mr-warn", "0.8", "0.7", "alert"),
          margin_rule("mr-close", "0.9", "0.8", "account_reduce_only"),
          margin_rule("mr-liq", "1", "0.9", "liquidation_candidate")]


async def _gate(services: Services, balance: str = "10000") -> Client:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.trader("acct-1", balance, LONG_10)
    return gate


async def stored_controls(redis_url: str, account: str) -> ControlsSpec | None:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        data = await redis.hget(Keys("rg").controls, account)
        return decode_stored("controls", data) if data else None
    finally:
        await redis.aclose()


async def candidates(redis_url: str) -> list[dict[str, Any]]:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        rows = await redis.xrange("{rg}:liquidation_candidates")
        return [{"alert_id": f[b"alert_id"].decode(), **json.loads(f[b"d"])} for _, f in rows]
    finally:
        await redis.aclose()


async def idle(monitor: MonitorService, gate: Client, account: str = "acct-1") -> None:
    """Waits until the monitor holds the account's latest version and has nothing left to do."""
    redis = aioredis.Redis.from_url(gate_url(monitor))
    try:
        data = await redis.hget(Keys("rg").accounts, account)
    finally:
        await redis.aclose()
    version = decode_stored("account", data).version

    async def state() -> tuple[int, bool]:
        index = monitor.columns.index.get(account)
        held = int(monitor.columns.version[index]) if index is not None else 0
        assert monitor.accounts is not None
        return held, monitor.accounts.idle

    await until(state, lambda s: s[0] >= version and s[1])


def gate_url(monitor: MonitorService) -> str:
    return monitor.redis_url


async def test_margin_ratio_when_exactly_at_warning_level_then_alert_and_a_hair_below_then_none(
        services: Services) -> None:
    # 10 BTC from 50,000 at mark 49,900: maintenance 3,690, margin balance B - 1,000.
    gate = await _gate(services, "5612.6")  # ratio 0.799983: below 0.8
    async with running_monitor(services.redis_url, LADDER) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.set_mark("BTCUSDT", "49900")
        await until(client.status, lambda s: s.accounts == 1)
        await idle(monitor, gate)
        assert monitor.accounts is not None and monitor.accounts.idle
        assert await client.alerts() == []

        await gate.upsert_account("acct-1", "5612.5", LONG_10)  # exactly 0.8
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        alert = alerts[0]
        assert (alert.rule_id, alert.account_id, alert.metric, alert.value, alert.threshold) == (
            "mr-warn", "acct-1", "margin_ratio", "0.8", "0.8")
        assert alert.evidence["maintenance_margin"] == "3690" and alert.evidence["margin_balance"] == "4612.5"
        assert alert.action_taken == "none: alert only"


async def test_margin_ratio_when_above_close_only_level_then_account_reduce_only_until_back_below_release(
        services: Services) -> None:
    gate = await _gate(services)
    async with running_monitor(services.redis_url, LADDER) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.upsert_account("acct-1", "4500", LONG_10)  # 3,700 / 4,500 = 0.822: warning only
        await until(client.alerts, lambda a: len(a) == 1)
        await gate.upsert_account("acct-1", "4000", LONG_10)  # 3,700 / 4,000 = 0.925: close-only
        alerts = await until(client.alerts, lambda a: len(a) == 2)
        close_only = next(a for a in alerts if a.rule_id == "mr-close")
        controls = await stored_controls(services.redis_url, "acct-1")
        assert controls is not None and controls.restriction == 2 and controls.set_by == "monitor:mr-close"
        assert controls.version == close_only.action_version and controls.kyc_level == 5  # the rest kept
        assert close_only.action_taken == f"account acct-1 REDUCE_ONLY (version {controls.version})"

        async def answer() -> Any:
            return await gate.check(side="buy", quantity="0.01", price="50000")

        response = await until(answer, lambda r: "REASON_ACCOUNT_REDUCE_ONLY" in codes(r))
        assert "REASON_ACCOUNT_REDUCE_ONLY" in codes(response)
        reason = next(r for r in response.reasons if r.code == ReasonCode.ACCOUNT_REDUCE_ONLY)
        assert "monitor rule mr-close: margin ratio 0.925 of account acct-1" in reason.message
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "restrict_account",
                                      lambda rows: len(rows) == 1)
        assert entries[0]["actor"] == "monitor:mr-close" and entries[0]["alert_id"] == close_only.id

        # Hysteresis: 0.85 is below the 0.9 threshold but not below the 0.8 release: still restricted.
        await gate.upsert_account("acct-1", "4353", LONG_10)  # 3,700 / 4,353 = 0.84999
        await idle(monitor, gate)
        controls = await stored_controls(services.redis_url, "acct-1")
        assert controls is not None and controls.restriction == 2

        await gate.upsert_account("acct-1", "60000", LONG_10)  # 0.062: both episodes end
        lifted = await until(lambda: stored_controls(services.redis_url, "acct-1"),
                             lambda c: c is not None and c.restriction == 1)
        assert lifted is not None and lifted.set_by == "monitor:mr-close" and lifted.kyc_level == 5
        cleared = await until(client.alerts, lambda a: all(x.cleared_ms for x in a))
        assert {a.rule_id for a in cleared} == {"mr-warn", "mr-close"}
        response = await until(answer, lambda r: decision(r) == "DECISION_ACCEPT")
        assert codes(response) == []


async def test_close_only_when_operator_restricted_the_account_then_rule_never_loosens_it(
        services: Services) -> None:
    gate = await _gate(services)
    await gate.set_controls("acct-1", restriction=admin.RESTRICTION_REDUCE_ONLY, reason="desk review")
    async with running_monitor(services.redis_url, LADDER) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.upsert_account("acct-1", "4700", LONG_10)  # 3,700 / 4,700 = 0.787 -> then mark
        await gate.set_mark("BTCUSDT", "49900")  # 3,690 / 3,700 = 0.997
        alerts = await until(client.alerts, lambda a: any(x.rule_id == "mr-close" for x in a))
        close_only = next(a for a in alerts if a.rule_id == "mr-close")
        assert close_only.action_taken == "none: account already REDUCE_ONLY (set by test-admin)"
        await gate.upsert_account("acct-1", "50000", LONG_10)
        await until(client.alerts, lambda a: all(x.cleared_ms for x in a))
        await idle(monitor, gate)
        controls = await stored_controls(services.redis_url, "acct-1")
        assert controls is not None and controls.restriction == 2 and controls.set_by == "test-admin"


async def test_close_only_when_operator_changed_controls_meanwhile_then_clear_leaves_them(
        services: Services) -> None:
    gate = await _gate(services)
    async with running_monitor(services.redis_url, LADDER) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.upsert_account("acct-1", "3800", LONG_10)  # 3,700 / 3,800 = 0.97
        await until(lambda: stored_controls(services.redis_url, "acct-1"),
                    lambda c: c is not None and c.set_by == "monitor:mr-close")
        await gate.set_controls("acct-1", restriction=admin.RESTRICTION_FROZEN, reason="fraud case")
        await gate.upsert_account("acct-1", "50000", LONG_10)
        await until(client.alerts, lambda a: len(a) == 2 and all(x.cleared_ms for x in a))
        controls = await stored_controls(services.redis_url, "acct-1")
        assert controls is not None and controls.restriction == 3 and controls.set_by == "test-admin"
        alert = next(a for a in await client.alerts() if a.rule_id == "mr-close")
        assert "left: the account controls changed since the rule set them" in alert.history[-1].note


async def test_margin_ratio_when_at_liquidation_then_candidate_with_hand_computed_prices_and_orders(
        services: Services) -> None:
    gate = await _gate(services, "5000")
    async with running_monitor(services.redis_url, LADDER) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.set_mark("BTCUSDT", "49850")  # 3,685 / 3,500 = 1.052858
        found = await until(lambda: candidates(services.redis_url), lambda c: len(c) == 1)
        candidate = found[0]
        assert (candidate["account_id"], candidate["rule"], candidate["margin_ratio"]) == ("acct-1", "mr-liq",
                                                                                          "1.052858")
        assert (candidate["margin_balance"], candidate["maintenance_margin"]) == ("3500", "3685")
        position = candidate["positions"][0]
        assert (position["liquidation_price"], position["bankruptcy_price"], position["tier"]) == (
            "49868.7", "49500", 3)
        assert candidate["orders"] == [{
            "symbol": "BTCUSDT", "side": "SELL", "quantity": "4.985", "limit_price": "49500", "reduce_only": True,
            "time_in_force": "IOC", "target_tier": 2, "remaining_quantity": "5.015",
            "maintenance_after": "1199.98875"}]
        alerts = await until(client.alerts, lambda a: any(x.rule_id == "mr-liq" for x in a))
        liquidation = next(a for a in alerts if a.rule_id == "mr-liq")
        assert liquidation.id == candidate["alert_id"] and "liquidation candidate" in liquidation.action_taken


async def test_concentration_when_position_share_reaches_threshold_and_floor_then_alert_and_not_below(
        services: Services) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    rule = Rule(id="conc", metric="concentration", threshold=D("0.5"), min_value=D(100000), window_ms=0,
                action="alert", cooldown_ms=0)
    await gate.trader("big", "1000000", [("BTCUSDT", "10", "50000", 10)])
    await gate.trader("small", "1000000", [("BTCUSDT", "1", "50000", 10)])
    await gate.trader("short", "1000000", [("BTCUSDT", "-11", "50000", 10)])
    # open interest 11: big 10/11 (500,000), small 1/11, short 11/11 (550,000)
    async with running_monitor(services.redis_url, [rule]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        alerts = await until(client.alerts, lambda a: len(a) == 2)
        assert {(a.account_id, a.symbol, a.value) for a in alerts} == {("big", "BTCUSDT", "0.909091"),
                                                                       ("short", "BTCUSDT", "1")}
        assert all(a.evidence["open_interest"] == "11" for a in alerts)


async def test_account_rules_when_two_monitors_follow_then_one_acts_once(services: Services) -> None:
    gate = await _gate(services)
    async with (running_monitor(services.redis_url, LADDER) as (first, client),
                running_monitor(services.redis_url, LADDER) as (second, _)):
        await actor_of(first, second)
        await gate.upsert_account("acct-1", "3800", LONG_10)  # 0.97: warning and close-only
        await until(client.alerts, lambda a: len(a) == 2)
        await idle(first, gate)
        await idle(second, gate)
        assert len(await client.alerts()) == 2
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "restrict_account",
                                      lambda rows: len(rows) >= 1)
        assert len(entries) == 1


async def test_stale_mark_rule_when_held_symbol_mark_ages_past_bound_then_alert_and_cleared_when_fresh(
        services: Services) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000", mark_price_max_age_ms=1000)
    await gate.trader("acct-1", "100000", LONG_10)
    rule = Rule(id="stale", metric="mark_age", threshold=D(1), window_ms=0, action="alert", cooldown_ms=0)
    async with running_monitor(services.redis_url, [rule]) as (_, client):
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        alert = alerts[0]
        assert (alert.rule_id, alert.symbol, alert.evidence["bound_ms"], alert.evidence["holders"]) == (
            "stale", "BTCUSDT", "1000", "1")
        assert int(alert.evidence["mark_age_ms"]) >= 1000
        await gate.set_mark("BTCUSDT", "50001")
        await until(client.alerts, lambda a: any(x.id == alert.id and x.cleared_ms for x in a))


async def test_close_only_when_two_rules_hold_it_then_lifted_only_after_both_episodes_end(services: Services) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.trader("whale", "100000", LONG_10)
    await gate.trader("other", "1000000", [("BTCUSDT", "-10", "50000", 10)])
    concentration = Rule(id="conc", metric="concentration", threshold=D("0.5"), min_value=D(0), window_ms=0,
                         action="account_reduce_only", cooldown_ms=0)
    async with running_monitor(services.redis_url, [concentration, LADDER[1]]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        first = await until(lambda: stored_controls(services.redis_url, "whale"),
                            lambda c: c is not None and c.set_by == "monitor:conc")
        await gate.upsert_account("whale", "3800", LONG_10)  # 0.97: the close-only rule wants it too
        alerts = await until(client.alerts, lambda a: any(x.rule_id == "mr-close" for x in a))
        joined = next(a for a in alerts if a.rule_id == "mr-close")
        assert joined.action_taken == (f"none: account already REDUCE_ONLY (set by monitor:conc, version "
                                       f"{first.version}); held by this rule too")

        await gate.trader("sybil", "10000000", [("BTCUSDT", "40", "50000", 10)])  # whale's share 0.2
        await until(client.alerts, lambda a: any(x.rule_id == "conc" and x.account_id == "whale" and x.cleared_ms
                                                 for x in a))
        await idle(monitor, gate, "whale")
        still = await stored_controls(services.redis_url, "whale")
        assert still is not None and still.restriction == 2 and still.version == first.version
        conc = next(a for a in await client.alerts() if a.rule_id == "conc" and a.account_id == "whale")
        assert "left: still held by 1 other episode(s)" in conc.history[-1].note

        await gate.upsert_account("whale", "100000", LONG_10)
        lifted = await until(lambda: stored_controls(services.redis_url, "whale"),
                             lambda c: c is not None and c.restriction == 1)
        assert lifted is not None and lifted.set_by == "monitor:mr-close"


async def test_margin_ratio_when_symbol_tiers_get_stricter_without_a_new_mark_then_holders_judged_at_once(
        services: Services) -> None:
    gate = await _gate(services, "5000")  # 3,700 / 5,000 = 0.74
    stricter = tuple((cap, max(1, lev // 2), str(D(mmr) * D("1.8"))) for cap, lev, mmr in BTC_TIERS)
    async with running_monitor(services.redis_url, [LADDER[1]]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.upsert_symbol(symbol_spec(tiers=stricter))  # maintenance x1.8: 6,660 / 5,000 = 1.332
        restricted = await until(lambda: stored_controls(services.redis_url, "acct-1"),
                                 lambda c: c is not None and c.restriction == 2)
        assert restricted is not None
        alert = (await client.alerts())[0]
        assert (alert.value, alert.evidence["maintenance_margin"]) == ("1.332", "6660")


async def test_rules_when_account_override_is_disabled_then_platform_rule_still_watches_the_account(
        services: Services) -> None:
    gate = await _gate(services)
    lenient = margin_rule("mr-lenient", "0.99", "0.95", "alert", scope="account", account_id="acct-1",
                          overrides="mr-close", enabled=False)
    async with running_monitor(services.redis_url, [LADDER[1], lenient]) as (_, client):
        await until(client.status, lambda s: s.role == "actor")
        await gate.upsert_account("acct-1", "3800", LONG_10)  # 0.97: the platform rule's, not the override's
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert alerts[0].rule_id == "mr-close"


async def test_stale_mark_rule_when_nobody_holds_the_symbol_any_more_then_episode_ends(services: Services) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000", mark_price_max_age_ms=1000)
    await gate.trader("acct-1", "100000", LONG_10)
    rule = Rule(id="stale", metric="mark_age", threshold=D(1), window_ms=0, action="alert", cooldown_ms=0)
    async with running_monitor(services.redis_url, [rule]) as (_, client):
        alert = (await until(client.alerts, lambda a: len(a) == 1))[0]
        await gate.upsert_account("acct-1", "100000")  # flat: nothing judged on that mark any more
        await until(client.alerts, lambda a: any(x.id == alert.id and x.cleared_ms for x in a))
