"""UpsertRule and ListRules: validated, versioned, audited, and followed by every monitor."""

from __future__ import annotations

import grpc
import pytest

from riskgate.v1 import monitor_pb2 as mpb
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import running_monitor, settled, until, vol_rule
from tests.support import ADMIN_TOKEN


def _rule(**fields: object) -> mpb.Rule:
    values: dict[str, object] = {"id": "vol-2pct", "scope": "platform", "metric": "mark_move", "threshold": "0.02",
                                 "window_ms": 60_000, "confirmation": 1, "action": "alert",
                                 "cooldown_ms": 60_000, "severity": mpb.SEVERITY_INFO, "mode": "alert_only"}
    values.update(fields)
    return mpb.Rule(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fields", "named"), [
    ({"threshold": "5%"}, "threshold"),
    ({"threshold": "1.5"}, "threshold"),
    ({"threshold": ""}, "threshold"),
    ({"release": "0.03"}, "release"),
    ({"window_ms": 0}, "window_ms"),
    ({"confirmation": 0}, "confirmation"),
    ({"action": "liquidate"}, "action"),
    ({"metric": "pnl"}, "metric"),
    ({"severity": mpb.SEVERITY_UNSPECIFIED}, "severity"),
    ({"mode": ""}, "mode"),
    ({"id": "bad id!"}, "id"),
    ({"scope": "symbol", "symbol": "NOPE"}, "symbol"),
    ({"scope": "symbol", "symbol": ""}, "symbol"),
    ({"scope": "symbol", "symbol": "BTCUSDT", "overrides": "missing"}, "overrides"),
    ({"metric": "margin_ratio", "window_ms": 0, "action": "alert", "scope": "account", "account_id": ""},
     "account_id"),
    ({"metric": "margin_ratio", "window_ms": 0, "action": "symbol_halted"}, "action"),
    ({"metric": "margin_ratio", "window_ms": 60000, "action": "alert"}, "window_ms"),
    ({"metric": "concentration", "window_ms": 0, "action": "alert", "min_value": "-1"}, "min_value"),
    ({"metric": "wash_trades", "window_ms": 60000, "action": "alert", "scope": "symbol", "symbol": "BTCUSDT"},
     "scope"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
async def test_upsert_rule_when_a_field_is_unusable_then_invalid_argument_names_it_and_audits(
        services: Services, fields: dict[str, object], named: str) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    async with running_monitor(services.redis_url, [vol_rule()]) as (_, client):
        await until(client.status, lambda s: s.symbols == 1)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.UpsertRule(_rule(**fields), metadata=client.auth(ADMIN_TOKEN))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(f"{named}:")
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "UpsertRule",
                                      lambda rows: len(rows) == 1)
        assert entries[0]["actor"] == "test-admin" and entries[0]["outcome"].startswith(f"invalid: {named}:")
        assert [r.id for r in (await client.stub.ListRules(mpb.ListRulesRequest(),
                                                           metadata=client.auth())).rules] == ["vol-test"]


async def test_upsert_rule_when_caller_is_not_admin_then_permission_denied(services: Services) -> None:
    async with running_monitor(services.redis_url, [vol_rule()]) as (_, client):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.UpsertRule(_rule(), metadata=client.auth())  # an operator
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_upsert_rule_when_valid_then_versioned_audited_followed_by_every_monitor_and_applied(
        services: Services) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    async with running_monitor(services.redis_url, [vol_rule()]) as (first, client), \
            running_monitor(services.redis_url, [vol_rule()]) as (second, _):
        await until(client.status, lambda s: s.symbols == 1)
        stored = await client.stub.UpsertRule(_rule(), metadata=client.auth(ADMIN_TOKEN))
        assert stored.version > 0 and stored.updated_by == "test-admin" and stored.threshold == "0.02"
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "UpsertRule",
                                      lambda rows: len(rows) == 1)
        assert (entries[0]["actor"], entries[0]["target"], entries[0]["outcome"], entries[0]["version"]) == (
            "test-admin", "vol-2pct", "ok", str(stored.version))
        # Both monitors follow the change, whichever took it.
        for monitor in (first, second):
            async def version(m: object = monitor) -> int:
                rule = m.view.rules.get("vol-2pct")  # type: ignore[attr-defined]
                return rule.version if rule else 0

            await until(version, lambda v: v == stored.version)
        # The new rule is in force: a 2% move alerts (alert only), under the 5% rule's threshold.
        await gate.set_mark("BTCUSDT", "51000")
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert (alerts[0].rule_id, alerts[0].rule_version, alerts[0].action_taken) == (
            "vol-2pct", stored.version, "none: alert only")
        # A seed does not overwrite what an operator stored.
        listed = await client.stub.ListRules(mpb.ListRulesRequest(), metadata=client.auth())
        assert [r.id for r in listed.rules] == ["vol-2pct", "vol-test"]


async def test_upsert_rule_when_symbol_rule_overrides_platform_rule_then_only_it_applies_there(
        services: Services) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    async with running_monitor(services.redis_url, [vol_rule()]) as (monitor, client):
        await until(client.status, lambda s: s.symbols == 1 and s.role == "actor")
        # BTCUSDT gets a looser threshold than the platform's 5%.
        await client.stub.UpsertRule(_rule(id="btc-8pct", scope="symbol", symbol="BTCUSDT", threshold="0.08",
                                           overrides="vol-test", mode="act", action="symbol_reduce_only",
                                           severity=mpb.SEVERITY_WARNING), metadata=client.auth(ADMIN_TOKEN))
        mark = await gate.set_mark("BTCUSDT", "53000")  # 6%: under the symbol's own threshold
        await settled(monitor, "BTCUSDT", mark.version)
        assert await client.alerts() == []
        await gate.set_mark("BTCUSDT", "54000")  # 8%
        alerts = await until(client.alerts, lambda a: len(a) == 1)
        assert alerts[0].rule_id == "btc-8pct"
