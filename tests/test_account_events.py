"""The account-event stream: every batch that moves an account appends its whole state, in the
same Lua call as the account record, so a follower (the monitor) can resume from any id."""

from __future__ import annotations

import json
from decimal import Decimal

import redis.asyncio as aioredis

from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys
from tests.conftest import Services
from tests.support import eventually

KEYS = Keys("rg")


async def _events(redis: aioredis.Redis, account: str, after: str = "-") -> list[tuple[str, int, dict]]:
    entries = await redis.xrange(KEYS.account_events, min=after)
    return [(entry_id.decode(), int(fields[b"v"]), json.loads(fields[b"d"]))
            for entry_id, fields in entries if fields[b"a"].decode() == account]


async def test_account_event_when_order_accepted_then_stream_carries_its_open_exposure(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000")
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.check(quantity="1", price="50000", leverage=10, order_id="o-1")

        async def has_exposure() -> bool:
            events = await _events(redis, "acct-1")
            return bool(events) and bool(events[-1][2]["open_orders"])

        assert await eventually(has_exposure)
        _, _, state = (await _events(redis, "acct-1"))[-1]
        [exposure] = state["open_orders"]
        assert {k: Decimal(v) if isinstance(v, str) and k != "symbol" else v for k, v in exposure.items()} == {
            "symbol": "BTCUSDT", "buy": 1, "sell": 0, "buy_notional": 50000, "sell_notional": 0,
            "buy_margin": 5000, "sell_margin": 0, "leverage": 10}
        assert Decimal(state["reserved_cost"]) == 5000
    finally:
        await redis.aclose()


async def test_account_event_when_filled_then_last_event_equals_the_stored_record_at_its_version(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000")
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        first_id = (await redis.xrevrange(KEYS.account_events, count=1) or [(b"0-0", {})])[0][0].decode()
        await client.check(quantity="1", price="50000", leverage=10, order_id="o-1")
        await client.fill("acct-1", "o-1", "0.4", "50000")
        await client.fill("acct-1", "o-1", "0.6", "49000")
        await client.check(side="sell", quantity="0.5", price="50000", leverage=0, order_id="o-2")

        async def settled() -> bool:
            events = await _events(redis, "acct-1")
            return bool(events) and not any(o["sell"] == "0" for o in events[-1][2]["open_orders"]) and \
                bool(events[-1][2]["open_orders"])

        assert await eventually(settled)
        stored = json.loads(await redis.hget(KEYS.accounts, "acct-1"))
        events = await _events(redis, "acct-1", after=first_id)
        versions = [version for _, version, _ in events]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        last_id, last_version, last = events[-1]
        assert last_version == stored["v"]
        assert (last["balance"], last["positions"]) == (stored["d"]["balance"], stored["d"]["positions"])
        assert Decimal(last["positions"][0]["quantity"]) == 1
        # A follower resuming after any id sees only what came after it.
        middle_id = events[len(events) // 2][0]
        resumed = await _events(redis, "acct-1", after=f"({middle_id}")
        assert [e[0] for e in resumed] == [e[0] for e in events if e[0] > middle_id]
        assert resumed[-1][0] == last_id
    finally:
        await redis.aclose()
