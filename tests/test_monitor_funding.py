"""Funding end to end: SetFundingRate / ListFundingRates, the funding_rate cap and the
platform's net funding flow, over a real gate (marks, positions), real monitors and one
real Redis; and `riskgate funding`."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from riskgate.cli.main import main
from riskgate.config import load_config
from riskgate.monitor.funding import FundingSpec, decode_funding, encode_funding
from riskgate.monitor.keys import MonitorKeys
from riskgate.monitor.rules import Rule, RuleError, default_rules, validate_rule
from riskgate.monitor.service import MonitorService
from riskgate.store.codec import decode_stored
from riskgate.store.keys import Keys
from riskgate.v1 import monitor_pb2 as mpb
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import MonitorClient, actor_of, running_monitor, until
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN, Client, symbol_spec

D = Decimal


def rate_rule(rule_id: str = "rate-cap", threshold: str = "0.003", **fields: Any) -> Rule:
    values: dict[str, Any] = {"metric": "funding_rate", "window_ms": 0, "action": "alert", "cooldown_ms": 0,
                              "severity": "warning"}
    values.update(fields)
    return Rule(id=rule_id, threshold=D(threshold), **values)


def flow_rule(rule_id: str = "flow", threshold: str = "40", **fields: Any) -> Rule:
    values: dict[str, Any] = {"metric": "net_funding_flow", "window_ms": 0, "action": "alert", "cooldown_ms": 0,
                              "severity": "warning"}
    values.update(fields)
    return Rule(id=rule_id, threshold=D(threshold), **values)


async def _market(services: Services) -> Client:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.upsert_symbol(symbol_spec("ETHUSDT"), mark="2500")
    return gate


async def set_rate(client: MonitorClient, symbol: str, rate: str, interval_ms: int = 0,
                   token: str = ADMIN_TOKEN) -> mpb.FundingRate:
    return await client.stub.SetFundingRate(mpb.FundingRate(symbol=symbol, rate=rate, interval_ms=interval_ms),
                                            metadata=client.auth(token))


async def rates(client: MonitorClient, token: str = VIEWER_TOKEN) -> list[mpb.FundingRate]:
    return list((await client.stub.ListFundingRates(mpb.ListFundingRatesRequest(), metadata=client.auth(token))).rates)


async def funding_settled(monitor: MonitorService, symbol: str, version: int) -> None:
    """The monitor holds the rate of `version` and has carried out what it decided."""
    async def state() -> tuple[int, bool]:
        spec = monitor.view.funding.get(symbol)
        assert monitor.funding is not None
        return (spec.version if spec else 0), monitor.funding.idle

    await until(state, lambda s: s[0] >= version and s[1])


async def mark_settled(monitor: MonitorService, symbol: str, version: int) -> None:
    async def state() -> tuple[int, bool]:
        history = monitor.view.marks.get(symbol)
        assert monitor.funding is not None
        return (history.version if history else 0), monitor.funding.idle

    await until(state, lambda s: s[0] >= version and s[1])


async def account_settled(monitor: MonitorService, account: str) -> None:
    """The monitor holds the account's stored version and has carried out what it decided."""
    redis = aioredis.Redis.from_url(monitor.redis_url)
    try:
        version = decode_stored("account", await redis.hget(Keys("rg").accounts, account)).version
    finally:
        await redis.aclose()

    async def state() -> tuple[int, bool]:
        index = monitor.columns.index.get(account)
        assert monitor.funding is not None
        return (int(monitor.columns.version[index]) if index is not None else 0), monitor.funding.idle

    await until(state, lambda s: s[0] >= version and s[1])


async def stored_rates(redis_url: str) -> dict[str, FundingSpec]:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        rows = await redis.hgetall(MonitorKeys("rg").funding)
    finally:
        await redis.aclose()
    found = {}
    for field, data in rows.items():
        stored = json.loads(data)
        found[field.decode()] = decode_funding(json.dumps(stored["d"]).encode(), stored["v"])
    return found


# ---- funding_rate --------------------------------------------------------------------------


async def test_funding_rate_when_at_the_cap_either_way_then_alert_and_a_hair_below_then_none(
        services: Services) -> None:
    await _market(services)
    async with running_monitor(services.redis_url, [rate_rule()]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor" and s.symbols == 2)
        for symbol, below, at, percent in (("BTCUSDT", "0.0029999", "0.003", "0.3%"),
                                           ("ETHUSDT", "-0.0029999", "-0.003", "-0.3%")):
            stored = await set_rate(client, symbol, below)
            await funding_settled(monitor, symbol, stored.version)
            assert await client.alerts(symbol=symbol) == [], below

            stored = await set_rate(client, symbol, at)
            alerts = await until(lambda s=symbol: client.alerts(symbol=s), lambda a: len(a) == 1)
            alert = alerts[0]
            assert (alert.rule_id, alert.symbol, alert.metric, alert.value, alert.threshold) == (
                "rate-cap", symbol, "funding_rate", at, "0.003")
            assert alert.action_taken == "none: alert only" and alert.action_version == 0
            assert alert.evidence["interval_ms"] == "28800000"
            assert alert.evidence["rate_version"] == str(stored.version)
            assert alert.evidence["rate_set_by"] == "test-admin"
            assert alert.history[0].note == (f"monitor rule rate-cap: {symbol} funding rate {percent} per 8 h, "
                                             "cap 0.3% either way")
            entries = await audit_entries(services.redis_url,
                                          lambda e, s=symbol: e["action"] == "alert" and e["target"] == s,
                                          lambda rows: len(rows) == 1)
            assert (entries[0]["actor"], entries[0]["outcome"], entries[0]["alert_id"], entries[0]["value"]) == (
                "monitor:rate-cap", "ok: alert only, no action", alert.id, at)
        assert (await client.status()).open_episodes == 2


async def test_funding_rate_when_below_threshold_but_not_release_then_open_and_below_release_then_cleared(
        services: Services) -> None:
    await _market(services)
    async with running_monitor(services.redis_url, [rate_rule(release=D("0.002"))]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor" and s.symbols == 2)
        await set_rate(client, "BTCUSDT", "0.0031")
        await until(client.alerts, lambda a: len(a) == 1)
        # Hysteresis: under the cap but not under the release, on either side, keeps it open.
        for rate in ("0.0025", "-0.002"):
            stored = await set_rate(client, "BTCUSDT", rate)
            await funding_settled(monitor, "BTCUSDT", stored.version)
            (alert,) = await client.alerts()
            assert alert.cleared_ms == 0, rate

        await set_rate(client, "BTCUSDT", "-0.0019999")
        cleared = (await until(client.alerts, lambda a: a[0].cleared_ms > 0))[0]
        assert [t.action for t in cleared.history] == ["fired", "cleared"]
        assert cleared.state == mpb.ALERT_OPEN  # the case stays for a person to close
        assert cleared.history[-1].note == "calm: funding_rate -0.0019999 below 0.002"
        ended = await audit_entries(services.redis_url, lambda e: e["action"] == "end_episode",
                                    lambda rows: len(rows) == 1)
        assert ended[0]["target"] == "BTCUSDT" and ended[0]["alert_id"] == cleared.id

        # A new episode is a new alert.
        await set_rate(client, "BTCUSDT", "-0.003")
        alerts = await until(client.alerts, lambda a: len(a) == 2)
        assert alerts[0].value == "-0.003" and alerts[0].cleared_ms == 0


async def test_funding_rate_when_symbol_rule_overrides_the_cap_then_only_it_applies_there(
        services: Services) -> None:
    await _market(services)
    own = rate_rule("eth-cap", "0.0075", scope="symbol", symbol="ETHUSDT", overrides="rate-cap")
    async with running_monitor(services.redis_url, [rate_rule(), own]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor" and s.symbols == 2)
        stored = await set_rate(client, "ETHUSDT", "0.005")  # beyond the platform's 0.3%, under ETH's own
        await funding_settled(monitor, "ETHUSDT", stored.version)
        assert await client.alerts() == []
        await set_rate(client, "ETHUSDT", "0.0075")
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert (alerts[0].rule_id, alerts[0].threshold) == ("eth-cap", "0.0075")


async def test_funding_rate_when_the_cap_is_lowered_to_the_rate_then_fires_without_a_new_rate(
        services: Services) -> None:
    await _market(services)
    async with running_monitor(services.redis_url, [rate_rule()]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor" and s.symbols == 2)
        stored = await set_rate(client, "BTCUSDT", "-0.002")
        await funding_settled(monitor, "BTCUSDT", stored.version)
        assert await client.alerts() == []
        lowered = await client.stub.UpsertRule(mpb.Rule(
            id="rate-cap", scope="platform", metric="funding_rate", threshold="0.002", action="alert",
            confirmation=1, severity=mpb.SEVERITY_WARNING, mode="act"), metadata=client.auth(ADMIN_TOKEN))
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert (alerts[0].value, alerts[0].threshold, alerts[0].rule_version) == ("-0.002", "0.002",
                                                                                  lowered.version)


# ---- net_funding_flow ----------------------------------------------------------------------


async def test_net_funding_flow_when_hand_computed_sum_reaches_bound_then_alert_and_not_below(
        services: Services) -> None:
    gate = await _market(services)
    await gate.trader("long-a", "1000000", [("BTCUSDT", "10", "50000", 10), ("ETHUSDT", "-20", "2500", 10)])
    await gate.trader("short-b", "1000000", [("BTCUSDT", "-4.001", "50000", 10)])
    async with running_monitor(services.redis_url, [flow_rule()]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor" and s.accounts == 2)
        # ETH: -20 x 2,500 x -0.0002 = 10; BTC: (10 - 4.001) x 50,000 x 0.0001 = 29.995: 39.995 < 40.
        await set_rate(client, "ETHUSDT", "-0.0002")
        stored = await set_rate(client, "BTCUSDT", "0.0001")
        await funding_settled(monitor, "BTCUSDT", stored.version)
        assert monitor.funding is not None and monitor.funding.total == D("39.995")
        assert await client.alerts() == []

        # An account change: BTC net 6 -> 30 + 10 = 40, exactly the bound.
        await gate.upsert_account("short-b", "1000000", [("BTCUSDT", "-4", "50000", 10)])
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        alert = alerts[0]
        assert (alert.rule_id, alert.symbol, alert.account_id, alert.metric, alert.value, alert.threshold) == (
            "flow", "", "", "net_funding_flow", "40", "40")
        evidence = alert.evidence
        assert (evidence["flow:BTCUSDT"], evidence["net_quantity:BTCUSDT"], evidence["mark:BTCUSDT"],
                evidence["rate:BTCUSDT"]) == ("30", "6", "50000", "0.0001")
        assert (evidence["flow:ETHUSDT"], evidence["net_quantity:ETHUSDT"], evidence["mark:ETHUSDT"],
                evidence["rate:ETHUSDT"]) == ("10", "-20", "2500", "-0.0002")
        assert evidence["symbols"] == "2" and "stale_mark" not in evidence and "missing_mark" not in evidence
        assert alert.history[0].note == ("monitor rule flow: net funding flow 40 per interval (the accounts pay) "
                                         "over 2 symbols, threshold 40")
        entries = await audit_entries(services.redis_url, lambda e: e["actor"] == "monitor:flow",
                                      lambda rows: len(rows) == 1)
        assert (entries[0]["action"], entries[0]["target"], entries[0]["value"], entries[0]["flow:BTCUSDT"]) == (
            "alert", "", "40", "30")

        # A mark tick: 6 x 49,000 x 0.0001 = 29.4, + 10 = 39.4: below, the episode ends.
        mark = await gate.set_mark("BTCUSDT", "49000")
        await mark_settled(monitor, "BTCUSDT", mark.version)
        cleared = (await until(client.alerts, lambda a: a[0].cleared_ms > 0))[0]
        assert cleared.history[-1].note == "calm: net_funding_flow 39.4 below 40"


async def test_net_funding_flow_when_negative_sum_reaches_bound_then_alert_with_its_sign(
        services: Services) -> None:
    gate = await _market(services)
    await gate.trader("long-a", "1000000", [("BTCUSDT", "2", "50000", 10)])
    async with running_monitor(services.redis_url, [flow_rule(threshold="100")]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor" and s.accounts == 1)
        stored = await set_rate(client, "BTCUSDT", "-0.000999")  # 2 x 50,000 x -0.000999 = -99.9
        await funding_settled(monitor, "BTCUSDT", stored.version)
        assert await client.alerts() == []
        await set_rate(client, "BTCUSDT", "-0.001")  # -100
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert alerts[0].value == "-100" and "(the accounts receive)" in alerts[0].history[0].note


# ---- SetFundingRate / ListFundingRates -----------------------------------------------------


@pytest.mark.parametrize(("fields", "named"), [
    ({"symbol": "NOPE"}, "symbol"),
    ({"symbol": ""}, "symbol"),
    ({"rate": "1"}, "rate"),
    ({"rate": "-1.5"}, "rate"),
    ({"rate": "0.01%"}, "rate"),
    ({"rate": "1e-4"}, "rate"),
    ({"rate": "+0.0001"}, "rate"),
    ({"rate": ""}, "rate"),
    ({"interval_ms": 1000}, "interval_ms"),
    ({"interval_ms": 86_400_001}, "interval_ms"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
async def test_set_funding_rate_when_a_field_is_unusable_then_invalid_argument_names_it_and_audits(
        services: Services, fields: dict[str, Any], named: str) -> None:
    await _market(services)
    async with running_monitor(services.redis_url, [rate_rule()]) as (_, client):
        await until(client.status, lambda s: s.symbols == 2)
        request: dict[str, Any] = {"symbol": "BTCUSDT", "rate": "0.0001", **fields}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.SetFundingRate(mpb.FundingRate(**request), metadata=client.auth(ADMIN_TOKEN))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(f"{named}:")
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "SetFundingRate",
                                      lambda rows: len(rows) == 1)
        assert entries[0]["actor"] == "test-admin" and entries[0]["outcome"].startswith(f"invalid: {named}:")
        assert await rates(client) == [] and await stored_rates(services.redis_url) == {}


async def test_set_funding_rate_when_caller_is_not_admin_then_refused_and_audited_and_viewer_may_list(
        services: Services) -> None:
    await _market(services)
    async with running_monitor(services.redis_url, [rate_rule()]) as (_, client):
        await until(client.status, lambda s: s.symbols == 2)
        for token, status in ((OPERATOR_TOKEN, grpc.StatusCode.PERMISSION_DENIED),
                              (VIEWER_TOKEN, grpc.StatusCode.PERMISSION_DENIED),
                              ("not-a-token", grpc.StatusCode.UNAUTHENTICATED)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await set_rate(client, "BTCUSDT", "0.0001", token=token)
            assert caught.value.code() == status
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.SetFundingRate(mpb.FundingRate(symbol="BTCUSDT", rate="0.0001"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.ListFundingRates(mpb.ListFundingRatesRequest())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        denied = await audit_entries(services.redis_url, lambda e: e["action"] == "SetFundingRate",
                                     lambda rows: len(rows) == 4)
        assert [e["actor"] for e in denied] == ["test-operator", "test-viewer", "anonymous", "anonymous"]
        assert all(e["outcome"].startswith("denied: ") for e in denied)
        assert await rates(client, VIEWER_TOKEN) == [] and await stored_rates(services.redis_url) == {}


async def test_set_funding_rate_when_valid_then_versioned_audited_and_followed_by_a_standby(
        services: Services) -> None:
    await _market(services)
    async with running_monitor(services.redis_url, [rate_rule()]) as (first, first_client):
        await until(first_client.status, lambda s: s.role == "actor" and s.symbols == 2)
        stored = await set_rate(first_client, "BTCUSDT", "-0.0001", interval_ms=3_600_000)
        assert (stored.symbol, stored.rate, stored.interval_ms, stored.updated_by) == (
            "BTCUSDT", "-0.0001", 3_600_000, "test-admin")
        assert stored.version > 0 and stored.updated_ms > 0
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "SetFundingRate",
                                      lambda rows: len(rows) == 1)
        assert (entries[0]["actor"], entries[0]["target"], entries[0]["outcome"], entries[0]["version"]) == (
            "test-admin", "BTCUSDT", "ok", str(stored.version))
        in_redis = (await stored_rates(services.redis_url))["BTCUSDT"]
        assert (in_redis.rate, in_redis.interval_ms, in_redis.version) == (D("-0.0001"), 3_600_000, stored.version)

        # A monitor started later loads it; one running follows a change made through the other.
        async with running_monitor(services.redis_url, [rate_rule()]) as (second, second_client):
            assert await rates(second_client) == [stored]
            assert (await second_client.status()).role == "standby"
            eth = await set_rate(first_client, "ETHUSDT", "0.003")  # at the cap
            await until(lambda: rates(second_client), lambda r: [x.symbol for x in r] == ["BTCUSDT", "ETHUSDT"])
            assert (await rates(second_client))[1] == eth
            await until(first_client.alerts, lambda a: len(a) == 1)
            for monitor in (first, second):
                await funding_settled(monitor, "ETHUSDT", eth.version)
            # The standby evaluated it too, and did not act: one alert, one audit entry.
            assert second.funding is not None and second.funding.counts == {("rate-cap", "ETHUSDT"): 1}
            assert len(await second_client.alerts()) == 1
            alerts = await audit_entries(services.redis_url, lambda e: e["action"] == "alert",
                                         lambda rows: len(rows) >= 1)
            assert len(alerts) == 1


async def test_funding_rules_when_the_actor_stops_then_the_standby_ends_its_open_episode(
        services: Services) -> None:
    await _market(services)
    rule = rate_rule(release=D("0.002"))
    async with (running_monitor(services.redis_url, [rule]) as (first, first_client),
                running_monitor(services.redis_url, [rule]) as (second, second_client)):
        actor = await actor_of(first, second)
        actor_client, standby_client = (first_client, second_client) if actor is first else (second_client,
                                                                                            first_client)
        standby = second if actor is first else first
        await set_rate(actor_client, "BTCUSDT", "0.004")
        await until(actor_client.alerts, lambda a: len(a) == 1)
        await actor.stop()
        await until(standby_client.status, lambda s: s.role == "actor" and s.open_episodes == 1)
        assert standby.funding is not None and standby.funding.active == {("rate-cap", "BTCUSDT")}
        # It knows the episode it inherited: no second alert for it, and it ends it.
        stored = await set_rate(standby_client, "BTCUSDT", "0.0035")
        await funding_settled(standby, "BTCUSDT", stored.version)
        assert len(await standby_client.alerts()) == 1
        await set_rate(standby_client, "BTCUSDT", "0.001")
        cleared = await until(standby_client.alerts, lambda a: a[0].cleared_ms > 0)
        assert len(cleared) == 1


# ---- the rule model and defaults -----------------------------------------------------------


def test_funding_rules_when_defaults_and_sample_config_then_cap_and_flow_rules_there() -> None:
    for rules in (default_rules(), load_config(None).monitor.rules):
        found = {r.id: r for r in rules}
        cap, flow = found["funding-rate-cap"], found["net-funding-flow"]
        assert (cap.metric, cap.threshold, cap.action, cap.severity) == ("funding_rate", D("0.003"), "alert",
                                                                         "warning")
        assert (flow.metric, flow.threshold, flow.action, flow.severity) == ("net_funding_flow", D(100000),
                                                                             "alert", "warning")
        assert validate_rule(cap) is cap and validate_rule(flow) is flow


@pytest.mark.parametrize(("rule", "named"), [
    (flow_rule(scope="symbol", symbol="BTCUSDT"), "scope"),
    (rate_rule(scope="account", account_id="a"), "scope"),
    (rate_rule(action="symbol_halted"), "action"),
    (flow_rule(action="account_reduce_only"), "action"),
    (rate_rule(threshold="1"), "threshold"),
    (rate_rule(window_ms=1000), "window_ms"),
    (flow_rule(threshold="0"), "threshold"),
])
def test_funding_rule_when_a_field_does_not_fit_the_metric_then_rule_error_names_it(rule: Rule, named: str) -> None:
    with pytest.raises(RuleError) as caught:
        validate_rule(rule)
    assert caught.value.field == named


def test_funding_record_when_encoded_and_decoded_then_the_same_with_the_stored_version() -> None:
    spec = FundingSpec(symbol="BTCUSDT", rate=D("-0.00012345"), interval_ms=3_600_000, updated_by="x", updated_ms=5)
    decoded = decode_funding(encode_funding(spec), 42)
    assert decoded.rate == D("-0.00012345") and decoded.version == 42 and decoded.interval_ms == 3_600_000
    with pytest.raises(RuleError):
        decode_funding(encode_funding(FundingSpec(symbol="BTCUSDT", rate=D("1"))), 1)


# ---- riskgate funding ----------------------------------------------------------------------


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The CLI uses a blocking channel; the monitor shares this event loop, so run it in a thread.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_funding_command_when_setting_and_listing_then_json_table_and_exit_codes(
        services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    await _market(services)
    async with running_monitor(services.redis_url, [rate_rule()]) as (_, client):
        await until(client.status, lambda s: s.symbols == 2)
        target = ("--target", client.target)

        code, out, _ = await _run(capsys, "funding", "set", "BTCUSDT", "-0.0001", "--interval-ms", "3600000",
                                  "--json", *target, "--token", ADMIN_TOKEN)
        assert code == 0
        answer = json.loads(out)
        assert (answer["symbol"], answer["rate"], answer["interval_ms"], answer["updated_by"]) == (
            "BTCUSDT", "-0.0001", "3600000", "test-admin")

        code, out, _ = await _run(capsys, "funding", "list", *target, "--token", VIEWER_TOKEN)
        header, row = out.splitlines()
        assert code == 0 and header.split()[:4] == ["SYMBOL", "RATE", "PERCENT", "INTERVAL"]
        assert row.split()[:5] == ["BTCUSDT", "-0.0001", "-0.01%", "1h", answer["version"]]
        code, out, _ = await _run(capsys, "funding", "--json", *target, "--token", VIEWER_TOKEN)
        assert code == 0 and [r["symbol"] for r in json.loads(out)["rates"]] == ["BTCUSDT"]

        code, _, err = await _run(capsys, "funding", "set", "BTCUSDT", "0.0001", *target, "--token", OPERATOR_TOKEN)
        assert code == 1 and err.startswith("riskgate: PERMISSION_DENIED")
        code, _, err = await _run(capsys, "funding", "set", "BTCUSDT", "2", *target, "--token", ADMIN_TOKEN)
        # A value the service refuses as invalid is a mistake in the command: exit 2.
        assert code == 2 and err.startswith("riskgate: INVALID_ARGUMENT: rate:") and err.count("\n") == 1
        code, _, err = await _run(capsys, "funding", "set", "BTCUSDT", *target, "--token", ADMIN_TOKEN)
        assert code == 2 and err == "riskgate funding: set needs the symbol and the rate\n"
