"""The account feed against a real Redis: it loads the records, follows the event stream,
and reads the records again rather than miss events trimmed before it read them."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
import numpy as np
import redis.asyncio as aioredis

from riskgate.book.specs import AccountEvent, AccountSnapshot, PositionSpec
from riskgate.monitor.account_feed import AccountFeed
from riskgate.monitor.columns import AccountColumns
from riskgate.monitor.keys import MonitorKeys
from riskgate.store.embedded import EmbeddedRedis
from tests.monitor_support import until

KEYS = MonitorKeys("rg")
_json = msgspec.json.Encoder(decimal_format="string")


def _position(quantity: str) -> tuple[PositionSpec, ...]:
    return (PositionSpec("BTCUSDT", Decimal(quantity), Decimal(50000), 10),)


async def _event(redis: aioredis.Redis, account: str, version: int, quantity: str) -> None:
    event = AccountEvent(account_id=account, balance=Decimal(1000), positions=_position(quantity), open_orders=(),
                         reserved_cost=Decimal(0), at_ms=1)
    await redis.xadd(KEYS.account_events, {"a": account, "v": str(version), "d": _json.encode(event)})


async def test_account_feed_when_events_trimmed_before_read_then_reads_records_again_and_misses_nothing(
        flushed_redis: EmbeddedRedis) -> None:
    redis = aioredis.Redis.from_url(flushed_redis.url)
    columns = AccountColumns()
    seen: list[int] = []
    feed = AccountFeed(redis, KEYS, columns, lambda accounts: seen.extend(np.asarray(accounts).tolist()),
                       lambda live: None)
    task = asyncio.create_task(feed.run())
    try:
        snapshot = AccountSnapshot(account_id="a", balance=Decimal(1000), positions=_position("1"))
        await redis.hset(KEYS.accounts, "a", b'{"v":1,"d":' + _json.encode(snapshot) + b"}")
        # Loaded first: the gate writes a record and its event together, so an event newer than
        # the record it sits beside never precedes a load; written by hand here, it must follow it.
        await until(lambda: asyncio.sleep(0, feed.loaded.is_set()), bool)
        await _event(redis, "a", 2, "2")
        await until(lambda: asyncio.sleep(0, columns.records[0][1][0].quantity if len(columns) else None),
                    lambda quantity: quantity == Decimal(2))
        reloads = feed.reloads
        # The monitor falls behind (stopped here, so no read races the changes): while it is
        # away the stream moves on and is trimmed past the point it had read.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        feed.cursors = {0: "1-0"}
        await redis.hset(KEYS.accounts, "a", b'{"v":9,"d":' + _json.encode(
            AccountSnapshot(account_id="a", balance=Decimal(1000), positions=_position("9"))) + b"}")
        await _event(redis, "b", 8, "5")
        await redis.xtrim(KEYS.account_events, maxlen=1)
        task = asyncio.create_task(feed.run())
        await until(lambda: asyncio.sleep(0, feed.reloads), lambda n: n > reloads)
        index = columns.index["a"]
        await until(lambda: asyncio.sleep(0, columns.records[index][1][0].quantity), lambda q: q == Decimal(9))
    finally:
        feed.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await redis.aclose()
