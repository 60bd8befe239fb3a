"""RunStressTest and the insurance fund end to end: a real gate (marks, accounts), a real
monitor, one real Redis; and `riskgate stress` / `riskgate insurance`. Every figure below is
computed by hand in the comments."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from riskgate.cli.main import main
from riskgate.monitor.keys import MonitorKeys
from riskgate.v1 import monitor_pb2 as mpb
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import MonitorClient, running_monitor, three_accounts, three_accounts_loaded, until
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN

D = Decimal

# BTC tiers (tests/support.py BTC_TIERS), maintenance = notional x MMR - cum:
#   tier 1 up to    50,000: 0.4%, cum 0
#   tier 2 up to   250,000: 0.5%, cum 50,000 x (0.005 - 0.004) = 50
#   tier 3 up to 1,000,000: 1%,   cum 50 + 250,000 x (0.01 - 0.005) = 1,300
# Mark 50,000; a -20% shock: 40,000.
#   acct-a: 10,000, long 10 from 50,000: equity 10,000 + 10 x (40,000 - 50,000) = -90,000;
#           notional 400,000 (tier 3): 4,000 - 1,300 = 2,700; liquidated (equity <= 0), shortfall 90,000.
#   acct-b:  5,000, short 2 from 50,000: equity 5,000 - 2 x (40,000 - 50,000) = 25,000;
#           notional 80,000 (tier 2): 400 - 50 = 350; ratio 350 / 25,000 = 0.014; not liquidated.
#   acct-c: 20,000, long 3 from 50,000: equity 20,000 + 3 x (-10,000) = -10,000;
#           notional 120,000 (tier 2): 600 - 50 = 550; liquidated, shortfall 10,000.
# Platform: equity -90,000 + 25,000 - 10,000 = -75,000; maintenance 2,700 + 350 + 550 = 3,600;
# shortfall 100,000; 2 liquidations. Fund 95,000: Cover-1 = 90,000 (acct-a): covered, margin 5,000;
# Cover-2 = 90,000 + 10,000 = 100,000 (acct-a, acct-c): not covered, margin -5,000.
async def run_stress(client: MonitorClient, token: str = VIEWER_TOKEN, **fields: Any) -> mpb.StressReport:
    return await client.stub.RunStressTest(mpb.StressRequest(**fields), metadata=client.auth(token))


async def set_fund(client: MonitorClient, balance: str, token: str = ADMIN_TOKEN) -> mpb.InsuranceFund:
    return await client.stub.SetInsuranceFund(mpb.InsuranceFund(balance=balance), metadata=client.auth(token))


async def test_stress_when_uniform_minus_20pct_then_every_figure_as_computed_by_hand(services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        fund = await set_fund(client, "95000")
        assert (fund.balance, fund.updated_by) == ("95000", "test-admin") and fund.version > 0
        report = await run_stress(client, shock="-0.2")
        assert report.accounts == 3 and report.insurance_fund.balance == "95000"
        [scenario] = report.scenarios
        assert scenario.label == "-20% all"
        assert [(s.symbol, s.shock) for s in scenario.shocks] == [("BTCUSDT", "-0.2")]
        assert dict(scenario.shocked_marks) == {"BTCUSDT": "40000"}
        assert (scenario.accounts, scenario.accounts_unvalued) == (3, 0)
        assert (scenario.total_equity_approx, scenario.total_maintenance_approx) == ("-75000", "3600")
        assert (scenario.total_shortfall, scenario.total_shortfall_exact) == ("100000", True)
        assert (scenario.accounts_short, scenario.liquidations) == (2, 2)
        assert [(a.account_id, a.balance, a.equity, a.maintenance, a.margin_ratio, a.liquidated, a.shortfall)
                for a in scenario.top_shortfalls] == [
            ("acct-a", "10000", "-90000", "2700", "inf", True, "90000"),
            ("acct-c", "20000", "-10000", "550", "inf", True, "10000")]
        # Exposures at 40,000: acct-a 400,000; acct-c 120,000; acct-b 80,000. Open interest: longs
        # 13, shorts 2: shares 10/13, 3/13, 2/13 (to 1e-6).
        assert [(e.account_id, e.quantity, e.shocked_mark, e.notional, e.share) for e in scenario.top_exposures] == [
            ("acct-a", "10", "40000", "400000", "0.769231"), ("acct-c", "3", "40000", "120000", "0.230769"),
            ("acct-b", "-2", "40000", "80000", "0.153846")]
        c1, c2 = scenario.cover_1, scenario.cover_2
        assert (c1.amount, list(c1.accounts), c1.fund, c1.covered, c1.margin) == (
            "90000", ["acct-a"], "95000", True, "5000")
        assert (c2.amount, list(c2.accounts), c2.fund, c2.covered, c2.margin) == (
            "100000", ["acct-a", "acct-c"], "95000", False, "-5000")

        # acct-b alone, at a per-symbol shock of +30% (65,000): 5,000 - 2 x 15,000 = -25,000, shortfall
        # 25,000; acct-a: 10,000 + 150,000 = 160,000; acct-c: 20,000 + 45,000 = 65,000.
        [up] = (await run_stress(client, symbol_shocks=[mpb.SymbolShock(symbol="BTCUSDT", shock="0.3")])).scenarios
        assert up.label == "BTCUSDT +30%" and up.total_shortfall == "25000" and up.liquidations == 1
        assert [(a.account_id, a.equity) for a in up.top_shortfalls] == [("acct-b", "-25000")]
        assert up.total_equity_approx == "200000"
        assert (up.cover_1.amount, up.cover_1.covered, up.cover_2.amount, up.cover_2.margin) == (
            "25000", True, "25000", "70000")


async def test_stress_when_grid_minus_half_to_half_by_5pct_then_21_scenarios_in_order(services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        report = await run_stress(client, grid_from="-0.5", grid_to="0.5", grid_step="0.05", top=1)
        shocks = [s.shocks[0].shock for s in report.scenarios]
        assert len(report.scenarios) == 21 and shocks[0] == "-0.5" and shocks[10] == "0" and shocks[-1] == "0.5"
        assert [D(s) for s in shocks] == sorted(D(s) for s in shocks)
        assert all(len(s.top_shortfalls) <= 1 for s in report.scenarios)
        # At 0% (mark 50,000) nobody is short; at -20% it is the 100,000 above; no fund set: 0.
        assert report.scenarios[10].total_shortfall == "0" and report.scenarios[6].total_shortfall == "100000"
        assert report.insurance_fund.version == 0 and report.scenarios[6].cover_1.margin == "-90000"
        # A group of BTCUSDT only is the same book here (it is the only symbol).
        grouped = await run_stress(client, shock="-0.2", group=["BTCUSDT"])
        assert grouped.scenarios[0].label == "-20% BTCUSDT" and grouped.scenarios[0].total_shortfall == "100000"


@pytest.mark.parametrize(("fields", "named"), [
    ({}, "shock"),
    ({"shock": "-1.5"}, "shock"),
    ({"shock": "-1"}, "shock"),
    ({"shock": "abc"}, "shock"),
    ({"shock": "-0.2", "top": 101}, "top"),
    ({"shock": "-0.2", "grid_from": "-0.5"}, "grid_from"),
    ({"grid_from": "-0.5", "grid_to": "0.5"}, "grid_step"),
    ({"grid_from": "0.5", "grid_to": "-0.5", "grid_step": "0.05"}, "grid_to"),
    ({"grid_from": "-0.5", "grid_to": "0.5", "grid_step": "0"}, "grid_step"),
    ({"shock": "-0.2", "group": ["NOPE"]}, "group"),
    ({"symbol_shocks": [mpb.SymbolShock(symbol="NOPE", shock="-0.1")]}, "symbol_shocks"),
    ({"symbol_shocks": [mpb.SymbolShock(symbol="BTCUSDT", shock="-2")]}, "symbol_shocks"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
async def test_run_stress_test_when_a_field_is_unusable_then_invalid_argument_names_it_and_audits(
        services: Services, fields: dict[str, Any], named: str) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await run_stress(client, **fields)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(f"{named}:")
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "RunStressTest",
                                      lambda rows: len(rows) == 1)
        assert entries[0]["outcome"].startswith(f"invalid: {named}:")


async def test_set_insurance_fund_when_not_admin_or_unusable_then_refused_and_viewer_may_read(
        services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        for token, status in ((OPERATOR_TOKEN, grpc.StatusCode.PERMISSION_DENIED),
                              (VIEWER_TOKEN, grpc.StatusCode.PERMISSION_DENIED),
                              ("not-a-token", grpc.StatusCode.UNAUTHENTICATED)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await set_fund(client, "1000", token=token)
            assert caught.value.code() == status
        for balance in ("-1", "", "1e6", "abc"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await set_fund(client, balance)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details().startswith("balance:")
        read = await client.stub.GetInsuranceFund(mpb.GetInsuranceFundRequest(), metadata=client.auth(VIEWER_TOKEN))
        assert (read.balance, read.version) == ("0", 0)
        stored = await set_fund(client, "1234.5")
        read = await client.stub.GetInsuranceFund(mpb.GetInsuranceFundRequest(), metadata=client.auth(VIEWER_TOKEN))
        assert read == stored and read.balance == "1234.5"
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "SetInsuranceFund",
                                      lambda rows: len(rows) == 8)
        assert [e["outcome"].split(":")[0] for e in entries] == ["denied"] * 3 + ["invalid"] * 4 + ["ok"]
        assert entries[-1]["version"] == str(stored.version)


async def test_insurance_fund_when_set_on_one_monitor_then_another_follows_and_a_restart_loads_it(
        services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        async with running_monitor(services.redis_url, []) as (second, _):
            stored = await set_fund(client, "777")

            async def followed() -> Any:
                return second.view.insurance

            await until(followed, lambda f: f is not None and f.version == stored.version)
    redis = aioredis.Redis.from_url(services.redis_url)
    try:
        assert await redis.hget(MonitorKeys("rg").insurance_fund, "fund") is not None
    finally:
        await redis.aclose()
    async with running_monitor(services.redis_url, []) as (third, client):
        await three_accounts_loaded(client)
        assert third.view.insurance is not None and third.view.insurance.balance == D("777")
        report = await run_stress(client, shock="-0.2")
        assert report.scenarios[0].cover_1.margin == "-89223"  # 777 - 90,000


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The CLI uses a blocking channel; the monitor shares this event loop, so run it in a thread.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_stress_command_when_shock_grid_and_insurance_then_table_json_and_exit_codes(
        services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        target = ("--target", client.target)
        code, out, _ = await _run(capsys, "insurance", "set", "95000", *target, "--token", ADMIN_TOKEN)
        assert code == 0 and out.splitlines()[1].split()[0] == "95000"
        code, out, _ = await _run(capsys, "insurance", "--json", *target, "--token", VIEWER_TOKEN)
        assert code == 0 and json.loads(out)["balance"] == "95000"

        code, out, _ = await _run(capsys, "stress", "--shock", "-0.2", *target, "--token", VIEWER_TOKEN)
        header, row = out.splitlines()
        assert code == 0 and header.split() == ["SCENARIO", "SHORTFALL", "SHORT", "LIQUIDATIONS", "COVER-1",
                                                 "COVER-2", "FUND", "COVERED"]
        assert row.split() == ["-20%", "all", "100000", "2", "2", "90000", "100000", "95000", "cover-1", "only"]

        code, out, _ = await _run(capsys, "stress", "--grid", "-0.5:0.5:0.05", "--group", "BTCUSDT", *target,
                                  "--token", VIEWER_TOKEN)
        assert code == 0 and len(out.splitlines()) == 22 and out.splitlines()[1].startswith("-50% BTCUSDT")
        code, out, _ = await _run(capsys, "stress", "--symbol-shock", "BTCUSDT=-0.3", "--json", "--top", "1",
                                  *target, "--token", VIEWER_TOKEN)
        answer = json.loads(out)["scenarios"][0]
        # -30%: 35,000. acct-a 10,000 - 150,000 = -140,000; acct-c 20,000 - 45,000 = -25,000.
        assert code == 0 and answer["total_shortfall"] == "165000" and len(answer["top_shortfalls"]) == 1

        code, _, err = await _run(capsys, "stress", "--shock", "-1.5", *target, "--token", VIEWER_TOKEN)
        assert code == 2 and err.startswith("riskgate: INVALID_ARGUMENT: shock:") and err.count("\n") == 1
        code, _, err = await _run(capsys, "insurance", "set", "10", *target, "--token", OPERATOR_TOKEN)
        assert code == 1 and err.startswith("riskgate: PERMISSION_DENIED")
        code, _, err = await _run(capsys, "stress", "--grid", "-0.5:0.5", *target, "--token", VIEWER_TOKEN)
        assert code == 2 and "FROM:TO:STEP" in err
