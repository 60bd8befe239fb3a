"""Fail closed: when Redis is unreachable past its bound, risk-increasing orders are refused
while reducing orders pass; admin changes are refused, never half-done; recovery is automatic."""

import asyncio
import gc
import time
import types

import pytest
import redis.asyncio as aioredis
from grpc import StatusCode
from grpc.aio import AioRpcError

from riskgate.api import server as server_module
from riskgate.store.embedded import EmbeddedRedis
from riskgate.v1 import admin_pb2 as admin
from tests.conftest import Services
from tests.support import Client, codes, decision


async def _until(check, timeout_s: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_redis_lost_when_beyond_bound_then_increasing_rejected_reducing_passes_and_recovers(tmp_path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis").start()
    services = Services(redis_server.url)
    try:
        _, client = await services.start(redis_stale_after_ms=200)
        await client.upsert_symbol(mark="50000")
        await client.trader(positions=[("BTCUSDT", "1", "50000", 10)])
        redis_server.kill()

        async def refused() -> bool:
            response = await client.check(quantity="0.1", price="50000")
            return codes(response) == ["REASON_STATE_UNAVAILABLE"]

        assert await _until(refused)
        reducing = await client.check(side="sell", quantity="0.5", price="50000")
        assert decision(reducing) == "DECISION_ACCEPT"
        flip = await client.check(side="sell", quantity="2", price="50000")
        assert decision(flip) == "DECISION_REDUCE_ONLY"
        assert flip.allowed_quantity == "0.5"  # what is left after the open 0.5 sell

        with pytest.raises(AioRpcError) as error:
            await client.set_breaker(admin.BREAKER_HALTED, reason="during outage")
        assert error.value.code() == StatusCode.UNAVAILABLE
        breakers = await client.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(),
                                                          metadata=client.auth())
        assert [b.state for b in breakers.breakers] == [admin.BREAKER_NORMAL]  # not applied locally either

        restarted = EmbeddedRedis(tmp_path / "redis", port=redis_server.port).start()
        try:
            async def accepted() -> bool:
                response = await client.check(quantity="0.1", price="50000")
                return decision(response) == "DECISION_ACCEPT"

            assert await _until(accepted)
        finally:
            await services.stop_all()
            restarted.stop()
    finally:
        await services.stop_all()
        redis_server.stop()


async def test_mark_when_stale_then_increasing_rejected_but_reducing_accepted(client: Client) -> None:
    await client.upsert_symbol(mark="50000", mark_price_max_age_ms=1)
    await client.trader(positions=[("BTCUSDT", "1", "50000", 10)])
    await asyncio.sleep(0.05)
    stale = await client.check(quantity="0.1", price="50000")
    assert codes(stale) == ["REASON_MARK_PRICE_STALE"]
    reducing = await client.check(side="sell", quantity="0.1", price="50000")
    assert decision(reducing) == "DECISION_ACCEPT"


async def test_other_position_when_its_mark_is_stale_then_its_profit_does_not_fund_new_risk(client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.upsert_symbol(symbol="ETHUSDT", tick_size="0.01", mark_price_max_age_ms=1)
    await client.set_mark("ETHUSDT", "4000")
    await client.trader(balance="1000", positions=[("ETHUSDT", "10", "2000", 10)])
    await asyncio.sleep(0.05)
    response = await client.check(quantity="0.3", price="50000", leverage=10)
    assert codes(response) == ["REASON_MARK_PRICE_STALE"]
    assert response.reasons[0].value == "ETHUSDT"


async def test_write_behind_when_redis_refuses_writes_then_fails_closed_until_it_takes_them(
        services: Services, redis_server) -> None:
    _, client = await services.start(redis_stale_after_ms=200)
    await client.upsert_symbol(mark="50000")
    await client.trader(positions=[("BTCUSDT", "1", "50000", 10)])
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        # Answers PING, refuses writes: as a demoted master or a full disk would.
        await redis.config_set("min-replicas-to-write", 1)
        assert decision(await client.check(quantity="0.1", price="50000")) == "DECISION_ACCEPT"

        async def refused() -> bool:
            return codes(await client.check(quantity="0.1", price="50000")) == ["REASON_STATE_UNAVAILABLE"]

        assert await _until(refused)
        assert decision(await client.check(side="sell", quantity="0.1", price="50000")) == "DECISION_ACCEPT"
        await redis.config_set("min-replicas-to-write", 0)

        async def accepted() -> bool:
            return decision(await client.check(quantity="0.1", price="50000")) == "DECISION_ACCEPT"

        assert await _until(accepted)
    finally:
        await redis.config_set("min-replicas-to-write", 0)
        await redis.aclose()


async def test_healthy_link_when_time_passes_then_orders_keep_flowing(services: Services) -> None:
    # The change feed must keep proving itself alive (pongs on its own connection); if it
    # did not, every risk-increasing order would be refused once the bound ran out.
    _, client = await services.start(redis_stale_after_ms=200)
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await asyncio.sleep(1.0)
    assert decision(await client.check(quantity="0.1", price="50000")) == "DECISION_ACCEPT"


async def test_start_when_its_post_load_step_stalls_the_loop_past_the_bound_then_it_serves_proven_at_once(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    # Start-up's post-load step (freezing the loaded heap) holds the event loop: a large book or a
    # busy machine can make that longer than the staleness bound. Here it is made so.
    stalled_until: list[float] = []

    def freeze() -> None:
        time.sleep(1.0)  # the stall itself (twice the 500 ms bound), not a wait for anything
        stalled_until.append(time.monotonic())
        gc.freeze()

    monkeypatch.setattr(server_module, "gc", types.SimpleNamespace(
        disable=gc.disable, enable=gc.enable, freeze=freeze, get_threshold=gc.get_threshold,
        set_threshold=gc.set_threshold))
    service, client = await services.start(redis_stale_after_ms=500)
    # The link was proven after the stall, not only before it: start returns fresh, and the
    # first calls are answered rather than refused as unproven.
    [stall_end] = stalled_until
    assert service.book.fresh_until > stall_end
    await client.upsert_symbol(mark="50000")
    await client.trader()
    assert decision(await client.check(quantity="0.1", price="50000")) == "DECISION_ACCEPT"
