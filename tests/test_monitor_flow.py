"""Order-flow rules end to end: a real gate writes its order flow, a real monitor reads it
and fires on the threshold and not below it."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import grpc
import pytest

from riskgate.cli.main import main
from riskgate.monitor.rules import Rule
from riskgate.monitor.service import MonitorService
from riskgate.v1 import monitor_pb2 as mpb
from riskgate.v1 import pretrade_pb2 as pb
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import running_monitor, until
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, Client

D = Decimal
WINDOW = 600_000


def flow_rule(rule_id: str, metric: str, threshold: str, minimum: str | None = None, **fields: Any) -> Rule:
    return Rule(id=rule_id, metric=metric, threshold=D(threshold), window_ms=WINDOW, action="alert", cooldown_ms=0,
                min_value=D(minimum) if minimum else None, **fields)


async def _gate(services: Services) -> Client:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.trader("acct-1", "1000000")
    await gate.trader("acct-2", "1000000")
    return gate


async def seen(monitor: MonitorService, account: str, field: str, count: int) -> None:
    """Waits until the monitor has read `count` of `field` for the account and acted on them."""
    async def state() -> tuple[int, bool]:
        assert monitor.flows is not None
        flow = monitor.flows.flows.get(account)
        totals = flow.totals(2**62, 2**62) if flow is not None else None
        return (getattr(totals, field) if totals is not None else 0), monitor.flows.idle

    await until(state, lambda s: s[0] >= count and s[1])


async def _filled(gate: Client, account: str, side: str, quantity: str, price: str, **fill: Any) -> None:
    response = await gate.check(account=account, side=side, quantity=quantity, price=price)
    assert response.decision == pb.DECISION_ACCEPT, response
    await gate.fill(account, response.order_id, quantity, price, **fill)


async def test_rate_limit_rule_when_refusals_reach_threshold_then_alert_and_not_below(services: Services) -> None:
    gate = await _gate(services)
    await gate.set_controls("acct-1", max_orders_per_second=1)
    rule = flow_rule("rl", "rate_limit_rejections", "3")
    async with running_monitor(services.redis_url, [rule]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        refused = 0
        while refused < 2:
            response = await gate.check(account="acct-1", quantity="0.001")
            refused += response.decision == pb.DECISION_REJECT and any(
                r.code == pb.REASON_ORDER_RATE_EXCEEDED for r in response.reasons)
        await seen(monitor, "acct-1", "rate_limited", 2)
        assert await client.alerts() == []
        while refused < 3:
            response = await gate.check(account="acct-1", quantity="0.001")
            refused += any(r.code == pb.REASON_ORDER_RATE_EXCEEDED for r in response.reasons)
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert (alerts[0].rule_id, alerts[0].account_id, alerts[0].value) == ("rl", "acct-1", "3")
        assert alerts[0].evidence["rate_limited"] == "3"


async def test_order_to_trade_rule_when_ratio_reaches_threshold_with_enough_orders_then_alert(
        services: Services) -> None:
    gate = await _gate(services)
    # 9 orders for 1 fill: ratio 8 (below 9); the 10th order: ratio 9 with the 10 orders the rule needs.
    rule = flow_rule("otr", "order_to_trade_ratio", "9", minimum="10")
    async with running_monitor(services.redis_url, [rule]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        await _filled(gate, "acct-1", "buy", "0.001", "50000")
        for _ in range(8):
            await gate.check(account="acct-1", quantity="0.001", price="40000")
        await seen(monitor, "acct-1", "orders", 9)
        assert await client.alerts() == []
        await gate.check(account="acct-1", quantity="0.001", price="40000")
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert (alerts[0].value, alerts[0].evidence["orders"], alerts[0].evidence["fills"]) == ("9", "10", "1")


async def test_wash_trade_rule_when_counterparty_is_the_account_itself_then_alert_and_other_account_none(
        services: Services) -> None:
    gate = await _gate(services)
    rule = flow_rule("wash", "wash_trades", "1", severity="critical")
    async with running_monitor(services.redis_url, [rule]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        await _filled(gate, "acct-1", "buy", "0.01", "50000", counterparty_account_id="acct-2")
        await seen(monitor, "acct-1", "fills", 1)
        assert await client.alerts() == []
        await _filled(gate, "acct-1", "sell", "0.01", "50000", execution_id="wash-1",
                      counterparty_account_id="acct-1")
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert (alerts[0].rule_id, alerts[0].account_id, alerts[0].value) == ("wash", "acct-1", "1")
        assert "wash-1 BTCUSDT vs acct-1" in alerts[0].evidence["fills"]


async def test_realized_pnl_rule_when_closing_profit_reaches_amount_then_alert_and_below_none(
        services: Services) -> None:
    gate = await _gate(services)
    rules = [flow_rule("pnl-at", "realized_pnl", "1000"), flow_rule("pnl-above", "realized_pnl", "1000.01")]
    async with running_monitor(services.redis_url, rules) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        await _filled(gate, "acct-1", "buy", "1", "50000")
        await gate.set_mark("BTCUSDT", "51000")
        await _filled(gate, "acct-1", "sell", "1", "51000")  # realises 1,000
        await seen(monitor, "acct-1", "fills", 2)
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert (alerts[0].rule_id, alerts[0].value, alerts[0].evidence["realized_pnl"]) == ("pnl-at", "1000", "1000")


async def test_wash_trade_rule_when_counterparty_in_same_linked_group_then_alert_and_other_group_none(
        services: Services) -> None:
    gate = await _gate(services)
    await gate.trader("acct-3", "1000000")
    rule = flow_rule("wash", "wash_trades", "1")
    async with running_monitor(services.redis_url, [rule]) as (monitor, client):
        await until(client.status, lambda s: s.role == "actor")
        for account, group in (("acct-1", "owner-a"), ("acct-2", "owner-a"), ("acct-3", "owner-b")):
            stored = await client.stub.SetAccountGroup(mpb.AccountGroup(account_id=account, group=group),
                                                       metadata=client.auth(ADMIN_TOKEN))
            assert stored.version > 0 and stored.updated_by == "test-admin"
        listed = await client.stub.ListAccountGroups(mpb.ListAccountGroupsRequest(group="owner-a"),
                                                     metadata=client.auth())
        assert [a.account_id for a in listed.accounts] == ["acct-1", "acct-2"]

        await _filled(gate, "acct-1", "buy", "0.01", "50000", counterparty_account_id="acct-3")
        await seen(monitor, "acct-1", "fills", 1)
        assert await client.alerts() == []
        await _filled(gate, "acct-1", "buy", "0.01", "50000", execution_id="linked-1",
                      counterparty_account_id="acct-2")
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert alerts[0].account_id == "acct-1" and "linked-1 BTCUSDT vs acct-2" in alerts[0].evidence["fills"]


async def test_set_account_group_when_caller_not_admin_or_field_bad_then_refused_naming_it(
        services: Services) -> None:
    await _gate(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await client.stub.SetAccountGroup(mpb.AccountGroup(account_id="acct-1", group="g"),
                                              metadata=client.auth(OPERATOR_TOKEN))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await client.stub.SetAccountGroup(mpb.AccountGroup(account_id="", group="g"),
                                              metadata=client.auth(ADMIN_TOKEN))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.value.details().startswith("account_id")
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "SetAccountGroup",
                                      lambda rows: len(rows) == 2)
        assert sorted(e["outcome"].split(":")[0] for e in entries) == ["denied", "invalid"]


async def test_groups_command_when_setting_and_listing_then_table_json_and_exit_codes(
        services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    await _gate(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        target = ("--target", client.target)

        async def run(*argv: str) -> tuple[int, str, str]:
            code = await asyncio.to_thread(main, list(argv))  # a blocking channel: off this loop
            out, err = capsys.readouterr()
            return code, out, err

        code, out, _ = await run("groups", "set", "acct-1", "owner-a", "--json", *target, "--token", ADMIN_TOKEN)
        assert code == 0 and json.loads(out)["group"] == "owner-a"
        code, out, _ = await run("groups", *target, "--token", OPERATOR_TOKEN)
        header, row = out.splitlines()
        assert code == 0 and header.split()[:2] == ["ACCOUNT", "GROUP"] and row.split()[:2] == ["acct-1", "owner-a"]
        code, out, _ = await run("groups", "set", "acct-1", "", *target, "--token", ADMIN_TOKEN)
        assert code == 0
        code, out, _ = await run("groups", "--json", *target, "--token", OPERATOR_TOKEN)
        assert code == 0 and json.loads(out) == {}
        code, _, err = await run("groups", "set", "acct-1", *target, "--token", ADMIN_TOKEN)
        assert code == 2 and "set needs the account and its group" in err
