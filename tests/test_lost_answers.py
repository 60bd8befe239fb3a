"""Admin changes whose answer is lost after Redis ran them: the caller is told it is not
confirmed, riskgate finds out once Redis answers again and the deadline has passed, applies
what Redis did to its own book, and audits the outcome."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from grpc import StatusCode
from grpc.aio import AioRpcError

from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys
from riskgate.v1 import admin_pb2 as admin
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.lossy_proxy import LossyProxy


@pytest.fixture
async def proxied(flushed_redis: EmbeddedRedis) -> AsyncIterator[tuple[LossyProxy, Services]]:
    proxy = LossyProxy(flushed_redis.port)
    port = await proxy.start()
    services = Services(f"redis://127.0.0.1:{port}/0")
    try:
        yield proxy, services
    finally:
        await services.stop_all()
        await proxy.stop()


async def _audit_outcomes(url: str, action: str, until: str) -> list[str]:
    entries = await audit_entries(url, lambda e: e["action"] == action,
                                  lambda entries: any(e["outcome"].startswith(until) for e in entries))
    return [e["outcome"] for e in entries]


def _script_call(sha: str) -> bytes:
    """How a call of one Lua script looks on the wire."""
    return b"EVALSHA\r\n$40\r\n" + sha.encode()


async def _until(check) -> bool:
    for _ in range(1000):
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_upsert_account_when_answer_lost_after_redis_ran_it_then_resolved_applied_in_the_book(
        proxied: tuple[LossyProxy, Services], flushed_redis: EmbeddedRedis) -> None:
    proxy, services = proxied
    service, client = await services.start(redis_stale_after_ms=500)
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000")
    proxy.lose_answers_after(_script_call(service.store._put.sha))
    with pytest.raises(AioRpcError) as error:
        await client.upsert_account("acct-1", "5000")
    assert error.value.code() == StatusCode.UNAVAILABLE
    outcomes = await _audit_outcomes(flushed_redis.url, "UpsertAccount", "resolved")
    # The trader's own upsert, then this one: run ("ok", by the script), unconfirmed, resolved.
    assert [o.split(":")[0] for o in outcomes] == ["ok", "ok", "unconfirmed", "resolved"]
    assert outcomes[-1].startswith("resolved: applied (version ")

    async def book_has_it() -> bool:
        return service.book.accounts["acct-1"].balance == 5000

    assert await _until(book_has_it)
    await client.check(quantity="1", order_id="o-1")
    await client.fill("acct-1", "o-1", "0.5", "50000")  # later state builds on the change
    redis = aioredis.Redis.from_url(flushed_redis.url)
    try:
        assert json.loads(await redis.hget(Keys("rg").accounts, "acct-1"))["d"]["balance"] == "5000"
    finally:
        await redis.aclose()


async def test_upsert_account_when_answer_lost_but_change_feed_delivered_it_then_resolved_applied_not_superseded(
        proxied: tuple[LossyProxy, Services], flushed_redis: EmbeddedRedis) -> None:
    proxy, services = proxied
    service, client = await services.start(redis_stale_after_ms=500)
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000")
    # Only the writer's link loses the answer: the change feed still brings the published
    # change into the book, and this process then writes the account again under a newer
    # version, so the resolution finds the book past the change's version.
    proxy.lose_answers_after(_script_call(service.store._put.sha), only_its_link=True)
    with pytest.raises(AioRpcError) as error:
        await client.upsert_account("acct-1", "5000")
    assert error.value.code() == StatusCode.UNAVAILABLE
    outcomes = await _audit_outcomes(flushed_redis.url, "UpsertAccount", "resolved")
    assert [o.split(":")[0] for o in outcomes] == ["ok", "ok", "unconfirmed", "resolved"]
    # The book and Redis hold it: nothing to send again.
    assert re.fullmatch(r"resolved: applied \(version \d+\)", outcomes[-1])
    assert service.book.accounts["acct-1"].balance == 5000
    redis = aioredis.Redis.from_url(flushed_redis.url)
    try:
        assert json.loads(await redis.hget(Keys("rg").accounts, "acct-1"))["d"]["balance"] == "5000"
    finally:
        await redis.aclose()


async def test_release_when_answer_lost_after_redis_ran_it_then_resolved_released_here_too(
        proxied: tuple[LossyProxy, Services], flushed_redis: EmbeddedRedis) -> None:
    proxy, services = proxied
    service, client = await services.start(redis_stale_after_ms=500)
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.check(quantity="1", order_id="o-1")
    proxy.lose_answers_after(_script_call(service.store._release.sha))
    with pytest.raises(AioRpcError):
        await client.admin.ReleaseReservation(
            admin.ReleaseReservationRequest(account_id="acct-1", order_id="o-1", reason="gone"),
            metadata=client.auth())
    await _audit_outcomes(flushed_redis.url, "ReleaseReservation", "resolved: applied")

    async def released() -> bool:
        return "o-1" not in service.book.accounts["acct-1"].orders

    assert await _until(released)
    assert (await client.risk("acct-1")).reserved_order_cost == "0"
