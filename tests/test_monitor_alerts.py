"""Alerts people work: authenticated, authorised and audited steps, over a real monitor."""

from __future__ import annotations

import grpc
import pytest
import redis.asyncio as aioredis

from riskgate.monitor.keys import MonitorKeys
from riskgate.v1 import monitor_pb2 as mpb
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import MonitorClient, running_monitor, until, vol_rule
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN


async def _one_alert(services: Services, client: MonitorClient) -> mpb.Alert:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await until(client.status, lambda s: s.role == "actor" and s.symbols == 1)
    await gate.set_mark("BTCUSDT", "53000")
    return (await until(client.alerts, lambda a: len(a) == 1))[0]


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code()


async def test_alert_workflow_when_operator_acks_escalates_and_resolves_then_each_step_is_recorded_and_audited(
        services: Services) -> None:
    async with running_monitor(services.redis_url, [vol_rule(mode="alert_only")]) as (_, client):
        alert = await _one_alert(services, client)
        stub, auth = client.stub, client.auth
        acked = await stub.AckAlert(mpb.AlertActionRequest(id=alert.id, note="looking"), metadata=auth())
        assert acked.state == mpb.ALERT_ACKNOWLEDGED
        escalated = await stub.EscalateAlert(mpb.AlertActionRequest(id=alert.id, note="desk head"), metadata=auth())
        assert escalated.state == mpb.ALERT_ESCALATED
        resolved = await stub.ResolveAlert(mpb.AlertActionRequest(id=alert.id, note="news-driven move, no abuse"),
                                           metadata=auth())
        assert resolved.state == mpb.ALERT_RESOLVED
        assert [(t.actor, t.action, t.note) for t in resolved.history] == [
            ("monitor:vol-test", "fired", alert.history[0].note), ("test-operator", "acknowledge", "looking"),
            ("test-operator", "escalate", "desk head"), ("test-operator", "resolve", "news-driven move, no abuse")]
        assert resolved.updated_ms >= resolved.created_ms
        # Read back: stored durably, filters apply.
        assert [a.id for a in await client.alerts(state=mpb.ALERT_RESOLVED)] == [alert.id]
        assert await client.alerts(state=mpb.ALERT_OPEN) == []
        assert [a.id for a in await client.alerts(symbol="BTCUSDT", rule_id="vol-test")] == [alert.id]
        assert await client.alerts(symbol="ETHUSDT") == []

        for method, state in (("AckAlert", "ACKNOWLEDGED"), ("EscalateAlert", "ESCALATED"),
                              ("ResolveAlert", "RESOLVED")):
            entries = await audit_entries(services.redis_url, lambda e, m=method: e["action"] == m,
                                          lambda rows: len(rows) == 1)
            assert (entries[0]["actor"], entries[0]["target"], entries[0]["outcome"]) == (
                "test-operator", alert.id, f"ok: {state}")
        redis = aioredis.Redis.from_url(services.redis_url, decode_responses=True)
        try:
            events = [f["event"] for _, f in await redis.xrange(MonitorKeys("rg").alert_events)]
        finally:
            await redis.aclose()
        assert events == ["created", "acknowledge", "escalate", "resolve"]


async def test_alert_workflow_when_resolve_has_no_rationale_or_alert_is_closed_then_refused_and_audited(
        services: Services) -> None:
    async with running_monitor(services.redis_url, [vol_rule(mode="alert_only")]) as (_, client):
        alert = await _one_alert(services, client)
        stub, auth = client.stub, client.auth
        assert await _code(stub.ResolveAlert(mpb.AlertActionRequest(id=alert.id, note="  "), metadata=auth())) \
            == grpc.StatusCode.INVALID_ARGUMENT
        await stub.ResolveAlert(mpb.AlertActionRequest(id=alert.id, note="false positive"), metadata=auth())
        assert await _code(stub.AckAlert(mpb.AlertActionRequest(id=alert.id), metadata=auth())) \
            == grpc.StatusCode.FAILED_PRECONDITION
        assert await _code(stub.AckAlert(mpb.AlertActionRequest(id="999"), metadata=auth())) \
            == grpc.StatusCode.NOT_FOUND
        outcomes = [e["outcome"] for e in await audit_entries(
            services.redis_url, lambda e: e["action"] in {"AckAlert", "ResolveAlert"}, lambda rows: len(rows) == 4)]
        assert outcomes == ["invalid: no rationale", "ok: RESOLVED", "refused: alert is RESOLVED", "not found"]


async def test_alert_workflow_when_caller_lacks_token_or_role_then_refused_and_audited(services: Services) -> None:
    async with running_monitor(services.redis_url, [vol_rule(mode="alert_only")]) as (_, client):
        alert = await _one_alert(services, client)
        stub = client.stub
        assert await _code(stub.ListAlerts(mpb.ListAlertsRequest())) == grpc.StatusCode.UNAUTHENTICATED
        # A viewer may list, not act.
        assert [a.id for a in await client.alerts(token=VIEWER_TOKEN)] == [alert.id]
        assert await _code(stub.AckAlert(mpb.AlertActionRequest(id=alert.id), metadata=client.auth(VIEWER_TOKEN))) \
            == grpc.StatusCode.PERMISSION_DENIED
        denied = await audit_entries(services.redis_url, lambda e: e["outcome"].startswith("denied"),
                                     lambda rows: len(rows) == 2)
        assert [(e["actor"], e["action"]) for e in denied] == [("anonymous", "ListAlerts"), ("test-viewer", "AckAlert")]
        assert (await client.alerts(token=ADMIN_TOKEN))[0].state == mpb.ALERT_OPEN
        reads = await audit_entries(services.redis_url, lambda e: e["action"] == "ListAlerts" and e["outcome"] == "ok",
                                    lambda rows: len(rows) >= 2)
        assert {e["actor"] for e in reads} >= {"test-viewer", "test-admin"}
        assert OPERATOR_TOKEN  # the operator's own steps are covered above
