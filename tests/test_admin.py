"""RiskAdmin: authentication, authorisation, audit, validation, acknowledgement after Redis."""

import json

import pytest
import redis.asyncio as aioredis
from grpc import StatusCode
from grpc.aio import AioRpcError

from riskgate.store.keys import Keys
from riskgate.v1 import admin_pb2 as admin
from tests.audit_trail import audit_of
from tests.support import OPERATOR_TOKEN, VIEWER_TOKEN, Client, codes, symbol_spec


async def test_admin_call_when_token_missing_then_unauthenticated_and_audited(client: Client, redis_server) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.admin.SetCircuitBreaker(admin.CircuitBreaker(state=admin.BREAKER_HALTED, reason="x"))
    assert error.value.code() == StatusCode.UNAUTHENTICATED
    entries = await audit_of(redis_server.url, "SetCircuitBreaker")
    assert entries[-1]["actor"] == "anonymous"
    assert entries[-1]["action"] == "SetCircuitBreaker"
    assert entries[-1]["outcome"].startswith("denied")


async def test_admin_call_when_token_unknown_then_unauthenticated(client: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=client.auth("nope"))
    assert error.value.code() == StatusCode.UNAUTHENTICATED


async def test_breaker_change_when_viewer_calls_then_permission_denied_nothing_changes(client: Client,
                                                                                        redis_server) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.admin.SetCircuitBreaker(admin.CircuitBreaker(state=admin.BREAKER_HALTED, reason="x"),
                                             metadata=client.auth(VIEWER_TOKEN))
    assert error.value.code() == StatusCode.PERMISSION_DENIED
    breakers = await client.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(),
                                                      metadata=client.auth(VIEWER_TOKEN))
    assert [b.state for b in breakers.breakers] == [admin.BREAKER_NORMAL]
    assert (await audit_of(redis_server.url, "SetCircuitBreaker"))[-1]["actor"] == "test-viewer"


async def test_upsert_symbol_when_operator_calls_then_permission_denied(client: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.admin.UpsertSymbol(symbol_spec(), metadata=client.auth(OPERATOR_TOKEN))
    assert error.value.code() == StatusCode.PERMISSION_DENIED


async def test_breaker_change_when_operator_sets_it_then_audited_with_actor_and_version(client: Client,
                                                                                        redis_server) -> None:
    await client.upsert_symbol(mark="50000")
    stored = await client.admin.SetCircuitBreaker(
        admin.CircuitBreaker(symbol="BTCUSDT", state=admin.BREAKER_REDUCE_ONLY, reason="volatility"),
        metadata=client.auth(OPERATOR_TOKEN))
    assert (stored.set_by, stored.state) == ("test-operator", admin.BREAKER_REDUCE_ONLY)
    assert stored.version > 0 and stored.updated_ms > 0
    entry = (await audit_of(redis_server.url, "SetCircuitBreaker"))[-1]
    assert (entry["actor"], entry["action"], entry["target"], entry["outcome"]) == (
        "test-operator", "SetCircuitBreaker", "BTCUSDT", "ok")
    assert json.loads(entry["request"])["reason"] == "volatility"


async def test_breaker_change_when_tripped_without_reason_then_invalid_argument(client: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.set_breaker(admin.BREAKER_HALTED, reason="")
    assert error.value.code() == StatusCode.INVALID_ARGUMENT
    assert "reason" in error.value.details()


async def test_breaker_change_when_symbol_unknown_then_invalid_argument(client: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.set_breaker(admin.BREAKER_HALTED, symbol="NOPE")
    assert error.value.code() == StatusCode.INVALID_ARGUMENT


async def test_versions_when_changes_follow_each_other_then_strictly_increase(client: Client) -> None:
    await client.upsert_symbol()
    first = await client.set_mark("BTCUSDT", "50000")
    second = await client.set_mark("BTCUSDT", "50001")
    assert second.version > first.version
    assert second.timestamp_ms >= first.timestamp_ms


async def test_set_mark_when_price_malformed_or_symbol_unknown_then_invalid_argument(client: Client) -> None:
    await client.upsert_symbol()
    for symbol, price in (("BTCUSDT", "0"), ("BTCUSDT", "-1"), ("BTCUSDT", "nan"), ("NOPE", "1")):
        with pytest.raises(AioRpcError) as error:
            await client.set_mark(symbol, price)
        assert error.value.code() == StatusCode.INVALID_ARGUMENT


async def test_upsert_account_when_position_symbol_unknown_then_invalid_argument_naming_field(
        client: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.upsert_account("acct-1", "1000", [("NOPE", "1", "100", 10)])
    assert error.value.code() == StatusCode.INVALID_ARGUMENT
    assert "positions[0].symbol" in error.value.details()


async def test_set_controls_when_values_invalid_then_invalid_argument_naming_field(client: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.set_controls("acct-1", max_gross_notional="-5")
    assert "max_gross_notional" in error.value.details()
    with pytest.raises(AioRpcError) as error:
        await client.set_controls("acct-1", restriction=9)
    assert "restriction" in error.value.details()


async def test_get_account_risk_when_account_unknown_then_not_found(client: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await client.risk("ghost")
    assert error.value.code() == StatusCode.NOT_FOUND


async def test_health_when_service_started_then_serving(client: Client) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(client.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service="riskgate.v1.PreTradeRisk"))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_admin_change_when_redis_version_counter_went_backwards_then_versioned_above_all_seen(
        client: Client, redis_server) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader()
    first = await client.set_breaker(admin.BREAKER_REDUCE_ONLY, reason="before failover")
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        await redis.set(Keys("rg").seq, 0)  # as after losing the AOF tail
        changed = await client.set_breaker(admin.BREAKER_HALTED, reason="after failover")
        # The script lifts the counter past every version this process has seen, so the change
        # is newer than what it replaces everywhere, in this book and in every other.
        assert changed.version > first.version
        assert int(await redis.get(Keys("rg").seq)) >= changed.version
        assert codes(await client.check(quantity="0.1", price="50000")) == ["REASON_PLATFORM_HALTED"]
    finally:
        await redis.aclose()


async def test_read_calls_when_made_then_audited_with_actor(client: Client, redis_server) -> None:
    await client.trader()
    await client.risk("acct-1")
    with pytest.raises(AioRpcError):
        await client.risk("ghost")
    entries = [e for e in await audit_of(redis_server.url, "GetAccountRisk", 2) if e["action"] == "GetAccountRisk"]
    assert [(e["actor"], e["target"], e["outcome"]) for e in entries] == [
        ("test-viewer", "acct-1", "ok"), ("test-viewer", "ghost", "not found")]


async def test_account_risk_when_account_has_no_controls_of_its_own_then_controls_name_the_account(
        client: Client) -> None:
    # Accounts without controls share one default record in memory (it carries no account id).
    await client.upsert_symbol()
    await client.upsert_account("plain-1", "1000")
    await client.upsert_account("plain-2", "1000")
    await client.set_controls("plain-2", kyc_level=2)
    plain, controlled = await client.risk("plain-1"), await client.risk("plain-2")
    assert plain.controls.account_id == "plain-1"
    assert plain.controls.kyc_level == 0
    assert controlled.controls.account_id == "plain-2"
    assert controlled.controls.kyc_level == 2
    assert (await client.risk("plain-1")).controls.kyc_level == 0
